package pfcp

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"

	"github.com/pine-upf/pine-upf/enforcer"
)

// fakeEnforcer records installed sessions and can be told to fail. It
// checks what the real enforcer checks that matters to the server: a UE
// address, rules claiming only their session's addresses, TEIDs and UE
// addresses not owned by another session.
type fakeEnforcer struct {
	sessions map[uint64]enforcer.Session
	usage    map[uint64]map[uint32]enforcer.Counter
	installs int
	removes  int
	failNext error // returned by the next InstallSession
}

func newFake() *fakeEnforcer {
	return &fakeEnforcer{sessions: map[uint64]enforcer.Session{}, usage: map[uint64]map[uint32]enforcer.Counter{}}
}

func (f *fakeEnforcer) InstallSession(s enforcer.Session) error {
	_, err := f.ReplaceSession(s)
	return err
}

// ReplaceSession returns the counters of the rules the change removed.
func (f *fakeEnforcer) ReplaceSession(s enforcer.Session) (map[uint32]enforcer.Counter, error) {
	if err := f.install(s); err != nil {
		return nil, err
	}
	removed := map[uint32]enforcer.Counter{}
	for id, c := range f.usage[s.SEID] {
		if !slices.ContainsFunc(s.Rules, func(r enforcer.Rule) bool { return r.ID == id }) {
			removed[id] = c
			delete(f.usage[s.SEID], id)
		}
	}
	return removed, nil
}

func (f *fakeEnforcer) install(s enforcer.Session) error {
	f.installs++
	if err := f.failNext; err != nil {
		f.failNext = nil
		return fmt.Errorf("fake install: %w", err)
	}
	if !s.UEv4.IsValid() && !s.UEv6.IsValid() {
		return fmt.Errorf("%w: no UE address", enforcer.ErrBadRule)
	}
	for _, r := range s.Rules {
		if a := r.Addr; a.IsValid() && !(a.Is4() && a == s.UEv4) && !(a.Is6() && s.UEv6.Contains(a)) {
			return fmt.Errorf("%w: rule %d claims %s", enforcer.ErrBadRule, r.ID, a)
		}
		if len(r.QERs) > enforcer.MaxQERsPerRule {
			return fmt.Errorf("%w: QERs", enforcer.ErrBadRule)
		}
	}
	for seid, o := range f.sessions {
		if seid == s.SEID {
			continue
		}
		for _, t := range s.TEIDs {
			if slices.Contains(o.TEIDs, t) {
				return fmt.Errorf("%w: TEID %#x", enforcer.ErrConflict, t)
			}
		}
		if s.UEv4.IsValid() && s.UEv4 == o.UEv4 {
			return fmt.Errorf("%w: UE %s", enforcer.ErrConflict, s.UEv4)
		}
	}
	f.sessions[s.SEID] = s
	return nil
}

func (f *fakeEnforcer) RemoveSession(seid uint64) (enforcer.SessionReport, error) {
	f.removes++
	if _, ok := f.sessions[seid]; !ok {
		return enforcer.SessionReport{}, enforcer.ErrNotFound
	}
	delete(f.sessions, seid)
	rep := enforcer.SessionReport{Rules: maps.Clone(f.usage[seid])}
	delete(f.usage, seid)
	return rep, nil
}

func (f *fakeEnforcer) SessionUsage(seid uint64) (enforcer.SessionUsage, error) {
	if _, ok := f.sessions[seid]; !ok {
		return enforcer.SessionUsage{}, enforcer.ErrNotFound
	}
	return enforcer.SessionUsage{}, nil
}

func (f *fakeEnforcer) RuleUsage(seid uint64, id uint32) (enforcer.Counter, error) {
	s, ok := f.sessions[seid]
	if !ok || !slices.ContainsFunc(s.Rules, func(r enforcer.Rule) bool { return r.ID == id }) {
		return enforcer.Counter{}, enforcer.ErrNotFound
	}
	return f.usage[seid][id], nil
}

// addUsage makes a rule's counter grow.
func (f *fakeEnforcer) addUsage(seid uint64, id uint32, pkts, bytes uint64) {
	if f.usage[seid] == nil {
		f.usage[seid] = map[uint32]enforcer.Counter{}
	}
	c := f.usage[seid][id]
	c.Packets += pkts
	c.Bytes += bytes
	f.usage[seid][id] = c
}

