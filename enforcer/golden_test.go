package enforcer_test

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strconv"
	"testing"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
)

var (
	ueA      = netip.MustParseAddr("10.45.0.2") // PEGC 1, NAT'd PINEs by port
	ueB      = netip.MustParseAddr("10.45.0.3") // PEGC 2, one session-wide rule
	ueC      = netip.MustParseAddr("10.45.0.4") // PEGC 3, wildcard precedence
	ue6      = netip.MustParsePrefix("2001:db8:a::/64")
	pine6A   = netip.MustParseAddr("2001:db8:a::10")
	pine6B   = netip.MustParseAddr("2001:db8:a::11") // gated
	pine6C   = netip.MustParseAddr("2001:db8:a::12") // no rule
	server4  = netip.MustParseAddr("203.0.113.5")
	server6  = netip.MustParseAddr("2001:db8:d::5")
	noNeigh4 = netip.MustParseAddr("192.0.2.3") // on N3, no neighbour entry
)

const (
	teidA  = 0x100
	teidA2 = 0x101
	teidB  = 0x200
	teidC  = 0x300
)

// goldenSessions is the rule set every golden packet runs against.
func goldenSessions() []enforcer.Session {
	udp, tcp := pkt.UDP, pkt.TCP
	ul := func(id, prec uint32, addr netip.Addr, proto uint8, ports []enforcer.PortRange, act enforcer.Action, qers ...uint32) enforcer.Rule {
		return enforcer.Rule{ID: id, Precedence: prec, Direction: enforcer.Uplink, Addr: addr,
			Protocol: proto, Ports: ports, Action: act, QERs: qers}
	}
	dl := func(id uint32, addr netip.Addr, proto uint8, ports []enforcer.PortRange, teid uint32, peer netip.Addr, qfi uint8) enforcer.Rule {
		return enforcer.Rule{ID: id, Precedence: 10, Direction: enforcer.Downlink, Addr: addr,
			Protocol: proto, Ports: ports, Action: enforcer.Forward,
			Tunnel: enforcer.Tunnel{PeerTEID: teid, Peer: peer, QFI: qfi}}
	}
	ports := func(lo, hi uint16) []enforcer.PortRange { return []enforcer.PortRange{{lo, hi}} }
	fwd, drop := enforcer.Forward, enforcer.Drop
	return []enforcer.Session{
		{
			SEID: 1, TEIDs: []uint32{teidA, teidA2}, UEv4: ueA, UEv6: ue6,
			QERs: []enforcer.QER{
				{ID: 1, ULGateClosed: true},
				{ID: 2, ULMBR: 8, ULBurst: 61}, // one 61-byte inner packet, then empty
			},
			Rules: []enforcer.Rule{
				ul(1, 10, ueA, udp, ports(5000, 5009), fwd), // PINE A: a NAT port block
				ul(2, 10, ueA, tcp, ports(4000, 4000), fwd),
				ul(3, 5, ueA, udp, ports(5005, 5005), drop), // carved out by precedence
				ul(4, 10, pine6A, 0, nil, fwd),              // an IPv6 PINE, any protocol
				ul(5, 10, pine6B, udp, ports(7000, 7000), fwd, 1),
				ul(6, 10, ueA, udp, ports(8000, 8000), fwd, 2),
				ul(7, 10, ueA, pkt.ICMP, nil, fwd),
				dl(20, ueA, udp, ports(5000, 5009), 0xabc, dptest.GNBv4, 9),
				dl(21, pine6A, 0, nil, 0xdef, dptest.GNBv6, 5),
				dl(22, ueA, tcp, ports(4000, 4000), 0xabd, noNeigh4, 9),
				dl(23, ueA, tcp, ports(4001, 4001), 0xabe, dptest.NoRouteV4, 9),
			},
		},
		{
			SEID: 2, TEIDs: []uint32{teidB}, UEv4: ueB,
			Rules: []enforcer.Rule{
				{ID: 1, Precedence: 100, Direction: enforcer.Uplink, Action: fwd},
				{ID: 2, Precedence: 100, Direction: enforcer.Downlink, Action: fwd,
					Tunnel: enforcer.Tunnel{PeerTEID: 0xb0b, Peer: dptest.GNBv4, QFI: 1}},
			},
		},
		{
			SEID: 3, TEIDs: []uint32{teidC}, UEv4: ueC,
			Rules: []enforcer.Rule{
				ul(1, 50, ueC, udp, ports(6000, 6100), fwd),
				ul(2, 40, ueC, 0, nil, drop), // less specific but wins: precedence 40 < 50
				ul(3, 30, ueC, tcp, ports(443, 443), fwd),
			},
		},
	}
}

