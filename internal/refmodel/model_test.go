package refmodel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/pkt"
)

var (
	ue4   = netip.MustParseAddr("10.45.0.2")
	ue4b  = netip.MustParseAddr("10.45.0.3")
	ue6   = netip.MustParseAddr("2001:db8:1::2")
	ue6b  = netip.MustParseAddr("2001:db8:1::99")
	ue6p  = netip.MustParsePrefix("2001:db8:1::/64")
	srv4  = netip.MustParseAddr("198.51.100.7")
	big4  = netip.MustParseAddr("198.51.100.200") // behind the small-MTU route
	nn4   = netip.MustParseAddr("203.0.113.9")    // route without neighbour
	nr4   = netip.MustParseAddr("100.64.0.1")     // no route
	srv6  = netip.MustParseAddr("2001:db8:ff::7")
	gnb4  = netip.MustParseAddr("192.0.2.1")
	n3v4  = netip.MustParseAddr("192.0.2.2")
	gnb6  = netip.MustParseAddr("2001:db8:a::1")
	n3v6  = netip.MustParseAddr("2001:db8:a::2")
	n6Hop = &Hop{IfIndex: 6, SrcMAC: [6]byte{2, 0, 0, 0, 6, 1}, DstMAC: [6]byte{2, 0, 0, 0, 6, 2}, MTU: 1500}
	n3Hop = &Hop{IfIndex: 3, SrcMAC: [6]byte{2, 0, 0, 0, 3, 1}, DstMAC: [6]byte{2, 0, 0, 0, 3, 2}, MTU: 1500}
	tiny  = &Hop{IfIndex: 7, SrcMAC: [6]byte{2, 0, 0, 0, 7, 1}, DstMAC: [6]byte{2, 0, 0, 0, 7, 2}, MTU: 100}
)

const (
	seid    = 1
	teid    = 100
	peerTID = 0xabcdef01
)

func testConfig(fallbackPass bool) Config {
	return Config{
		N3v4: n3v4, N3v6: n3v6, FIBFallbackPass: fallbackPass,
		Routes: []Route{
			{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Hop: n6Hop},
			{Prefix: netip.MustParsePrefix("198.51.100.128/25"), Hop: tiny},
			{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Hop: nil},
			{Prefix: netip.MustParsePrefix("2001:db8:ff::/48"), Hop: n6Hop},
			{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Hop: n3Hop},
			{Prefix: netip.MustParsePrefix("2001:db8:a::/48"), Hop: n3Hop},
		},
	}
}

func testSession(rules []enforcer.Rule, qers ...enforcer.QER) enforcer.Session {
	return enforcer.Session{SEID: seid, TEIDs: []uint32{teid}, UEv4: ue4, UEv6: ue6p, Rules: rules, QERs: qers}
}

// Rule constructors: the PINE's address, protocol and ports.
func ulRule(id, prec uint32, addr netip.Addr, proto uint8, ports ...enforcer.PortRange) enforcer.Rule {
	return enforcer.Rule{ID: id, Precedence: prec, Direction: enforcer.Uplink, Addr: addr, Protocol: proto, Ports: ports, Action: enforcer.Forward}
}

func dlRule(id, prec uint32, addr netip.Addr, proto uint8, ports ...enforcer.PortRange) enforcer.Rule {
	return enforcer.Rule{ID: id, Precedence: prec, Direction: enforcer.Downlink, Addr: addr, Protocol: proto, Ports: ports,
		Action: enforcer.Forward, Tunnel: enforcer.Tunnel{PeerTEID: peerTID, Peer: gnb4, QFI: 9}}
}

func drop(r enforcer.Rule) enforcer.Rule { r.Action = enforcer.Drop; return r }

func withQERs(r enforcer.Rule, ids ...uint32) enforcer.Rule { r.QERs = ids; return r }

func pr(lo, hi uint16) enforcer.PortRange { return enforcer.PortRange{Lo: lo, Hi: hi} }

// Packets from the UE's PINE (uplink) and to it (downlink).
func ulTCP(src netip.Addr, sport uint16) pkt.Inner {
	dst := srv4
	if src.Is6() {
		dst = srv6
	}
	return pkt.Inner{IP: pkt.IP{Src: src, Dst: dst}, Proto: pkt.TCP, SrcPort: sport, DstPort: 443, PayloadLen: 40}
}

func dlTCP(dst netip.Addr, dport uint16) pkt.Inner {
	src := srv4
	if dst.Is6() {
		src = srv6
	}
	return pkt.Inner{IP: pkt.IP{Src: src, Dst: dst}, Proto: pkt.TCP, SrcPort: 443, DstPort: dport, PayloadLen: 40}
}

func ulFrame(in pkt.Inner) pkt.Uplink {
	return pkt.Uplink{GTP: pkt.GTP{TEID: teid, Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeUL, 9)}}, Inner: in}
}

type dir int

const (
	up dir = iota
	down
)

func runDir(m *Model, d dir, frame []byte) Result {
	if d == up {
		return m.Uplink(frame)
	}
	return m.Downlink(frame)
}

