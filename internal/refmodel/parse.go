package refmodel

import (
	"encoding/binary"

	"github.com/pine-upf/pine-upf/enforcer"
)

// This file mirrors bpf/parsing.h and the parsing half of bpf/gtpu.h: the
// same checks, in the same order, with the same reasons. Offsets are ints
// into the frame instead of pointers.

// cont is the model's CONTINUE: not a verdict yet.
const cont enforcer.Reason = 0xff

const (
	ethPIP     = 0x0800
	ethPIPv6   = 0x86dd
	ethP8021Q  = 0x8100
	ethP8021AD = 0x88a8

	ipprotoHopOpts  = 0
	ipprotoICMP     = 1
	ipprotoTCP      = 6
	ipprotoUDP      = 17
	ipprotoRouting  = 43
	ipprotoFragment = 44
	ipprotoAH       = 51
	ipprotoICMPv6   = 58
	ipprotoDstOpts  = 60
	ipprotoSCTP     = 132

	gtpuPort      = 2152
	gtpTypeGPDU   = 255
	gtpExtPSC     = 0x85
	gtpFlagsV1PT  = 0x30
	gtpFlagE      = 0x04
	gtpFlagsOpt   = 0x07
	maxVLAN       = 2
	maxGTPExt     = 4
	maxV6Ext      = 4
	ethHdrLen     = 14
	ipv4HdrLen    = 20
	ipv6HdrLen    = 40
	udpHdrLen     = 8
	gtpHdrLen     = 8
	gtpPSCHdrLen  = 16 // struct gtp_psc_hdr
	outerTTL      = 64
	csumChunk     = 512
	csumChunks    = 8
	dlMaxInnerOff = 64 // dec_inner_ttl's bound
)

// cursor is struct cursor: pos, and the two bounds of HAS().
type cursor struct {
	pos, end, limit int
}

// has is HAS(c, n).
func (c *cursor) has(n int) bool {
	return c.pos+n <= c.end && c.pos+n <= c.limit
}

// pktInfo is struct pkt.
type pktInfo struct {
	frameLen int
	teid     uint32
	innerOff int
	innerLen int // __u16: 0 until the inner IP header passed its length checks
	sport    uint16
	dport    uint16
	innerV6  bool
	proto    uint8
	hasPorts bool
	ttl      uint8
	qfi      uint8
	src, dst [16]byte // ::ffff:a.b.c.d for IPv4
}

func be16(b []byte, off int) uint16 { return binary.BigEndian.Uint16(b[off:]) }
func be32(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }

// addrFromV4 is addr_from_v4.
func addrFromV4(b []byte) (a [16]byte) {
	a[10], a[11] = 0xff, 0xff
	copy(a[12:], b[:4])
	return a
}

// parseEth is parse_eth: Ethernet and up to maxVLAN tags.
func parseEth(c *cursor, b []byte) (uint16, enforcer.Reason) {
	if !c.has(ethHdrLen) {
		return 0, enforcer.ReasonMalformed
	}
	proto := be16(b, c.pos+12)
	c.pos += ethHdrLen
	for range maxVLAN {
		if proto != ethP8021Q && proto != ethP8021AD {
			break
		}
		if !c.has(4) {
			return 0, enforcer.ReasonMalformed
		}
		proto = be16(b, c.pos+2)
		c.pos += 4
	}
	return proto, cont
}

// parseL4 is parse_l4.
func parseL4(c *cursor, b []byte, p *pktInfo) enforcer.Reason {
	need := 0
	switch p.proto {
	case ipprotoTCP:
		need, p.hasPorts = 20, true
	case ipprotoUDP:
		need, p.hasPorts = 8, true
	case ipprotoSCTP:
		need, p.hasPorts = 12, true
	case ipprotoICMP:
		if !p.innerV6 {
			need = 8
		}
	case ipprotoICMPv6:
		if p.innerV6 {
			need = 8
		}
	}
	if need == 0 {
		return cont
	}
	if !c.has(need) {
		return enforcer.ReasonMalformed
	}
	if p.hasPorts {
		if c.pos+4 > c.end {
			return enforcer.ReasonMalformed
		}
		p.sport = be16(b, c.pos)
		p.dport = be16(b, c.pos+2)
	}
	return cont
}