// uplink is a G-PDU from the gNB to the UPF carrying inner.
func (g *goldenEnv) uplink(teid uint32, inner pkt.Inner) pkt.Uplink {
	return pkt.Uplink{
		L2:    pkt.L2{Src: mac(g.w.GNBLink.MAC), Dst: mac(g.w.N3.MAC)},
		Outer: pkt.IP{Src: dptest.GNBv4, Dst: dptest.N3v4},
		GTP:   pkt.GTP{TEID: teid, Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeUL, 9)}},
		Inner: inner,
	}
}

func udp4(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) pkt.Inner {
	return pkt.Inner{IP: pkt.IP{Src: src, Dst: dst}, Proto: pkt.UDP, SrcPort: sport, DstPort: dport, PayloadLen: 33}
}

func tcpIn(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) pkt.Inner {
	return pkt.Inner{IP: pkt.IP{Src: src, Dst: dst}, Proto: pkt.TCP, SrcPort: sport, DstPort: dport, PayloadLen: 20}
}

func mac(m []byte) (out [6]byte) {
	copy(out[:], m)
	return out
}

// unpadded drops the Ethernet padding gopacket adds to short frames.
func unpadded(f pkt.Frame) []byte {
	if s, ok := f.Span(pkt.SpanPad); ok {
		return f.Bytes[:s.Start]
	}
	return f.Bytes
}

type goldenEnv struct {
	w *dptest.World
	e *enforcer.Enforcer
}

// decapped is what a forwarded uplink frame becomes: Ethernet from N6 to
// the next hop, the inner packet with its TTL decremented.
func (g *goldenEnv) decapped(in pkt.Inner, src, dst [6]byte) []byte {
	in.TTL = pkt.DefaultTTL - 1
	return unpadded(pkt.Downlink{L2: pkt.L2{Src: src, Dst: dst}, Inner: in}.MustBuild())
}

// encapped is what a forwarded downlink frame becomes: Ethernet from N3 to
// the gNB, outer IP from the N3 address, UDP 2152 (no checksum over IPv4),
// GTP-U with the peer TEID and a DL PDU Session Container, the inner packet
// with its TTL decremented, then whatever trailed the ingress frame.
func (g *goldenEnv) encapped(in pkt.Inner, teid uint32, peer netip.Addr, qfi uint8, src, dst [6]byte, trailer []byte) []byte {
	in.TTL = pkt.DefaultTTL - 1
	n3 := dptest.N3v4
	if peer.Is6() {
		n3 = dptest.N3v6
	}
	f := pkt.Uplink{
		L2:    pkt.L2{Src: src, Dst: dst},
		Outer: pkt.IP{Src: n3, Dst: peer},
		GTP:   pkt.GTP{TEID: teid, Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeDL, qfi)}},
		Inner: in,
	}.MustBuild()
	out := bytes.Clone(unpadded(f))
	if peer.Is4() {
		udp, _ := f.Span(pkt.SpanUDP)
		out[udp.Start+6], out[udp.Start+7] = 0, 0 // RFC 768: no checksum over IPv4
	}
	return append(out, trailer...)
}