func TestPolicy(t *testing.T) {
	allUL := ulRule(90, 1000, netip.Addr{}, 0)
	tests := []struct {
		name  string
		rules []enforcer.Rule
		dir   dir
		frame []byte
		want  enforcer.Reason
	}{
		{"UL exact rule", []enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(1000, 1999))}, up,
			ulFrame(ulTCP(ue4, 1500)).MustBuild().Bytes, enforcer.ReasonForward},
		{"UL no rule", []enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(1000, 1999))}, up,
			ulFrame(ulTCP(ue4, 2000)).MustBuild().Bytes, enforcer.ReasonNoRule},
		{"UL range low edge", []enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(1000, 1999))}, up,
			ulFrame(ulTCP(ue4, 1000)).MustBuild().Bytes, enforcer.ReasonForward},
		{"UL range below", []enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(1000, 1999))}, up,
			ulFrame(ulTCP(ue4, 999)).MustBuild().Bytes, enforcer.ReasonNoRule},
		{"UL range high edge", []enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(1000, 1999))}, up,
			ulFrame(ulTCP(ue4, 1999)).MustBuild().Bytes, enforcer.ReasonForward},
		{"UL full port range", []enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(0, 65535))}, up,
			ulFrame(ulTCP(ue4, 0)).MustBuild().Bytes, enforcer.ReasonForward},
		{"UL second range", []enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(1, 1), pr(65535, 65535))}, up,
			ulFrame(ulTCP(ue4, 65535)).MustBuild().Bytes, enforcer.ReasonForward},
		{"UL port is the source port", []enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(443, 443))}, up,
			ulFrame(ulTCP(ue4, 1500)).MustBuild().Bytes, enforcer.ReasonNoRule},
		{"UL wrong protocol", []enforcer.Rule{ulRule(1, 10, ue4, pkt.UDP)}, up,
			ulFrame(ulTCP(ue4, 1500)).MustBuild().Bytes, enforcer.ReasonNoRule},
		{"UL other address of the session", []enforcer.Rule{ulRule(1, 10, ue6b, 0)}, up,
			ulFrame(ulTCP(ue6, 1500)).MustBuild().Bytes, enforcer.ReasonNoRule},
		{"UL session wildcard", []enforcer.Rule{allUL}, up,
			ulFrame(ulTCP(ue6, 1500)).MustBuild().Bytes, enforcer.ReasonForward},
		{"UL drop rule", []enforcer.Rule{drop(ulRule(1, 10, ue4, pkt.TCP))}, up,
			ulFrame(ulTCP(ue4, 1500)).MustBuild().Bytes, enforcer.ReasonRuleDrop},
		{"UL wildcard with better precedence beats port rule",
			[]enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(1500, 1500)), drop(ulRule(2, 5, netip.Addr{}, 0))}, up,
			ulFrame(ulTCP(ue4, 1500)).MustBuild().Bytes, enforcer.ReasonRuleDrop},
		{"UL port rule with better precedence beats wildcard",
			[]enforcer.Rule{ulRule(1, 5, ue4, pkt.TCP, pr(1500, 1500)), drop(ulRule(2, 10, netip.Addr{}, 0))}, up,
			ulFrame(ulTCP(ue4, 1500)).MustBuild().Bytes, enforcer.ReasonForward},
		{"UL protocol rule beats address rule by precedence",
			[]enforcer.Rule{drop(ulRule(1, 20, ue4, 0)), ulRule(2, 10, ue4, pkt.TCP)}, up,
			ulFrame(ulTCP(ue4, 7)).MustBuild().Bytes, enforcer.ReasonForward},
		{"UL precedence tie goes to the lower ID",
			[]enforcer.Rule{ulRule(7, 10, ue4, pkt.TCP), drop(ulRule(3, 10, ue4, 0))}, up,
			ulFrame(ulTCP(ue4, 7)).MustBuild().Bytes, enforcer.ReasonRuleDrop},
		{"UL rule of the other direction", []enforcer.Rule{dlRule(1, 10, ue4, 0)}, up,
			ulFrame(ulTCP(ue4, 7)).MustBuild().Bytes, enforcer.ReasonNoRule},
		{"UL non-first v4 fragment has no ports",
			[]enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(0, 65535))}, up,
			ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4, FragOffset: 10}, Proto: pkt.TCP, SrcPort: 5}).MustBuild().Bytes,
			enforcer.ReasonNoRule},
		{"UL non-first v4 fragment matches protocol rule",
			[]enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP)}, up,
			ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4, FragOffset: 10}, Proto: pkt.TCP, SrcPort: 5}).MustBuild().Bytes,
			enforcer.ReasonForward},
		{"UL first v4 fragment has ports",
			[]enforcer.Rule{ulRule(1, 10, ue4, pkt.UDP, pr(5, 5))}, up,
			ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4, MF: true}, Proto: pkt.UDP, SrcPort: 5}).MustBuild().Bytes,
			enforcer.ReasonForward},
		{"UL non-first v6 fragment: protocol from the fragment header",
			[]enforcer.Rule{ulRule(1, 10, ue6, pkt.UDP, pr(5, 5)), ulRule(2, 20, ue6, pkt.UDP)}, up,
			ulFrame(pkt.Inner{IP: pkt.IP{Src: ue6, Dst: srv6, Ext: []pkt.V6Ext{{Type: pkt.Fragment, FragOffset: 3}}}, Proto: pkt.UDP, SrcPort: 5}).MustBuild().Bytes,
			enforcer.ReasonForward},
		{"UL v6 ports after four extension headers",
			[]enforcer.Rule{ulRule(1, 10, ue6, pkt.UDP, pr(5, 5))}, up,
			ulFrame(pkt.Inner{IP: pkt.IP{Src: ue6, Dst: srv6, Ext: []pkt.V6Ext{{Type: pkt.HopByHop}, {Type: pkt.Routing, Len: 2}, {Type: pkt.AH, Len: 1}, {Type: pkt.DestOpts}}},
				Proto: pkt.UDP, SrcPort: 5}).MustBuild().Bytes,
			enforcer.ReasonForward},
		{"UL v6 five extension headers are malformed", []enforcer.Rule{allUL}, up,
			ulFrame(pkt.Inner{IP: pkt.IP{Src: ue6, Dst: srv6, Ext: []pkt.V6Ext{{Type: pkt.HopByHop}, {Type: pkt.DestOpts}, {Type: pkt.DestOpts}, {Type: pkt.DestOpts}, {Type: pkt.DestOpts}}},
				Proto: pkt.UDP, SrcPort: 5}).MustBuild().Bytes,
			enforcer.ReasonMalformed},
		{"UL sctp ports", []enforcer.Rule{ulRule(1, 10, ue4, pkt.SCTP, pr(36412, 36412))}, up,
			ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4}, Proto: pkt.SCTP, SrcPort: 36412, DstPort: 1}).MustBuild().Bytes,
			enforcer.ReasonForward},
		{"UL icmp never matches a port rule", []enforcer.Rule{ulRule(1, 10, ue4, pkt.ICMP, pr(0, 65535))}, up,
			ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4}, Proto: pkt.ICMP}).MustBuild().Bytes,
			enforcer.ReasonNoRule},
		{"UL other protocol", []enforcer.Rule{ulRule(1, 10, ue4, 47)}, up,
			ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4}, Proto: 47, PayloadLen: 20}).MustBuild().Bytes,
			enforcer.ReasonForward},
		{"UL spoofed v4", []enforcer.Rule{allUL}, up,
			ulFrame(ulTCP(ue4b, 1)).MustBuild().Bytes, enforcer.ReasonSpoofed},
		{"UL spoofed v6", []enforcer.Rule{allUL}, up,
			ulFrame(ulTCP(netip.MustParseAddr("2001:db8:2::1"), 1)).MustBuild().Bytes, enforcer.ReasonSpoofed},
		{"UL v6 source anywhere in the prefix", []enforcer.Rule{ulRule(1, 10, ue6b, 0)}, up,
			ulFrame(ulTCP(ue6b, 1)).MustBuild().Bytes, enforcer.ReasonForward},
		{"UL unknown TEID", []enforcer.Rule{allUL}, up,
			pkt.Uplink{GTP: pkt.GTP{TEID: teid + 1}, Inner: ulTCP(ue4, 1)}.MustBuild().Bytes, enforcer.ReasonUnknownTEID},
		{"UL echo request", nil, up,
			pkt.Uplink{GTP: pkt.GTP{Type: pkt.GTPEchoRequest, S: true, Payload: []byte{14, 0}}}.MustBuild().Bytes,
			enforcer.ReasonPassControl},
		{"UL end marker", nil, up,
			pkt.Uplink{GTP: pkt.GTP{Type: pkt.GTPEndMarker, TEID: 5}}.MustBuild().Bytes, enforcer.ReasonPassControl},
		{"UL error indication", nil, up,
			pkt.Uplink{GTP: pkt.GTP{Type: pkt.GTPErrorIndication, Payload: []byte{1, 2, 3, 4}}}.MustBuild().Bytes, enforcer.ReasonPassControl},
		{"UL outer fragment", []enforcer.Rule{allUL}, up,
			pkt.Uplink{Outer: pkt.IP{Src: gnb4, Dst: n3v4, MF: true}, GTP: pkt.GTP{TEID: teid}, Inner: ulTCP(ue4, 1)}.MustBuild().Bytes,
			enforcer.ReasonPassFragment},
		{"UL not GTP-U port", []enforcer.Rule{allUL}, up,
			pkt.Uplink{DstPort: 2153, GTP: pkt.GTP{TEID: teid}, Inner: ulTCP(ue4, 1)}.MustBuild().Bytes, enforcer.ReasonPassOther},
		{"UL plain IP", []enforcer.Rule{allUL}, up,
			pkt.Downlink{Inner: ulTCP(ue4, 1)}.MustBuild().Bytes, enforcer.ReasonPassOther},
		{"UL outer v6 extension header", []enforcer.Rule{allUL}, up,
			pkt.Uplink{Outer: pkt.IP{Src: gnb6, Dst: n3v6, Ext: []pkt.V6Ext{{Type: pkt.DestOpts}}}, GTP: pkt.GTP{TEID: teid}, Inner: ulTCP(ue4, 1)}.MustBuild().Bytes,
			enforcer.ReasonPassOther},
		{"UL five GTP-U extension headers", []enforcer.Rule{allUL}, up,
			pkt.Uplink{GTP: pkt.GTP{TEID: teid, Ext: []pkt.GTPExt{{Type: 1}, {Type: 2}, {Type: 3}, {Type: 4}, pkt.PSC(1, 1)}}, Inner: ulTCP(ue4, 1)}.MustBuild().Bytes,
			enforcer.ReasonMalformed},
		{"UL four GTP-U extension headers", []enforcer.Rule{allUL}, up,
			pkt.Uplink{GTP: pkt.GTP{TEID: teid, Ext: []pkt.GTPExt{{Type: 1, Len: 3}, {Type: 2}, {Type: 3}, pkt.PSC(1, 1)}}, Inner: ulTCP(ue4, 1)}.MustBuild().Bytes,
			enforcer.ReasonForward},
		{"UL three VLAN tags", []enforcer.Rule{allUL}, up,
			pkt.Uplink{L2: pkt.L2{VLANs: []pkt.VLAN{{ID: 1}, {ID: 2}, {ID: 3}}}, GTP: pkt.GTP{TEID: teid}, Inner: ulTCP(ue4, 1)}.MustBuild().Bytes,
			enforcer.ReasonPassOther},
		{"UL inner trailer in the T-PDU", []enforcer.Rule{allUL}, up,
			pkt.Uplink{GTP: pkt.GTP{TEID: teid}, Inner: ulTCP(ue4, 1), InnerTrailer: 7}.MustBuild().Bytes, enforcer.ReasonForward},

		{"DL exact rule", []enforcer.Rule{dlRule(1, 10, ue4, pkt.TCP, pr(8080, 8080))}, down,
			pkt.Downlink{Inner: dlTCP(ue4, 8080)}.MustBuild().Bytes, enforcer.ReasonForward},
		{"DL port is the destination port", []enforcer.Rule{dlRule(1, 10, ue4, pkt.TCP, pr(443, 443))}, down,
			pkt.Downlink{Inner: dlTCP(ue4, 8080)}.MustBuild().Bytes, enforcer.ReasonNoRule},
		{"DL not to a UE", []enforcer.Rule{dlRule(1, 10, netip.Addr{}, 0)}, down,
			pkt.Downlink{Inner: dlTCP(ue4b, 8080)}.MustBuild().Bytes, enforcer.ReasonPassOther},
		{"DL v6 prefix", []enforcer.Rule{dlRule(1, 10, ue6b, pkt.TCP)}, down,
			pkt.Downlink{Inner: dlTCP(ue6b, 8080)}.MustBuild().Bytes, enforcer.ReasonForward},
		{"DL uplink rule only", []enforcer.Rule{ulRule(1, 10, netip.Addr{}, 0)}, down,
			pkt.Downlink{Inner: dlTCP(ue4, 8080)}.MustBuild().Bytes, enforcer.ReasonNoRule},
		{"DL ARP is not ours", nil, down, arpFrame(t), enforcer.ReasonPassOther},
		{"DL version mismatch", []enforcer.Rule{dlRule(1, 10, netip.Addr{}, 0)}, down,
			retype(pkt.Downlink{Inner: dlTCP(ue4, 1)}.MustBuild().Bytes, 12, 0x86dd), enforcer.ReasonMalformed},
		{"DL two VLAN tags", []enforcer.Rule{dlRule(1, 10, netip.Addr{}, 0)}, down,
			pkt.Downlink{L2: pkt.L2{VLANs: []pkt.VLAN{{TPID: pkt.TPID8021AD, ID: 1}, {ID: 2}}}, Inner: dlTCP(ue4, 1)}.MustBuild().Bytes,
			enforcer.ReasonForward},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(testConfig(false), []enforcer.Session{testSession(tt.rules)})
			got := runDir(m, tt.dir, tt.frame)
			if got.Reason != tt.want || got.Action != tt.want.Verdict() {
				t.Fatalf("got %v/%v, want %v", got.Action, got.Reason, tt.want)
			}
		})
	}
}

