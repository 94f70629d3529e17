package pfcp

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"

	"github.com/pine-upf/pine-upf/enforcer"
)

func setup(t *testing.T, mod ...func(*Config)) *harness {
	h := newHarness(t, mod...)
	h.associate(smfA, "smf-a", rtsA)
	return h
}

func TestEstablishBasic(t *testing.T) {
	h := setup(t)
	r := h.establish(smfA, "smf-a", 0xcafe, basic()...)
	seid := upSEID(t, r)
	if r.SEID() != 0xcafe {
		t.Errorf("response header SEID %#x, want the CP SEID", r.SEID())
	}
	if len(r.CreatedPDR) != 1 {
		t.Fatalf("%d Created PDRs", len(r.CreatedPDR))
	}
	id, _ := r.CreatedPDR[0].PDRID()
	ft, err := r.CreatedPDR[0].FTEID()
	if err != nil || id != 1 || ft.TEID == 0 || !ft.HasIPv4() || !ft.IPv4Address.Equal(n3v4.AsSlice()) {
		t.Fatalf("created PDR %d F-TEID %+v %v", id, ft, err)
	}
	want := enforcer.Session{
		SEID:  seid,
		TEIDs: []uint32{ft.TEID},
		UEv4:  netip.MustParseAddr("10.45.0.2"),
		Rules: []enforcer.Rule{
			{ID: 1 << 8, Precedence: 100, Direction: enforcer.Uplink, Action: enforcer.Forward, QERs: []uint32{}},
			{ID: 2 << 8, Precedence: 100, Direction: enforcer.Downlink, Action: enforcer.Forward, QERs: []uint32{},
				Tunnel: enforcer.Tunnel{PeerTEID: 0x100, Peer: netip.MustParseAddr("192.168.1.50")}},
		},
	}
	normalize(&want)
	got := h.enf.sessions[seid]
	normalize(&got)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("installed\n%+v\nwant\n%+v", got, want)
	}
	if h.srv.teids[ft.TEID] != seid {
		t.Error("TEID not owned by the session")
	}
}

// normalize makes nil and empty slices compare equal.
func normalize(s *enforcer.Session) {
	for i := range s.Rules {
		if len(s.Rules[i].QERs) == 0 {
			s.Rules[i].QERs = nil
		}
		if len(s.Rules[i].Ports) == 0 {
			s.Rules[i].Ports = nil
		}
	}
}

// snapshot is the server's state for "nothing changed" checks.
type snapshot struct {
	sessions map[uint64]session
	teids    map[uint32]uint64
	fake     map[uint64]string
}

func (h *harness) snapshot() snapshot {
	s := snapshot{sessions: map[uint64]session{}, teids: map[uint32]uint64{}, fake: map[uint64]string{}}
	for k, v := range h.srv.sessions {
		s.sessions[k] = *v.clone()
	}
	for k, v := range h.srv.teids {
		s.teids[k] = v
	}
	for k, v := range h.enf.sessions {
		s.fake[k] = sprint(v)
	}
	return s
}

func sprint(v any) string { return reflectString(v) }

func reflectString(v any) string { return fmtSprintf("%+v", v) }

