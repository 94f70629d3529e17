package smfsim

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/pfcp/smfsim/fakeupf"
	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"
)

var accepted = ie.NewCause(ie.CauseRequestAccepted)

func newFake(t *testing.T) *fakeupf.UPF {
	t.Helper()
	u, err := fakeupf.New("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		u.Close()
		for _, err := range u.Errors() {
			t.Errorf("fake UPF: %v", err)
		}
	})
	return u
}

func last(t *testing.T, u *fakeupf.UPF, typ uint8) message.Message {
	t.Helper()
	m := u.Last(typ)
	if m == nil {
		t.Fatalf("fake UPF got no message of type %d", typ)
	}
	return m
}

func request(t *testing.T, u *fakeupf.UPF, to netip.AddrPort, m message.Message) message.Message {
	t.Helper()
	r, err := u.Request(to, m, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dialT(t *testing.T, u *fakeupf.UPF, opts Options) *Client {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 200 * time.Millisecond
	}
	c, err := Dial(ctxT(t), u.Addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// child walks a path of grouped IE types.
func child(t *testing.T, i *ie.IE, path ...uint16) *ie.IE {
	t.Helper()
	cur := i
	for _, typ := range path {
		next, err := cur.FindByType(typ)
		if err != nil {
			t.Fatalf("IE %s has no %s child: %v", IEName(cur.Type), IEName(typ), err)
		}
		cur = next
	}
	return cur
}

func children(i *ie.IE, typ uint16) []*ie.IE {
	var out []*ie.IE
	for _, c := range i.ChildIEs {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

func byID(t *testing.T, ies []*ie.IE, idType uint16, id uint32) *ie.IE {
	t.Helper()
	for _, x := range ies {
		c, err := x.FindByType(idType)
		if err != nil {
			continue
		}
		var got uint32
		if idType == ie.PDRID {
			v, _ := c.PDRID()
			got = uint32(v)
		} else {
			v, _ := c.ValueAsUint32()
			got = v
		}
		if got == id {
			return x
		}
	}
	t.Fatalf("no %s %d among %d IEs", IEName(idType), id, len(ies))
	return nil
}

type slotWant struct {
	precedence uint32
	filters    []string
	fteid      func(t *testing.T, f *ie.FTEIDFields)
	ueV4       string
	ueFlagsUL  uint8
	ohr        uint8
	ohcDesc    uint16
	gnbTEID    uint32
	gnb        string
	gate       uint8
	mbrUL      uint64 // kbit/s, 0: no MBR IE
	mbrDL      uint64
	threshold  uint64
	drop       bool
}

// checkSlot checks the Create PDR/FAR/QER/URR IEs of slot n.
func checkSlot(t *testing.T, pdrs, fars, qers, urrs []*ie.IE, n uint16, w slotWant) {
	t.Helper()
	ulID, dlID := PDRIDs(n)
	ulFAR, dlFAR := FARIDs(n)
	for _, dir := range []struct {
		pdr   uint16
		far   uint32
		src   uint8
		ul    bool
		sdBit uint8
	}{{ulID, ulFAR, ie.SrcInterfaceAccess, true, 0}, {dlID, dlFAR, ie.SrcInterfaceCore, false, 0x04}} {
		pdr := byID(t, pdrs, ie.PDRID, uint32(dir.pdr))
		if p, _ := child(t, pdr, ie.Precedence).Precedence(); p != w.precedence {
			t.Errorf("PDR %d precedence %d, want %d", dir.pdr, p, w.precedence)
		}
		pdi := child(t, pdr, ie.PDI)
		if si, _ := child(t, pdi, ie.SourceInterface).SourceInterface(); si != dir.src {
			t.Errorf("PDR %d source interface %d, want %d", dir.pdr, si, dir.src)
		}
		var got []string
		for _, f := range children(pdi, ie.SDFFilter) {
			ff, err := f.SDFFilter()
			if err != nil {
				t.Fatalf("PDR %d SDF filter: %v", dir.pdr, err)
			}
			if !ff.HasFD() || ff.HasBID() || ff.HasTTC() || ff.HasSPI() || ff.HasFL() {
				t.Errorf("PDR %d SDF filter flags %#x, want FD only", dir.pdr, ff.Flags)
			}
			got = append(got, ff.FlowDescription)
		}
		if !slices.Equal(got, w.filters) {
			t.Errorf("PDR %d flow descriptions %q, want %q", dir.pdr, got, w.filters)
		}
		ue, err := child(t, pdi, ie.UEIPAddress).UEIPAddress()
		if err != nil {
			t.Fatal(err)
		}
		if ue.Flags != w.ueFlagsUL|dir.sdBit {
			t.Errorf("PDR %d UE IP flags %#x, want %#x", dir.pdr, ue.Flags, w.ueFlagsUL|dir.sdBit)
		}
		if w.ueV4 != "" && ue.IPv4Address.String() != w.ueV4 {
			t.Errorf("PDR %d UE IPv4 %s, want %s", dir.pdr, ue.IPv4Address, w.ueV4)
		}
		if far, _ := child(t, pdr, ie.FARID).FARID(); far != dir.far {
			t.Errorf("PDR %d FAR ID %d, want %d", dir.pdr, far, dir.far)
		}
		if q, _ := child(t, pdr, ie.QERID).QERID(); q != QERID(n) {
			t.Errorf("PDR %d QER ID %d, want %d", dir.pdr, q, QERID(n))
		}
		if u, _ := child(t, pdr, ie.URRID).URRID(); u != URRID(n) {
			t.Errorf("PDR %d URR ID %d, want %d", dir.pdr, u, URRID(n))
		}
		if dir.ul {
			f, err := child(t, pdi, ie.FTEID).FTEID()
			if err != nil {
				t.Fatal(err)
			}
			w.fteid(t, f)
			ohr, err := child(t, pdr, ie.OuterHeaderRemoval).OuterHeaderRemoval()
			if err != nil || len(ohr) != 2 || ohr[0] != w.ohr {
				t.Errorf("PDR %d outer header removal %x (%v), want %d", dir.pdr, ohr, err, w.ohr)
			}
		} else {
			if _, err := pdi.FindByType(ie.FTEID); err == nil {
				t.Errorf("downlink PDR %d has an F-TEID", dir.pdr)
			}
			if _, err := pdr.FindByType(ie.OuterHeaderRemoval); err == nil {
				t.Errorf("downlink PDR %d has outer header removal", dir.pdr)
			}
		}

		far := byID(t, fars, ie.FARID, dir.far)
		aa := child(t, far, ie.ApplyAction)
		if err := aa.ValidateApplyAction(); err != nil {
			t.Errorf("FAR %d apply action: %v", dir.far, err)
		}
		if w.drop {
			if !aa.HasDROP() {
				t.Errorf("FAR %d not DROP", dir.far)
			}
			continue
		}
		if !aa.HasFORW() {
			t.Errorf("FAR %d not FORW: %x", dir.far, aa.Payload)
		}
		fp := child(t, far, ie.ForwardingParameters)
		di, _ := child(t, fp, ie.DestinationInterface).DestinationInterface()
		if dir.ul {
			if di != ie.DstInterfaceCore {
				t.Errorf("uplink FAR %d destination %d, want CORE", dir.far, di)
			}
			if _, err := fp.FindByType(ie.OuterHeaderCreation); err == nil {
				t.Errorf("uplink FAR %d has outer header creation", dir.far)
			}
		} else {
			if di != ie.DstInterfaceAccess {
				t.Errorf("downlink FAR %d destination %d, want ACCESS", dir.far, di)
			}
			ohc, err := child(t, fp, ie.OuterHeaderCreation).OuterHeaderCreation()
			if err != nil {
				t.Fatal(err)
			}
			addr := ohc.IPv4Address
			if ohc.IPv6Address != nil {
				addr = ohc.IPv6Address
			}
			if ohc.OuterHeaderCreationDescription != w.ohcDesc || ohc.TEID != w.gnbTEID || addr.String() != w.gnb {
				t.Errorf("downlink FAR %d OHC desc %#x TEID %#x addr %s, want %#x %#x %s", dir.far,
					ohc.OuterHeaderCreationDescription, ohc.TEID, addr, w.ohcDesc, w.gnbTEID, w.gnb)
			}
		}
	}

	qer := byID(t, qers, ie.QERID, QERID(n))
	if gs, _ := child(t, qer, ie.GateStatus).GateStatus(); gs != w.gate<<2|w.gate {
		t.Errorf("QER %d gate status %#x, want UL=DL=%d", QERID(n), gs, w.gate)
	}
	if mbr, err := qer.FindByType(ie.MBR); w.mbrUL == 0 && w.mbrDL == 0 {
		if err == nil {
			t.Errorf("QER %d has an MBR", QERID(n))
		}
	} else {
		ul, _ := child(t, qer, ie.MBR).MBRUL()
		dl, _ := mbr.MBRDL()
		if ul != w.mbrUL || dl != w.mbrDL {
			t.Errorf("QER %d MBR %d/%d kbit/s, want %d/%d", QERID(n), ul, dl, w.mbrUL, w.mbrDL)
		}
	}
	if q, _ := child(t, qer, ie.QFI).QFI(); q != DefaultQFI {
		t.Errorf("QER QFI %d", q)
	}

	urr := byID(t, urrs, ie.URRID, URRID(n))
	if mm, _ := child(t, urr, ie.MeasurementMethod).MeasurementMethod(); mm != 0x02 {
		t.Errorf("URR %d measurement method %#x, want VOLUM", URRID(n), mm)
	}
	rt, _ := child(t, urr, ie.ReportingTriggers).ReportingTriggers()
	vt, vtErr := urr.FindByType(ie.VolumeThreshold)
	if w.threshold == 0 {
		if vtErr == nil || !slices.Equal(rt, []byte{0, 0, 0}) {
			t.Errorf("URR %d: threshold IE %v, triggers %x; want none", URRID(n), vtErr == nil, rt)
		}
	} else {
		f, err := vt.VolumeThreshold()
		if err != nil || !f.HasTOVOL() || f.TotalVolume != w.threshold || !slices.Equal(rt, []byte{0x02, 0, 0}) {
			t.Errorf("URR %d threshold %+v (%v), triggers %x; want TOVOL %d, VOLTH", URRID(n), f, err, rt, w.threshold)
		}
	}
}

func ueV4Want(teid *uint32) slotWant {
	return slotWant{
		ueV4: "10.45.0.2", ueFlagsUL: 0x02, ohr: 0, ohcDesc: 0x0100, gnbTEID: 0xabcd, gnb: "192.0.2.10",
	}
}

func TestScenarioMessages(t *testing.T) {
	u := newFake(t)
	c := dialT(t, u, Options{})
	ctx := ctxT(t)
	ue := netip.MustParseAddr("10.45.0.2")

	if _, _, err := c.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	asr := last(t, u, message.MsgTypeAssociationSetupRequest).(*message.AssociationSetupRequest)
	if id, _ := asr.NodeID.NodeID(); id != "127.0.0.1" || c.NodeID() != "127.0.0.1" {
		t.Errorf("node ID %q / %q, want 127.0.0.1 (the local socket)", id, c.NodeID())
	}
	if ts, _ := asr.RecoveryTimeStamp.RecoveryTimeStamp(); !ts.Equal(c.RecoveryTime().Truncate(time.Second)) {
		t.Errorf("recovery time stamp %v, want %v", ts, c.RecoveryTime())
	}
	if asr.CPFunctionFeatures == nil {
		t.Error("no CP Function Features")
	}
	if !c.PeerRecoveryTime().Equal(u.Recovery) {
		t.Errorf("peer recovery %v, want %v", c.PeerRecoveryTime(), u.Recovery)
	}

	s, err := c.EstablishPEGC(ctx, PEGC{
		UEIPv4: ue, GNB: netip.MustParseAddr("192.0.2.10"), GNBTEID: 0xabcd,
		Default: &DefaultRule{Filter: "permit out ip from any to assigned", MBRUL: 10_000_000, MBRDL: 20_000_001,
			VolumeThreshold: 1 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.TEID != 0x101 || s.N3Addr != netip.MustParseAddr("127.0.0.1") || s.UPSEID != 0x5001 {
		t.Errorf("session TEID %#x N3 %s UP SEID %#x", s.TEID, s.N3Addr, s.UPSEID)
	}
	ser := last(t, u, message.MsgTypeSessionEstablishmentRequest).(*message.SessionEstablishmentRequest)
	if ser.SEID() != 0 || !ser.HasSEID() {
		t.Errorf("establishment header SEID %d (S flag %v), want 0 with S=1", ser.SEID(), ser.HasSEID())
	}
	f, err := ser.CPFSEID.FSEID()
	if err != nil || f.SEID != s.CPSEID || !f.IPv4Address.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("CP F-SEID %+v (%v), want SEID %d @127.0.0.1", f, err, s.CPSEID)
	}
	if id, _ := ser.NodeID.NodeID(); id != "127.0.0.1" {
		t.Errorf("establishment node ID %q", id)
	}
	if pt, _ := ser.PDNType.PDNType(); pt != ie.PDNTypeIPv4 {
		t.Errorf("PDN type %d", pt)
	}
	if len(ser.CreatePDR) != 2 || len(ser.CreateFAR) != 2 || len(ser.CreateQER) != 1 || len(ser.CreateURR) != 1 {
		t.Errorf("establishment: %d PDRs %d FARs %d QERs %d URRs", len(ser.CreatePDR), len(ser.CreateFAR), len(ser.CreateQER), len(ser.CreateURR))
	}
	w := ueV4Want(nil)
	w.precedence = DefaultDefaultPrecedence
	w.filters = []string{"permit out ip from any to assigned"}
	w.fteid = func(t *testing.T, f *ie.FTEIDFields) {
		if f.Flags != 0x0d || f.ChooseID != DefaultChooseID {
			t.Errorf("establishment F-TEID flags %#x choose ID %d, want CH|CHID|V4 and %d", f.Flags, f.ChooseID, DefaultChooseID)
		}
	}
	w.mbrUL, w.mbrDL, w.threshold = 10_000, 20_001, 1<<20
	checkSlot(t, ser.CreatePDR, ser.CreateFAR, ser.CreateQER, ser.CreateURR, 0, w)

	// Add a NAT'd PINE with a port range and one single port.
	pine := PINE{ID: 7, Addr: ue, Proto: 17, Ports: []PortRange{{5000, 5009}, {6000, 6000}}, MBRUL: 1000, GateClosed: true}
	if err := s.AddPINE(ctx, pine); err != nil {
		t.Fatal(err)
	}
	smr := last(t, u, message.MsgTypeSessionModificationRequest).(*message.SessionModificationRequest)
	if smr.SEID() != s.UPSEID {
		t.Errorf("modification header SEID %#x, want UP SEID %#x", smr.SEID(), s.UPSEID)
	}
	if len(smr.CreatePDR) != 2 || len(smr.CreateFAR) != 2 || len(smr.CreateQER) != 1 || len(smr.CreateURR) != 1 {
		t.Errorf("add PINE: %d PDRs %d FARs %d QERs %d URRs", len(smr.CreatePDR), len(smr.CreateFAR), len(smr.CreateQER), len(smr.CreateURR))
	}
	w = ueV4Want(nil)
	w.precedence = DefaultPINEPrecedence
	w.filters = []string{"permit out 17 from any to 10.45.0.2 5000-5009", "permit out 17 from any to 10.45.0.2 6000"}
	w.fteid = func(t *testing.T, f *ie.FTEIDFields) {
		if f.Flags != 0x01 || f.TEID != s.TEID || !f.IPv4Address.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("add PINE F-TEID %+v, want V4 TEID %#x 127.0.0.1", f, s.TEID)
		}
	}
	w.gate, w.mbrUL = ie.GateStatusClosed, 1
	checkSlot(t, smr.CreatePDR, smr.CreateFAR, smr.CreateQER, smr.CreateURR, 7, w)

	// A PINE with its own IPv6 address, any protocol, any port.
	if err := s.AddPINE(ctx, PINE{ID: 8, Addr: netip.MustParseAddr("2001:db8:1:0:aa::2"), Precedence: 10}); err != nil {
		t.Fatal(err)
	}
	smr = last(t, u, message.MsgTypeSessionModificationRequest).(*message.SessionModificationRequest)
	fd, err := smr.CreatePDR[0].SDFFilter()
	if err != nil || fd.FlowDescription != "permit out ip from any to 2001:db8:1:0:aa::2" {
		t.Errorf("IPv6 PINE flow description %q (%v)", fd.FlowDescription, err)
	}
	if got := s.PINEs(); len(got) != 2 || got[0].ID != 7 || got[1].ID != 8 {
		t.Errorf("PINEs %+v", got)
	}
	if err := s.AddPINE(ctx, pine); err == nil {
		t.Error("adding PINE 7 twice succeeded")
	}

	// Gate open, new MBR.
	pine.GateClosed, pine.MBRDL = false, 2_000_000
	if err := s.UpdatePINE(ctx, pine); err != nil {
		t.Fatal(err)
	}
	smr = last(t, u, message.MsgTypeSessionModificationRequest).(*message.SessionModificationRequest)
	if len(smr.UpdateQER) != 1 || len(smr.CreatePDR) != 0 || len(smr.UpdateURR) != 0 {
		t.Fatalf("update PINE: %d Update QER, %d Create PDR, %d Update URR", len(smr.UpdateQER), len(smr.CreatePDR), len(smr.UpdateURR))
	}
	if q, _ := smr.UpdateQER[0].QERID(); q != QERID(7) {
		t.Errorf("Update QER ID %d", q)
	}
	if gs, _ := child(t, smr.UpdateQER[0], ie.GateStatus).GateStatus(); gs != 0 {
		t.Errorf("Update QER gate %#x", gs)
	}
	if dl, _ := child(t, smr.UpdateQER[0], ie.MBR).MBRDL(); dl != 2000 {
		t.Errorf("Update QER MBR DL %d", dl)
	}

	// Remove PINE 7; the UPF reports its usage in the response.
	u.SetOverride(func(m message.Message) message.Message {
		if m.MessageType() != message.MsgTypeSessionModificationRequest {
			return nil
		}
		return message.NewSessionModificationResponse(0, 0, s.CPSEID, m.Sequence(), 0, accepted,
			ie.NewUsageReportWithinSessionModificationResponse(ie.NewURRID(URRID(7)), ie.NewURSEQN(3),
				ie.NewUsageReportTrigger(0x00, 0x08, 0x00), // TERMR
				ie.NewVolumeMeasurement(0x3f, 300, 100, 200, 3, 1, 2)))
	})
	usage, err := s.RemovePINE(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	u.SetOverride(nil)
	if len(usage) != 1 || usage[0].URRID != 8 || usage[0].Slot != 7 || !usage[0].SlotOK || usage[0].URSeqN != 3 ||
		usage[0].UplinkVolume != 100 || usage[0].DownlinkVolume != 200 || usage[0].TotalPackets != 3 ||
		!slices.Equal(usage[0].Triggers, []string{"TERMR"}) {
		t.Errorf("remove PINE usage %+v", usage)
	}
	smr = last(t, u, message.MsgTypeSessionModificationRequest).(*message.SessionModificationRequest)
	var pdrIDs []uint16
	for _, r := range smr.RemovePDR {
		id, _ := r.PDRID()
		pdrIDs = append(pdrIDs, id)
	}
	var farIDs []uint32
	for _, r := range smr.RemoveFAR {
		id, _ := r.FARID()
		farIDs = append(farIDs, id)
	}
	if !slices.Equal(pdrIDs, []uint16{15, 16}) || !slices.Equal(farIDs, []uint32{15, 16}) ||
		len(smr.RemoveQER) != 1 || len(smr.RemoveURR) != 1 || len(smr.CreatePDR) != 0 {
		t.Errorf("remove PINE: PDRs %v FARs %v, %d QERs %d URRs", pdrIDs, farIDs, len(smr.RemoveQER), len(smr.RemoveURR))
	}
	if q, _ := smr.RemoveQER[0].QERID(); q != 8 {
		t.Errorf("Remove QER %d", q)
	}
	if r, _ := smr.RemoveURR[0].URRID(); r != 8 {
		t.Errorf("Remove URR %d", r)
	}

	u.SetDeletionUsage(
		ie.NewUsageReportWithinSessionDeletionResponse(ie.NewURRID(1), ie.NewURSEQN(1),
			ie.NewUsageReportTrigger(0x00, 0x08, 0x00), ie.NewVolumeMeasurement(0x07, 1500, 1000, 500, 0, 0, 0)),
		ie.NewUsageReportWithinSessionDeletionResponse(ie.NewURRID(9), ie.NewURSEQN(1),
			ie.NewUsageReportTrigger(0x00, 0x08, 0x00), ie.NewVolumeMeasurement(0x07, 10, 4, 6, 0, 0, 0)),
	)
	usage, err = s.Delete(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) != 2 || usage[0].Slot != 0 || usage[0].TotalVolume != 1500 || usage[1].Slot != 8 || usage[1].DownlinkVolume != 6 {
		t.Errorf("deletion usage %+v", usage)
	}
	sdr := last(t, u, message.MsgTypeSessionDeletionRequest)
	if sdr.SEID() != s.UPSEID {
		t.Errorf("deletion header SEID %#x", sdr.SEID())
	}
	if _, err := s.Delete(ctx); err == nil {
		t.Error("deleting twice succeeded")
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	arr := last(t, u, message.MsgTypeAssociationReleaseRequest).(*message.AssociationReleaseRequest)
	if id, _ := arr.NodeID.NodeID(); id != "127.0.0.1" {
		t.Errorf("release node ID %q", id)
	}
	if _, err := c.EstablishPEGC(ctx, PEGC{UEIPv4: ue, GNB: ue}); !errors.Is(err, ErrNotAssociated) {
		t.Errorf("establish after release: %v", err)
	}
}

func TestEstablishIPv6AndInitialPINEs(t *testing.T) {
	u := newFake(t)
	c := dialT(t, u, Options{NodeID: "smf.example.org"})
	ctx := ctxT(t)
	if _, _, err := c.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	asr := last(t, u, message.MsgTypeAssociationSetupRequest).(*message.AssociationSetupRequest)
	if id, _ := asr.NodeID.NodeID(); asr.NodeID.Payload[0]&0x0f != ie.NodeIDFQDN || id != "smf.example.org" {
		t.Errorf("node ID type %d %q, want FQDN smf.example.org", asr.NodeID.Payload[0], id)
	}
	pfx := netip.MustParsePrefix("2001:db8:1::/56")
	s, err := c.EstablishPEGC(ctx, PEGC{
		UEIPv6Prefix: pfx, GNB: netip.MustParseAddr("2001:db8:ffff::10"), GNBTEID: 0x42,
		PINEs: []PINE{
			{ID: 1, Addr: netip.MustParseAddr("2001:db8:1:0:aa::2"), Proto: 6, Ports: []PortRange{{443, 443}}},
			{ID: 2, Addr: netip.MustParseAddr("2001:db8:1:0:aa::3"), VolumeThreshold: 5000},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.N3Addr != netip.MustParseAddr("::1") {
		t.Errorf("N3 %s", s.N3Addr)
	}
	ser := last(t, u, message.MsgTypeSessionEstablishmentRequest).(*message.SessionEstablishmentRequest)
	if len(ser.CreatePDR) != 4 {
		t.Fatalf("%d PDRs, want 4 (no default rule)", len(ser.CreatePDR))
	}
	if pt, _ := ser.PDNType.PDNType(); pt != ie.PDNTypeIPv6 {
		t.Errorf("PDN type %d", pt)
	}
	base := slotWant{ueFlagsUL: 0x01 | 0x08, ohr: 1, ohcDesc: 0x0200, gnbTEID: 0x42, gnb: "2001:db8:ffff::10",
		precedence: DefaultPINEPrecedence,
		fteid: func(t *testing.T, f *ie.FTEIDFields) {
			if f.Flags != 0x0e || f.ChooseID != 1 {
				t.Errorf("F-TEID flags %#x choose ID %d, want CH|CHID|V6, 1", f.Flags, f.ChooseID)
			}
		}}
	w := base
	w.filters = []string{"permit out 6 from any to 2001:db8:1:0:aa::2 443"}
	checkSlot(t, ser.CreatePDR, ser.CreateFAR, ser.CreateQER, ser.CreateURR, 1, w)
	w = base
	w.filters = []string{"permit out ip from any to 2001:db8:1:0:aa::3"}
	w.threshold = 5000
	checkSlot(t, ser.CreatePDR, ser.CreateFAR, ser.CreateQER, ser.CreateURR, 2, w)
	ue, _ := ser.CreatePDR[0].PDI()
	for _, x := range ue {
		if x.Type == ie.UEIPAddress {
			f, _ := x.UEIPAddress()
			if f.IPv6Address.String() != "2001:db8:1::" || f.IPv6PrefixDelegationBits != 8 {
				t.Errorf("UE IPv6 %s delegation bits %d, want 2001:db8:1:: and 8", f.IPv6Address, f.IPv6PrefixDelegationBits)
			}
		}
	}
	if got := s.PINEs(); len(got) != 2 {
		t.Errorf("PINEs %+v", got)
	}
}

func TestEstablishWithoutRulesSendsDropDefault(t *testing.T) {
	u := newFake(t)
	c := dialT(t, u, Options{})
	ctx := ctxT(t)
	if _, _, err := c.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EstablishPEGC(ctx, PEGC{UEIPv4: netip.MustParseAddr("10.45.0.2"),
		GNB: netip.MustParseAddr("192.0.2.10"), GNBTEID: 0xabcd}); err != nil {
		t.Fatal(err)
	}
	ser := last(t, u, message.MsgTypeSessionEstablishmentRequest).(*message.SessionEstablishmentRequest)
	w := ueV4Want(nil)
	w.precedence = DefaultDefaultPrecedence
	w.drop = true
	w.fteid = func(t *testing.T, f *ie.FTEIDFields) {}
	checkSlot(t, ser.CreatePDR, ser.CreateFAR, ser.CreateQER, ser.CreateURR, 0, w)
}

func TestChooseOnModify(t *testing.T) {
	u := newFake(t)
	c := dialT(t, u, Options{})
	ctx := ctxT(t)
	if _, _, err := c.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	ue := netip.MustParseAddr("10.45.0.2")
	s, err := c.EstablishPEGC(ctx, PEGC{UEIPv4: ue, GNB: ue, GNBTEID: 1, ChooseOnModify: true,
		Default: &DefaultRule{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddPINE(ctx, PINE{ID: 1, Addr: ue}); err != nil {
		t.Fatal(err)
	}
	smr := last(t, u, message.MsgTypeSessionModificationRequest).(*message.SessionModificationRequest)
	pdi := child(t, smr.CreatePDR[0], ie.PDI)
	f, _ := child(t, pdi, ie.FTEID).FTEID()
	if !f.HasCh() || !f.HasChID() || f.ChooseID != 1 {
		t.Errorf("F-TEID %+v, want CH with CHOOSE ID 1", f)
	}
	// A UPF that hands out another TEID is caught.
	u.SetOverride(func(m message.Message) message.Message {
		ul, _ := PDRIDs(2)
		return message.NewSessionModificationResponse(0, 0, s.CPSEID, m.Sequence(), 0, accepted,
			ie.NewCreatedPDR(ie.NewPDRID(ul), ie.NewFTEID(0x01, 0x999, net.IPv4(127, 0, 0, 1), nil, 0)))
	})
	if err := s.AddPINE(ctx, PINE{ID: 2, Addr: ue}); err == nil || !strings.Contains(err.Error(), "0x999") {
		t.Errorf("different TEID not reported: %v", err)
	}
}

func TestRetransmitSameSequence(t *testing.T) {
	u := newFake(t)
	u.SetDrop(message.MsgTypeAssociationSetupRequest, 2)
	c := dialT(t, u, Options{Timeout: 50 * time.Millisecond})
	if _, _, err := c.Associate(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rs := u.Requests(message.MsgTypeAssociationSetupRequest)
	if len(rs) != 3 {
		t.Fatalf("%d Association Setup Requests, want 3", len(rs))
	}
	for _, r := range rs[1:] {
		if r.Msg.Sequence() != rs[0].Msg.Sequence() || string(r.Raw) != string(rs[0].Raw) {
			t.Errorf("retransmission differs: seq %d vs %d", r.Msg.Sequence(), rs[0].Msg.Sequence())
		}
		if r.From != rs[0].From {
			t.Errorf("retransmission from %s, first from %s", r.From, rs[0].From)
		}
	}
	if gap := rs[1].At.Sub(rs[0].At); gap < 40*time.Millisecond {
		t.Errorf("retransmitted after %v, timeout is 50ms", gap)
	}

	// The next request takes a new sequence number.
	if _, _, err := c.Heartbeat(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	hb := last(t, u, message.MsgTypeHeartbeatRequest)
	if hb.Sequence() == rs[0].Msg.Sequence() {
		t.Error("new request reused the sequence number")
	}
}

func TestTimeoutAfterRetries(t *testing.T) {
	u := newFake(t)
	u.SetDrop(message.MsgTypeHeartbeatRequest, -1)
	c := dialT(t, u, Options{Timeout: 30 * time.Millisecond, Retries: 2})
	_, _, err := c.Heartbeat(ctxT(t))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
	rs := u.Requests(message.MsgTypeHeartbeatRequest)
	if len(rs) != 3 {
		t.Fatalf("%d attempts, want 3", len(rs))
	}
	for _, r := range rs {
		if r.Msg.Sequence() != rs[0].Msg.Sequence() {
			t.Error("sequence changed between attempts")
		}
	}

	// Without retries, one attempt.
	c2 := dialT(t, u, Options{Timeout: 30 * time.Millisecond, Retries: -1})
	before := len(u.Requests(message.MsgTypeHeartbeatRequest))
	if _, _, err := c2.Heartbeat(ctxT(t)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v", err)
	}
	if n := len(u.Requests(message.MsgTypeHeartbeatRequest)) - before; n != 1 {
		t.Errorf("%d attempts with Retries -1", n)
	}
}

func TestContextCancel(t *testing.T) {
	u := newFake(t)
	u.SetDrop(message.MsgTypeHeartbeatRequest, -1)
	c := dialT(t, u, Options{Timeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := c.Heartbeat(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Error("cancel not honoured")
	}
	c.Close()
	if _, _, err := c.Heartbeat(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

func TestHeartbeat(t *testing.T) {
	u := newFake(t)
	c := dialT(t, u, Options{})
	rtt, peer, err := c.Heartbeat(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if rtt <= 0 || !peer.Equal(u.Recovery) {
		t.Errorf("rtt %v peer %v", rtt, peer)
	}
	hb := last(t, u, message.MsgTypeHeartbeatRequest).(*message.HeartbeatRequest)
	if ts, _ := hb.RecoveryTimeStamp.RecoveryTimeStamp(); !ts.Equal(c.RecoveryTime().Truncate(time.Second)) {
		t.Errorf("heartbeat recovery %v", ts)
	}
}

func TestAnswersUPFHeartbeat(t *testing.T) {
	u := newFake(t)
	c := dialT(t, u, Options{})
	for range 2 { // the second is a retransmission: same sequence number
		r := request(t, u, c.LocalAddr(), message.NewHeartbeatRequest(77, ie.NewRecoveryTimeStamp(u.Recovery), nil))
		hr, ok := r.(*message.HeartbeatResponse)
		if !ok {
			t.Fatalf("got %s", r.MessageTypeName())
		}
		if hr.Sequence() != 77 {
			t.Errorf("seq %d", hr.Sequence())
		}
		if ts, _ := hr.RecoveryTimeStamp.RecoveryTimeStamp(); !ts.Equal(c.RecoveryTime().Truncate(time.Second)) {
			t.Errorf("recovery %v, want %v", ts, c.RecoveryTime())
		}
	}
	if !c.PeerRecoveryTime().Equal(u.Recovery) {
		t.Errorf("peer recovery not recorded from the heartbeat")
	}
}

func TestReportDelivery(t *testing.T) {
	u := newFake(t)
	c := dialT(t, u, Options{})
	ctx := ctxT(t)
	if _, _, err := c.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	ue := netip.MustParseAddr("10.45.0.2")
	s, err := c.EstablishPEGC(ctx, PEGC{UEIPv4: ue, GNB: ue, GNBTEID: 1, Default: &DefaultRule{}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	req := message.NewSessionReportRequest(0, 0, s.CPSEID, 4242, 0,
		ie.NewReportType(0, 0, 1, 0),
		ie.NewUsageReportWithinSessionReportRequest(ie.NewURRID(URRID(3)), ie.NewURSEQN(5),
			ie.NewUsageReportTrigger(0x02, 0x00, 0x00), // VOLTH
			ie.NewStartTime(start), ie.NewEndTime(start.Add(time.Minute)),
			ie.NewVolumeMeasurement(0x3f, 1100, 1000, 100, 11, 10, 1)),
	)
	for i := range 2 { // the second is a retransmission
		r := request(t, u, c.LocalAddr(), req)
		rr, ok := r.(*message.SessionReportResponse)
		if !ok {
			t.Fatalf("got %s", r.MessageTypeName())
		}
		if cause, _ := rr.Cause.Cause(); cause != ie.CauseRequestAccepted || rr.SEID() != s.UPSEID || rr.Sequence() != 4242 {
			t.Errorf("attempt %d: report response cause %d SEID %#x seq %d", i, cause, rr.SEID(), rr.Sequence())
		}
	}
	select {
	case rep := <-c.Reports():
		if rep.SEID != s.CPSEID || rep.UPSEID != s.UPSEID || !slices.Equal(rep.Types, []string{"USAR"}) || len(rep.Usage) != 1 {
			t.Fatalf("report %+v", rep)
		}
		ur := rep.Usage[0]
		if ur.URRID != 4 || ur.Slot != 3 || ur.URSeqN != 5 || !slices.Equal(ur.Triggers, []string{"VOLTH"}) ||
			ur.TotalVolume != 1100 || ur.UplinkVolume != 1000 || ur.DownlinkVolume != 100 || ur.UplinkPackets != 10 ||
			!ur.StartTime.Equal(start) || !ur.EndTime.Equal(start.Add(time.Minute)) {
			t.Errorf("usage report %+v", ur)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no report delivered")
	}
	select {
	case rep := <-c.Reports():
		t.Errorf("retransmitted report delivered twice: %+v", rep)
	case <-time.After(100 * time.Millisecond):
	}

	// A report for an unknown session.
	r := request(t, u, c.LocalAddr(), message.NewSessionReportRequest(0, 0, 0xdead, 4243, 0, ie.NewReportType(0, 0, 1, 0)))
	if cause, _ := r.(*message.SessionReportResponse).Cause.Cause(); cause != ie.CauseSessionContextNotFound {
		t.Errorf("unknown session: cause %d", cause)
	}
}

func TestRejectionError(t *testing.T) {
	u := newFake(t)
	c := dialT(t, u, Options{})
	ctx := ctxT(t)
	if _, _, err := c.Associate(ctx); err != nil {
		t.Fatal(err)
	}
	ue := netip.MustParseAddr("10.45.0.2")
	s, err := c.EstablishPEGC(ctx, PEGC{UEIPv4: ue, GNB: ue, GNBTEID: 1, Default: &DefaultRule{}})
	if err != nil {
		t.Fatal(err)
	}
	u.SetOverride(func(m message.Message) message.Message {
		return message.NewSessionModificationResponse(0, 0, s.CPSEID, m.Sequence(), 0,
			ie.NewCause(ie.CauseRuleCreationModificationFailure), ie.NewOffendingIE(ie.SDFFilter),
			ie.NewFailedRuleID(ie.RuleIDTypePDR, 3))
	})
	err = s.AddPINE(ctx, PINE{ID: 1, Addr: netip.MustParseAddr("10.99.0.1")})
	var ce *CauseError
	if !errors.As(err, &ce) {
		t.Fatalf("err %v, want *CauseError", err)
	}
	if ce.Cause != 73 || ce.OffendingIE != ie.SDFFilter || ce.FailedRuleType != "PDR" || ce.FailedRuleID != 3 {
		t.Errorf("%+v", ce)
	}
	for _, want := range []string{"Rule creation/modification Failure", "73", "SDFFilter", "PDR 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if len(s.PINEs()) != 0 {
		t.Error("rejected PINE recorded")
	}

	// A rejected association.
	u.SetOverride(func(m message.Message) message.Message {
		return message.NewAssociationSetupResponse(m.Sequence(), ie.NewNodeID("127.0.0.1", "", ""),
			ie.NewCause(ie.CauseRequestRejected), ie.NewRecoveryTimeStamp(u.Recovery))
	})
	if _, _, err := c.Associate(ctx); !errors.As(err, &ce) || ce.Cause != ie.CauseRequestRejected {
		t.Errorf("association: %v", err)
	}
}

func TestRawSend(t *testing.T) {
	u := newFake(t)
	c := dialT(t, u, Options{})
	r, err := c.Send(ctxT(t), message.NewHeartbeatRequest(0, ie.NewRecoveryTimeStamp(time.Now()), nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*message.HeartbeatResponse); !ok {
		t.Errorf("got %s", r.MessageTypeName())
	}
	if _, err := c.Send(ctxT(t), message.NewHeartbeatResponse(1, ie.NewRecoveryTimeStamp(time.Now()))); err == nil {
		t.Error("sending a response as a request succeeded")
	}
}

func TestFlowDescriptionAndIDs(t *testing.T) {
	v4 := netip.MustParseAddr("10.45.0.2")
	for _, c := range []struct {
		addr  netip.Addr
		proto uint8
		ports *PortRange
		want  string
	}{
		{v4, 17, &PortRange{5000, 5009}, "permit out 17 from any to 10.45.0.2 5000-5009"},
		{v4, 6, &PortRange{80, 80}, "permit out 6 from any to 10.45.0.2 80"},
		{v4, 0, nil, "permit out ip from any to 10.45.0.2"},
		{netip.MustParseAddr("::ffff:10.45.0.2"), 1, nil, "permit out 1 from any to 10.45.0.2"},
		{netip.MustParseAddr("2001:db8::1"), 58, nil, "permit out 58 from any to 2001:db8::1"},
	} {
		if got := FlowDescription(c.addr, c.proto, c.ports); got != c.want {
			t.Errorf("got %q want %q", got, c.want)
		}
	}
	for s, want := range map[string]PortRange{"80": {80, 80}, "5000-5009": {5000, 5009}, " 1-65535 ": {1, 65535}} {
		if got, err := ParsePortRange(s); err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "x", "10-5", "70000", "1-"} {
		if _, err := ParsePortRange(s); err == nil {
			t.Errorf("ParsePortRange(%q) accepted", s)
		}
	}
	seen := map[uint32]bool{}
	for n := uint16(0); n <= MaxPINEID; n++ {
		ul, dl := PDRIDs(n)
		if ul == 0 || dl == 0 || dl != ul+1 || seen[uint32(ul)] || seen[uint32(dl)] {
			t.Fatalf("PDR IDs of %d: %d %d", n, ul, dl)
		}
		seen[uint32(ul)], seen[uint32(dl)] = true, true
		if s, ok := SlotOfURR(URRID(n)); !ok || s != n {
			t.Fatalf("SlotOfURR(URRID(%d)) = %d %v", n, s, ok)
		}
	}
	if _, ok := SlotOfURR(0); ok {
		t.Error("URR 0 in scheme")
	}
	if bpsToKbps(1) != 1 || bpsToKbps(1000) != 1 || bpsToKbps(1001) != 2 || bpsToKbps(0) != 0 {
		t.Error("bpsToKbps")
	}
}