// arpFrame is an Ethernet frame that is not IP.
func arpFrame(t *testing.T) []byte {
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: make([]byte, 6), DstMAC: make([]byte, 6), EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			SourceHwAddress: make([]byte, 6), SourceProtAddress: make([]byte, 4), DstHwAddress: make([]byte, 6), DstProtAddress: make([]byte, 4)})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// retype overwrites a 16-bit field: for frames that lie about a header.
func retype(b []byte, off int, v uint16) []byte {
	binary.BigEndian.PutUint16(b[off:], v)
	return b
}

// TestUplinkForwardBytes checks the decapsulated frame byte for byte
// against the inner packet pkt builds with the TTL one less.
func TestUplinkForwardBytes(t *testing.T) {
	allUL := []enforcer.Rule{ulRule(1, 10, netip.Addr{}, 0)}
	tests := []struct {
		name  string
		outer pkt.IP
		vlans []pkt.VLAN
		in    pkt.Inner
	}{
		{"v4 in v4", pkt.IP{}, nil, ulTCP(ue4, 1)},
		{"v6 in v4", pkt.IP{}, nil, ulTCP(ue6, 1)},
		{"v4 in v6", pkt.IP{Src: gnb6, Dst: n3v6}, nil, ulTCP(ue4, 1)},
		{"v6 in v6, QinQ", pkt.IP{Src: gnb6, Dst: n3v6}, []pkt.VLAN{{TPID: pkt.TPID8021AD, ID: 10}, {ID: 20}}, ulTCP(ue6, 1)},
		{"v4 with options, one VLAN", pkt.IP{TTL: 3, OptWords: 3}, []pkt.VLAN{{ID: 5}},
			pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4, TTL: 2, OptWords: 2}, Proto: pkt.UDP, SrcPort: 1, DstPort: 2, PayloadLen: 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(testConfig(false), []enforcer.Session{testSession(allUL)})
			f := pkt.Uplink{L2: pkt.L2{VLANs: tt.vlans}, Outer: tt.outer,
				GTP: pkt.GTP{TEID: teid, S: true, Seq: 3, Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeUL, 1)}}, Inner: tt.in}.MustBuild()
			got := m.Uplink(f.Bytes)
			if got.Reason != enforcer.ReasonForward || got.Action != enforcer.XDPRedirect || got.IfIndex != n6Hop.IfIndex {
				t.Fatalf("got %+v", got)
			}
			in := tt.in
			ttl := in.TTL
			if ttl == 0 {
				ttl = pkt.DefaultTTL
			}
			in.TTL = ttl - 1
			want := pkt.Downlink{L2: pkt.L2{Src: n6Hop.SrcMAC, Dst: n6Hop.DstMAC}, Inner: in}.MustBuild().Bytes
			if !bytes.Equal(got.Out, want) {
				t.Errorf("out\n% x\nwant\n% x", got.Out, want)
			}
		})
	}
}

