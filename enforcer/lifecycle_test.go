package enforcer_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/testnet"
)

// newEnforcer loads a small datapath for a test.
func newEnforcer(t testing.TB, cfg enforcer.Config) *enforcer.Enforcer {
	t.Helper()
	testnet.RequirePrivileged(t)
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = 1024
	}
	if cfg.MaxRules == 0 {
		cfg.MaxRules = 16384
	}
	if !cfg.N3v4.IsValid() {
		cfg.N3v4 = netip.MustParseAddr("192.0.2.1")
	}
	if !cfg.N3v6.IsValid() {
		cfg.N3v6 = netip.MustParseAddr("2001:db8:3::1")
	}
	e, err := enforcer.New(cfg)
	if err != nil {
		t.Fatalf("load datapath: %+v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestSessionLifecycle(t *testing.T) {
	e := newEnforcer(t, enforcer.Config{})
	ue := netip.MustParseAddr("10.45.0.2")
	s := enforcer.Session{
		SEID: 1, TEIDs: []uint32{100}, UEv4: ue,
		QERs: []enforcer.QER{{ID: 1, ULMBR: 1_000_000}},
		Rules: []enforcer.Rule{
			{ID: 1, Precedence: 10, Direction: enforcer.Uplink, Addr: ue, Protocol: 17,
				Ports: []enforcer.PortRange{{5000, 5010}}, Action: enforcer.Forward, QERs: []uint32{1}},
			{ID: 2, Precedence: 10, Direction: enforcer.Downlink, Addr: ue, Protocol: 17,
				Ports: []enforcer.PortRange{{5000, 5010}}, Action: enforcer.Forward,
				Tunnel: enforcer.Tunnel{PeerTEID: 7, Peer: netip.MustParseAddr("192.0.2.2"), QFI: 9}},
		},
	}
	if err := e.InstallSession(s); err != nil {
		t.Fatalf("install: %v", err)
	}
	// 5000-5010: 5000-5007 as 8 single ports? no: 5000 is 16-aligned (5000 = 312*16+8) -> singles.
	if n := e.RuleEntries(1); n == 0 {
		t.Fatalf("no entries")
	}
	u := e.Usage()
	if u.Sessions != 1 || u.Rules != 2 || u.QERs != 1 {
		t.Errorf("usage = %+v", u)
	}
	// A second session may not claim the first one's TEID or UE address.
	s2 := s
	s2.SEID = 2
	if err := e.InstallSession(s2); !errors.Is(err, enforcer.ErrConflict) {
		t.Errorf("conflicting install: err = %v, want ErrConflict", err)
	}
	// A rule naming another address is refused (KI#2).
	bad := enforcer.Rule{ID: 9, Direction: enforcer.Uplink, Addr: netip.MustParseAddr("10.45.0.3"), Action: enforcer.Forward}
	if err := e.AddRule(1, bad); !errors.Is(err, enforcer.ErrBadRule) {
		t.Errorf("foreign address: err = %v, want ErrBadRule", err)
	}
	// Add and remove a rule in place.
	r3 := enforcer.Rule{ID: 3, Precedence: 5, Direction: enforcer.Uplink, Addr: ue, Protocol: 6, Action: enforcer.Forward}
	if err := e.AddRule(1, r3); err != nil {
		t.Fatalf("add rule: %v", err)
	}
	if _, err := e.RemoveRule(1, 3); err != nil {
		t.Fatalf("remove rule: %v", err)
	}
	// Replace with a changed QER: a generation flip.
	s.QERs[0].ULMBR = 2_000_000
	if err := e.InstallSession(s); err != nil {
		t.Fatalf("replace: %v", err)
	}
	if _, err := e.RemoveSession(1); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if u := e.Usage(); u.Sessions != 0 || u.Rules != 0 || u.QERs != 0 {
		t.Errorf("usage after removal = %+v", u)
	}
}