func TestEstablishErrors(t *testing.T) {
	ul := func(pdi ...*ie.IE) []*ie.IE {
		return append([]*ie.IE{chV4(), ue4("10.45.0.2")}, pdi...)
	}
	far1 := createFAR(1, actFORW, forwardCore())
	far2 := createFAR(2, actFORW, forwardGNB(1, "192.168.1.50"))
	tests := []struct {
		name      string
		ies       []*ie.IE
		fail      error // the fake enforcer's answer
		cause     uint8
		offending uint16
		noInstall bool // refused before the datapath is asked
	}{
		{"no Create PDR", []*ie.IE{far1}, nil, ie.CauseMandatoryIEMissing, ie.CreatePDR, true},
		{"no Create FAR", []*ie.IE{pdr(1, 1, 0, ul(), farID(1))}, nil, ie.CauseMandatoryIEMissing, ie.CreateFAR, true},
		{"PDR without PDR ID", []*ie.IE{ie.NewCreatePDR(ie.NewPrecedence(1), ie.NewPDI(ie.NewSourceInterface(0)), farID(1)), far1},
			nil, ie.CauseMandatoryIEMissing, ie.PDRID, true},
		{"PDR without precedence", []*ie.IE{ie.NewCreatePDR(ie.NewPDRID(1), ie.NewPDI(ie.NewSourceInterface(0)), farID(1)), far1},
			nil, ie.CauseMandatoryIEMissing, ie.Precedence, true},
		{"PDR without PDI", []*ie.IE{ie.NewCreatePDR(ie.NewPDRID(1), ie.NewPrecedence(1), farID(1)), far1},
			nil, ie.CauseMandatoryIEMissing, ie.PDI, true},
		{"PDI without source interface", []*ie.IE{ie.NewCreatePDR(ie.NewPDRID(1), ie.NewPrecedence(1), ie.NewPDI(ue4("10.45.0.2")), farID(1)), far1},
			nil, ie.CauseMandatoryIEMissing, ie.SourceInterface, true},
		{"PDR without FAR ID", []*ie.IE{pdr(1, 1, 0, ul()), far1}, nil, ie.CauseConditionalIEMissing, ie.FARID, true},
		{"source interface CP-function", []*ie.IE{pdr(1, 1, ie.SrcInterfaceCPFunction, ul(), farID(1)), far1},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"FAR does not exist", []*ie.IE{pdr(1, 1, 0, ul(), farID(9)), far1}, nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"duplicate PDR", []*ie.IE{pdr(1, 1, 0, ul(), farID(1)), pdr(1, 2, 0, ul(), farID(1)), far1},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"outer header removal UDP/IPv4", []*ie.IE{pdr(1, 1, 0, ul(), ohr(2), farID(1)), far1},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"PDRs disagree on the UE address", []*ie.IE{pdr(1, 1, 0, ul(), farID(1)), pdr(2, 1, 1, []*ie.IE{ue4D("10.45.0.3")}, farID(2)), far1, far2},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"UE address allocation by the UPF", []*ie.IE{pdr(1, 1, 0, []*ie.IE{chV4(), ie.NewUEIPAddress(0x12, "", "", 0, 0)}, farID(1)), far1},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"flow description syntax", []*ie.IE{pdr(1, 1, 0, ul(sdf("permit in ip from any to assigned")), farID(1)), far1},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"PINE prefix", []*ie.IE{pdr(1, 1, 0, ul(sdf("permit out ip from any to 10.45.0.0/24")), farID(1)), far1},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"ports without TCP/UDP/SCTP", []*ie.IE{pdr(1, 1, 0, ul(sdf("permit out 1 from any to assigned 80")), farID(1)), far1},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"apply action FORW and DROP", []*ie.IE{pdr(1, 1, 0, ul(), farID(1)), createFAR(1, actFORW|actDROP)},
			nil, ie.CauseMandatoryIEIncorrect, ie.ApplyAction, true},
		{"FAR without apply action", []*ie.IE{pdr(1, 1, 0, ul(), farID(1)), ie.NewCreateFAR(ie.NewFARID(1))},
			nil, ie.CauseMandatoryIEMissing, ie.ApplyAction, true},
		{"downlink forwarding without outer header creation", []*ie.IE{pdr(2, 1, 1, []*ie.IE{ue4D("10.45.0.2")}, farID(2)), createFAR(2, actFORW, forwardCore())},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreateFAR, true},
		{"three QERs on a PDR", []*ie.IE{pdr(1, 1, 0, ul(), farID(1), qerID(1), qerID(2), qerID(3)), far1,
			ie.NewCreateQER(qerID(1), ie.NewGateStatus(0, 0)), ie.NewCreateQER(qerID(2), ie.NewGateStatus(0, 0)), ie.NewCreateQER(qerID(3), ie.NewGateStatus(0, 0))},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, true},
		{"QER without gate status", []*ie.IE{pdr(1, 1, 0, ul(), farID(1), qerID(1)), far1, ie.NewCreateQER(qerID(1))},
			nil, ie.CauseMandatoryIEMissing, ie.GateStatus, true},
		{"URR with time threshold", []*ie.IE{pdr(1, 1, 0, ul(), farID(1), urrID(1)), far1,
			ie.NewCreateURR(urrID(1), ie.NewMeasurementMethod(0, 1, 0), ie.NewReportingTriggers(0x04, 0), ie.NewTimeThreshold(60e9))},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreateURR, true},
		{"datapath full", basic(), enforcer.ErrFull, ie.CauseNoResourcesAvailable, 0, false},
		{"datapath refuses the rule", basic(), enforcer.ErrBadRule, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, false},
		{"datapath conflict", basic(), enforcer.ErrConflict, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, false},
		{"datapath broken", basic(), errors.New("EIO"), ie.CauseSystemFailure, 0, false},
		{"rule claims another address", []*ie.IE{pdr(1, 1, 0, ul(sdf("permit out ip from any to 10.45.0.99")), farID(1)), far1},
			nil, ie.CauseRuleCreationModificationFailure, ie.CreatePDR, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			h.enf.failNext = tt.fail
			before := h.snapshot()
			r := h.establish(smfA, "smf-a", 7, tt.ies...)
			checkCause(t, r.Cause, r.OffendingIE, tt.cause, tt.offending)
			if r.UPFSEID != nil {
				t.Error("UP F-SEID in a rejection")
			}
			if tt.noInstall && tt.cause == ie.CauseRuleCreationModificationFailure && r.FailedRuleID == nil {
				t.Error("no Failed Rule ID with cause 73")
			}
			if tt.noInstall && h.enf.installs != 0 {
				t.Errorf("InstallSession called %d times for a request refused in translation", h.enf.installs)
			}
			if after := h.snapshot(); !reflect.DeepEqual(before, after) {
				t.Errorf("state changed:\n%+v\n%+v", before, after)
			}
		})
	}
}