// TestDownlinkForwardBytes checks the encapsulated frame byte for byte
// against the GTP-U frame pkt builds for it.
func TestDownlinkForwardBytes(t *testing.T) {
	for _, outer := range []netip.Addr{gnb4, gnb6} {
		for _, dst := range []netip.Addr{ue4, ue6} {
			t.Run(outer.String()+"/"+dst.String(), func(t *testing.T) {
				r := dlRule(1, 10, netip.Addr{}, 0)
				r.Tunnel.Peer = outer
				m := New(testConfig(false), []enforcer.Session{testSession([]enforcer.Rule{r})})
				in := dlTCP(dst, 1)
				f := pkt.Downlink{L2: pkt.L2{VLANs: []pkt.VLAN{{ID: 4}}}, Inner: in}.MustBuild()
				got := m.Downlink(f.Bytes)
				if got.Reason != enforcer.ReasonForward || got.IfIndex != n3Hop.IfIndex {
					t.Fatalf("got %+v", got)
				}
				in.TTL = pkt.DefaultTTL - 1
				src := n3v4
				if outer.Is6() {
					src = n3v6
				}
				want := pkt.Uplink{
					L2:    pkt.L2{Src: n3Hop.SrcMAC, Dst: n3Hop.DstMAC},
					Outer: pkt.IP{Src: src, Dst: outer},
					GTP:   pkt.GTP{TEID: peerTID, Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeDL, 9)}},
					Inner: in,
				}.MustBuild()
				if outer.Is4() { // the datapath sends no UDP checksum over IPv4
					udp := want.Offset(pkt.SpanUDP)
					want.Bytes[udp+6], want.Bytes[udp+7] = 0, 0
				}
				if !bytes.Equal(got.Out, want.Bytes) {
					t.Errorf("out\n% x\nwant\n% x", got.Out, want.Bytes)
				}
			})
		}
	}
}

