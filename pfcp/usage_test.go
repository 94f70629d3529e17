package pfcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"

	"github.com/pine-upf/pine-upf/enforcer"
)

// urrSession establishes basic() with URR 1 on both PDRs.
func urrSession(t *testing.T, h *harness, urr *ie.IE) uint64 {
	t.Helper()
	return upSEID(t, h.establish(smfA, "smf-a", 0x55,
		pdr(1, 100, 0, []*ie.IE{chV4(), ue4("10.45.0.2")}, ohr(0), farID(1), urrID(1)),
		pdr(2, 100, 1, []*ie.IE{ue4D("10.45.0.2")}, farID(2), urrID(1)),
		createFAR(1, actFORW, forwardCore()),
		createFAR(2, actFORW, forwardGNB(0x100, "192.168.1.50")),
		urr))
}

// reports returns the session report requests sent since the last call.
func (h *harness) reports() []*message.SessionReportRequest {
	var out []*message.SessionReportRequest
	rest := h.out[:0]
	for _, s := range h.out {
		if m, ok := s.msg.(*message.SessionReportRequest); ok {
			out = append(out, m)
		} else {
			rest = append(rest, s)
		}
	}
	h.out = rest
	return out
}

type usage struct {
	urr           uint32
	seqn          uint32
	trig          []byte
	total, ul, dl uint64
}

func usageOf(t *testing.T, x *ie.IE) usage {
	t.Helper()
	var u usage
	for _, k := range x.ChildIEs {
		switch k.Type {
		case ie.URRID:
			u.urr, _ = k.URRID()
		case ie.URSEQN:
			u.seqn, _ = k.URSEQN()
		case ie.UsageReportTrigger:
			u.trig, _ = k.UsageReportTrigger()
		case ie.VolumeMeasurement:
			v, err := k.VolumeMeasurement()
			if err != nil {
				t.Fatal(err)
			}
			u.total, u.ul, u.dl = v.TotalVolume, v.UplinkVolume, v.DownlinkVolume
		}
	}
	return u
}

func TestVolumeThresholdReport(t *testing.T) {
	h := setup(t)
	seid := urrSession(t, h, ie.NewCreateURR(urrID(1), ie.NewMeasurementMethod(0, 1, 0),
		ie.NewReportingTriggers(0x02, 0x00), ie.NewVolumeThreshold(0x01, 1000, 0, 0)))
	h.enf.addUsage(seid, 1<<8, 5, 600)
	h.srv.pollUsage()
	if r := h.reports(); len(r) != 0 {
		t.Fatalf("report below threshold: %d", len(r))
	}
	h.enf.addUsage(seid, 2<<8, 1, 500)
	h.srv.pollUsage()
	r := h.reports()
	if len(r) != 1 {
		t.Fatalf("%d reports, want 1", len(r))
	}
	if r[0].SEID() != 0x55 || r[0].ReportType == nil || !r[0].ReportType.HasUSAR() || len(r[0].UsageReport) != 1 {
		t.Fatalf("report %+v", r[0])
	}
	got := usageOf(t, r[0].UsageReport[0])
	if got.urr != 1 || got.seqn != 0 || got.trig[0]&0x02 == 0 || got.total != 1100 || got.ul != 600 || got.dl != 500 {
		t.Errorf("usage %+v", got)
	}
	// The SMF answers; the report is no longer pending.
	h.do(smfA, message.NewSessionReportResponse(0, 0, seid, r[0].Sequence(), 0, ie.NewCause(ie.CauseRequestAccepted)))
	if len(h.srv.pending) != 0 {
		t.Error("answered report still pending")
	}
	// Deletion reports the usage since: TERMR, next UR-SEQN.
	h.enf.addUsage(seid, 1<<8, 1, 70)
	d := h.delete(smfA, seid)
	checkCause(t, d.Cause, d.OffendingIE, ie.CauseRequestAccepted, 0)
	if len(d.UsageReport) != 1 {
		t.Fatalf("%d usage reports in the deletion response", len(d.UsageReport))
	}
	got = usageOf(t, d.UsageReport[0])
	if got.urr != 1 || got.seqn != 1 || got.trig[1]&0x08 == 0 || got.total != 70 || got.ul != 70 {
		t.Errorf("deletion usage %+v", got)
	}
}

func TestReportRetransmitted(t *testing.T) {
	h := setup(t)
	seid := urrSession(t, h, ie.NewCreateURR(urrID(1), ie.NewMeasurementMethod(0, 1, 0),
		ie.NewReportingTriggers(0x02, 0x00), ie.NewVolumeThreshold(0x02, 0, 100, 0)))
	h.enf.addUsage(seid, 1<<8, 1, 100)
	h.srv.pollUsage()
	first := h.reports()
	if len(first) != 1 {
		t.Fatal("no report")
	}
	for i := range reportN1 + 2 {
		h.now = h.now.Add(reportT1)
		h.srv.pollUsage()
		r := h.reports()
		if i < reportN1 && (len(r) != 1 || r[0].Sequence() != first[0].Sequence()) {
			t.Fatalf("retransmission %d: %d reports", i, len(r))
		}
		if i >= reportN1 && len(r) != 0 {
			t.Fatalf("retransmitted beyond N1")
		}
	}
}