func TestEstablishWithoutAssociation(t *testing.T) {
	h := newHarness(t)
	r := h.establish(smfA, "smf-a", 1, basic()...)
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseNoEstablishedPFCPAssociation, 0)
	// Associated, but naming another node.
	h.associate(smfA, "smf-a", rtsA)
	r = h.establish(smfA, "smf-b", 1, basic()...)
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseNoEstablishedPFCPAssociation, 0)
	// Missing Node ID and F-SEID.
	m := message.NewSessionEstablishmentRequest(0, 0, 0, 99, 0, append([]*ie.IE{ie.NewFSEID(1, smfA.Addr().AsSlice(), nil)}, basic()...)...)
	er := h.do(smfA, m).(*message.SessionEstablishmentResponse)
	checkCause(t, er.Cause, er.OffendingIE, ie.CauseMandatoryIEMissing, ie.NodeID)
	m = message.NewSessionEstablishmentRequest(0, 0, 0, 100, 0, append([]*ie.IE{ie.NewNodeIDHeuristic("smf-a")}, basic()...)...)
	er = h.do(smfA, m).(*message.SessionEstablishmentResponse)
	checkCause(t, er.Cause, er.OffendingIE, ie.CauseMandatoryIEMissing, ie.FSEID)
	if h.enf.installs != 0 {
		t.Error("installed")
	}
}

// rulesOf is the installed rules without the fields a test ignores.
func rulesOf(h *harness, seid uint64) []enforcer.Rule {
	s := h.enf.sessions[seid]
	normalize(&s)
	return s.Rules
}

