package pkt

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	ue4  = netip.MustParseAddr("10.45.0.2")
	srv4 = netip.MustParseAddr("198.51.100.7")
	ue6  = netip.MustParseAddr("2001:db8:1::2")
	srv6 = netip.MustParseAddr("2001:db8:ff::7")
	gnb6 = netip.MustParseAddr("2001:db8:a::1")
	n36  = netip.MustParseAddr("2001:db8:a::2")
)

// checkSpans verifies the spans are contiguous and cover the frame.
func checkSpans(t *testing.T, f Frame) {
	t.Helper()
	at := 0
	for _, s := range f.Spans {
		if s.Start != at || s.End <= s.Start {
			t.Fatalf("span %+v after offset %d; spans %+v", s, at, f.Spans)
		}
		at = s.End
	}
	if at != len(f.Bytes) {
		t.Fatalf("spans end at %d, frame has %d bytes", at, len(f.Bytes))
	}
}

func decode(t *testing.T, b []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	return p
}

func TestUplinkDecodes(t *testing.T) {
	tests := []struct {
		name      string
		u         Uplink
		wantVLANs int
		wantExt   []uint8 // GTP-U extension types
		wantQFI   int     // -1: no PSC
		wantInner gopacket.LayerType
		wantL4    gopacket.LayerType
	}{
		{
			name: "v4 in v4 udp, PSC",
			u: Uplink{
				GTP:   GTP{TEID: 0x1234, Ext: []GTPExt{PSC(PDUTypeUL, 9)}},
				Inner: Inner{IP: IP{Src: ue4, Dst: srv4}, Proto: UDP, SrcPort: 5000, DstPort: 9999, PayloadLen: 10},
			},
			wantExt: []uint8{ExtPSC}, wantQFI: 9,
			wantInner: layers.LayerTypeIPv4, wantL4: layers.LayerTypeUDP,
		},
		{
			name: "v6 in v6 tcp, two vlans, seq, ext chain",
			u: Uplink{
				L2:    L2{VLANs: []VLAN{{TPID: TPID8021AD, ID: 100}, {ID: 200}}},
				Outer: IP{Src: gnb6, Dst: n36},
				GTP: GTP{TEID: 7, S: true, Seq: 99, Ext: []GTPExt{
					{Type: 0x40, Len: 2, Content: []byte{1, 2, 3}}, PSC(PDUTypeUL, 5),
				}},
				Inner: Inner{IP: IP{Src: ue6, Dst: srv6}, Proto: TCP, SrcPort: 40000, DstPort: 443},
			},
			wantVLANs: 2, wantExt: []uint8{0x40, ExtPSC}, wantQFI: 5,
			wantInner: layers.LayerTypeIPv6, wantL4: layers.LayerTypeTCP,
		},
		{
			name: "v6 in v4 icmpv6 with hop-by-hop and dest options",
			u: Uplink{
				GTP: GTP{TEID: 1},
				Inner: Inner{IP: IP{Src: ue6, Dst: srv6, Ext: []V6Ext{{Type: HopByHop}, {Type: DestOpts, Len: 1}}},
					Proto: ICMPv6},
			},
			wantQFI: -1, wantInner: layers.LayerTypeIPv6, wantL4: layers.LayerTypeICMPv6,
		},
		{
			name: "v4 in v6 icmp, one vlan, PN only",
			u: Uplink{
				L2:    L2{VLANs: []VLAN{{ID: 3}}},
				Outer: IP{Src: gnb6, Dst: n36},
				GTP:   GTP{TEID: 2, PN: true, NPDU: 4},
				Inner: Inner{IP: IP{Src: ue4, Dst: srv4, TTL: 1}, Proto: ICMP},
			},
			wantVLANs: 1, wantQFI: -1, wantInner: layers.LayerTypeIPv4, wantL4: layers.LayerTypeICMPv4,
		},
		{
			name: "sctp",
			u: Uplink{
				GTP:   GTP{TEID: 3, Ext: []GTPExt{PSC(PDUTypeUL, 1)}},
				Inner: Inner{IP: IP{Src: ue4, Dst: srv4}, Proto: SCTP, SrcPort: 1, DstPort: 2},
			},
			wantExt: []uint8{ExtPSC}, wantQFI: 1, wantInner: layers.LayerTypeIPv4, wantL4: layers.LayerTypeSCTP,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.u.MustBuild()
			checkSpans(t, f)
			p := decode(t, f.Bytes)
			if n := len(layersOf[*layers.Dot1Q](p)); n != tt.wantVLANs {
				t.Errorf("%d VLAN tags, want %d", n, tt.wantVLANs)
			}
			g, ok := p.Layer(layers.LayerTypeGTPv1U).(*layers.GTPv1U)
			if !ok {
				t.Fatalf("no GTP-U layer in %v", p)
			}
			if g.TEID != tt.u.GTP.TEID || g.MessageType != GTPGPDU || g.Version != 1 {
				t.Errorf("GTP-U %+v", g)
			}
			if g.SequenceNumberFlag != tt.u.GTP.S || g.SequenceNumber != tt.u.GTP.Seq || g.NPDU != tt.u.GTP.NPDU {
				t.Errorf("GTP-U optional fields %+v", g)
			}
			if len(g.GTPExtensionHeaders) != len(tt.wantExt) {
				t.Fatalf("extension headers %+v, want types %v", g.GTPExtensionHeaders, tt.wantExt)
			}
			qfi := -1
			for i, e := range g.GTPExtensionHeaders {
				if e.Type != tt.wantExt[i] {
					t.Errorf("extension %d type %#x, want %#x", i, e.Type, tt.wantExt[i])
				}
				if e.Type == ExtPSC {
					qfi = int(e.Content[1] & 0x3f)
					if e.Content[0]>>4 != PDUTypeUL {
						t.Errorf("PSC PDU type %d", e.Content[0]>>4)
					}
				}
			}
			if qfi != tt.wantQFI {
				t.Errorf("QFI %d, want %d", qfi, tt.wantQFI)
			}
			// The GTP-U length covers everything after the mandatory header.
			gs, _ := f.Span(SpanGTPU)
			if l := int(binary.BigEndian.Uint16(f.Bytes[gs.Start+2:])); l != len(f.Bytes)-gs.End && f.Offset(SpanPad) < 0 {
				t.Errorf("GTP-U length %d, %d bytes follow", l, len(f.Bytes)-gs.End)
			}
			// The inner packet starts where the inner-ip span says.
			inner := p.Layers()
			var found bool
			for _, l := range inner {
				if l.LayerType() == tt.wantInner && &l.LayerContents()[0] == &f.Bytes[f.Offset(SpanInnerIP)] {
					found = true
				}
			}
			if !found {
				t.Errorf("no %v at offset %d", tt.wantInner, f.Offset(SpanInnerIP))
			}
			if p.Layer(tt.wantL4) == nil {
				t.Errorf("no %v in %v", tt.wantL4, p)
			}
			checkPorts(t, p, tt.u.Inner)
		})
	}
}

