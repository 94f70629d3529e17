package refmodel

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/pkt"
)

// seedFrames are well-formed frames of both directions to mutate.
func seedFrames() [][]byte {
	var out [][]byte
	for _, f := range []pkt.Frame{
		ulFrame(ulTCP(ue4, 1)).MustBuild(),
		ulFrame(ulTCP(ue6, 1)).MustBuild(),
		pkt.Uplink{L2: pkt.L2{VLANs: []pkt.VLAN{{ID: 1}, {TPID: pkt.TPID8021AD, ID: 2}}}, Outer: pkt.IP{Src: gnb6, Dst: n3v6},
			GTP: pkt.GTP{TEID: teid, S: true, Ext: []pkt.GTPExt{{Type: 1, Len: 2}, pkt.PSC(1, 5)}},
			Inner: pkt.Inner{IP: pkt.IP{Src: ue6, Dst: srv6, Ext: []pkt.V6Ext{{Type: pkt.HopByHop}, {Type: pkt.AH, Len: 1}, {Type: pkt.Fragment, MF: true}}},
				Proto: pkt.UDP, SrcPort: 9, DstPort: 9}}.MustBuild(),
		pkt.Uplink{GTP: pkt.GTP{Type: pkt.GTPEchoRequest, Payload: []byte{14, 0}}}.MustBuild(),
		pkt.Uplink{GTP: pkt.GTP{TEID: teid}, Inner: pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4, OptWords: 1}, Proto: pkt.ICMP}}.MustBuild(),
		pkt.Downlink{Inner: dlTCP(ue4, 1)}.MustBuild(),
		pkt.Downlink{L2: pkt.L2{VLANs: []pkt.VLAN{{ID: 3}}}, Inner: dlTCP(ue6, 1)}.MustBuild(),
		pkt.Downlink{Inner: pkt.Inner{IP: pkt.IP{Src: srv6, Dst: ue6, Ext: []pkt.V6Ext{{Type: pkt.Routing, Len: 1}}}, Proto: pkt.ICMPv6}}.MustBuild(),
	} {
		out = append(out, f.Bytes)
	}
	return out
}

func fuzzModel() *Model {
	rules := []enforcer.Rule{
		withQERs(ulRule(1, 10, ue4, pkt.TCP, pr(0, 100)), 5),
		ulRule(2, 20, netip.Addr{}, 0),
		withQERs(dlRule(3, 10, ue4, 0), 5, 6),
		dlRule(4, 5, ue6, pkt.UDP, pr(9, 9)),
		drop(dlRule(5, 50, netip.Addr{}, 0)),
	}
	r := dlRule(6, 1, ue6, pkt.TCP)
	r.Tunnel.Peer = gnb6
	rules = append(rules, r)
	qers := []enforcer.QER{{ID: 5, ULMBR: 1_000_000, DLMBR: 1_000_000}, {ID: 6}}
	return New(testConfig(true), []enforcer.Session{testSession(rules, qers...)})
}

// checkResult holds for every run, whatever the input.
func checkResult(t *testing.T, in []byte, r Result) {
	t.Helper()
	if int(r.Reason) >= enforcer.NumReasons {
		t.Fatalf("reason %d", r.Reason)
	}
	if r.Action != r.Reason.Verdict() {
		t.Fatalf("action %v for reason %v", r.Action, r.Reason)
	}
	if (r.IfIndex != 0) != (r.Reason == enforcer.ReasonForward) {
		t.Fatalf("ifindex %d for reason %v", r.IfIndex, r.Reason)
	}
	switch r.Reason {
	case enforcer.ReasonPassOther, enforcer.ReasonPassControl, enforcer.ReasonPassFragment, enforcer.ReasonUnknownTEID,
		enforcer.ReasonSpoofed, enforcer.ReasonNoRule, enforcer.ReasonGateClosed, enforcer.ReasonRuleDrop:
		// Verdicts reached before the frame is edited.
		if !bytes.Equal(r.Out, in) {
			t.Fatalf("%v changed the frame", r.Reason)
		}
	}
}

// FuzzModel: the model never panics and its results are consistent.
// Run longer with: go test ./internal/refmodel -fuzz FuzzModel -fuzztime 30s
func FuzzModel(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m := fuzzModel()
		in := bytes.Clone(frame)
		checkResult(t, frame, m.Uplink(frame))
		checkResult(t, frame, m.Downlink(frame))
		if !bytes.Equal(in, frame) {
			t.Fatal("the model changed its input")
		}
	})
}

// TestRandomMutations is a short, deterministic stand-in for the fuzzer:
// truncated, extended and bit-flipped seed frames, and plain garbage.
func TestRandomMutations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seeds := seedFrames()
	m := fuzzModel()
	for i := range 20000 {
		var b []byte
		if i%10 == 0 {
			b = make([]byte, rng.IntN(200))
			for j := range b {
				b[j] = byte(rng.UintN(256))
			}
		} else {
			b = bytes.Clone(seeds[rng.IntN(len(seeds))])
			for range 1 + rng.IntN(4) {
				switch rng.IntN(4) {
				case 0:
					b = b[:rng.IntN(len(b)+1)]
				case 1:
					b = append(b, make([]byte, rng.IntN(40))...)
				default:
					if len(b) > 0 {
						b[rng.IntN(len(b))] ^= byte(1 << rng.IntN(8))
					}
				}
			}
		}
		checkResult(t, b, m.Uplink(b))
		checkResult(t, b, m.Downlink(b))
	}
	st := m.Stats()
	for d, name := range []string{"uplink", "downlink"} {
		seen := 0
		for _, c := range st.Packets[d] {
			if c.Packets > 0 {
				seen++
			}
		}
		t.Logf("%s: %d distinct reasons", name, seen)
	}
}
