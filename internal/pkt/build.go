package pkt

import (
	"fmt"
	"net"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// named is a layer and the span name its bytes get. An empty name merges
// the layer's bytes into the span in front of it (ICMPv6 echo body into
// "l4").
type named struct {
	name  string
	layer gopacket.SerializableLayer
}

// writer serializes layers the way gopacket.SerializeLayers does (back to
// front, FixLengths and ComputeChecksums), but into one buffer across several
// calls, so that trailers can be appended between an inner packet and the
// headers that enclose it without those headers counting them. It keeps the
// span of every layer.
type writer struct {
	buf   gopacket.SerializeBuffer
	opts  gopacket.SerializeOptions
	spans []Span // frame order, offsets from the current front of buf
}

func newWriter() *writer {
	return &writer{
		buf:  gopacket.NewSerializeBuffer(),
		opts: gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
	}
}

// prepend serializes ls (outermost first) in front of what buf holds.
func (w *writer) prepend(ls ...named) error {
	for i := len(ls) - 1; i >= 0; i-- {
		before := len(w.buf.Bytes())
		if err := ls[i].layer.SerializeTo(w.buf, w.opts); err != nil {
			return fmt.Errorf("pkt: %s: %w", ls[i].name, err)
		}
		w.buf.PushLayer(ls[i].layer.LayerType())
		after := len(w.buf.Bytes())
		hdr, pad := after-before, 0
		if _, ok := ls[i].layer.(*layers.Ethernet); ok {
			// layers.Ethernet pads short frames to 60 bytes at the end.
			hdr, pad = 14, after-before-14
		}
		for j := range w.spans {
			w.spans[j].Start += hdr
			w.spans[j].End += hdr
		}
		w.spans = append([]Span{{ls[i].name, 0, hdr}}, w.spans...)
		if pad > 0 {
			w.spans = append(w.spans, Span{SpanPad, after - pad, after})
		}
	}
	return nil
}

// appendBytes adds n bytes of fill at the end, as span name.
func (w *writer) appendBytes(name string, n int, fill byte) error {
	if n <= 0 {
		return nil
	}
	start := len(w.buf.Bytes())
	b, err := w.buf.AppendBytes(n)
	if err != nil {
		return err
	}
	for i := range b {
		b[i] = fill
	}
	w.spans = append(w.spans, Span{name, start, start + n})
	return nil
}

// frame is the result, with unnamed spans merged into the one before.
func (w *writer) frame() Frame {
	var spans []Span
	for _, s := range w.spans {
		if s.Name == "" && len(spans) > 0 {
			spans[len(spans)-1].End = s.End
			continue
		}
		spans = append(spans, s)
	}
	return Frame{Bytes: append([]byte(nil), w.buf.Bytes()...), Spans: spans}
}

// Build serializes the uplink frame.
func (u Uplink) Build() (Frame, error) {
	w := newWriter()
	hasInner := u.Inner.Src.IsValid() || u.Inner.Dst.IsValid()
	if hasInner && len(u.GTP.Payload) > 0 {
		return Frame{}, fmt.Errorf("pkt: uplink frame with both an inner packet and a GTP-U payload")
	}
	if hasInner {
		ls, err := innerLayers(u.Inner)
		if err != nil {
			return Frame{}, err
		}
		if err := w.prepend(ls...); err != nil {
			return Frame{}, err
		}
		if err := w.appendBytes(SpanInnerTrailer, u.InnerTrailer, 0xdd); err != nil {
			return Frame{}, err
		}
	} else if len(u.GTP.Payload) > 0 {
		if err := w.prepend(named{SpanGTPUPayload, gopacket.Payload(u.GTP.Payload)}); err != nil {
			return Frame{}, err
		}
	}

	outer := u.Outer
	if !outer.Src.IsValid() && !outer.Dst.IsValid() {
		outer.Src, outer.Dst = DefaultGNB, DefaultN3
	}
	ipLs, netLayer, err := ipLayers(outer, UDP, SpanOuterIP, SpanOuterExt)
	if err != nil {
		return Frame{}, err
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(orPort(u.SrcPort)), DstPort: layers.UDPPort(orPort(u.DstPort))}
	if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
		return Frame{}, err
	}
	gtpLs, err := gtpuLayers(u.GTP)
	if err != nil {
		return Frame{}, err
	}
	ls := append(append(ipLs, named{SpanUDP, udp}), gtpLs...)
	if err := w.prepend(ls...); err != nil {
		return Frame{}, err
	}
	if err := w.appendBytes(SpanTrailer, u.Trailer, 0xee); err != nil {
		return Frame{}, err
	}
	if err := w.prepend(l2Layers(u.L2, outer.Src.Is4())...); err != nil {
		return Frame{}, err
	}
	return w.frame(), nil
}

// MustBuild is Build that panics on an error, for test tables.
func (u Uplink) MustBuild() Frame {
	f, err := u.Build()
	if err != nil {
		panic(err)
	}
	return f
}

