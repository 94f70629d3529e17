package pfcp

import (
	"encoding/json"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"

	"github.com/pine-upf/pine-upf/enforcer"
)

// Every accepted change reaches OnChange, with only what it touched, before
// HandleMessage returns the response; a refused request changes nothing.
func TestOnChange(t *testing.T) {
	var got []Change
	h := newHarness(t, func(c *Config) { c.OnChange = func(ch Change) error { got = append(got, ch); return nil } })
	h.associate(smfA, "smf-a", rtsA)
	if len(got) != 1 || len(got[0].Associations) != 1 || got[0].Associations[0].NodeID != "smf-a" ||
		got[0].Associations[0].Peer != smfA || !got[0].Associations[0].RecoveryTimeStamp.Equal(rtsA) {
		t.Fatalf("after association: %+v", got)
	}
	seid := upSEID(t, h.establish(smfA, "smf-a", 0xcafe, basic()...))
	if len(got) != 2 || got[1].Associations != nil || len(got[1].Sessions) != 1 || got[1].Sessions[0].SEID != seid {
		t.Fatalf("after establishment: %+v", got[1:])
	}
	// A refused modification: nothing.
	h.modify(smfA, seid, ie.NewRemovePDR(ie.NewPDRID(77)))
	if len(got) != 2 {
		t.Fatalf("a refused request changed the state: %+v", got[2:])
	}
	h.modify(smfA, seid, pdr(3, 10, ie.SrcInterfaceAccess, []*ie.IE{chID(5), ue4("10.45.0.2"), sdf("permit out 17 from any to assigned 5000")}, farID(1)))
	if len(got) != 3 || len(got[2].Sessions) != 1 || len(got[2].Sessions[0].PDRs) != 3 {
		t.Fatalf("after modification: %+v", got[2:])
	}
	h.delete(smfA, seid)
	if len(got) != 4 || len(got[3].Sessions) != 0 || len(got[3].Removed) != 1 || got[3].Removed[0] != seid {
		t.Fatalf("after deletion: %+v", got[3:])
	}
}