func TestVolumeQuota(t *testing.T) {
	h := setup(t)
	seid := urrSession(t, h, ie.NewCreateURR(urrID(1), ie.NewMeasurementMethod(0, 1, 0),
		ie.NewReportingTriggers(0x00, 0x01), ie.NewVolumeQuota(0x01, 1000, 0, 0)))
	h.enf.addUsage(seid, 2<<8, 3, 1000)
	h.srv.pollUsage()
	r := h.reports()
	if len(r) != 1 {
		t.Fatalf("%d reports", len(r))
	}
	if got := usageOf(t, r[0].UsageReport[0]); got.trig[1]&0x01 == 0 || got.dl != 1000 {
		t.Errorf("usage %+v", got)
	}
	for _, rule := range rulesOf(h, seid) {
		if rule.Action != enforcer.Drop {
			t.Errorf("rule %d still forwards after the quota ran out", rule.ID)
		}
	}
	// A new quota lifts the block.
	m := h.modify(smfA, seid, ie.NewUpdateURR(urrID(1), ie.NewVolumeQuota(0x01, 5000, 0, 0)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
	for _, rule := range rulesOf(h, seid) {
		if rule.Action != enforcer.Forward {
			t.Errorf("rule %d still drops with a new quota", rule.ID)
		}
	}
}

func TestPeriodicAndQueryReports(t *testing.T) {
	h := setup(t)
	seid := urrSession(t, h, ie.NewCreateURR(urrID(1), ie.NewMeasurementMethod(0, 1, 1),
		ie.NewReportingTriggers(0x01, 0x00), ie.NewMeasurementPeriod(10*time.Second)))
	h.enf.addUsage(seid, 1<<8, 1, 10)
	h.now = h.now.Add(5 * time.Second)
	h.srv.pollUsage()
	if len(h.reports()) != 0 {
		t.Fatal("periodic report too early")
	}
	h.now = h.now.Add(5 * time.Second)
	h.srv.pollUsage()
	r := h.reports()
	if len(r) != 1 || usageOf(t, r[0].UsageReport[0]).trig[0]&0x01 == 0 {
		t.Fatalf("periodic report: %d", len(r))
	}
	// Query URR: IMMER report in the modification response.
	h.enf.addUsage(seid, 2<<8, 1, 30)
	m := h.modify(smfA, seid, ie.NewQueryURR(urrID(1)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
	if len(m.UsageReport) != 1 {
		t.Fatal("no usage report for Query URR")
	}
	if got := usageOf(t, m.UsageReport[0]); got.trig[0]&0x80 == 0 || got.dl != 30 || got.seqn != 1 {
		t.Errorf("query usage %+v", got)
	}
	// Remove URR: TERMR report with the rest; the PDRs stop naming it.
	h.enf.addUsage(seid, 1<<8, 1, 4)
	m = h.modify(smfA, seid, ie.NewRemoveURR(urrID(1)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
	if len(m.UsageReport) != 1 {
		t.Fatal("no usage report for Remove URR")
	}
	if got := usageOf(t, m.UsageReport[0]); got.trig[1]&0x08 == 0 || got.ul != 4 || got.seqn != 2 {
		t.Errorf("remove usage %+v", got)
	}
	for _, p := range h.srv.sessions[seid].pdrs {
		if len(p.urrIDs) != 0 {
			t.Errorf("PDR %d still names URRs %v", p.id, p.urrIDs)
		}
	}
	_ = netip.Addr{}
}

func TestURRErrors(t *testing.T) {
	h := setup(t)
	r := h.establish(smfA, "smf-a", 1, append(basic(),
		ie.NewCreateURR(urrID(1), ie.NewMeasurementMethod(0, 0, 1), ie.NewReportingTriggers(0, 0)))...)
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseRuleCreationModificationFailure, ie.CreateURR)
	r = h.establish(smfA, "smf-a", 1, append(basic(),
		ie.NewCreateURR(urrID(1), ie.NewMeasurementMethod(0, 1, 0), ie.NewReportingTriggers(0x01, 0)))...)
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseConditionalIEMissing, ie.MeasurementPeriod)
	r = h.establish(smfA, "smf-a", 1, append(basic(),
		ie.NewCreateURR(urrID(1), ie.NewReportingTriggers(0x01, 0)))...)
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseMandatoryIEMissing, ie.MeasurementMethod)
}