type goldenCase struct {
	name   string
	prog   enforcer.Program
	in     []byte
	act    enforcer.XDPAction
	reason enforcer.Reason
	out    []byte // nil: the frame comes out unchanged
}

func TestGoldenPackets(t *testing.T) {
	w := dptest.NewWorld(t)
	g := &goldenEnv{w: w, e: w.Load(t, w.Config())}
	for _, s := range goldenSessions() {
		if err := g.e.InstallSession(s); err != nil {
			t.Fatalf("install session %d: %v", s.SEID, err)
		}
	}
	n6, dngw := mac(w.N6.MAC), mac(w.DNLink.MAC)
	n3, gnb := mac(w.N3.MAC), mac(w.GNBLink.MAC)
	ul, dlp := enforcer.ProgUplink, enforcer.ProgDownlink
	fwd, pass, drop := enforcer.XDPRedirect, enforcer.XDPPass, enforcer.XDPDrop

	var cases []goldenCase
	add := func(c goldenCase) { cases = append(cases, c) }
	// Uplink: allowed and denied per PINE, port range edges.
	for _, tc := range []struct {
		name   string
		inner  pkt.Inner
		reason enforcer.Reason
	}{
		{"PINE A port block low edge", udp4(ueA, 5000, server4, 53), enforcer.ReasonForward},
		{"PINE A port block high edge", udp4(ueA, 5009, server4, 53), enforcer.ReasonForward},
		{"below the port block", udp4(ueA, 4999, server4, 53), enforcer.ReasonNoRule},
		{"above the port block", udp4(ueA, 5010, server4, 53), enforcer.ReasonNoRule},
		{"port carved out by precedence", udp4(ueA, 5005, server4, 53), enforcer.ReasonRuleDrop},
		{"TCP PINE", tcpIn(ueA, 4000, server4, 443), enforcer.ReasonForward},
		{"TCP on an unauthorized port", tcpIn(ueA, 4001, server4, 443), enforcer.ReasonNoRule},
		{"wrong protocol for the port", tcpIn(ueA, 5000, server4, 443), enforcer.ReasonNoRule},
	} {
		f := g.uplink(teidA, tc.inner).MustBuild()
		c := goldenCase{name: "uplink/" + tc.name, prog: ul, in: f.Bytes, act: drop, reason: tc.reason}
		if tc.reason == enforcer.ReasonForward {
			c.act, c.out = fwd, g.decapped(tc.inner, n6, dngw)
		}
		add(c)
	}
	// Wildcard precedence: the any-protocol drop (40) beats the UDP range (50),
	// the TCP port (30) beats the drop.
	add(goldenCase{name: "uplink/wildcard drop beats specific range", prog: ul,
		in: g.uplink(teidC, udp4(ueC, 6050, server4, 53)).MustBuild().Bytes, act: drop, reason: enforcer.ReasonRuleDrop})
	in443 := tcpIn(ueC, 443, server4, 443)
	add(goldenCase{name: "uplink/specific port beats wildcard drop", prog: ul,
		in: g.uplink(teidC, in443).MustBuild().Bytes, act: fwd, reason: enforcer.ReasonForward, out: g.decapped(in443, n6, dngw)})
	anyB := udp4(ueB, 1234, server4, 53)
	add(goldenCase{name: "uplink/session-wide rule", prog: ul,
		in: g.uplink(teidB, anyB).MustBuild().Bytes, act: fwd, reason: enforcer.ReasonForward, out: g.decapped(anyB, n6, dngw)})

	// Outer × inner families.
	in6 := pkt.Inner{IP: pkt.IP{Src: pine6A, Dst: server6}, Proto: pkt.UDP, SrcPort: 40000, DstPort: 53, PayloadLen: 40}
	for _, outer := range []pkt.IP{{Src: dptest.GNBv4, Dst: dptest.N3v4}, {Src: dptest.GNBv6, Dst: dptest.N3v6}} {
		for _, inner := range []pkt.Inner{udp4(ueA, 5001, server4, 53), in6} {
			u := g.uplink(teidA2, inner)
			u.Outer = outer
			name := "uplink/outer " + ipv(outer.Src) + " inner " + ipv(inner.Src)
			add(goldenCase{name: name, prog: ul, in: u.MustBuild().Bytes, act: fwd,
				reason: enforcer.ReasonForward, out: g.decapped(inner, n6, dngw)})
		}
	}
	// VLAN tags, GTP-U options and extension chains.
	inA := udp4(ueA, 5002, server4, 53)
	variants := []struct {
		name string
		mod  func(*pkt.Uplink)
	}{
		{"one VLAN tag", func(u *pkt.Uplink) { u.VLANs = []pkt.VLAN{{ID: 10}} }},
		{"QinQ", func(u *pkt.Uplink) { u.VLANs = []pkt.VLAN{{TPID: pkt.TPID8021AD, ID: 100}, {ID: 10}} }},
		{"no extension header", func(u *pkt.Uplink) { u.GTP.Ext = nil }},
		{"sequence number", func(u *pkt.Uplink) { u.GTP.Ext, u.GTP.S, u.GTP.Seq = nil, true, 77 }},
		{"N-PDU number and PSC", func(u *pkt.Uplink) { u.GTP.PN, u.GTP.NPDU = true, 3 }},
		{"long extension before PSC", func(u *pkt.Uplink) {
			u.GTP.Ext = []pkt.GTPExt{{Type: 0x81, Len: 3, Content: []byte{1, 2}}, pkt.PSC(pkt.PDUTypeUL, 5)}
		}},
		{"four extension headers", func(u *pkt.Uplink) {
			u.GTP.Ext = []pkt.GTPExt{{Type: 0x81, Len: 1}, {Type: 0x82, Len: 1}, {Type: 0x83, Len: 2}, pkt.PSC(pkt.PDUTypeUL, 5)}
		}},
	}
	for _, v := range variants {
		u := g.uplink(teidA, inA)
		v.mod(&u)
		add(goldenCase{name: "uplink/" + v.name, prog: ul, in: u.MustBuild().Bytes, act: fwd,
			reason: enforcer.ReasonForward, out: g.decapped(inA, n6, dngw)})
	}
	five := g.uplink(teidA, inA)
	five.GTP.Ext = []pkt.GTPExt{{Type: 0x81, Len: 1}, {Type: 0x82, Len: 1}, {Type: 0x83, Len: 1}, {Type: 0x84, Len: 1}, pkt.PSC(pkt.PDUTypeUL, 5)}
	add(goldenCase{name: "uplink/five extension headers", prog: ul, in: five.MustBuild().Bytes, act: drop, reason: enforcer.ReasonMalformed})
	zeroLen := g.uplink(teidA, inA)
	zeroLen.GTP.Ext = []pkt.GTPExt{{Type: 0x81, Len: 1}}
	zf := zeroLen.MustBuild()
	ext, _ := zf.Span(pkt.SpanGTPUExt + "0")
	zf.Bytes[ext.Start] = 0 // an extension length of 0 would loop forever
	add(goldenCase{name: "uplink/zero-length extension header", prog: ul, in: zf.Bytes, act: drop, reason: enforcer.ReasonMalformed})

	// GTP-U signalling goes to the kernel.
	for _, typ := range []struct {
		name string
		t    uint8
	}{{"echo request", pkt.GTPEchoRequest}, {"error indication", pkt.GTPErrorIndication}, {"end marker", pkt.GTPEndMarker}} {
		u := g.uplink(teidA, pkt.Inner{})
		u.GTP = pkt.GTP{Type: typ.t, TEID: teidA, S: true, Seq: 1, Payload: []byte{14, 0}}
		add(goldenCase{name: "uplink/" + typ.name, prog: ul, in: u.MustBuild().Bytes, act: pass, reason: enforcer.ReasonPassControl})
	}
	// Anti-spoofing, unknown TEID, gate, ICMP, TTL, routing outcomes.
	add(goldenCase{name: "uplink/spoofed IPv4 source", prog: ul,
		in: g.uplink(teidA, udp4(netip.MustParseAddr("10.45.0.9"), 5000, server4, 53)).MustBuild().Bytes, act: drop, reason: enforcer.ReasonSpoofed})
	spoof6 := in6
	spoof6.Src = netip.MustParseAddr("2001:db8:b::10")
	add(goldenCase{name: "uplink/spoofed IPv6 source", prog: ul,
		in: g.uplink(teidA, spoof6).MustBuild().Bytes, act: drop, reason: enforcer.ReasonSpoofed})
	add(goldenCase{name: "uplink/other session's UE address", prog: ul,
		in: g.uplink(teidA, udp4(ueB, 5000, server4, 53)).MustBuild().Bytes, act: drop, reason: enforcer.ReasonSpoofed})
	add(goldenCase{name: "uplink/unknown TEID", prog: ul,
		in: g.uplink(0x999, inA).MustBuild().Bytes, act: drop, reason: enforcer.ReasonUnknownTEID})
	noRule6 := in6
	noRule6.Src = pine6C
	add(goldenCase{name: "uplink/IPv6 PINE without rule", prog: ul,
		in: g.uplink(teidA, noRule6).MustBuild().Bytes, act: drop, reason: enforcer.ReasonNoRule})
	gated := in6
	gated.Src, gated.SrcPort = pine6B, 7000
	add(goldenCase{name: "uplink/gate closed", prog: ul,
		in: g.uplink(teidA, gated).MustBuild().Bytes, act: drop, reason: enforcer.ReasonGateClosed})
	icmp := pkt.Inner{IP: pkt.IP{Src: ueA, Dst: server4}, Proto: pkt.ICMP, PayloadLen: 16}
	add(goldenCase{name: "uplink/ICMP PINE rule", prog: ul,
		in: g.uplink(teidA, icmp).MustBuild().Bytes, act: fwd, reason: enforcer.ReasonForward, out: g.decapped(icmp, n6, dngw)})
	ttl1 := inA
	ttl1.TTL = 1
	add(goldenCase{name: "uplink/TTL expired", prog: ul,
		in: g.uplink(teidA, ttl1).MustBuild().Bytes, act: pass, reason: enforcer.ReasonPassTTL,
		out: unpadded(pkt.Downlink{L2: pkt.L2{Src: gnb, Dst: n3}, Inner: ttl1}.MustBuild())})
	for _, r := range []struct {
		name   string
		dst    netip.Addr
		act    enforcer.XDPAction
		reason enforcer.Reason
	}{
		{"no neighbour", netip.MustParseAddr("203.0.114.7"), pass, enforcer.ReasonPassFIB},
		{"no route", dptest.NoRouteV4, drop, enforcer.ReasonNoRoute},
	} {
		in := udp4(ueA, 5003, r.dst, 53)
		in.TTL = pkt.DefaultTTL
		add(goldenCase{name: "uplink/" + r.name, prog: ul, in: g.uplink(teidA, in).MustBuild().Bytes, act: r.act, reason: r.reason,
			out: unpadded(pkt.Downlink{L2: pkt.L2{Src: gnb, Dst: n3}, Inner: in}.MustBuild())})
	}
	// Not GTP-U, and outer fragments, go to the kernel.
	notGTP := g.uplink(teidA, inA)
	notGTP.DstPort = 2123
	add(goldenCase{name: "uplink/UDP not to 2152", prog: ul, in: notGTP.MustBuild().Bytes, act: pass, reason: enforcer.ReasonPassOther})
	frag := g.uplink(teidA, inA)
	frag.Outer.MF = true
	add(goldenCase{name: "uplink/outer fragment", prog: ul, in: frag.MustBuild().Bytes, act: pass, reason: enforcer.ReasonPassFragment})
	arp := pkt.Downlink{L2: pkt.L2{Src: gnb, Dst: n3}, Inner: inA}.MustBuild()
	arp.Bytes[12], arp.Bytes[13] = 0x08, 0x06
	add(goldenCase{name: "uplink/ARP", prog: ul, in: arp.Bytes, act: pass, reason: enforcer.ReasonPassOther})

	// Truncated at every header boundary: always malformed, never passed on.
	full := g.uplink(teidA, pkt.Inner{IP: pkt.IP{Src: pine6A, Dst: server6,
		Ext: []pkt.V6Ext{{Type: pkt.HopByHop}, {Type: pkt.DestOpts, Len: 1}}}, Proto: pkt.TCP, SrcPort: 1, DstPort: 2, PayloadLen: 8})
	full.VLANs = []pkt.VLAN{{ID: 7}}
	full.Outer = pkt.IP{Src: dptest.GNBv6, Dst: dptest.N3v6}
	full.GTP.S = true
	ff := full.MustBuild()
	for _, n := range ff.Cuts() {
		if n < 14 || n == len(ff.Bytes) {
			continue // the kernel refuses test frames shorter than Ethernet
		}
		add(goldenCase{name: "uplink/truncated at " + strconv.Itoa(n), prog: ul, in: ff.Truncated(n), act: drop, reason: enforcer.ReasonMalformed})
	}

	// Downlink.
	dlA := udp4(server4, 53, ueA, 5004)
	add(goldenCase{name: "downlink/IPv4 PINE, IPv4 tunnel", prog: dlp,
		in: g.downlink(dlA).Bytes, act: fwd, reason: enforcer.ReasonForward,
		out: g.encapped(dlA, 0xabc, dptest.GNBv4, 9, n3, gnb, padOf(g.downlink(dlA)))})
	dl6 := pkt.Inner{IP: pkt.IP{Src: server6, Dst: pine6A}, Proto: pkt.UDP, SrcPort: 53, DstPort: 40000, PayloadLen: 700}
	add(goldenCase{name: "downlink/IPv6 PINE, IPv6 tunnel", prog: dlp,
		in: g.downlink(dl6).Bytes, act: fwd, reason: enforcer.ReasonForward,
		out: g.encapped(dl6, 0xdef, dptest.GNBv6, 5, n3, gnb, nil)})
	tagged := pkt.Downlink{L2: pkt.L2{Src: dngw, Dst: n6, VLANs: []pkt.VLAN{{ID: 3}}}, Inner: dlA}.MustBuild()
	add(goldenCase{name: "downlink/VLAN tag is dropped", prog: dlp, in: tagged.Bytes, act: fwd, reason: enforcer.ReasonForward,
		out: g.encapped(dlA, 0xabc, dptest.GNBv4, 9, n3, gnb, padOf(tagged))})
	add(goldenCase{name: "downlink/port outside the block", prog: dlp,
		in: g.downlink(udp4(server4, 53, ueA, 5010)).Bytes, act: drop, reason: enforcer.ReasonNoRule})
	add(goldenCase{name: "downlink/not a UE", prog: dlp,
		in: g.downlink(udp4(server4, 53, netip.MustParseAddr("198.51.100.77"), 1)).Bytes, act: pass, reason: enforcer.ReasonPassOther})
	dlTTL := udp4(server4, 53, ueA, 5004)
	dlTTL.TTL = 1
	add(goldenCase{name: "downlink/TTL expired", prog: dlp, in: g.downlink(dlTTL).Bytes, act: pass, reason: enforcer.ReasonPassTTL})
	dlNN := tcpIn(server4, 443, ueA, 4000)
	// Encapsulated packets are never passed to the kernel, which would drop
	// them as martians (their source is its own N3 address).
	add(goldenCase{name: "downlink/tunnel peer without neighbour", prog: dlp, in: g.downlink(dlNN).Bytes, act: drop,
		reason: enforcer.ReasonNoRoute, out: g.encapped(dlNN, 0xabd, noNeigh4, 9, dngw, n6, padOf(g.downlink(dlNN)))})
	add(goldenCase{name: "downlink/tunnel peer without route", prog: dlp, in: g.downlink(tcpIn(server4, 443, ueA, 4001)).Bytes,
		act: drop, reason: enforcer.ReasonNoRoute,
		out: g.encapped(tcpIn(server4, 443, ueA, 4001), 0xabe, dptest.NoRouteV4, 9, dngw, n6, padOf(g.downlink(tcpIn(server4, 443, ueA, 4001))))})
	dlFull := g.downlink(pkt.Inner{IP: pkt.IP{Src: server6, Dst: pine6A, Ext: []pkt.V6Ext{{Type: pkt.Routing}}},
		Proto: pkt.UDP, SrcPort: 1, DstPort: 2, PayloadLen: 4})
	for _, n := range dlFull.Cuts() {
		if n < 14 || n == len(dlFull.Bytes) {
			continue
		}
		act, reason := drop, enforcer.ReasonMalformed
		add(goldenCase{name: "downlink/truncated at " + strconv.Itoa(n), prog: dlp, in: dlFull.Truncated(n), act: act, reason: reason})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { g.check(t, c) })
	}

	// The token bucket: QER 2 holds exactly one 61-byte inner packet.
	t.Run("uplink/rate limit", func(t *testing.T) {
		in := udp4(ueA, 8000, server4, 53) // 20 + 8 + 33 = 61 bytes
		f := g.uplink(teidA, in).MustBuild().Bytes
		g.check(t, goldenCase{prog: ul, in: f, act: fwd, reason: enforcer.ReasonForward, out: g.decapped(in, n6, dngw)})
		g.check(t, goldenCase{prog: ul, in: f, act: drop, reason: enforcer.ReasonRateExceeded})
	})
}