// ExportState → JSON → ImportState on a new server gives the same state;
// the new server then modifies and deletes the imported session (no Cause
// 65), never installs it on import, and allocates no TEID it holds.
func TestStateExportImport(t *testing.T) {
	h := setup(t)
	seid := upSEID(t, h.establish(smfA, "smf-a", 0xcafe, append(basic(),
		pdr(3, 10, ie.SrcInterfaceAccess, []*ie.IE{chID(5), ue4("10.45.0.2"), sdf("permit out 17 from any to assigned 5000")}, farID(1), urrID(1), qerID(1)),
		pdr(4, 10, ie.SrcInterfaceAccess, []*ie.IE{chID(5), ue4("10.45.0.2"), sdf("permit out 6 from any to assigned 80")}, farID(1), urrID(1)),
		ie.NewCreateQER(qerID(1), ie.NewGateStatus(0, 1), ie.NewMBR(1000, 2000), ie.NewQFI(9)),
		ie.NewCreateURR(urrID(1), ie.NewMeasurementMethod(0, 1, 0), ie.NewReportingTriggers(0x02, 0), ie.NewVolumeThreshold(1, 1<<20, 0, 0)),
	)...))
	h.enf.addUsage(seid, 3<<8, 10, 1000)
	h.now = h.now.Add(time.Second)
	h.srv.pollUsage()
	st := h.srv.ExportState()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exported state: %d bytes", len(b))
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}

	h2 := newHarness(t)
	h2.enf.sessions = maps.Clone(h.enf.sessions) // the datapath kept them
	h2.enf.usage = h.enf.usage
	if err := h2.srv.ImportState(back); err != nil {
		t.Fatal(err)
	}
	if h2.enf.installs != 0 {
		t.Errorf("import installed %d sessions", h2.enf.installs)
	}
	st2 := h2.srv.ExportState()
	if !reflect.DeepEqual(roundTrip(t, st), roundTrip(t, st2)) {
		t.Fatalf("re-exported state differs:\n%+v\n%+v", st, st2)
	}
	if !reflect.DeepEqual(h.srv.teids, h2.srv.teids) || len(h2.srv.teids) != 2 {
		t.Errorf("TEIDs %v, want %v", h2.srv.teids, h.srv.teids)
	}
	// A second import is refused.
	if err := h2.srv.ImportState(back); err == nil {
		t.Error("second import accepted")
	}
	// A state of another recovery time stamp is refused.
	h3 := newHarness(t)
	other := back
	other.RecoveryTimeStamp = back.RecoveryTimeStamp.Add(time.Hour)
	if err := h3.srv.ImportState(other); err == nil {
		t.Error("state of another recovery time stamp imported")
	}

	// The SMF carries on with the new server: same CHOOSE ID, same TEID;
	// a new CHOOSE ID gets a TEID nobody holds.
	r := h2.modify(smfA, seid,
		pdr(5, 10, ie.SrcInterfaceAccess, []*ie.IE{chID(5), ue4("10.45.0.2"), sdf("permit out 17 from any to assigned 5001")}, farID(1)),
		pdr(6, 10, ie.SrcInterfaceAccess, []*ie.IE{chID(6), ue4("10.45.0.2"), sdf("permit out 17 from any to assigned 5002")}, farID(1)))
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseRequestAccepted, 0)
	ss := h2.srv.sessions[seid]
	if ss.pdrs[5].fteid.teid != ss.pdrs[3].fteid.teid {
		t.Errorf("CHOOSE ID 5 after import: TEID %#x, before %#x", ss.pdrs[5].fteid.teid, ss.pdrs[3].fteid.teid)
	}
	if t6 := ss.pdrs[6].fteid.teid; t6 == ss.pdrs[3].fteid.teid || t6 == ss.pdrs[1].fteid.teid {
		t.Errorf("new CHOOSE ID got a TEID in use: %#x", t6)
	}
	// The URR's measurement went on: usage since the import is reported
	// with the next sequence number, on deletion.
	h2.enf.addUsage(seid, 3<<8, 5, 500)
	d := h2.delete(smfA, seid)
	checkCause(t, d.Cause, nil, ie.CauseRequestAccepted, 0)
	if len(d.UsageReport) != 1 {
		t.Fatalf("%d usage reports on deletion", len(d.UsageReport))
	}
	vm, err := findIE(d.UsageReport[0].ChildIEs, ie.VolumeMeasurement).VolumeMeasurement()
	if err != nil || vm.TotalVolume != 1500 {
		t.Errorf("usage after import: %+v %v, want 1500 bytes (nothing reported yet)", vm, err)
	}
}

func findIE(ies []*ie.IE, t uint16) *ie.IE {
	if x := find(ies, t); x != nil {
		return x
	}
	return ie.New(t, nil)
}

func roundTrip(t *testing.T, st State) any {
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	json.Unmarshal(b, &v)
	return v
}

// An enforcer refusal naming a rule comes back as Failed Rule ID (its PDR).
func TestFailedRuleIDFromEnforcer(t *testing.T) {
	h := setup(t)
	h.enf.failNext = &enforcer.RuleError{RuleID: 2<<8 | 1, Err: enforcer.ErrBadRule}
	r := h.establish(smfA, "smf-a", 1, basic()...)
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseRuleCreationModificationFailure, ie.CreatePDR)
	if r.FailedRuleID == nil {
		t.Fatal("no Failed Rule ID")
	}
	typ, _ := r.FailedRuleID.RuleIDType()
	id, _ := r.FailedRuleID.FailedRuleID()
	if typ != ie.RuleIDTypePDR || id != 2 {
		t.Errorf("Failed Rule ID type %d id %d, want PDR 2", typ, id)
	}
}

func TestHeartbeatRTT(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HeartbeatInterval = time.Second })
	h.associate(smfA, "smf-a", rtsA)
	h.srv.heartbeatTick()
	hb := h.hbOut()
	if len(hb) != 1 {
		t.Fatalf("%d heartbeats", len(hb))
	}
	h.now = h.now.Add(7 * time.Millisecond)
	h.do(smfA, message.NewHeartbeatResponse(hb[0].Sequence(), ie.NewRecoveryTimeStamp(rtsA)))
	if rtt := h.srv.Stats().HeartbeatRTT["smf-a"]; rtt != 7*time.Millisecond {
		t.Errorf("heartbeat RTT %v, want 7ms", rtt)
	}
}