func TestSDFTranslation(t *testing.T) {
	v4 := netip.MustParseAddr("10.45.0.2")
	type pine struct {
		addr  string
		proto uint8
		ports []enforcer.PortRange
	}
	tests := []struct {
		name    string
		src     uint8
		ue      []*ie.IE
		filters []string
		want    []pine // "" addr: any address of the session
		fail    bool
	}{
		{"no filter: any address", 0, []*ie.IE{ue4("10.45.0.2")}, nil, []pine{{}}, false},
		{"uplink: to assigned with ports (PINE side is 'to')", 0, []*ie.IE{ue4("10.45.0.2")},
			[]string{"permit out 17 from 198.51.100.0/24 to assigned 5000-5010"}, []pine{{"10.45.0.2", 17, []enforcer.PortRange{{Lo: 5000, Hi: 5010}}}}, false},
		{"downlink: same filter, same PINE side", 1, []*ie.IE{ue4D("10.45.0.2")},
			[]string{"permit out 17 from 198.51.100.0/24 to assigned 5000-5010"}, []pine{{"10.45.0.2", 17, []enforcer.PortRange{{Lo: 5000, Hi: 5010}}}}, false},
		{"remote ports are not the PINE's", 0, []*ie.IE{ue4("10.45.0.2")},
			[]string{"permit out 6 from any 443 to assigned"}, []pine{{"10.45.0.2", 6, nil}}, false},
		{"ip from any to assigned: any address", 0, []*ie.IE{ue4("10.45.0.2")},
			[]string{"permit out ip from any to assigned"}, []pine{{}}, false},
		{"several filters, port lists", 0, []*ie.IE{ue4("10.45.0.2")},
			[]string{"permit out 6 from any to 10.45.0.2 80,443", "permit out 17 from any to assigned 1024-2047"},
			[]pine{{"10.45.0.2", 6, []enforcer.PortRange{{Lo: 80, Hi: 80}, {Lo: 443, Hi: 443}}}, {"10.45.0.2", 17, []enforcer.PortRange{{Lo: 1024, Hi: 2047}}}}, false},
		{"IPv6 PINE address in the delegated prefix", 0, []*ie.IE{ue6("2001:db8:1::", 8)},
			[]string{"permit out 6 from any to 2001:db8:1::5 22"}, []pine{{"2001:db8:1::5", 6, []enforcer.PortRange{{Lo: 22, Hi: 22}}}}, false},
		{"whole UE prefix without ports: any address", 0, []*ie.IE{ue6("2001:db8:1::", 8)},
			[]string{"permit out ip from any to 2001:db8:1::/56"}, []pine{{}}, false},
		{"whole UE prefix with ports", 0, []*ie.IE{ue6("2001:db8:1::", 8)},
			[]string{"permit out 6 from any to 2001:db8:1::/56 80"}, nil, true},
		{"assigned IPv6 with ports", 0, []*ie.IE{ue6("2001:db8:1::", 8)},
			[]string{"permit out 17 from any to assigned 53"}, nil, true},
		{"plain IPv6 UE address is a /128: exact", 0, []*ie.IE{ue6("2001:db8:1::7", 0)},
			[]string{"permit out 17 from any to assigned 53"}, []pine{{"2001:db8:1::7", 17, []enforcer.PortRange{{Lo: 53, Hi: 53}}}}, false},
		{"dual stack, IPv4 remote: the UE IPv4 address", 0, []*ie.IE{ue4("10.45.0.2"), ue6("2001:db8:1::", 8)},
			[]string{"permit out ip from 198.51.100.1 to assigned"}, []pine{{"10.45.0.2", 0, nil}}, false},
		{"dual stack, IPv6 remote, no ports: only part of the session", 0, []*ie.IE{ue4("10.45.0.2"), ue6("2001:db8:1::", 8)},
			[]string{"permit out ip from 2001:db8:ffff::1 to assigned"}, nil, true},
		{"PINE prefix", 0, []*ie.IE{ue4("10.45.0.2")}, []string{"permit out ip from any to 10.45.0.0/16"}, nil, true},
		{"mixed families", 0, []*ie.IE{ue4("10.45.0.2")}, []string{"permit out ip from 2001:db8::1 to 10.45.0.2"}, nil, true},
		{"SDF filter without flow description", 0, []*ie.IE{ue4("10.45.0.2")}, []string{""}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := setup(t)
			pdi := append([]*ie.IE{}, tt.ue...)
			if tt.src == 0 {
				pdi = append(pdi, chV4())
			}
			for _, f := range tt.filters {
				if f == "" {
					pdi = append(pdi, ie.NewSDFFilter("", "", "", "", 5))
					continue
				}
				pdi = append(pdi, sdf(f))
			}
			far := createFAR(1, actFORW, forwardCore())
			if tt.src != 0 {
				far = createFAR(1, actFORW, forwardGNB(9, "192.168.1.50"))
			}
			r := h.establish(smfA, "smf-a", 1, pdr(3, 10, tt.src, pdi, farID(1)), far)
			if tt.fail {
				checkCause(t, r.Cause, r.OffendingIE, ie.CauseRuleCreationModificationFailure, ie.CreatePDR)
				return
			}
			seid := upSEID(t, r)
			rules := rulesOf(h, seid)
			if len(rules) != len(tt.want) {
				t.Fatalf("%d rules, want %d: %+v", len(rules), len(tt.want), rules)
			}
			for i, w := range tt.want {
				r := rules[i]
				var addr netip.Addr
				if w.addr != "" {
					addr = netip.MustParseAddr(w.addr)
				}
				if r.ID != 3<<8|uint32(i) || r.Addr != addr || r.Protocol != w.proto || !slices.Equal(r.Ports, w.ports) {
					t.Errorf("rule %d: %+v, want ID %#x %+v", i, r, 3<<8|i, w)
				}
			}
			_ = v4
		})
	}
}

