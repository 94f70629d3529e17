package dptest

import (
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/pkt"
)

// Gen draws random rule sets and random, often malformed, frames aimed at
// them: most packets hit a session and a rule's neighbourhood, so the
// interesting edges (port range ends, precedence ties, wildcards) are hit
// often. The same seed gives the same sessions and frames.
type Gen struct {
	rng      *rand.Rand
	Sessions []enforcer.Session
	w        *World // MACs of the world's links; nil: defaults
}

// portBase is where random port ranges and packet ports live, so they meet.
const portBase = 1000

var (
	// A few addresses on each side of every routing outcome.
	ulDestinations = []netip.Addr{
		netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("203.0.113.200"),
		netip.MustParseAddr("2001:db8:d::5"), netip.MustParseAddr("2001:db8:d:1::9"),
		netip.MustParseAddr("203.0.114.7"), netip.MustParseAddr("2001:db8:e::7"),
		NoRouteV4, NoRouteV6, DNGWv4, DNGWv6,
	}
	tunnelPeers = []netip.Addr{GNBv4, GNBv4, GNBv6, GNBv6,
		netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("2001:db8:3::3"), NoRouteV4}
	protos = []uint8{pkt.UDP, pkt.UDP, pkt.TCP, pkt.TCP, pkt.ICMP, pkt.ICMPv6, pkt.SCTP, 47}
)

// NewGen makes a generator with n random sessions.
func NewGen(seed uint64, n int, w *World) *Gen {
	g := &Gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), w: w}
	for i := range n {
		g.Sessions = append(g.Sessions, g.session(i))
	}
	return g
}

func (g *Gen) chance(p float64) bool { return g.rng.Float64() < p }

func pick[T any](g *Gen, xs []T) T { return xs[g.rng.IntN(len(xs))] }

func ueV4(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 45, byte(i), 2}) }

func ueV6(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x0a, 0, byte(i)}), 64)
}

// pine6 is the k-th IPv6 PINE address of session i.
func pine6(i, k int) netip.Addr {
	b := ueV6(i).Addr().As16()
	b[15] = byte(0x10 + k)
	return netip.AddrFrom16(b)
}

func (g *Gen) session(i int) enforcer.Session {
	s := enforcer.Session{SEID: uint64(1000 + i)}
	for j := range 1 + g.rng.IntN(3) {
		s.TEIDs = append(s.TEIDs, uint32(0x1000+16*i+j))
	}
	switch g.rng.IntN(4) {
	case 0:
		s.UEv4 = ueV4(i)
	case 1:
		s.UEv6 = ueV6(i)
	default:
		s.UEv4, s.UEv6 = ueV4(i), ueV6(i)
	}
	// QERs whose outcome does not depend on time: open, gated either way,
	// a bucket smaller than any packet, and one no test can empty.
	s.QERs = []enforcer.QER{
		{ID: 1},
		{ID: 2, ULGateClosed: true},
		{ID: 3, DLGateClosed: true},
		{ID: 4, ULMBR: 8000, DLMBR: 8000, ULBurst: 1, DLBurst: 1},
		{ID: 5, ULMBR: 8, DLMBR: 8, ULBurst: 1 << 30, DLBurst: 1 << 30},
	}
	for id := range uint32(g.rng.IntN(25)) {
		s.Rules = append(s.Rules, g.rule(&s, i, id+1))
	}
	return s
}

func (g *Gen) pineAddr(s *enforcer.Session, i int) netip.Addr {
	if s.UEv4.IsValid() && (!s.UEv6.IsValid() || g.chance(0.5)) {
		return s.UEv4
	}
	return pine6(i, g.rng.IntN(4))
}

