package enforcer

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestPortBlocks(t *testing.T) {
	tests := []struct {
		r    PortRange
		want int // blocks
	}{
		{PortRange{5000, 5000}, 1},
		{PortRange{0, 65535}, 16},
		{PortRange{4096, 8191}, 1},
		{PortRange{1024, 2047}, 4},
		{PortRange{5000, 5010}, 11},
		{PortRange{5008, 5023}, 1},
		{PortRange{65535, 65535}, 1},
		{PortRange{1, 65534}, 15 + 15 + 15 + 14 + 15 + 15 + 15},
	}
	for _, tt := range tests {
		got := portBlocks(tt.r)
		if len(got) != tt.want {
			t.Errorf("portBlocks(%v) = %d blocks, want %d", tt.r, len(got), tt.want)
		}
	}
	// Blocks are aligned, disjoint, in order and cover exactly the range.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		lo := uint16(rng.IntN(65536))
		hi := lo + uint16(rng.IntN(65536-int(lo)))
		next := uint32(lo)
		for _, b := range portBlocks(PortRange{lo, hi}) {
			size := uint32(1) << portBlockBits[b.level]
			if uint32(b.port)%size != 0 || uint32(b.port) != next {
				t.Fatalf("range %d-%d: block %d/%d misplaced (want start %d)", lo, hi, b.port, size, next)
			}
			next += size
		}
		if next != uint32(hi)+1 {
			t.Fatalf("range %d-%d: blocks end at %d", lo, hi, next-1)
		}
	}
}

// fakeRefs maps rule IDs to themselves so a compiled entry names its winner.
type fakeRefs struct{}

func (fakeRefs) ruleID(id uint32) uint32           { return id }
func (fakeRefs) qerIndex(uint32, Direction) uint32 { return 0 }
func (fakeRefs) peerIndex(netip.Addr) uint32       { return 0 }

// winner is the declarative semantics: the best of all matching rules.
func winner(rules []Rule, dir Direction, addr netip.Addr, proto uint8, hasPorts bool, port uint16) (uint32, bool) {
	var best *Rule
	for i := range rules {
		r := &rules[i]
		if r.Direction != dir || (r.Addr.IsValid() && r.Addr != addr) ||
			(r.Protocol != 0 && r.Protocol != proto) {
			continue
		}
		if len(r.Ports) > 0 {
			in := false
			for _, p := range r.Ports {
				in = in || (hasPorts && p.Contains(port))
			}
			if !in {
				continue
			}
		}
		if best == nil || better(r, best) {
			best = r
		}
	}
	if best == nil {
		return 0, false
	}
	return best.ID, true
}

// lookup is the datapath's lookup over compiled entries (lookup.h).
func lookup(c compiled, dir Direction, addr netip.Addr, proto uint8, hasPorts bool, port uint16) (uint32, bool) {
	k := entryKey{dir: dir, proto: proto, addr: addr.As16()}
	levels := c.levels[dir]
	if hasPorts {
		for l := levelPort; l <= levelPort4096; l++ {
			if levels&(1<<l) == 0 {
				continue
			}
			k.level, k.port = l, port&portMask(l)
			if v, ok := c.entries[k]; ok {
				return v.RuleId, true
			}
		}
	}
	k.port = 0
	for _, l := range []uint8{levelProto, levelAddr, levelSession} {
		switch l {
		case levelAddr:
			k.proto = 0
		case levelSession:
			k.addr = [16]byte{}
		}
		if levels&(1<<l) == 0 {
			continue
		}
		k.level = l
		if v, ok := c.entries[k]; ok {
			return v.RuleId, true
		}
	}
	return 0, false
}