func layersOf[T gopacket.Layer](p gopacket.Packet) []T {
	var out []T
	for _, l := range p.Layers() {
		if v, ok := l.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func checkPorts(t *testing.T, p gopacket.Packet, in Inner) {
	t.Helper()
	var sp, dp uint16
	var last gopacket.Layer // the inner transport header follows the outer UDP
	for _, l := range p.Layers() {
		switch l.(type) {
		case *layers.TCP, *layers.UDP, *layers.SCTP:
			last = l
		}
	}
	switch l := last.(type) {
	case *layers.TCP:
		sp, dp = uint16(l.SrcPort), uint16(l.DstPort)
	case *layers.UDP:
		sp, dp = uint16(l.SrcPort), uint16(l.DstPort)
	case *layers.SCTP:
		sp, dp = uint16(l.SrcPort), uint16(l.DstPort)
	default:
		return
	}
	if in.Proto != TCP && in.Proto != UDP && in.Proto != SCTP {
		return
	}
	if sp != in.SrcPort || dp != in.DstPort {
		t.Errorf("ports %d -> %d, want %d -> %d", sp, dp, in.SrcPort, in.DstPort)
	}
}

func TestDownlinkDecodes(t *testing.T) {
	tests := []struct {
		name string
		d    Downlink
		want []gopacket.LayerType // after Ethernet and VLANs
	}{
		{"v4 tcp", Downlink{Inner: Inner{IP: IP{Src: srv4, Dst: ue4}, Proto: TCP, SrcPort: 443, DstPort: 40000, PayloadLen: 100}},
			[]gopacket.LayerType{layers.LayerTypeIPv4, layers.LayerTypeTCP}},
		{"v6 udp qinq", Downlink{L2: L2{VLANs: []VLAN{{TPID: TPID8021AD, ID: 1}, {ID: 2}}},
			Inner: Inner{IP: IP{Src: srv6, Dst: ue6}, Proto: UDP, SrcPort: 53, DstPort: 5353}},
			[]gopacket.LayerType{layers.LayerTypeIPv6, layers.LayerTypeUDP}},
		{"v6 routing then udp", Downlink{Inner: Inner{IP: IP{Src: srv6, Dst: ue6, Ext: []V6Ext{{Type: Routing, Len: 2}}},
			Proto: UDP, SrcPort: 1, DstPort: 2}},
			[]gopacket.LayerType{layers.LayerTypeIPv6, layers.LayerTypeIPv6Routing, layers.LayerTypeUDP}},
		{"v6 first fragment", Downlink{Inner: Inner{IP: IP{Src: srv6, Dst: ue6, Ext: []V6Ext{{Type: Fragment, MF: true, ID: 9}}},
			Proto: UDP, SrcPort: 1, DstPort: 2}},
			[]gopacket.LayerType{layers.LayerTypeIPv6, layers.LayerTypeIPv6Fragment, gopacket.LayerTypeFragment}},
		{"v4 other protocol", Downlink{Inner: Inner{IP: IP{Src: srv4, Dst: ue4, OptWords: 2}, Proto: 47, PayloadLen: 4}},
			[]gopacket.LayerType{layers.LayerTypeIPv4, layers.LayerTypeGRE}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.d.MustBuild()
			checkSpans(t, f)
			p := gopacket.NewPacket(f.Bytes, layers.LayerTypeEthernet, gopacket.Default)
			var got []gopacket.LayerType
			for _, l := range p.Layers() {
				switch l.LayerType() {
				case layers.LayerTypeEthernet, layers.LayerTypeDot1Q, gopacket.LayerTypePayload, gopacket.LayerTypeDecodeFailure:
					continue
				}
				got = append(got, l.LayerType())
			}
			for i, w := range tt.want {
				if i >= len(got) || got[i] != w {
					t.Fatalf("layers %v, want %v", got, tt.want)
				}
			}
			if n := len(layersOf[*layers.Dot1Q](p)); n != len(tt.d.VLANs) {
				t.Errorf("%d VLAN tags, want %d", n, len(tt.d.VLANs))
			}
			if f.Offset(SpanInnerIP) != 14+4*len(tt.d.VLANs) {
				t.Errorf("inner IP at %d", f.Offset(SpanInnerIP))
			}
			checkPorts(t, p, tt.d.Inner)
		})
	}
}

func TestIPFields(t *testing.T) {
	f := Downlink{Inner: Inner{
		IP:    IP{Src: srv4, Dst: ue4, TTL: TTLZero, TOS: 0x10, ID: 77, MF: true, FragOffset: 5},
		Proto: UDP, SrcPort: 1, DstPort: 2,
	}}.MustBuild()
	ip := decode(t, f.Bytes).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip.TTL != 0 || ip.TOS != 0x10 || ip.Id != 77 || ip.Flags != layers.IPv4MoreFragments || ip.FragOffset != 5 {
		t.Errorf("IPv4 %+v", ip)
	}
	if !ip.SrcIP.Equal(srv4.AsSlice()) || !ip.DstIP.Equal(ue4.AsSlice()) {
		t.Errorf("IPv4 addresses %v -> %v", ip.SrcIP, ip.DstIP)
	}

	f = Downlink{Inner: Inner{
		IP:    IP{Src: srv6, Dst: ue6, TTL: 3, Ext: []V6Ext{{Type: HopByHop, Len: 40}, {Type: Fragment, FragOffset: 100, ID: 5}}},
		Proto: TCP, SrcPort: 1, DstPort: 2,
	}}.MustBuild()
	p := decode(t, f.Bytes)
	ip6 := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip6.HopLimit != 3 || ip6.NextHeader != layers.IPProtocolIPv6HopByHop {
		t.Errorf("IPv6 %+v", ip6)
	}
	if s, _ := f.Span(SpanInnerExt + "0"); s.End-s.Start != 8*41 {
		t.Errorf("hop-by-hop span %+v", s)
	}
	frag := p.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
	if frag.FragmentOffset != 100 || frag.NextHeader != layers.IPProtocolTCP || frag.Identification != 5 {
		t.Errorf("fragment %+v", frag)
	}
}

func TestControlMessages(t *testing.T) {
	for _, typ := range []uint8{GTPEchoRequest, GTPErrorIndication, GTPEndMarker} {
		f := Uplink{GTP: GTP{Type: typ, TEID: 5, S: true, Payload: []byte{14, 0}}}.MustBuild()
		checkSpans(t, f)
		g := decode(t, f.Bytes).Layer(layers.LayerTypeGTPv1U).(*layers.GTPv1U)
		if g.MessageType != typ || g.TEID != 5 || g.MessageLength != 6 {
			t.Errorf("type %d: %+v", typ, g)
		}
	}
}

func TestTrailersAndSpans(t *testing.T) {
	f := Uplink{
		GTP:          GTP{TEID: 1, E: true},
		Inner:        Inner{IP: IP{Src: ue4, Dst: srv4}, Proto: UDP, SrcPort: 1, DstPort: 2},
		InnerTrailer: 3,
		Trailer:      5,
	}.MustBuild()
	checkSpans(t, f)
	want := []string{SpanEth, SpanOuterIP, SpanUDP, SpanGTPU, SpanGTPUOpt, SpanInnerIP, SpanL4, SpanInnerTrailer, SpanTrailer}
	if len(f.Spans) != len(want) {
		t.Fatalf("spans %+v, want %v", f.Spans, want)
	}
	for i, w := range want {
		if f.Spans[i].Name != w {
			t.Errorf("span %d is %q, want %q", i, f.Spans[i].Name, w)
		}
	}
	// The outer IP and UDP lengths exclude the outer trailer; GTP-U and UDP
	// include the inner one; the inner IP length excludes it.
	ipOff := f.Offset(SpanOuterIP)
	if l := int(binary.BigEndian.Uint16(f.Bytes[ipOff+2:])); l != len(f.Bytes)-ipOff-5 {
		t.Errorf("outer IP length %d", l)
	}
	in := f.Offset(SpanInnerIP)
	if l := int(binary.BigEndian.Uint16(f.Bytes[in+2:])); l != 28 {
		t.Errorf("inner IP length %d", l)
	}
	g := f.Offset(SpanGTPU)
	if l := int(binary.BigEndian.Uint16(f.Bytes[g+2:])); l != 4+28+3 {
		t.Errorf("GTP-U length %d", l)
	}
	if f.Bytes[g] != 0x34 || f.Bytes[g+11] != 0 {
		t.Errorf("E flag without extensions: flags %#x next %#x", f.Bytes[g], f.Bytes[g+11])
	}

	// A short downlink frame gets Ethernet padding, as its own span.
	d := Downlink{Inner: Inner{IP: IP{Src: srv4, Dst: ue4}, Proto: UDP}}.MustBuild()
	checkSpans(t, d)
	if len(d.Bytes) != 60 || d.Offset(SpanPad) != 42 {
		t.Errorf("padding: %d bytes, spans %+v", len(d.Bytes), d.Spans)
	}
	cuts := d.Cuts()
	for _, c := range []int{0, 1, 13, 14, 15, 33, 34, 35, 41, 42, 43} {
		if !contains(cuts, c) {
			t.Errorf("cuts %v lack %d", cuts, c)
		}
	}
	if contains(cuts, 60) {
		t.Errorf("cuts %v include the whole frame", cuts)
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestAHAndExplicitLengths(t *testing.T) {
	f := Downlink{Inner: Inner{IP: IP{Src: srv6, Dst: ue6, Ext: []V6Ext{{Type: AH, Len: 4}, {Type: DestOpts}}},
		Proto: UDP, SrcPort: 1, DstPort: 2}}.MustBuild()
	checkSpans(t, f)
	ah, _ := f.Span(SpanInnerExt + "0")
	if ah.End-ah.Start != 24 || f.Bytes[ah.Start] != DestOpts || f.Bytes[ah.Start+1] != 4 {
		t.Errorf("AH span %+v bytes % x", ah, f.Bytes[ah.Start:ah.End])
	}
	u := Uplink{GTP: GTP{TEID: 1, Ext: []GTPExt{{Type: 0x20, Len: 3}, PSC(PDUTypeUL, 63)}},
		Inner: Inner{IP: IP{Src: ue4, Dst: srv4}, Proto: ICMP}}.MustBuild()
	e0, _ := u.Span(SpanGTPUExt + "0")
	if e0.End-e0.Start != 12 || u.Bytes[e0.Start] != 3 || u.Bytes[e0.End-1] != ExtPSC {
		t.Errorf("extension 0 %+v: % x", e0, u.Bytes[e0.Start:e0.End])
	}
	if _, err := (Uplink{GTP: GTP{Ext: []GTPExt{{Type: 1, Len: 1, Content: []byte{1, 2, 3}}}}}).Build(); err == nil {
		t.Error("content longer than the extension built")
	}
	if _, err := (Downlink{Inner: Inner{IP: IP{Src: srv4, Dst: ue6}}}).Build(); err == nil {
		t.Error("mixed families built")
	}
}