// Build serializes the downlink frame.
func (d Downlink) Build() (Frame, error) {
	w := newWriter()
	ls, err := innerLayers(d.Inner)
	if err != nil {
		return Frame{}, err
	}
	if err := w.prepend(ls...); err != nil {
		return Frame{}, err
	}
	if err := w.appendBytes(SpanTrailer, d.Trailer, 0xee); err != nil {
		return Frame{}, err
	}
	if err := w.prepend(l2Layers(d.L2, d.Inner.Src.Is4())...); err != nil {
		return Frame{}, err
	}
	return w.frame(), nil
}

// MustBuild is Build that panics on an error, for test tables.
func (d Downlink) MustBuild() Frame {
	f, err := d.Build()
	if err != nil {
		panic(err)
	}
	return f
}

// Build serializes the bare IP packet (no Ethernet header).
func (in Inner) Build() (Frame, error) {
	w := newWriter()
	ls, err := innerLayers(in)
	if err != nil {
		return Frame{}, err
	}
	if err := w.prepend(ls...); err != nil {
		return Frame{}, err
	}
	return w.frame(), nil
}

func orPort(p uint16) uint16 {
	if p == 0 {
		return GTPUPort
	}
	return p
}

// l2Layers are Ethernet and its VLAN tags in front of an IPv4 (v4) or IPv6
// packet.
func l2Layers(l L2, v4 bool) []named {
	ethType := layers.EthernetTypeIPv6
	if v4 {
		ethType = layers.EthernetTypeIPv4
	}
	// Each header's type field names the header after it.
	types := make([]layers.EthernetType, len(l.VLANs)+1)
	types[len(l.VLANs)] = ethType
	for i, v := range l.VLANs {
		tpid := v.TPID
		if tpid == 0 {
			tpid = TPID8021Q
		}
		types[i] = layers.EthernetType(tpid)
	}
	src, dst := l.Src, l.Dst
	if src == ([6]byte{}) {
		src = DefaultSrcMAC
	}
	if dst == ([6]byte{}) {
		dst = DefaultDstMAC
	}
	out := []named{{SpanEth, &layers.Ethernet{SrcMAC: src[:], DstMAC: dst[:], EthernetType: types[0]}}}
	for i, v := range l.VLANs {
		out = append(out, named{fmt.Sprintf("%s%d", SpanVLAN, i), &layers.Dot1Q{
			Priority:       v.PCP & 7,
			VLANIdentifier: v.ID & 0xfff,
			Type:           types[i+1],
		}})
	}
	return out
}

func ttlOf(v int) (uint8, error) {
	switch {
	case v == 0:
		return DefaultTTL, nil
	case v == TTLZero:
		return 0, nil
	case v < 0 || v > 255:
		return 0, fmt.Errorf("pkt: TTL %d", v)
	}
	return uint8(v), nil
}

// ipLayers are an IP header and its IPv6 extension headers carrying proto,
// and the header transport checksums are computed over.
func ipLayers(ip IP, proto uint8, name, extName string) ([]named, gopacket.NetworkLayer, error) {
	ttl, err := ttlOf(ip.TTL)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case ip.Src.Is4() && ip.Dst.Is4():
		if len(ip.Ext) > 0 {
			return nil, nil, fmt.Errorf("pkt: IPv6 extension headers on IPv4")
		}
		if ip.OptWords < 0 || ip.OptWords > 10 {
			return nil, nil, fmt.Errorf("pkt: %d IPv4 option words", ip.OptWords)
		}
		v4 := &layers.IPv4{
			Version: 4, TOS: ip.TOS, Id: ip.ID, TTL: ttl,
			FragOffset: ip.FragOffset & 0x1fff,
			Protocol:   layers.IPProtocol(proto),
			SrcIP:      net.IP(ip.Src.AsSlice()), DstIP: net.IP(ip.Dst.AsSlice()),
		}
		if ip.DF {
			v4.Flags |= layers.IPv4DontFragment
		}
		if ip.MF {
			v4.Flags |= layers.IPv4MoreFragments
		}
		for range ip.OptWords * 4 {
			v4.Options = append(v4.Options, layers.IPv4Option{OptionType: 1, OptionLength: 1}) // NOP
		}
		return []named{{name, v4}}, v4, nil
	case ip.Src.Is6() && ip.Dst.Is6():
		next := proto
		if len(ip.Ext) > 0 {
			next = ip.Ext[0].Type
		}
		v6 := &layers.IPv6{
			Version: 6, TrafficClass: ip.TOS, HopLimit: ttl,
			NextHeader: layers.IPProtocol(next),
			SrcIP:      net.IP(ip.Src.AsSlice()), DstIP: net.IP(ip.Dst.AsSlice()),
		}
		out := []named{{name, v6}}
		for i, e := range ip.Ext {
			next := proto
			if i+1 < len(ip.Ext) {
				next = ip.Ext[i+1].Type
			}
			out = append(out, named{fmt.Sprintf("%s%d", extName, i), v6ExtLayer(e, next)})
		}
		return out, v6, nil
	}
	return nil, nil, fmt.Errorf("pkt: addresses %v -> %v are not one IP family", ip.Src, ip.Dst)
}