func TestTTLAndFIB(t *testing.T) {
	allUL := ulRule(1, 10, netip.Addr{}, 0)
	allDL := dlRule(2, 10, netip.Addr{}, 0)
	ul := func(dst netip.Addr, ttl int) pkt.Frame {
		return ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: dst, TTL: ttl}, Proto: pkt.UDP, SrcPort: 1, DstPort: 2, PayloadLen: 200}).MustBuild()
	}
	tests := []struct {
		name     string
		fallback bool
		dl       dlCase
		frame    pkt.Frame
		want     enforcer.Reason
		wantOut  string // "same", "decap", "encap"
	}{
		{"UL TTL 1", false, dlCase{}, ul(srv4, 1), enforcer.ReasonPassTTL, "decap"},
		{"UL TTL 0", false, dlCase{}, ul(srv4, pkt.TTLZero), enforcer.ReasonPassTTL, "decap"},
		{"UL TTL 2", false, dlCase{}, ul(srv4, 2), enforcer.ReasonForward, "decap"},
		{"UL no route", true, dlCase{}, ul(nr4, 0), enforcer.ReasonNoRoute, "decap"},
		{"UL no neighbour, fallback pass", true, dlCase{}, ul(nn4, 0), enforcer.ReasonPassFIB, "decap"},
		{"UL no neighbour, no fallback", false, dlCase{}, ul(nn4, 0), enforcer.ReasonNoRoute, "decap"},
		{"UL over MTU, fallback pass", true, dlCase{}, ul(big4, 0), enforcer.ReasonPassFIB, "decap"},
		{"UL over MTU, no fallback", false, dlCase{}, ul(big4, 0), enforcer.ReasonNoRoute, "decap"},
		{"DL TTL 1", false, dlCase{true, gnb4, 1}, pkt.Frame{}, enforcer.ReasonPassTTL, "same"},
		{"DL TTL 2", false, dlCase{true, gnb4, 2}, pkt.Frame{}, enforcer.ReasonForward, "encap"},
		{"DL no route to the gNB", false, dlCase{true, nr4, 0}, pkt.Frame{}, enforcer.ReasonNoRoute, "encap"},
		{"DL no neighbour for the gNB: no fallback for encapsulated packets", true, dlCase{true, nn4, 0}, pkt.Frame{}, enforcer.ReasonNoRoute, "encap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(testConfig(tt.fallback), []enforcer.Session{testSession(nil)})
			var got Result
			frame := tt.frame
			if tt.dl.on {
				r := allDL
				r.Tunnel.Peer = tt.dl.peer
				m = New(testConfig(tt.fallback), []enforcer.Session{testSession([]enforcer.Rule{r})})
				frame = pkt.Downlink{Inner: pkt.Inner{IP: pkt.IP{Src: srv4, Dst: ue4, TTL: tt.dl.ttl}, Proto: pkt.UDP, PayloadLen: 30}}.MustBuild()
				got = m.Downlink(frame.Bytes)
			} else {
				m = New(testConfig(tt.fallback), []enforcer.Session{testSession([]enforcer.Rule{allUL})})
				got = m.Uplink(frame.Bytes)
			}
			if got.Reason != tt.want {
				t.Fatalf("got %v, want %v", got.Reason, tt.want)
			}
			inner := frame.Offset(pkt.SpanInnerIP)
			innerBytes := frame.Bytes[inner:]
			switch tt.wantOut {
			case "same":
				if !bytes.Equal(got.Out, frame.Bytes) {
					t.Errorf("frame changed")
				}
			case "decap":
				if len(got.Out) != 14+len(innerBytes) || !bytes.Equal(got.Out[14:22], innerBytes[:8]) {
					t.Errorf("not decapsulated: % x", got.Out[:min(len(got.Out), 24)])
				}
				// Only a forwarded packet gets the next hop's MACs.
				if macsKept := bytes.Equal(got.Out[:12], frame.Bytes[:12]); macsKept == (got.Reason == enforcer.ReasonForward) {
					t.Errorf("MACs % x for %v", got.Out[:12], got.Reason)
				}
				ttlAfter := got.Out[14+8]
				if wantTTL := innerBytes[8] - b2u8(got.Reason == enforcer.ReasonForward); ttlAfter != wantTTL {
					t.Errorf("TTL %d, want %d", ttlAfter, wantTTL)
				}
			case "encap":
				if len(got.Out) != 14+44+len(innerBytes) {
					t.Errorf("not encapsulated: %d bytes", len(got.Out))
				}
				if ttl := got.Out[14+44+8]; ttl != innerBytes[8]-1 {
					t.Errorf("inner TTL %d, want %d", ttl, innerBytes[8]-1)
				}
			}
		})
	}
}