// TestCompileMatchesSemantics checks the first-hit lookup over compiled
// entries against the declarative rule semantics on random rule sets.
func TestCompileMatchesSemantics(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")}
	protos := []uint8{6, 17, 1}
	for round := range 300 {
		var rules []Rule
		for id := range uint32(1 + rng.IntN(12)) {
			r := Rule{ID: id + 1, Precedence: uint32(rng.IntN(4)), Direction: Direction(rng.IntN(2)), Action: Forward}
			switch rng.IntN(5) {
			case 0: // any address
			case 1:
				r.Addr = addrs[rng.IntN(len(addrs))]
			case 2:
				r.Addr, r.Protocol = addrs[rng.IntN(len(addrs))], protos[rng.IntN(len(protos))]
			default:
				r.Addr, r.Protocol = addrs[rng.IntN(len(addrs))], protos[rng.IntN(2)]
				for range 1 + rng.IntN(2) {
					lo := uint16(rng.IntN(300))
					r.Ports = append(r.Ports, PortRange{lo, lo + uint16(rng.IntN(40))})
				}
			}
			rules = append(rules, r)
		}
		c := compileRules(rules, fakeRefs{})
		for range 400 {
			dir := Direction(rng.IntN(2))
			addr := addrs[rng.IntN(len(addrs))]
			proto := protos[rng.IntN(len(protos))]
			hasPorts := proto != 1 && rng.IntN(8) != 0
			port := uint16(rng.IntN(360))
			want, wok := winner(rules, dir, addr, proto, hasPorts, port)
			got, gok := lookup(c, dir, addr, proto, hasPorts, port)
			if want != got || wok != gok {
				t.Fatalf("round %d: %v %v proto %d port %d (ports %v): compiled says %d/%v, semantics %d/%v\nrules: %+v",
					round, dir, addr, proto, port, hasPorts, got, gok, want, wok, rules)
			}
		}
	}
}

func TestValidateRefuses(t *testing.T) {
	ue := netip.MustParseAddr("10.45.0.2")
	base := Session{SEID: 1, UEv4: ue, QERs: []QER{{ID: 1}}}
	tests := []struct {
		name string
		rule Rule
	}{
		{"foreign address", Rule{ID: 1, Direction: Uplink, Addr: netip.MustParseAddr("10.45.0.3"), Action: Forward}},
		{"ports without protocol", Rule{ID: 1, Direction: Uplink, Addr: ue, Ports: []PortRange{{1, 2}}, Action: Forward}},
		{"any address with protocol", Rule{ID: 1, Direction: Uplink, Protocol: 17, Action: Forward}},
		{"empty port range", Rule{ID: 1, Direction: Uplink, Addr: ue, Protocol: 17, Ports: []PortRange{{9, 2}}, Action: Forward}},
		{"unknown QER", Rule{ID: 1, Direction: Uplink, Addr: ue, Action: Forward, QERs: []uint32{2}}},
		{"three QERs", Rule{ID: 1, Direction: Uplink, Addr: ue, Action: Forward, QERs: []uint32{1, 1, 1}}},
		{"no action", Rule{ID: 1, Direction: Uplink, Addr: ue}},
		{"downlink without tunnel", Rule{ID: 1, Direction: Downlink, Addr: ue, Action: Forward}},
		{"IPv6 tunnel without N3 IPv6", Rule{ID: 1, Direction: Downlink, Addr: ue, Action: Forward,
			Tunnel: Tunnel{PeerTEID: 1, Peer: netip.MustParseAddr("2001:db8::9")}}},
		{"QFI over 6 bits", Rule{ID: 1, Direction: Downlink, Addr: ue, Action: Forward,
			Tunnel: Tunnel{PeerTEID: 1, Peer: netip.MustParseAddr("192.0.2.2"), QFI: 64}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			s.Rules = []Rule{tt.rule}
			if err := validateSession(&s, true, false); err == nil {
				t.Errorf("accepted %+v", tt.rule)
			}
		})
	}
	if err := validateSession(&Session{SEID: 2}, true, true); err == nil {
		t.Error("accepted a session without UE address")
	}
}
