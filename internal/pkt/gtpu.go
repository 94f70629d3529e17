package pkt

import (
	"encoding/binary"
	"fmt"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// The GTP-U header is three kinds of gopacket layer, so that each part gets
// its own span: the mandatory 8 bytes, the 4 optional bytes, and one layer
// per extension header. They all report LayerTypeGTPv1U.

// gtpuHeader is the mandatory part of a GTP-U v1 header.
type gtpuHeader struct {
	flags uint8 // E, S, PN bits; version 1 and PT are added
	typ   uint8
	teid  uint32
}

func (g *gtpuHeader) LayerType() gopacket.LayerType { return layers.LayerTypeGTPv1U }

func (g *gtpuHeader) SerializeTo(b gopacket.SerializeBuffer, opts gopacket.SerializeOptions) error {
	// Length counts everything after the mandatory 8 bytes: what is already
	// in the buffer. Without FixLengths it is 0, as nothing else sets it.
	length := 0
	if opts.FixLengths {
		length = len(b.Bytes())
	}
	if length > 0xffff {
		return fmt.Errorf("pkt: GTP-U message of %d bytes", length)
	}
	h, err := b.PrependBytes(8)
	if err != nil {
		return err
	}
	h[0] = 0x30 | g.flags&0x07 // version 1, PT 1
	h[1] = g.typ
	binary.BigEndian.PutUint16(h[2:], uint16(length))
	binary.BigEndian.PutUint32(h[4:], g.teid)
	return nil
}

// gtpuOptional is the sequence number, N-PDU number and next extension
// header type, present when any of E, S, PN is set.
type gtpuOptional struct {
	seq  uint16
	npdu uint8
	next uint8
}

func (g *gtpuOptional) LayerType() gopacket.LayerType { return layers.LayerTypeGTPv1U }

func (g *gtpuOptional) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	h, err := b.PrependBytes(4)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint16(h, g.seq)
	h[2] = g.npdu
	h[3] = g.next
	return nil
}

// gtpuExt is one extension header: length in 4-byte units, content, and
// the type of the next one.
type gtpuExt struct {
	units   uint8
	content []byte
	next    uint8
}

func newGTPUExt(e GTPExt, next uint8) (*gtpuExt, error) {
	units := int(e.Len)
	if units == 0 {
		units = max((len(e.Content)+2+3)/4, 1)
	}
	if units > 255 || units*4-2 < len(e.Content) {
		return nil, fmt.Errorf("pkt: GTP-U extension of %d units cannot hold %d content bytes", units, len(e.Content))
	}
	return &gtpuExt{units: uint8(units), content: e.Content, next: next}, nil
}

func (g *gtpuExt) LayerType() gopacket.LayerType { return layers.LayerTypeGTPv1U }

func (g *gtpuExt) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	n := int(g.units) * 4
	h, err := b.PrependBytes(n)
	if err != nil {
		return err
	}
	clear(h) // PrependBytes does not zero
	h[0] = g.units
	copy(h[1:n-1], g.content)
	h[n-1] = g.next
	return nil
}

// gtpuLayers are the layers of a GTP-U header, with their span names.
func gtpuLayers(g GTP) ([]named, error) {
	typ := g.Type
	if typ == 0 {
		typ = GTPGPDU
	}
	var flags uint8
	if g.E || len(g.Ext) > 0 {
		flags |= 0x04
	}
	if g.S {
		flags |= 0x02
	}
	if g.PN {
		flags |= 0x01
	}
	out := []named{{SpanGTPU, &gtpuHeader{flags: flags, typ: typ, teid: g.TEID}}}
	if flags == 0 {
		return out, nil
	}
	var first uint8
	if len(g.Ext) > 0 {
		first = g.Ext[0].Type
	}
	out = append(out, named{SpanGTPUOpt, &gtpuOptional{seq: g.Seq, npdu: g.NPDU, next: first}})
	for i, e := range g.Ext {
		var next uint8
		if i+1 < len(g.Ext) {
			next = g.Ext[i+1].Type
		}
		l, err := newGTPUExt(e, next)
		if err != nil {
			return nil, err
		}
		out = append(out, named{fmt.Sprintf("%s%d", SpanGTPUExt, i), l})
	}
	return out, nil
}

// v6RawExt is an IPv6 extension header gopacket cannot serialize (AH, or an
// unknown type): next header, length field, zeros.
type v6RawExt struct {
	next, length uint8
	size         int
}

func (v *v6RawExt) LayerType() gopacket.LayerType { return layers.LayerTypeIPSecAH }

func (v *v6RawExt) SerializeTo(b gopacket.SerializeBuffer, _ gopacket.SerializeOptions) error {
	h, err := b.PrependBytes(v.size)
	if err != nil {
		return err
	}
	clear(h)
	h[0] = v.next
	h[1] = v.length
	return nil
}
