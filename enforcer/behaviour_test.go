package enforcer_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
	"github.com/pine-upf/pine-upf/internal/testnet"
)

func pineRule(id uint32, port uint16) enforcer.Rule {
	return enforcer.Rule{ID: id, Precedence: 10, Direction: enforcer.Uplink, Addr: ueA,
		Protocol: pkt.UDP, Ports: []enforcer.PortRange{{port, port}}, Action: enforcer.Forward}
}

func (g *goldenEnv) verdict(t testing.TB, teid uint32, in pkt.Inner) enforcer.XDPAction {
	t.Helper()
	act, _, err := g.w.Run(g.e, enforcer.ProgUplink, g.uplink(teid, in).MustBuild().Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return act
}

// A change that fails leaves the datapath and the bookkeeping as they were.
func TestFailedChangeChangesNothing(t *testing.T) {
	w := dptest.NewWorld(t)
	cfg := w.Config()
	cfg.MaxRules, cfg.MaxRuleEntries = 8, 8
	g := &goldenEnv{w: w, e: w.Load(t, cfg)}
	s := enforcer.Session{SEID: 1, TEIDs: []uint32{teidA}, UEv4: ueA,
		Rules: []enforcer.Rule{pineRule(1, 5000), pineRule(2, 5001)}}
	if err := g.e.InstallSession(s); err != nil {
		t.Fatal(err)
	}
	// 6001-6015 is 15 single-port entries: more than the table holds.
	big := s
	big.Rules = []enforcer.Rule{pineRule(1, 5000), {ID: 3, Direction: enforcer.Uplink, Addr: ueA, Protocol: pkt.UDP,
		Ports: []enforcer.PortRange{{6001, 6015}}, Action: enforcer.Forward}}
	err := g.e.InstallSession(big)
	if !errors.Is(err, enforcer.ErrFull) {
		t.Fatalf("oversized replace: err = %v, want ErrFull", err)
	}
	got, _ := g.e.Session(1)
	if len(got.Rules) != 2 || g.e.RuleEntries(1) != 2 {
		t.Errorf("after failed replace: %d rules, %d entries; want 2, 2", len(got.Rules), g.e.RuleEntries(1))
	}
	if a := g.verdict(t, teidA, udp4(ueA, 5001, server4, 53)); a != enforcer.XDPRedirect {
		t.Errorf("rule 2 after failed replace: %v", a)
	}
	if a := g.verdict(t, teidA, udp4(ueA, 6001, server4, 53)); a != enforcer.XDPDrop {
		t.Errorf("half-applied rule 3 after failed replace: %v", a)
	}
	// A new session that does not fit leaves nothing behind either.
	s2 := enforcer.Session{SEID: 2, TEIDs: []uint32{teidB}, UEv4: ueB, Rules: []enforcer.Rule{
		{ID: 1, Direction: enforcer.Uplink, Addr: ueB, Protocol: pkt.UDP, Ports: []enforcer.PortRange{{1, 14}}, Action: enforcer.Forward}}}
	if err := g.e.InstallSession(s2); !errors.Is(err, enforcer.ErrFull) {
		t.Fatalf("oversized session: err = %v, want ErrFull", err)
	}
	if _, ok := g.e.Session(2); ok {
		t.Error("failed session is installed")
	}
	if a := g.verdict(t, teidB, udp4(ueB, 1, server4, 53)); a != enforcer.XDPDrop {
		t.Errorf("traffic of a failed session: %v", a)
	}
	if u := g.e.Usage(); u.Sessions != 1 || u.Rules != 2 {
		t.Errorf("usage after failures = %+v", u)
	}
}

// Usage counters per rule and per session count forwarded inner bytes.
func TestUsageCounters(t *testing.T) {
	w := dptest.NewWorld(t)
	g := &goldenEnv{w: w, e: w.Load(t, w.Config())}
	s := enforcer.Session{SEID: 1, TEIDs: []uint32{teidA}, UEv4: ueA, Rules: []enforcer.Rule{pineRule(1, 5000)}}
	if err := g.e.InstallSession(s); err != nil {
		t.Fatal(err)
	}
	in := udp4(ueA, 5000, server4, 53) // 61 inner bytes
	for range 3 {
		g.verdict(t, teidA, in)
	}
	g.verdict(t, teidA, udp4(ueA, 5999, server4, 53)) // denied
	c, err := g.e.RuleUsage(1, 1)
	if err != nil || c != (enforcer.Counter{Packets: 3, Bytes: 3 * 61}) {
		t.Errorf("rule usage = %+v, %v; want 3 packets, 183 bytes", c, err)
	}
	u, _ := g.e.SessionUsage(1)
	if u.Forwarded[enforcer.Uplink].Packets != 3 || u.Dropped[enforcer.Uplink].Packets != 1 {
		t.Errorf("session usage = %+v", u)
	}
	rep, err := g.e.RemoveSession(1)
	if err != nil || rep.Rules[1].Packets != 3 {
		t.Errorf("final report = %+v, %v", rep, err)
	}
}

// Deny events name the session and the PINE, and a flood is rate-limited.
func TestDenyEvents(t *testing.T) {
	w := dptest.NewWorld(t)
	cfg := w.Config()
	cfg.EventsPerSecond = 5
	g := &goldenEnv{w: w, e: w.Load(t, cfg)}
	if err := g.e.InstallSession(enforcer.Session{SEID: 42, TEIDs: []uint32{teidA}, UEv4: ueA,
		Rules: []enforcer.Rule{pineRule(1, 5000)}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := g.e.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flood := g.uplink(teidA, udp4(ueA, 6666, server4, 53)).MustBuild().Bytes
	frames := make([][]byte, 200)
	for i := range frames {
		frames[i] = flood
	}
	start := time.Now()
	if err := w.RunBatch(g.e, enforcer.ProgUplink, frames, func(int, enforcer.XDPAction, []byte) {}); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	ev := <-events
	want := enforcer.DenyEvent{SEID: 42, TEID: teidA, Addr: ueA, Port: 6666, Protocol: pkt.UDP,
		Reason: enforcer.ReasonNoRule, Direction: enforcer.Uplink, KernelNS: ev.KernelNS}
	if ev != want {
		t.Errorf("event = %+v\nwant %+v", ev, want)
	}
	st, _ := g.e.Stats()
	// At most 5 per CPU and second: the burst spans at most two windows.
	maxSent := uint64(5 * runtime.NumCPU() * (int(elapsed/time.Second) + 2))
	if st.Events.Sent == 0 || st.Events.Sent > maxSent || st.Events.Sent+st.Events.Suppressed != 200 {
		t.Errorf("events sent %d, suppressed %d in %v; want 1..%d sent, 200 in all", st.Events.Sent, st.Events.Suppressed, elapsed, maxSent)
	}
	if _, err := g.e.Events(ctx); err == nil {
		t.Error("a second reader was allowed")
	}
}

// Replacing a session under traffic never drops a still-authorized PINE
// nor passes one the new rule set drops.
func TestMakeBeforeBreak(t *testing.T) {
	w := dptest.NewWorld(t)
	g := &goldenEnv{w: w, e: w.Load(t, w.Config())}
	keep := pineRule(1, 5000) // authorized throughout
	qer := enforcer.QER{ID: 1, ULMBR: 1_000_000_000}
	base := enforcer.Session{SEID: 1, TEIDs: []uint32{teidA}, UEv4: ueA, QERs: []enforcer.QER{qer}}
	variant := func(i int) enforcer.Session {
		s := base
		s.QERs = []enforcer.QER{{ID: 1, ULMBR: uint64(1_000_000_000 + i)}} // new QER: a generation flip
		k := keep
		k.QERs = []uint32{1}
		k.Precedence = uint32(10 + i%3)
		s.Rules = []enforcer.Rule{k,
			{ID: 2, Precedence: 1, Direction: enforcer.Uplink, Addr: ueA, Protocol: pkt.UDP,
				Ports: []enforcer.PortRange{{6000, 6000}}, Action: enforcer.Drop}, // never authorized
			pineRule(uint32(100+i%2), uint16(7000+i%2)), // churn
		}
		return s
	}
	if err := g.e.InstallSession(variant(0)); err != nil {
		t.Fatal(err)
	}
	allowed := g.uplink(teidA, udp4(ueA, 5000, server4, 53)).MustBuild().Bytes
	denied := g.uplink(teidA, udp4(ueA, 6000, server4, 53)).MustBuild().Bytes

	var stop atomic.Bool
	var wg sync.WaitGroup
	var runs, bad atomic.Int64
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := w.UPF.Do(func() error {
			for !stop.Load() {
				a, _, err := g.e.TestRun(enforcer.ProgUplink, allowed, w.N3.Index)
				if err != nil {
					return err
				}
				d, _, err := g.e.TestRun(enforcer.ProgUplink, denied, w.N3.Index)
				if err != nil {
					return err
				}
				runs.Add(2)
				if a != enforcer.XDPRedirect || d != enforcer.XDPDrop {
					bad.Add(1)
				}
			}
			return nil
		})
		if err != nil {
			errc <- err
		}
	}()
	for i := range 300 {
		if err := g.e.InstallSession(variant(i + 1)); err != nil {
			t.Fatalf("replace %d: %v", i, err)
		}
		if i%2 == 0 {
			if _, err := g.e.RemoveRule(1, uint32(100+(i+1)%2)); err != nil {
				t.Fatalf("remove churn rule: %v", err)
			}
			if err := g.e.AddRule(1, pineRule(uint32(100+(i+1)%2), uint16(7000+(i+1)%2))); err != nil {
				t.Fatalf("add churn rule: %v", err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	t.Logf("%d packets during 300 replacements", runs.Load())
	if bad.Load() != 0 || runs.Load() == 0 {
		t.Errorf("%d wrong verdicts in %d packets", bad.Load(), runs.Load())
	}
}

// Maps pinned by one enforcer are adopted by the next, contents and all,
// and a pinned link is taken over without detaching.
func TestPinAndAdopt(t *testing.T) {
	w := dptest.NewWorld(t)
	if err := testnet.MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(testnet.BPFFSPath, fmt.Sprintf("pine-test-%d", time.Now().UnixNano()))
	cfg := w.Config()
	cfg.PinDir = dir
	first, err := loadIn(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := &goldenEnv{w: w, e: first}
	if err := first.InstallSession(enforcer.Session{SEID: 1, TEIDs: []uint32{teidA}, UEv4: ueA,
		Rules: []enforcer.Rule{pineRule(1, 5000)}}); err != nil {
		t.Fatal(err)
	}
	if err := w.UPF.Do(func() error { return first.Attach("n3", enforcer.N3, enforcer.XDPGeneric) }); err != nil {
		t.Fatal(err)
	}
	first.Close() // pins keep maps and link alive

	second, err := loadIn(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Unpin(); second.Close() })
	g.e = second
	if a := g.verdict(t, teidA, udp4(ueA, 5000, server4, 53)); a != enforcer.XDPRedirect {
		t.Errorf("adopted rule: verdict %v, want XDP_REDIRECT", a)
	}
	if err := w.UPF.Do(func() error { return second.Attach("n3", enforcer.N3, enforcer.XDPGeneric) }); err != nil {
		t.Fatalf("adopt pinned link: %v", err)
	}
	// A differently sized map is refused, not silently replaced.
	cfg.MaxRules = 1000
	if e, err := loadIn(w, cfg); err == nil {
		e.Close()
		t.Error("incompatible pinned maps were accepted")
	}
	if err := w.UPF.Do(func() error { return second.Detach("n3") }); err != nil {
		t.Fatal(err)
	}
}

func loadIn(w *dptest.World, cfg enforcer.Config) (e *enforcer.Enforcer, err error) {
	err = w.UPF.Do(func() error {
		e, err = enforcer.New(cfg)
		return err
	})
	return e, err
}

// Attaching to a missing interface, or natively where the driver cannot,
// is a clear error.
func TestAttachErrors(t *testing.T) {
	w := dptest.NewWorld(t)
	e := w.Load(t, w.Config())
	err := w.UPF.Do(func() error { return e.Attach("nope0", enforcer.N3, enforcer.XDPNative) })
	if err == nil {
		t.Fatal("attached to a missing interface")
	}
	t.Logf("missing interface: %v", err)
	if err := w.UPF.Do(func() error { return e.Attach("n6", enforcer.N6, enforcer.XDPNative) }); err != nil {
		t.Fatalf("native XDP on veth: %v", err)
	}
	if err := w.UPF.Do(func() error { return e.Attach("n6", enforcer.N6, enforcer.XDPNative) }); err == nil {
		t.Error("attached twice")
	}
	if err := e.Detach("n6"); err != nil {
		t.Fatal(err)
	}
}

// A restarted process restores its bookkeeping onto the pinned maps, keeps
// enforcing, can change sessions again, and sweeps what no session owns.
func TestSnapshotRestore(t *testing.T) {
	w := dptest.NewWorld(t)
	if err := testnet.MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	cfg := w.Config()
	cfg.PinDir = filepath.Join(testnet.BPFFSPath, fmt.Sprintf("pine-restore-%d", time.Now().UnixNano()))
	first, err := loadIn(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sessions := goldenSessions()
	for _, s := range sessions {
		if err := first.InstallSession(s); err != nil {
			t.Fatal(err)
		}
	}
	st := first.Snapshot()
	// An orphan: a session the saved state does not know about.
	if err := first.InstallSession(enforcer.Session{SEID: 99, TEIDs: []uint32{0x999}, UEv4: netip.MustParseAddr("10.45.9.9"),
		Rules: []enforcer.Rule{{ID: 1, Direction: enforcer.Uplink, Action: enforcer.Forward}}}); err != nil {
		t.Fatal(err)
	}
	first.Close()

	second, err := loadIn(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Unpin(); second.Close() })
	swept, lost, err := second.Restore(st)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if len(lost) != 0 {
		t.Errorf("lost %v", lost)
	}
	if swept < 3 { // the orphan's TEID, UE address, rule entry and slot
		t.Errorf("swept %d, want the orphan's entries", swept)
	}
	g := &goldenEnv{w: w, e: second}
	if a := g.verdict(t, teidA, udp4(ueA, 5000, server4, 53)); a != enforcer.XDPRedirect {
		t.Errorf("restored rule: %v", a)
	}
	if a := g.verdict(t, 0x999, udp4(netip.MustParseAddr("10.45.9.9"), 1, server4, 53)); a != enforcer.XDPDrop {
		t.Errorf("orphan session still forwards: %v", a)
	}
	// Changes work on restored sessions, and indices are not handed out twice.
	if _, err := second.RemoveRule(1, 1); err != nil {
		t.Fatal(err)
	}
	if a := g.verdict(t, teidA, udp4(ueA, 5000, server4, 53)); a != enforcer.XDPDrop {
		t.Errorf("removed rule after restore: %v", a)
	}
	if err := second.InstallSession(enforcer.Session{SEID: 7, TEIDs: []uint32{0x777}, UEv4: netip.MustParseAddr("10.45.7.7"),
		Rules: []enforcer.Rule{pineRuleFor(netip.MustParseAddr("10.45.7.7"), 1, 80)}}); err != nil {
		t.Fatal(err)
	}
	if a := g.verdict(t, teidA, tcpIn(ueA, 4000, server4, 443)); a != enforcer.XDPRedirect {
		t.Errorf("other rules of the session after changes: %v", a)
	}
	if u := second.Usage(); u.Sessions != len(sessions)+1 {
		t.Errorf("usage after restore = %+v", u)
	}
}

func pineRuleFor(ue netip.Addr, id uint32, port uint16) enforcer.Rule {
	r := pineRule(id, port)
	r.Addr = ue
	return r
}

// Another process reads a running datapath's counters from its pins.
func TestOpenPinned(t *testing.T) {
	w := dptest.NewWorld(t)
	if err := testnet.MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	cfg := w.Config()
	cfg.PinDir = filepath.Join(testnet.BPFFSPath, fmt.Sprintf("pine-inspect-%d", time.Now().UnixNano()))
	e, err := loadIn(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Unpin(); e.Close() })
	if err := e.InstallSession(enforcer.Session{SEID: 1, TEIDs: []uint32{teidA}, UEv4: ueA, Rules: []enforcer.Rule{pineRule(1, 5000)}}); err != nil {
		t.Fatal(err)
	}
	g := &goldenEnv{w: w, e: e}
	g.verdict(t, teidA, udp4(ueA, 5000, server4, 53))
	st := e.Snapshot()

	p, err := enforcer.OpenPinned(cfg.PinDir, cfg.MaxRules)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := p.RuleUsage(st.Sessions[0].RuleIDs[1])
	if err != nil || c.Packets != 1 {
		t.Errorf("pinned rule usage = %+v, %v; want 1 packet", c, err)
	}
	stats, err := p.Stats()
	if err != nil || stats.Packets[enforcer.Uplink][enforcer.ReasonForward].Packets != 1 {
		t.Errorf("pinned stats = %+v, %v", stats.Packets[enforcer.Uplink], err)
	}
	if _, err := enforcer.OpenPinned(cfg.PinDir, cfg.MaxRules+1); err == nil {
		t.Error("a wrong MaxRules was accepted")
	}
}