func TestChooseIDAndExplicitTEIDs(t *testing.T) {
	h := setup(t)
	far := createFAR(1, actFORW, forwardCore())
	ue := ue4("10.45.0.2")
	r := h.establish(smfA, "smf-a", 1,
		pdr(1, 1, 0, []*ie.IE{chID(5), ue}, farID(1)),
		pdr(2, 2, 0, []*ie.IE{chID(5), ue, sdf("permit out 6 from any to assigned 80")}, farID(1)),
		pdr(3, 3, 0, []*ie.IE{chID(6), ue}, farID(1)),
		pdr(4, 4, 0, []*ie.IE{chV4(), ue}, farID(1)),
		pdr(5, 5, 0, []*ie.IE{explicitTEID(0xabc), ue}, farID(1)),
		far)
	seid := upSEID(t, r)
	teid := map[uint16]uint32{}
	for _, c := range r.CreatedPDR {
		id, _ := c.PDRID()
		f, _ := c.FTEID()
		teid[id] = f.TEID
	}
	if len(teid) != 4 {
		t.Fatalf("Created PDRs for %v, want the 4 chosen", teid)
	}
	if teid[1] != teid[2] || teid[1] == teid[3] || teid[4] == teid[1] || teid[4] == teid[3] {
		t.Errorf("TEIDs %v: CHOOSE ID 5 must share, others differ", teid)
	}
	got := slices.Sorted(slices.Values(h.enf.sessions[seid].TEIDs))
	want := slices.Sorted(slices.Values([]uint32{teid[1], teid[3], teid[4], 0xabc}))
	if !slices.Equal(got, want) {
		t.Errorf("session TEIDs %x, want %x", got, want)
	}
	// A CHOOSE ID of the session reused in a modification: the same TEID.
	m := h.modify(smfA, seid, pdr(6, 6, 0, []*ie.IE{chID(6), ue}, farID(1)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
	if f, _ := m.CreatedPDR[0].FTEID(); f.TEID != teid[3] {
		t.Errorf("CHOOSE ID 6 in a modification got TEID %#x, want %#x", f.TEID, teid[3])
	}
	// Another session may not take the explicit TEID.
	r2 := h.establish(smfA, "smf-a", 2, pdr(1, 1, 0, []*ie.IE{explicitTEID(0xabc), ue4("10.45.0.9")}, farID(1)), far)
	checkCause(t, r2.Cause, r2.OffendingIE, ie.CauseRuleCreationModificationFailure, ie.CreatePDR)
}

func TestQERs(t *testing.T) {
	h := setup(t)
	r := h.establish(smfA, "smf-a", 1,
		pdr(1, 1, 0, []*ie.IE{chV4(), ue4("10.45.0.2")}, farID(1), qerID(1), qerID(2)),
		pdr(2, 1, 1, []*ie.IE{ue4D("10.45.0.2")}, farID(2), qerID(1), qerID(2)),
		createFAR(1, actFORW, forwardCore()),
		createFAR(2, actFORW, forwardGNB(0x77, "192.168.1.50")),
		ie.NewCreateQER(qerID(1), ie.NewGateStatus(0, 0), ie.NewMBR(100_000, 200_000)),       // session AMBR
		ie.NewCreateQER(qerID(2), ie.NewGateStatus(1, 2), ie.NewMBR(5_000, 0), ie.NewQFI(9)), // flow MBR, gates closed
	)
	seid := upSEID(t, r)
	s := h.enf.sessions[seid]
	wantQERs := []enforcer.QER{
		{ID: 1, ULMBR: 100_000_000, DLMBR: 200_000_000},
		{ID: 2, ULGateClosed: true, DLGateClosed: true, ULMBR: 5_000_000},
	}
	if !reflect.DeepEqual(s.QERs, wantQERs) {
		t.Errorf("QERs %+v, want %+v", s.QERs, wantQERs)
	}
	for _, r := range s.Rules {
		if !slices.Equal(r.QERs, []uint32{1, 2}) {
			t.Errorf("rule %d QERs %v", r.ID, r.QERs)
		}
		if r.Direction == enforcer.Downlink && r.Tunnel.QFI != 9 {
			t.Errorf("downlink tunnel QFI %d, want the QER's 9", r.Tunnel.QFI)
		}
	}
	// Update QER: gate opens.
	m := h.modify(smfA, seid, ie.NewUpdateQER(qerID(2), ie.NewGateStatus(0, 0)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
	if q := h.enf.sessions[seid].QERs[1]; q.ULGateClosed || q.DLGateClosed || q.ULMBR != 5_000_000 {
		t.Errorf("updated QER %+v", q)
	}
}

func TestFARActions(t *testing.T) {
	h := setup(t)
	// Downlink FAR buffering until the gNB tunnel is known (a usual SMF flow).
	r := h.establish(smfA, "smf-a", 1,
		pdr(1, 1, 0, []*ie.IE{chV4(), ue4("10.45.0.2")}, ohr(6), farID(1)),
		pdr(2, 1, 1, []*ie.IE{ue4D("10.45.0.2")}, farID(2)),
		createFAR(1, actFORW, forwardCore()),
		createFAR(2, actBUFF|actNOCP))
	seid := upSEID(t, r)
	if dl := rulesOf(h, seid)[1]; dl.Action != enforcer.Drop {
		t.Fatalf("BUFF: %+v, want drop", dl)
	}
	m := h.modify(smfA, seid, ie.NewUpdateFAR(farID(2), ie.NewApplyAction(actFORW),
		ie.NewUpdateForwardingParameters(ie.NewDestinationInterface(ie.DstInterfaceAccess),
			ie.NewOuterHeaderCreation(0x0100, 0x42, "192.168.1.60", "", 0, 0, 0))))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
	dl := rulesOf(h, seid)[1]
	if dl.Action != enforcer.Forward || dl.Tunnel != (enforcer.Tunnel{PeerTEID: 0x42, Peer: netip.MustParseAddr("192.168.1.60")}) {
		t.Fatalf("after Update FAR: %+v", dl)
	}
	m = h.modify(smfA, seid, ie.NewUpdateFAR(farID(1), ie.NewApplyAction(actDROP)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
	if ul := rulesOf(h, seid)[0]; ul.Action != enforcer.Drop {
		t.Fatalf("DROP: %+v", ul)
	}
}

func TestModificationAddRemove(t *testing.T) {
	h := setup(t)
	seid := upSEID(t, h.establish(smfA, "smf-a", 1, basic()...))
	m := h.modify(smfA, seid,
		pdr(10, 50, 0, []*ie.IE{chV4(), ue4("10.45.0.2"), sdf("permit out 17 from any to assigned 7000")}, farID(1)),
		ie.NewRemovePDR(ie.NewPDRID(2)), ie.NewRemoveFAR(ie.NewFARID(2)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
	if m.SEID() != 1 {
		t.Errorf("response SEID %#x, want the CP SEID", m.SEID())
	}
	var ids []uint32
	for _, r := range rulesOf(h, seid) {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []uint32{1 << 8, 10 << 8}) {
		t.Errorf("rules %v", ids)
	}
	if got := len(h.enf.sessions[seid].TEIDs); got != 2 || len(h.srv.teids) != 2 {
		t.Errorf("TEIDs %d, server %d", got, len(h.srv.teids))
	}
	// Removing the PDR frees its TEID.
	m = h.modify(smfA, seid, ie.NewRemovePDR(ie.NewPDRID(10)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
	if len(h.srv.teids) != 1 {
		t.Errorf("server TEIDs %v after removal", h.srv.teids)
	}
	// Removing a FAR still in use, or what does not exist: 73, nothing changes.
	for _, tt := range []struct {
		ie        *ie.IE
		offending uint16
	}{
		{ie.NewRemoveFAR(ie.NewFARID(1)), ie.RemoveFAR}, // PDR 1 still names it
		{ie.NewRemovePDR(ie.NewPDRID(99)), ie.RemovePDR},
		{ie.NewUpdatePDR(ie.NewPDRID(99), ie.NewPrecedence(1)), ie.UpdatePDR},
		{ie.NewUpdateFAR(ie.NewFARID(99)), ie.UpdateFAR},
	} {
		before, installs := h.snapshot(), h.enf.installs
		m = h.modify(smfA, seid, tt.ie)
		checkCause(t, m.Cause, m.OffendingIE, ie.CauseRuleCreationModificationFailure, tt.offending)
		if !reflect.DeepEqual(before, h.snapshot()) || h.enf.installs != installs {
			t.Errorf("IE %d: state changed", tt.ie.Type)
		}
	}
}

func TestAtomicFailure(t *testing.T) {
	h := setup(t)
	seid := upSEID(t, h.establish(smfA, "smf-a", 1, basic()...))
	before := h.snapshot()
	h.enf.failNext = enforcer.ErrFull
	m := h.modify(smfA, seid,
		pdr(10, 50, 0, []*ie.IE{chV4(), ue4("10.45.0.2")}, farID(1)),
		ie.NewUpdateFAR(farID(2), ie.NewApplyAction(actDROP)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseNoResourcesAvailable, 0)
	if after := h.snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("failed install changed state:\n%+v\n%+v", before, after)
	}
	// The same change now works: nothing half-applied was left.
	m = h.modify(smfA, seid, pdr(10, 50, 0, []*ie.IE{chV4(), ue4("10.45.0.2")}, farID(1)))
	checkCause(t, m.Cause, m.OffendingIE, ie.CauseRequestAccepted, 0)
}

func TestIsolation(t *testing.T) {
	h := setup(t)
	h.associate(smfB, "smf-b", rtsA)
	seid := upSEID(t, h.establish(smfA, "smf-a", 1, basic()...))
	before := h.snapshot()
	// Another association: Cause 65, as for a session that does not exist.
	for _, id := range []uint64{seid, seid + 1} {
		m := h.modify(smfB, id, ie.NewUpdateFAR(farID(1), ie.NewApplyAction(actDROP)))
		checkCause(t, m.Cause, m.OffendingIE, ie.CauseSessionContextNotFound, 0)
		if m.SEID() != 0 {
			t.Errorf("response SEID %#x leaks the session", m.SEID())
		}
		d := h.delete(smfB, id)
		checkCause(t, d.Cause, d.OffendingIE, ie.CauseSessionContextNotFound, 0)
	}
	// smf-b cannot establish under smf-a's Node ID either.
	r := h.establish(smfB, "smf-a", 9, basic()...)
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseNoEstablishedPFCPAssociation, 0)
	if !reflect.DeepEqual(before, h.snapshot()) {
		t.Fatal("another association changed the session")
	}
	// The owner deletes it.
	d := h.delete(smfA, seid)
	checkCause(t, d.Cause, d.OffendingIE, ie.CauseRequestAccepted, 0)
	if len(h.enf.sessions) != 0 || len(h.srv.sessions) != 0 || len(h.srv.teids) != 0 {
		t.Error("deleted session left behind")
	}
}

func TestRuleQuota(t *testing.T) {
	h := setup(t, func(c *Config) { c.MaxRulesPerSession = 3 })
	var pdi []*ie.IE
	pdi = append(pdi, chV4(), ue4("10.45.0.2"))
	for p := range 4 {
		pdi = append(pdi, sdf(fmtSprintf("permit out 6 from any to assigned %d", 1000+p)))
	}
	r := h.establish(smfA, "smf-a", 1, pdr(1, 1, 0, pdi, farID(1)), createFAR(1, actFORW, forwardCore()))
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseRuleCreationModificationFailure, ie.CreatePDR)
	if h.enf.installs != 0 {
		t.Error("over-quota session installed")
	}
}

func TestRetransmission(t *testing.T) {
	h := setup(t)
	req := message.NewSessionEstablishmentRequest(0, 0, 0, 77, 0,
		append([]*ie.IE{ie.NewNodeIDHeuristic("smf-a"), ie.NewFSEID(1, smfA.Addr().AsSlice(), nil)}, basic()...)...)
	b := marshal(t, req)
	r1 := h.raw(smfA, b)
	r2 := h.raw(smfA, slices.Clone(b))
	if r1 == nil || !slices.Equal(r1, r2) {
		t.Fatal("retransmission not answered with the same response")
	}
	if h.enf.installs != 1 || len(h.srv.sessions) != 1 {
		t.Fatalf("executed twice: installs %d, sessions %d", h.enf.installs, len(h.srv.sessions))
	}
	if h.srv.Stats().Retransmissions != 1 {
		t.Error("retransmission not counted")
	}
	// From another port, or with other bytes: a new request.
	other := netip.AddrPortFrom(smfA.Addr(), 9999)
	h.raw(other, b)
	if h.enf.installs != 2 {
		t.Error("same sequence number from another port not executed")
	}
	// The cache is bounded.
	for i := range ResponseCacheSize + 100 {
		h.raw(smfA, marshal(t, message.NewHeartbeatRequest(uint32(1000+i), ie.NewRecoveryTimeStamp(rtsA), nil)))
	}
	if n := h.srv.cache.len(); n > ResponseCacheSize {
		t.Errorf("cache holds %d responses", n)
	}
	// And aged.
	h.now = h.now.Add(ResponseCacheAge + 1)
	h.raw(smfA, marshal(t, message.NewHeartbeatRequest(5, ie.NewRecoveryTimeStamp(rtsA), nil)))
	if n := h.srv.cache.len(); n != 1 {
		t.Errorf("cache holds %d responses after they aged", n)
	}
}

func TestFTEIDAllocationOption(t *testing.T) {
	h := setup(t, func(c *Config) { c.N3v6 = netip.Addr{} })
	far := createFAR(1, actFORW, forwardCore())
	r := h.establish(smfA, "smf-a", 1, pdr(1, 1, 0, []*ie.IE{chV6(), ue4("10.45.0.2")}, farID(1)), far)
	checkCause(t, r.Cause, r.OffendingIE, ie.CauseInvalidFTEIDAllocationOption, 0)
	if h.enf.installs != 0 || len(h.srv.teids) != 0 {
		t.Error("state changed")
	}
	// IPv4 or IPv6 requested, IPv4 available: IPv4 only.
	r = h.establish(smfA, "smf-a", 1, pdr(1, 1, 0, []*ie.IE{ie.NewFTEID(0x07, 0, nil, nil, 0), ue4("10.45.0.2")}, farID(1)), far)
	upSEID(t, r)
	f, _ := r.CreatedPDR[0].FTEID()
	if !f.HasIPv4() || f.HasIPv6() {
		t.Errorf("F-TEID flags %#x", f.Flags)
	}
}