func (g *goldenEnv) downlink(in pkt.Inner) pkt.Frame {
	return pkt.Downlink{L2: pkt.L2{Src: mac(g.w.DNLink.MAC), Dst: mac(g.w.N6.MAC)}, Inner: in}.MustBuild()
}

// padOf is the Ethernet padding of a short ingress frame, which stays
// behind the packet when it is encapsulated.
func padOf(f pkt.Frame) []byte {
	if s, ok := f.Span(pkt.SpanPad); ok {
		return f.Bytes[s.Start:s.End]
	}
	return nil
}

func ipv(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// check runs one case and compares verdict, reason counter and bytes.
func (g *goldenEnv) check(t *testing.T, c goldenCase) {
	t.Helper()
	before, err := g.e.Stats()
	if err != nil {
		t.Fatal(err)
	}
	act, out, err := g.w.Run(g.e, c.prog, c.in)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	after, err := g.e.Stats()
	if err != nil {
		t.Fatal(err)
	}
	dir := enforcer.Uplink
	if c.prog == enforcer.ProgDownlink {
		dir = enforcer.Downlink
	}
	var reasons []enforcer.Reason
	for r := range enforcer.NumReasons {
		if after.Packets[dir][r].Packets != before.Packets[dir][r].Packets {
			reasons = append(reasons, enforcer.Reason(r))
		}
	}
	if act != c.act {
		t.Errorf("verdict %v, want %v", act, c.act)
	}
	if len(reasons) != 1 || reasons[0] != c.reason {
		t.Errorf("reason counters moved: %v, want [%v]", reasons, c.reason)
	}
	want := c.out
	if want == nil {
		want = c.in
	}
	if !bytes.Equal(out, want) {
		t.Errorf("output frame differs\n got: %s\nwant: %s", hex.EncodeToString(out), hex.EncodeToString(want))
	}
}