// parseInnerV4 is parse_inner_v4.
func parseInnerV4(c *cursor, b []byte, p *pktInfo) enforcer.Reason {
	if !c.has(ipv4HdrLen) {
		return enforcer.ReasonMalformed
	}
	ip := c.pos
	hl := int(b[ip]&0x0f) * 4
	tot := int(be16(b, ip+2))
	if hl < ipv4HdrLen || tot < hl || !c.has(tot) || !c.has(hl) {
		return enforcer.ReasonMalformed
	}
	p.innerLen = tot
	p.proto = b[ip+9]
	p.ttl = b[ip+8]
	p.src = addrFromV4(b[ip+12:])
	p.dst = addrFromV4(b[ip+16:])
	c.limit = c.pos + tot
	c.pos += hl
	// A non-first fragment has no transport header: no ports.
	if be16(b, ip+6)&0x1fff != 0 {
		return cont
	}
	return parseL4(c, b, p)
}

// isV6Ext is is_v6_ext.
func isV6Ext(nh uint8) bool {
	switch nh {
	case ipprotoHopOpts, ipprotoRouting, ipprotoDstOpts, ipprotoFragment, ipprotoAH:
		return true
	}
	return false
}

// parseInnerV6 is parse_inner_v6.
func parseInnerV6(c *cursor, b []byte, p *pktInfo) enforcer.Reason {
	if !c.has(ipv6HdrLen) {
		return enforcer.ReasonMalformed
	}
	ip := c.pos
	tot := ipv6HdrLen + int(be16(b, ip+4))
	if !c.has(tot) {
		return enforcer.ReasonMalformed
	}
	p.innerLen = tot & 0xffff // inner_len is a __u16 (only a >64 KiB frame could wrap it)
	p.ttl = b[ip+7]
	copy(p.src[:], b[ip+8:ip+24])
	copy(p.dst[:], b[ip+24:ip+40])
	c.limit = c.pos + tot
	c.pos += ipv6HdrLen
	nh := b[ip+6]

	for range maxV6Ext {
		if !isV6Ext(nh) {
			break
		}
		h := c.pos
		if !c.has(8) || h+8 > c.end {
			return enforcer.ReasonMalformed
		}
		var n int
		switch nh {
		case ipprotoFragment:
			n = 8
			if be16(b, h+2)&0xfff8 != 0 { // non-first fragment
				p.proto = b[h]
				return cont
			}
		case ipprotoAH:
			n = (int(b[h+1]) + 2) * 4
		default:
			n = (int(b[h+1]) + 1) * 8
		}
		if !c.has(n) {
			return enforcer.ReasonMalformed
		}
		nh = b[h]
		c.pos += n
	}
	if isV6Ext(nh) {
		return enforcer.ReasonMalformed
	}
	p.proto = nh
	return parseL4(c, b, p)
}

// parseInner is parse_inner: the version nibble picks the family.
func parseInner(c *cursor, b []byte, p *pktInfo) enforcer.Reason {
	if !c.has(1) || c.pos+1 > c.end {
		return enforcer.ReasonMalformed
	}
	p.innerOff = c.pos
	switch b[c.pos] >> 4 {
	case 4:
		return parseInnerV4(c, b, p)
	case 6:
		p.innerV6 = true
		return parseInnerV6(c, b, p)
	}
	return enforcer.ReasonMalformed
}