type dlCase struct {
	on   bool
	peer netip.Addr
	ttl  int
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func TestQoS(t *testing.T) {
	// 1000-byte inner packets; buckets hold whole packets, no refill.
	ul := ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4}, Proto: pkt.UDP, SrcPort: 1, DstPort: 2, PayloadLen: 1000 - 28}).MustBuild().Bytes
	ul2 := ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4}, Proto: pkt.TCP, SrcPort: 1, DstPort: 2, PayloadLen: 1000 - 40}).MustBuild().Bytes
	dl := pkt.Downlink{Inner: pkt.Inner{IP: pkt.IP{Src: srv4, Dst: ue4}, Proto: pkt.UDP, PayloadLen: 1000 - 28}}.MustBuild().Bytes
	const kbps = 8000 // 1000 bytes/s
	fwd, gate, rate := enforcer.ReasonForward, enforcer.ReasonGateClosed, enforcer.ReasonRateExceeded
	type step struct {
		dir   dir
		frame []byte
		want  enforcer.Reason
	}
	tests := []struct {
		name  string
		rules []enforcer.Rule
		qers  []enforcer.QER
		steps []step
	}{
		{"UL gate closed", []enforcer.Rule{withQERs(ulRule(1, 1, ue4, 0), 5)},
			[]enforcer.QER{{ID: 5, ULGateClosed: true}}, []step{{up, ul, gate}}},
		{"DL gate open when only UL closed", []enforcer.Rule{withQERs(dlRule(1, 1, ue4, 0), 5)},
			[]enforcer.QER{{ID: 5, ULGateClosed: true}}, []step{{down, dl, fwd}}},
		{"missing QER fails closed", []enforcer.Rule{withQERs(ulRule(1, 1, ue4, 0), 6)},
			[]enforcer.QER{{ID: 5}}, []step{{up, ul, gate}}},
		{"UL burst of two packets", []enforcer.Rule{withQERs(ulRule(1, 1, ue4, 0), 5)},
			[]enforcer.QER{{ID: 5, ULMBR: kbps, ULBurst: 2500}}, []step{{up, ul, fwd}, {up, ul, fwd}, {up, ul, rate}, {up, ul, rate}}},
		{"default burst (3000 bytes)", []enforcer.Rule{withQERs(ulRule(1, 1, ue4, 0), 5)},
			[]enforcer.QER{{ID: 5, ULMBR: kbps}}, []step{{up, ul, fwd}, {up, ul, fwd}, {up, ul, fwd}, {up, ul, rate}}},
		{"directions have their own buckets", []enforcer.Rule{withQERs(ulRule(1, 1, ue4, 0), 5), withQERs(dlRule(2, 1, ue4, 0), 5)},
			[]enforcer.QER{{ID: 5, ULMBR: kbps, ULBurst: 1000, DLMBR: kbps, DLBurst: 1000}},
			[]step{{up, ul, fwd}, {up, ul, rate}, {down, dl, fwd}, {down, dl, rate}}},
		{"rules share a QER's bucket", []enforcer.Rule{withQERs(ulRule(1, 1, ue4, pkt.UDP), 5), withQERs(ulRule(2, 1, ue4, pkt.TCP), 5)},
			[]enforcer.QER{{ID: 5, ULMBR: kbps, ULBurst: 1500}}, []step{{up, ul, fwd}, {up, ul2, rate}}},
		{"first QER keeps its tokens when the second fails",
			[]enforcer.Rule{withQERs(ulRule(1, 1, ue4, pkt.UDP), 5, 6), withQERs(ulRule(2, 1, ue4, pkt.TCP), 5)},
			[]enforcer.QER{{ID: 5, ULMBR: kbps, ULBurst: 1500}, {ID: 6, ULGateClosed: true}},
			[]step{{up, ul, gate}, {up, ul2, rate}}},
		{"second QER rate", []enforcer.Rule{withQERs(ulRule(1, 1, ue4, 0), 5, 6)},
			[]enforcer.QER{{ID: 5}, {ID: 6, ULMBR: kbps, ULBurst: 999}}, []step{{up, ul, rate}}},
		{"QoS before the TTL check", []enforcer.Rule{withQERs(ulRule(1, 1, ue4, 0), 5)},
			[]enforcer.QER{{ID: 5, ULGateClosed: true}},
			[]step{{up, ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4, TTL: 1}, Proto: pkt.UDP}).MustBuild().Bytes, enforcer.ReasonGateClosed}}},
		{"rule drop before QoS", []enforcer.Rule{withQERs(drop(ulRule(1, 1, ue4, 0)), 5)},
			[]enforcer.QER{{ID: 5, ULGateClosed: true}}, []step{{up, ul, enforcer.ReasonRuleDrop}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(testConfig(false), []enforcer.Session{testSession(tt.rules, tt.qers...)})
			for i, s := range tt.steps {
				got := runDir(m, s.dir, s.frame)
				if got.Reason != s.want {
					t.Fatalf("step %d: got %v, want %v", i, got.Reason, s.want)
				}
				if s.want == rate || s.want == gate {
					if !bytes.Equal(got.Out, s.frame) {
						t.Errorf("step %d: dropped frame changed", i)
					}
				}
			}
		})
	}
}