var (
	smfA     = netip.MustParseAddrPort("10.0.0.1:8805")
	smfB     = netip.MustParseAddrPort("10.0.0.2:8805")
	stranger = netip.MustParseAddrPort("192.0.2.9:8805")
	rtsA     = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	n3v4     = netip.MustParseAddr("192.168.1.1")
	n3v6     = netip.MustParseAddr("2001:db8:ff::1")
)

type sent struct {
	to  netip.AddrPort
	msg message.Message
}

type harness struct {
	t   *testing.T
	srv *Server
	enf *fakeEnforcer
	now time.Time
	out []sent // UPF-initiated messages
	seq uint32
}

func newHarness(t *testing.T, mod ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, enf: newFake(), now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	cfg := Config{
		ListenAddr:        "127.0.0.1:0",
		NodeID:            "10.0.0.100",
		RecoveryTimeStamp: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC),
		AllowedPeers:      []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")},
		N3v4:              n3v4,
		N3v6:              n3v6,
		Enforcer:          h.enf,
		Logger:            testLogger(t),
	}
	for _, m := range mod {
		m(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.now = func() time.Time { return h.now }
	srv.send = func(to netip.AddrPort, b []byte) error {
		m, err := message.Parse(b)
		if err != nil {
			t.Errorf("server sent undecodable bytes: %v", err)
			return nil
		}
		h.out = append(h.out, sent{to, m})
		return nil
	}
	h.srv = srv
	return h
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (h *harness) nextSeq() uint32 { h.seq++; return h.seq }

// raw sends bytes and returns the raw response.
func (h *harness) raw(peer netip.AddrPort, b []byte) []byte {
	return h.srv.HandleMessage(peer, b)
}

func marshal(t *testing.T, m message.Message) []byte {
	t.Helper()
	b := make([]byte, m.MarshalLen())
	if err := m.MarshalTo(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// do sends a message and parses the response (nil when none).
func (h *harness) do(peer netip.AddrPort, m message.Message) message.Message {
	h.t.Helper()
	r := h.raw(peer, marshal(h.t, m))
	if r == nil {
		return nil
	}
	resp, err := message.Parse(r)
	if err != nil {
		h.t.Fatalf("response does not decode: %v", err)
	}
	if resp.Sequence() != m.Sequence() {
		h.t.Fatalf("response sequence %d, request %d", resp.Sequence(), m.Sequence())
	}
	return resp
}

func (h *harness) associate(peer netip.AddrPort, nodeID string, rts time.Time) *message.AssociationSetupResponse {
	h.t.Helper()
	r := h.do(peer, message.NewAssociationSetupRequest(h.nextSeq(), ie.NewNodeIDHeuristic(nodeID), ie.NewRecoveryTimeStamp(rts)))
	resp, ok := r.(*message.AssociationSetupResponse)
	if !ok {
		h.t.Fatalf("association setup: got %T", r)
	}
	return resp
}

func (h *harness) establish(peer netip.AddrPort, nodeID string, cpSEID uint64, ies ...*ie.IE) *message.SessionEstablishmentResponse {
	h.t.Helper()
	all := append([]*ie.IE{ie.NewNodeIDHeuristic(nodeID), ie.NewFSEID(cpSEID, peer.Addr().AsSlice(), nil)}, ies...)
	r := h.do(peer, message.NewSessionEstablishmentRequest(0, 0, 0, h.nextSeq(), 0, all...))
	resp, ok := r.(*message.SessionEstablishmentResponse)
	if !ok {
		h.t.Fatalf("establishment: got %T", r)
	}
	return resp
}

func (h *harness) modify(peer netip.AddrPort, seid uint64, ies ...*ie.IE) *message.SessionModificationResponse {
	h.t.Helper()
	r := h.do(peer, message.NewSessionModificationRequest(0, 0, seid, h.nextSeq(), 0, ies...))
	resp, ok := r.(*message.SessionModificationResponse)
	if !ok {
		h.t.Fatalf("modification: got %T", r)
	}
	return resp
}

func (h *harness) delete(peer netip.AddrPort, seid uint64) *message.SessionDeletionResponse {
	h.t.Helper()
	r := h.do(peer, message.NewSessionDeletionRequest(0, 0, seid, h.nextSeq(), 0))
	resp, ok := r.(*message.SessionDeletionResponse)
	if !ok {
		h.t.Fatalf("deletion: got %T", r)
	}
	return resp
}

// upSEID is the UP SEID of an accepted establishment.
func upSEID(t *testing.T, r *message.SessionEstablishmentResponse) uint64 {
	t.Helper()
	if c := causeOf(t, r.Cause); c != ie.CauseRequestAccepted {
		t.Fatalf("establishment cause %d, offending %v", c, offendingOf(r.OffendingIE))
	}
	f, err := r.UPFSEID.FSEID()
	if err != nil || f.SEID == 0 {
		t.Fatalf("UP F-SEID %v %v", f, err)
	}
	return f.SEID
}

func causeOf(t *testing.T, x *ie.IE) uint8 {
	t.Helper()
	if x == nil {
		t.Fatal("no Cause IE")
	}
	c, err := x.Cause()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func offendingOf(x *ie.IE) uint16 {
	if x == nil {
		return 0
	}
	v, _ := x.OffendingIE()
	return v
}

// checkCause asserts a response's Cause and Offending IE (0: absent).
func checkCause(t *testing.T, cause, offending *ie.IE, wantCause uint8, wantOffending uint16) {
	t.Helper()
	if c := causeOf(t, cause); c != wantCause {
		t.Errorf("cause %d, want %d (offending %d)", c, wantCause, offendingOf(offending))
	}
	if o := offendingOf(offending); o != wantOffending {
		t.Errorf("offending IE %d, want %d", o, wantOffending)
	}
}

// ---- IE builders ----

func pdr(id uint16, prec uint32, src uint8, pdi []*ie.IE, extra ...*ie.IE) *ie.IE {
	return ie.NewCreatePDR(append([]*ie.IE{ie.NewPDRID(id), ie.NewPrecedence(prec),
		ie.NewPDI(append([]*ie.IE{ie.NewSourceInterface(src)}, pdi...)...)}, extra...)...)
}

func chV4() *ie.IE           { return ie.NewFTEID(0x05, 0, nil, nil, 0) }
func chV6() *ie.IE           { return ie.NewFTEID(0x06, 0, nil, nil, 0) }
func chID(id uint8) *ie.IE   { return ie.NewFTEID(0x0d, 0, nil, nil, id) }
func ue4(a string) *ie.IE    { return ie.NewUEIPAddress(0x02, a, "", 0, 0) }
func ue4D(a string) *ie.IE   { return ie.NewUEIPAddress(0x06, a, "", 0, 0) }
func sdf(fd string) *ie.IE   { return ie.NewSDFFilter(fd, "", "", "", 0) }
func farID(id uint32) *ie.IE { return ie.NewFARID(id) }
func qerID(id uint32) *ie.IE { return ie.NewQERID(id) }
func urrID(id uint32) *ie.IE { return ie.NewURRID(id) }
func ohr(d uint8) *ie.IE     { return ie.NewOuterHeaderRemoval(d, 0) }
func explicitTEID(teid uint32) *ie.IE {
	return ie.NewFTEID(0x01, teid, n3v4.AsSlice(), nil, 0)
}

// ue6 is a UE IPv6 address with IPv6D delegation bits (0: no IPv6D flag).
func ue6(a string, delegation uint8) *ie.IE {
	flags := uint8(0x01)
	if delegation > 0 {
		flags |= 0x08
	}
	return ie.NewUEIPAddress(flags, "", a, delegation, 0)
}

func createFAR(id uint32, action uint8, fp ...*ie.IE) *ie.IE {
	return ie.NewCreateFAR(append([]*ie.IE{ie.NewFARID(id), ie.NewApplyAction(action)}, fp...)...)
}

func forwardCore() *ie.IE {
	return ie.NewForwardingParameters(ie.NewDestinationInterface(ie.DstInterfaceCore))
}

func forwardGNB(teid uint32, gnb string) *ie.IE {
	return ie.NewForwardingParameters(ie.NewDestinationInterface(ie.DstInterfaceAccess),
		ie.NewOuterHeaderCreation(0x0100, teid, gnb, "", 0, 0, 0))
}

const (
	actDROP = 0x01
	actFORW = 0x02
	actBUFF = 0x04
	actNOCP = 0x08
)

// basic is a PEGC session for UE 10.45.0.2: uplink PDR 1 (CH F-TEID) and
// downlink PDR 2 to gNB 192.168.1.50 TEID 0x100, both without filters.
func basic() []*ie.IE {
	return []*ie.IE{
		pdr(1, 100, ie.SrcInterfaceAccess, []*ie.IE{chV4(), ue4("10.45.0.2")}, ohr(0), farID(1)),
		pdr(2, 100, ie.SrcInterfaceCore, []*ie.IE{ue4D("10.45.0.2")}, farID(2)),
		createFAR(1, actFORW, forwardCore()),
		createFAR(2, actFORW, forwardGNB(0x100, "192.168.1.50")),
	}
}