func (g *Gen) rule(s *enforcer.Session, i int, id uint32) enforcer.Rule {
	r := enforcer.Rule{ID: id, Precedence: uint32(g.rng.IntN(6)), Direction: enforcer.Direction(g.rng.IntN(2)),
		Action: enforcer.Forward}
	if g.chance(0.2) {
		r.Action = enforcer.Drop
	}
	switch k := g.rng.IntN(10); {
	case k == 0: // any address of the session
	case k == 1:
		r.Addr = g.pineAddr(s, i)
	case k <= 3:
		r.Addr, r.Protocol = g.pineAddr(s, i), pick(g, protos)
	default:
		r.Addr, r.Protocol = g.pineAddr(s, i), pick(g, protos)
		for range 1 + g.rng.IntN(2) {
			r.Ports = append(r.Ports, g.portRange())
		}
	}
	for range g.rng.IntN(3) {
		r.QERs = append(r.QERs, uint32(1+g.rng.IntN(5)))
	}
	if r.Direction == enforcer.Downlink && r.Action == enforcer.Forward {
		r.Tunnel = enforcer.Tunnel{PeerTEID: g.rng.Uint32(), Peer: pick(g, tunnelPeers), QFI: uint8(g.rng.IntN(64))}
	}
	return r
}

func (g *Gen) portRange() enforcer.PortRange {
	switch g.rng.IntN(4) {
	case 0: // a single port
		p := uint16(portBase + g.rng.IntN(600))
		return enforcer.PortRange{Lo: p, Hi: p}
	case 1: // an aligned block, as a NAT hands out
		size := 1 << (4 + g.rng.IntN(5))
		lo := (portBase + g.rng.IntN(600)) &^ (size - 1)
		return enforcer.PortRange{Lo: uint16(lo), Hi: uint16(lo + size - 1)}
	case 2: // anything
		lo := portBase + g.rng.IntN(600)
		return enforcer.PortRange{Lo: uint16(lo), Hi: uint16(lo + g.rng.IntN(300))}
	default: // the whole space
		return enforcer.PortRange{Lo: 0, Hi: 65535}
	}
}

// port is a packet port: near the rule ranges, often at their edges.
func (g *Gen) port() uint16 {
	if g.chance(0.05) {
		return uint16(g.rng.IntN(65536))
	}
	return uint16(portBase - 20 + g.rng.IntN(940))
}

func (g *Gen) inner(src, dst netip.Addr) pkt.Inner {
	in := pkt.Inner{IP: pkt.IP{Src: src, Dst: dst}, Proto: pick(g, protos), SrcPort: g.port(), DstPort: g.port(),
		PayloadLen: g.rng.IntN(200)}
	if g.chance(0.03) {
		in.PayloadLen = 1000 + g.rng.IntN(400)
	}
	switch g.rng.IntN(12) {
	case 0:
		in.TTL = 1
	case 1:
		in.TTL = pkt.TTLZero
	case 2:
		in.TTL = 2
	}
	if src.Is4() {
		if g.chance(0.05) {
			in.FragOffset = uint16(g.rng.IntN(3))
			in.MF = g.chance(0.5)
		}
		if g.chance(0.05) {
			in.OptWords = 1 + g.rng.IntN(3)
		}
	} else {
		for range g.rng.IntN(3) * g.rng.IntN(3) { // mostly none, up to 4... and 5 rarely
			e := pkt.V6Ext{Type: pick(g, []uint8{pkt.HopByHop, pkt.DestOpts, pkt.Routing, pkt.Fragment, pkt.AH}), Len: uint8(g.rng.IntN(2))}
			if e.Type == pkt.Fragment {
				e.FragOffset = uint16(g.rng.IntN(2))
			}
			in.Ext = append(in.Ext, e)
		}
	}
	return in
}

func (g *Gen) l2(dst [6]byte) pkt.L2 {
	l := pkt.L2{Src: pkt.DefaultSrcMAC, Dst: dst}
	for range g.rng.IntN(3) * g.rng.IntN(2) {
		l.VLANs = append(l.VLANs, pkt.VLAN{TPID: pick(g, []uint16{pkt.TPID8021Q, pkt.TPID8021AD}), ID: uint16(g.rng.IntN(4096))})
	}
	return l
}

func (g *Gen) mac(l func(*World) [6]byte) [6]byte {
	if g.w == nil {
		return pkt.DefaultDstMAC
	}
	return l(g.w)
}