// TestTruncation cuts frames at every header boundary: the result is
// malformed and the frame unchanged, except where the cut leaves the
// packet whole (in Ethernet padding) or never reaches a G-PDU's checks.
func TestTruncation(t *testing.T) {
	rules := []enforcer.Rule{ulRule(1, 10, netip.Addr{}, 0), dlRule(2, 10, netip.Addr{}, 0)}
	frames := []struct {
		name string
		dir  dir
		f    pkt.Frame
	}{
		{"UL v4/v4 tcp", up, ulFrame(ulTCP(ue4, 1)).MustBuild()},
		{"UL v6/v6 udp ext", up, pkt.Uplink{L2: pkt.L2{VLANs: []pkt.VLAN{{ID: 1}, {ID: 2}}}, Outer: pkt.IP{Src: gnb6, Dst: n3v6},
			GTP:   pkt.GTP{TEID: teid, PN: true, Ext: []pkt.GTPExt{{Type: 0x40, Len: 2}, pkt.PSC(1, 3)}},
			Inner: pkt.Inner{IP: pkt.IP{Src: ue6, Dst: srv6, Ext: []pkt.V6Ext{{Type: pkt.HopByHop}, {Type: pkt.Fragment}}}, Proto: pkt.UDP, SrcPort: 1, DstPort: 2}}.MustBuild()},
		{"UL icmp", up, ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4}, Proto: pkt.ICMP}).MustBuild()},
		{"DL v4 tcp vlan", down, pkt.Downlink{L2: pkt.L2{VLANs: []pkt.VLAN{{ID: 1}}}, Inner: dlTCP(ue4, 1)}.MustBuild()},
		{"DL v6 sctp", down, pkt.Downlink{Inner: pkt.Inner{IP: pkt.IP{Src: srv6, Dst: ue6, Ext: []pkt.V6Ext{{Type: pkt.DestOpts, Len: 2}}}, Proto: pkt.SCTP, SrcPort: 1, DstPort: 2}}.MustBuild()},
		{"DL v4 icmp (padded)", down, pkt.Downlink{Inner: pkt.Inner{IP: pkt.IP{Src: srv4, Dst: ue4}, Proto: pkt.ICMP}}.MustBuild()},
	}
	for _, fr := range frames {
		t.Run(fr.name, func(t *testing.T) {
			pad := fr.f.Offset(pkt.SpanPad)
			for _, n := range fr.f.Cuts() {
				m := New(testConfig(false), []enforcer.Session{testSession(rules)})
				in := fr.f.Truncated(n)
				got := runDir(m, fr.dir, in)
				want := enforcer.ReasonMalformed
				if pad >= 0 && n >= pad {
					want = enforcer.ReasonForward // only padding lost
				}
				if got.Reason != want {
					t.Errorf("cut at %d: %v, want %v", n, got.Reason, want)
					continue
				}
				if want == enforcer.ReasonMalformed && !bytes.Equal(got.Out, in) {
					t.Errorf("cut at %d: malformed frame changed", n)
				}
			}
		})
	}
}

func TestCounters(t *testing.T) {
	rules := []enforcer.Rule{ulRule(1, 10, ue4, pkt.TCP, pr(1, 100)), dlRule(2, 10, ue4, 0)}
	m := New(testConfig(false), []enforcer.Session{testSession(rules)})
	okUL := ulFrame(ulTCP(ue4, 50)).MustBuild()
	denyUL := ulFrame(ulTCP(ue4, 500)).MustBuild()
	// A UDP packet relabelled TCP: the inner header is fine, the 8-byte
	// transport header is too short for TCP.
	badInner := ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4}, Proto: pkt.UDP}).MustBuild()
	badInner.Bytes[badInner.Offset(pkt.SpanInnerIP)+9] = pkt.TCP
	ttl1 := ulFrame(pkt.Inner{IP: pkt.IP{Src: ue4, Dst: srv4, TTL: 1}, Proto: pkt.TCP, SrcPort: 50}).MustBuild()
	okDL := pkt.Downlink{Inner: dlTCP(ue4, 9)}.MustBuild()

	for _, f := range []pkt.Frame{okUL, okUL, denyUL, badInner, ttl1} {
		m.Uplink(f.Bytes)
	}
	m.Downlink(okDL.Bytes)
	m.Uplink(okUL.Truncated(20)) // malformed before any session

	innerOK := uint64(len(okUL.Bytes) - okUL.Offset(pkt.SpanInnerIP))
	innerDeny := uint64(len(denyUL.Bytes) - denyUL.Offset(pkt.SpanInnerIP))
	innerBad := uint64(28) // inner_len is set before the transport header fails
	innerDL := uint64(len(okDL.Bytes) - okDL.Offset(pkt.SpanInnerIP))

	if got, want := m.RuleUsage(seid, 1), (enforcer.Counter{Packets: 2, Bytes: 2 * innerOK}); got != want {
		t.Errorf("rule 1 usage %+v, want %+v", got, want)
	}
	if got, want := m.RuleUsage(seid, 2), (enforcer.Counter{Packets: 1, Bytes: innerDL}); got != want {
		t.Errorf("rule 2 usage %+v, want %+v", got, want)
	}
	u := m.SessionUsage(seid)
	if want := (enforcer.Counter{Packets: 2, Bytes: 2 * innerOK}); u.Forwarded[enforcer.Uplink] != want {
		t.Errorf("UL forwarded %+v, want %+v", u.Forwarded[enforcer.Uplink], want)
	}
	if want := (enforcer.Counter{Packets: 2, Bytes: innerDeny + innerBad}); u.Dropped[enforcer.Uplink] != want {
		t.Errorf("UL dropped %+v, want %+v", u.Dropped[enforcer.Uplink], want)
	}
	if want := (enforcer.Counter{Packets: 1, Bytes: innerDL}); u.Forwarded[enforcer.Downlink] != want {
		t.Errorf("DL forwarded %+v, want %+v", u.Forwarded[enforcer.Downlink], want)
	}
	st := m.Stats()
	check := func(d enforcer.Direction, r enforcer.Reason, want enforcer.Counter) {
		t.Helper()
		if got := st.Packets[d][r]; got != want {
			t.Errorf("%v %v: %+v, want %+v", d, r, got, want)
		}
	}
	check(enforcer.Uplink, enforcer.ReasonForward, enforcer.Counter{Packets: 2, Bytes: 2 * uint64(len(okUL.Bytes))})
	check(enforcer.Uplink, enforcer.ReasonNoRule, enforcer.Counter{Packets: 1, Bytes: uint64(len(denyUL.Bytes))})
	check(enforcer.Uplink, enforcer.ReasonMalformed, enforcer.Counter{Packets: 2, Bytes: uint64(len(badInner.Bytes) + 20)})
	check(enforcer.Uplink, enforcer.ReasonPassTTL, enforcer.Counter{Packets: 1, Bytes: uint64(len(ttl1.Bytes))})
	check(enforcer.Downlink, enforcer.ReasonForward, enforcer.Counter{Packets: 1, Bytes: uint64(len(okDL.Bytes))})

	ev := m.DenyEvents()
	if len(ev) != 1 || ev[0].Reason != enforcer.ReasonNoRule || ev[0].Port != 500 || ev[0].Addr != ue4 ||
		ev[0].TEID != teid || ev[0].Protocol != pkt.TCP || ev[0].SEID != seid || ev[0].Direction != enforcer.Uplink {
		t.Errorf("deny events %+v", ev)
	}
}