// parseOuterGTP is parse_outer_gtp: outer IP, UDP to 2152, the mandatory
// GTP-U header. It returns the message type.
func parseOuterGTP(c *cursor, b []byte, ethProto uint16, p *pktInfo) (uint8, enforcer.Reason) {
	var l3Payload int
	switch ethProto {
	case ethPIP:
		if !c.has(ipv4HdrLen) {
			return 0, enforcer.ReasonMalformed
		}
		ip := c.pos
		hl := int(b[ip]&0x0f) * 4
		tot := int(be16(b, ip+2))
		if b[ip]>>4 != 4 || hl < ipv4HdrLen || tot < hl || !c.has(tot) || !c.has(hl) {
			return 0, enforcer.ReasonMalformed
		}
		if b[ip+9] != ipprotoUDP {
			return 0, enforcer.ReasonPassOther
		}
		if be16(b, ip+6)&0x3fff != 0 { // MF or an offset
			return 0, enforcer.ReasonPassFragment
		}
		c.limit = c.pos + tot
		c.pos += hl
		l3Payload = tot - hl
	case ethPIPv6:
		if !c.has(ipv6HdrLen) {
			return 0, enforcer.ReasonMalformed
		}
		ip := c.pos
		l3Payload = int(be16(b, ip+4))
		if b[ip]>>4 != 6 || !c.has(ipv6HdrLen+l3Payload) {
			return 0, enforcer.ReasonMalformed
		}
		if b[ip+6] != ipprotoUDP {
			return 0, enforcer.ReasonPassOther
		}
		c.limit = c.pos + ipv6HdrLen + l3Payload
		c.pos += ipv6HdrLen
	default:
		return 0, enforcer.ReasonPassOther
	}

	udp := c.pos
	if !c.has(udpHdrLen) {
		return 0, enforcer.ReasonMalformed
	}
	if be16(b, udp+2) != gtpuPort {
		return 0, enforcer.ReasonPassOther
	}
	udpLen := int(be16(b, udp+4))
	if udpLen < udpHdrLen || udpLen > l3Payload {
		return 0, enforcer.ReasonMalformed
	}
	c.limit = c.pos + udpLen
	c.pos += udpHdrLen

	gh := c.pos
	if !c.has(gtpHdrLen) {
		return 0, enforcer.ReasonMalformed
	}
	if b[gh]&0xf0 != gtpFlagsV1PT {
		return 0, enforcer.ReasonMalformed
	}
	typ := b[gh+1]
	if typ != gtpTypeGPDU {
		return typ, cont
	}
	gtpLen := int(be16(b, gh+2))
	if !c.has(gtpHdrLen + gtpLen) {
		return 0, enforcer.ReasonMalformed
	}
	p.teid = be32(b, gh+4)
	c.limit = c.pos + gtpHdrLen + gtpLen
	c.pos += gtpHdrLen
	return typ, cont
}

// parseGTPExt is parse_gtp_ext: the optional fields and up to maxGTPExt
// extension headers; the QFI of a PDU Session Container.
func parseGTPExt(c *cursor, b []byte, flags uint8, p *pktInfo) enforcer.Reason {
	if flags&gtpFlagsOpt == 0 {
		return cont
	}
	opt := c.pos
	if !c.has(4) || opt+4 > c.end {
		return enforcer.ReasonMalformed
	}
	var next uint8
	if flags&gtpFlagE != 0 {
		next = b[opt+3]
	}
	c.pos += 4

	for range maxGTPExt {
		if next == 0 {
			return cont
		}
		e := c.pos
		if !c.has(4) || e+4 > c.end {
			return enforcer.ReasonMalformed
		}
		n := int(b[e]) * 4
		if n == 0 || !c.has(n) {
			return enforcer.ReasonMalformed
		}
		if next == gtpExtPSC {
			p.qfi = b[e+2] & 0x3f
		}
		c.pos += n
		if c.pos > c.end {
			return enforcer.ReasonMalformed
		}
		next = b[c.pos-1]
	}
	if next != 0 {
		return enforcer.ReasonMalformed
	}
	return cont
}