// v6ExtLayer is the gopacket layer for one IPv6 extension header.
func v6ExtLayer(e V6Ext, next uint8) gopacket.SerializableLayer {
	optBytes := 8*(int(e.Len)+1) - 2 // after next header and length
	switch e.Type {
	case HopByHop:
		h := &layers.IPv6HopByHop{}
		h.NextHeader = layers.IPProtocol(next)
		for _, o := range padOptions(optBytes) {
			h.Options = append(h.Options, (*layers.IPv6HopByHopOption)(o))
		}
		return h
	case DestOpts:
		d := &layers.IPv6Destination{}
		d.NextHeader = layers.IPProtocol(next)
		for _, o := range padOptions(optBytes) {
			d.Options = append(d.Options, (*layers.IPv6DestinationOption)(o))
		}
		return d
	case Routing:
		r := &layers.IPv6Routing{
			RoutingType: 253, // experimental (RFC 4727): no type-specific meaning
			Reserved:    make([]byte, 4),
			Data:        make([]byte, 8*int(e.Len)),
		}
		r.NextHeader = layers.IPProtocol(next)
		return r
	case Fragment:
		return &layers.IPv6Fragment{
			NextHeader:     layers.IPProtocol(next),
			FragmentOffset: e.FragOffset & 0x1fff,
			MoreFragments:  e.MF,
			Identification: e.ID,
		}
	case AH:
		return &v6RawExt{next: next, length: e.Len, size: 4 * (int(e.Len) + 2)}
	}
	return &v6RawExt{next: next, length: e.Len, size: 8 * (int(e.Len) + 1)}
}

// tlvOption has the layout of layers' IPv6 hop-by-hop and destination
// options, which are both conversions of one unexported type.
type tlvOption = layers.IPv6HopByHopOption

// padOptions fill n option bytes with PadN options (Pad1 for a last odd
// byte), so a header has exactly the length asked for.
func padOptions(n int) []*tlvOption {
	var out []*tlvOption
	for n > 0 {
		if n == 1 {
			out = append(out, &tlvOption{OptionType: 0})
			break
		}
		c := min(n, 257)
		if n-c == 1 {
			c-- // leave two bytes, not one, for the next PadN
		}
		out = append(out, &tlvOption{OptionType: 1, OptionData: make([]byte, c-2)})
		n -= c
	}
	return out
}

// innerLayers are the layers of an inner IP packet.
func innerLayers(in Inner) ([]named, error) {
	out, netLayer, err := ipLayers(in.IP, in.Proto, SpanInnerIP, SpanInnerExt)
	if err != nil {
		return nil, err
	}
	l4, err := l4Layers(in, netLayer)
	if err != nil {
		return nil, err
	}
	out = append(out, l4...)
	payload := in.Payload
	if payload == nil {
		payload = make([]byte, max(in.PayloadLen, 0))
		for i := range payload {
			payload[i] = byte(i)
		}
	}
	if len(payload) > 0 {
		out = append(out, named{SpanPayload, gopacket.Payload(payload)})
	}
	return out, nil
}

// l4Layers are the transport header for in.Proto, none for protocols
// without one here.
func l4Layers(in Inner, netLayer gopacket.NetworkLayer) ([]named, error) {
	switch in.Proto {
	case TCP:
		t := &layers.TCP{SrcPort: layers.TCPPort(in.SrcPort), DstPort: layers.TCPPort(in.DstPort), Seq: 1, ACK: true, Window: 65535}
		return []named{{SpanL4, t}}, t.SetNetworkLayerForChecksum(netLayer)
	case UDP:
		u := &layers.UDP{SrcPort: layers.UDPPort(in.SrcPort), DstPort: layers.UDPPort(in.DstPort)}
		return []named{{SpanL4, u}}, u.SetNetworkLayerForChecksum(netLayer)
	case SCTP:
		return []named{{SpanL4, &layers.SCTP{SrcPort: layers.SCTPPort(in.SrcPort), DstPort: layers.SCTPPort(in.DstPort), VerificationTag: 1}}}, nil
	case ICMP:
		typ := in.ICMPType
		if typ == 0 {
			typ = layers.ICMPv4TypeEchoRequest
		}
		return []named{{SpanL4, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, in.ICMPCode), Id: 1, Seq: 1}}}, nil
	case ICMPv6:
		typ := in.ICMPType
		if typ == 0 {
			typ = layers.ICMPv6TypeEchoRequest
		}
		i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, in.ICMPCode)}
		if err := i.SetNetworkLayerForChecksum(netLayer); err != nil {
			return nil, err
		}
		// layers.ICMPv6 is the first 4 bytes; the next 4 complete the header.
		var rest gopacket.SerializableLayer = gopacket.Payload(make([]byte, 4))
		if typ == layers.ICMPv6TypeEchoRequest || typ == layers.ICMPv6TypeEchoReply {
			rest = &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 1}
		}
		return []named{{SpanL4, i}, {"", rest}}, nil
	}
	return nil, nil
}

// MustBuild is Build that panics on an error, for test tables.
func (in Inner) MustBuild() Frame {
	f, err := in.Build()
	if err != nil {
		panic(err)
	}
	return f
}