func TestIPv4DecTTL(t *testing.T) {
	// A valid header stays valid, whatever its TTL and checksum.
	for ttl := 2; ttl < 256; ttl += 7 {
		for id := 0; id < 65536; id += 997 {
			f := pkt.Inner{IP: pkt.IP{Src: srv4, Dst: ue4, TTL: ttl, ID: uint16(id)}, Proto: pkt.UDP}.MustBuild()
			h := f.Bytes[:20]
			ipv4DecTTL(h)
			if h[8] != uint8(ttl-1) {
				t.Fatalf("TTL %d after %d", h[8], ttl)
			}
			if c := checksum(0, h); c != 0 && c != 0xffff {
				t.Fatalf("ttl %d id %d: checksum verifies to %#x", ttl, id, c)
			}
		}
	}
	// The kernel's arithmetic on the little-endian load: bytes fe ff
	// (0xfffe) + 1 reaches 0xffff and wraps to 0; ff ff carries to 1.
	for _, tc := range []struct{ in, out [2]byte }{
		{[2]byte{0xfe, 0xff}, [2]byte{0x00, 0x00}},
		{[2]byte{0xff, 0xff}, [2]byte{0x01, 0x00}},
		{[2]byte{0xff, 0x00}, [2]byte{0x00, 0x01}},
		{[2]byte{0x12, 0x34}, [2]byte{0x13, 0x34}},
	} {
		h := make([]byte, 20)
		h[8] = 5
		copy(h[10:], tc.in[:])
		ipv4DecTTL(h)
		if [2]byte(h[10:12]) != tc.out || h[8] != 4 {
			t.Errorf("check % x -> % x, want % x", tc.in, h[10:12], tc.out)
		}
	}
}

func TestEthernetPaddingKept(t *testing.T) {
	r := dlRule(1, 10, netip.Addr{}, 0)
	m := New(testConfig(false), []enforcer.Session{testSession([]enforcer.Rule{r})})
	f := pkt.Downlink{Inner: pkt.Inner{IP: pkt.IP{Src: srv4, Dst: ue4}, Proto: pkt.UDP}}.MustBuild()
	pad, _ := f.Span(pkt.SpanPad)
	got := m.Downlink(f.Bytes)
	if got.Reason != enforcer.ReasonForward {
		t.Fatalf("got %v", got.Reason)
	}
	if len(got.Out) != 14+44+len(f.Bytes)-14 {
		t.Fatalf("%d bytes out", len(got.Out))
	}
	n := pad.End - pad.Start
	if !bytes.Equal(got.Out[len(got.Out)-n:], f.Bytes[pad.Start:]) {
		t.Errorf("padding not kept at the end")
	}
}

func TestLongestPrefixSession(t *testing.T) {
	wide := enforcer.Session{SEID: 1, UEv6: netip.MustParsePrefix("2001:db8::/32"),
		Rules: []enforcer.Rule{drop(dlRule(1, 1, netip.Addr{}, 0))}}
	narrow := enforcer.Session{SEID: 2, UEv6: netip.MustParsePrefix("2001:db8:1::/64"),
		Rules: []enforcer.Rule{dlRule(1, 1, netip.Addr{}, 0)}}
	m := New(testConfig(false), []enforcer.Session{wide, narrow})
	if got := m.Downlink(pkt.Downlink{Inner: dlTCP(ue6, 1)}.MustBuild().Bytes); got.Reason != enforcer.ReasonForward {
		t.Errorf("narrow prefix: %v", got.Reason)
	}
	if got := m.Downlink(pkt.Downlink{Inner: dlTCP(netip.MustParseAddr("2001:db8:2::1"), 1)}.MustBuild().Bytes); got.Reason != enforcer.ReasonRuleDrop {
		t.Errorf("wide prefix: %v", got.Reason)
	}
	if m.SessionUsage(2).Forwarded[enforcer.Downlink].Packets != 1 || m.SessionUsage(1).Dropped[enforcer.Downlink].Packets != 1 {
		t.Errorf("usage %+v %+v", m.SessionUsage(1), m.SessionUsage(2))
	}
}