// UplinkFrame is a random GTP-U frame, usually of one of the sessions.
func (g *Gen) UplinkFrame() []byte {
	i := g.rng.IntN(len(g.Sessions))
	s := &g.Sessions[i]
	teid := uint32(0xdead)
	if !g.chance(0.03) {
		teid = pick(g, s.TEIDs)
	}
	var src netip.Addr
	switch {
	case g.chance(0.04): // spoofed
		src = pick(g, []netip.Addr{ueV4(i + 100), pine6(i+100, 0)})
	case g.chance(0.05): // another session's PINE
		src = g.pineAddr(&g.Sessions[g.rng.IntN(len(g.Sessions))], i)
	default:
		src = g.pineAddr(s, i)
	}
	dst := pick(g, ulDestinations)
	if dst.Is4() != src.Is4() {
		dst = pick(g, ulDestinations)
	}
	if dst.Is4() != src.Is4() { // keep the families apart, as IP does
		if src.Is4() {
			dst = netip.MustParseAddr("203.0.113.5")
		} else {
			dst = netip.MustParseAddr("2001:db8:d::5")
		}
	}
	u := pkt.Uplink{
		L2:    g.l2(g.mac(func(w *World) [6]byte { return mac6(w.N3.MAC) })),
		Outer: pkt.IP{Src: GNBv4, Dst: N3v4},
		GTP:   pkt.GTP{TEID: teid},
		Inner: g.inner(src, dst),
	}
	if g.chance(0.4) {
		u.Outer = pkt.IP{Src: GNBv6, Dst: N3v6}
	}
	if g.chance(0.02) {
		u.Outer.MF = true
	}
	if g.chance(0.03) {
		u.DstPort = 2123
	}
	u.GTP.S, u.GTP.PN = g.chance(0.2), g.chance(0.1)
	for range g.rng.IntN(3) * g.rng.IntN(3) {
		u.GTP.Ext = append(u.GTP.Ext, pkt.GTPExt{Type: uint8(0x80 + g.rng.IntN(4)), Len: uint8(1 + g.rng.IntN(2))})
	}
	if g.chance(0.6) {
		u.GTP.Ext = append(u.GTP.Ext, pkt.PSC(pkt.PDUTypeUL, uint8(g.rng.IntN(64))))
	}
	if g.chance(0.04) {
		u.Inner = pkt.Inner{}
		u.GTP.Type = pick(g, []uint8{pkt.GTPEchoRequest, pkt.GTPErrorIndication, pkt.GTPEndMarker})
		u.GTP.Payload = []byte{14, 0}
	}
	if g.chance(0.05) {
		u.InnerTrailer = g.rng.IntN(8)
	}
	if g.chance(0.05) {
		u.Trailer = g.rng.IntN(8)
	}
	f, err := u.Build()
	if err != nil {
		panic(err)
	}
	return g.mutate(f)
}

// DownlinkFrame is a random IP frame from the data network.
func (g *Gen) DownlinkFrame() []byte {
	i := g.rng.IntN(len(g.Sessions))
	s := &g.Sessions[i]
	var dst netip.Addr
	switch {
	case g.chance(0.05): // not a UE
		dst = pick(g, []netip.Addr{netip.MustParseAddr("198.51.100.77"), netip.MustParseAddr("2001:db8:6::77")})
	default:
		dst = g.pineAddr(s, i)
	}
	src := netip.MustParseAddr("203.0.113.5")
	if dst.Is6() {
		src = netip.MustParseAddr("2001:db8:d::5")
	}
	d := pkt.Downlink{
		L2:    g.l2(g.mac(func(w *World) [6]byte { return mac6(w.N6.MAC) })),
		Inner: g.inner(src, dst),
	}
	if g.chance(0.05) {
		d.Trailer = g.rng.IntN(8)
	}
	f, err := d.Build()
	if err != nil {
		panic(err)
	}
	return g.mutate(f)
}

// mutate truncates a frame or overwrites a few of its bytes, now and then.
func (g *Gen) mutate(f pkt.Frame) []byte {
	b := slices.Clone(f.Bytes)
	switch k := g.rng.IntN(10); {
	case k == 0: // truncate, mostly at a header boundary
		cuts := f.Cuts()
		n := 14 + g.rng.IntN(max(1, len(b)-14))
		if len(cuts) > 0 && g.chance(0.7) {
			n = max(14, pick(g, cuts))
		}
		b = b[:n]
	case k <= 2: // overwrite bytes, mostly inside the headers
		for range 1 + g.rng.IntN(3) {
			off := g.rng.IntN(len(b))
			if off > 120 && g.chance(0.7) {
				off = g.rng.IntN(min(len(b), 120))
			}
			b[off] = byte(g.rng.IntN(256))
		}
	}
	return b
}
