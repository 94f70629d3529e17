package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/pfcp"
)

// stubSnapshotter has every session, with a PEGC-sized rule set.
type stubSnapshotter struct{ rules int }

func (s stubSnapshotter) SnapshotSession(seid uint64) (enforcer.SessionState, bool) {
	ss := enforcer.SessionState{Session: enforcer.Session{SEID: seid, TEIDs: []uint32{uint32(seid)},
		UEv4: netip.MustParseAddr("10.45.0.2")}, SID: uint32(seid), RuleIDs: map[uint32]uint32{}}
	for i := range s.rules {
		ss.Session.Rules = append(ss.Session.Rules, enforcer.Rule{ID: uint32(i+1) << 8, Precedence: 100,
			Addr: netip.MustParseAddr("10.45.0.2"), Protocol: 17, Ports: []enforcer.PortRange{{Lo: 5000, Hi: 5009}}})
		ss.RuleIDs[uint32(i+1)<<8] = uint32(seid)*64 + uint32(i)
	}
	return ss, true
}

func pfcpSession(seid uint64) pfcp.SessionState {
	return pfcp.SessionState{Version: pfcp.StateVersion, SEID: seid, Owner: "smf", Installed: enforcer.Session{SEID: seid}}
}

// A change writes the file of the session it touches, whatever the number
// of sessions saved: the bytes per change do not grow with them. The time
// is logged (a benchmark, BenchmarkStateChange, measures it properly).
func TestStateChangeCost(t *testing.T) {
	for _, n := range []int{1, 2000} {
		dir := t.TempDir()
		st, err := newStore(dir, "", 8192, time.Unix(1, 0), stubSnapshotter{rules: 8}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := st.apply(pfcp.Change{Sessions: []pfcp.SessionState{pfcpSession(uint64(i + 1))}}); err != nil {
				t.Fatal(err)
			}
		}
		before := st.stats()
		const changes = 50
		for range changes {
			if err := st.apply(pfcp.Change{Sessions: []pfcp.SessionState{pfcpSession(1)}}); err != nil {
				t.Fatal(err)
			}
		}
		after := st.stats()
		perBytes := (after.Bytes - before.Bytes) / changes
		t.Logf("%d sessions saved: a change writes %d bytes in 1 file, %v", n, perBytes, (after.Spent-before.Spent)/changes)
		if ents, _ := os.ReadDir(filepath.Join(dir, sessionsDir)); len(ents) != n {
			t.Fatalf("%d session files, want %d", len(ents), n)
		}
		if perBytes > 4096 {
			t.Errorf("a change of one session writes %d bytes", perBytes)
		}
		// Removal: the file goes.
		if err := st.apply(pfcp.Change{Removed: []uint64{1}}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(sessionPath(dir, 1)); !os.IsNotExist(err) {
			t.Errorf("removed session's file: %v", err)
		}
		ld, err := loadState(dir)
		if err != nil || len(ld.sessions) != n-1 || len(ld.bad) != 0 {
			t.Fatalf("load: %d sessions, bad %v, %v", len(ld.sessions), ld.bad, err)
		}
	}
}

func BenchmarkStateChange(b *testing.B) {
	for _, n := range []int{1, 10000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			st, err := newStore(dir, "", 8192, time.Unix(1, 0), stubSnapshotter{rules: 8}, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				st.apply(pfcp.Change{Sessions: []pfcp.SessionState{pfcpSession(uint64(i + 1))}})
			}
			b.ResetTimer()
			for b.Loop() {
				if err := st.apply(pfcp.Change{Sessions: []pfcp.SessionState{pfcpSession(1)}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
