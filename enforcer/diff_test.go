package enforcer_test

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/refmodel"
)

var (
	diffPackets = flag.Int("diff.packets", envInt("PINE_DIFF_PACKETS", 5000), "packets per seed in the differential test (env PINE_DIFF_PACKETS)")
	diffSeed    = flag.Uint64("diff.seed", 0, "the differential test's fresh seed (0: random)")
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// modelFor tells the reference model what the world's FIB and N3 are.
func modelFor(w *dptest.World, sessions []enforcer.Session) *refmodel.Model {
	cfg := refmodel.Config{N3v4: dptest.N3v4, N3v6: dptest.N3v6, FIBFallbackPass: true}
	for _, r := range w.Routes {
		mr := refmodel.Route{Prefix: r.Prefix, Unreachable: r.Unreachable}
		if r.Hop != nil {
			mr.Hop = &refmodel.Hop{IfIndex: r.Hop.IfIndex, SrcMAC: r.Hop.SrcMAC, DstMAC: r.Hop.DstMAC, MTU: r.Hop.MTU}
		}
		cfg.Routes = append(cfg.Routes, mr)
	}
	return refmodel.New(cfg, sessions)
}

// TestDifferential feeds the same random rule sets and random, often
// malformed, packets to the programs and to the reference model, and
// requires the same verdict, reason and bytes for every packet, and the
// same counters at the end. It runs a fixed seed and a fresh one.
func TestDifferential(t *testing.T) {
	fresh := *diffSeed
	if fresh == 0 {
		fresh = rand.Uint64()
	}
	for _, seed := range []uint64{1, fresh} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("seed %d (rerun: go test ./enforcer -run TestDifferential -diff.seed=%d)", seed, seed)
			differential(t, seed, *diffPackets)
		})
	}
}

func differential(t *testing.T, seed uint64, packets int) {
	w := dptest.NewWorld(t)
	e := w.Load(t, w.Config())
	// New rule sets every few thousand packets, so many sets are tried.
	const perSet = 2500
	var mismatches, done int
	reasons := map[enforcer.Reason]int{}
	for set := 0; done < packets; set++ {
		gen := dptest.NewGen(seed*7919+uint64(set), 6, w)
		for _, s := range gen.Sessions {
			if err := e.InstallSession(s); err != nil {
				t.Fatalf("seed %d set %d: install session %#x: %v", seed, set, s.SEID, err)
			}
		}
		model := modelFor(w, gen.Sessions)
		before, err := e.Stats()
		if err != nil {
			t.Fatal(err)
		}
		n := min(perSet, packets-done)
		err = w.UPF.Do(func() error { // one trip into the namespace per set
			prev := before
			for i := range n {
				prog, ifindex, next, run := enforcer.ProgUplink, w.N3.Index, gen.UplinkFrame, model.Uplink
				if i%3 == 2 {
					prog, ifindex, next, run = enforcer.ProgDownlink, w.N6.Index, gen.DownlinkFrame, model.Downlink
				}
				frame := next()
				want := run(frame)
				act, out, err := e.TestRun(prog, frame, ifindex)
				if err != nil {
					return err
				}
				st, err := e.Stats()
				if err != nil {
					return err
				}
				dir := enforcer.Uplink
				if prog == enforcer.ProgDownlink {
					dir = enforcer.Downlink
				}
				got := movedReason(prev, st, dir)
				prev = st
				reasons[want.Reason]++
				if act != want.Action || got != want.Reason || !bytes.Equal(out, want.Out) {
					mismatches++
					if mismatches <= 5 {
						t.Errorf("seed %d set %d packet %d (%v): program %v/%v, model %v/%v\n in: %s\nout: %s\nmodel: %s",
							seed, set, i, dir, act, got, want.Action, want.Reason,
							hex.EncodeToString(frame), hex.EncodeToString(out), hex.EncodeToString(want.Out))
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		done += n
		after, err := e.Stats()
		if err != nil {
			t.Fatal(err)
		}
		compareCounters(t, e, model, gen.Sessions, before, after)
		for _, s := range gen.Sessions {
			if _, err := e.RemoveSession(s.SEID); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d packets, %d mismatches; reasons: %v", done, mismatches, reasons)
	if mismatches > 0 {
		t.Fatalf("%d of %d packets differ between program and model", mismatches, done)
	}
}

func movedReason(a, b enforcer.Stats, dir enforcer.Direction) enforcer.Reason {
	moved := enforcer.Reason(255)
	for r := range enforcer.NumReasons {
		if b.Packets[dir][r].Packets != a.Packets[dir][r].Packets {
			if moved != 255 {
				return 254 // more than one: never right
			}
			moved = enforcer.Reason(r)
		}
	}
	return moved
}

// compareCounters checks the datapath's per-reason, per-rule and
// per-session counters against the model's after a rule set's packets.
func compareCounters(t *testing.T, e *enforcer.Enforcer, m *refmodel.Model, sessions []enforcer.Session, before, after enforcer.Stats) {
	t.Helper()
	ms := m.Stats()
	for d := range 2 {
		for r := range enforcer.NumReasons {
			got := enforcer.Counter{
				Packets: after.Packets[d][r].Packets - before.Packets[d][r].Packets,
				Bytes:   after.Packets[d][r].Bytes - before.Packets[d][r].Bytes,
			}
			if want := ms.Packets[d][r]; got != want {
				t.Errorf("%v %v: datapath %+v, model %+v", enforcer.Direction(d), enforcer.Reason(r), got, want)
			}
		}
	}
	for _, s := range sessions {
		for _, r := range s.Rules {
			got, err := e.RuleUsage(s.SEID, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if want := m.RuleUsage(s.SEID, r.ID); got != want {
				t.Errorf("session %#x rule %d usage: datapath %+v, model %+v", s.SEID, r.ID, got, want)
			}
		}
		got, err := e.SessionUsage(s.SEID)
		if err != nil {
			t.Fatal(err)
		}
		if want := m.SessionUsage(s.SEID); got != want {
			t.Errorf("session %#x usage: datapath %+v, model %+v", s.SEID, got, want)
		}
	}
}
