package refmodel

import (
	"encoding/binary"
	"net/netip"

	"github.com/pine-upf/pine-upf/enforcer"
)

// This file mirrors gtp_decap, gtp_encap and udp6_csum (bpf/gtpu.h),
// fib_forward and dec_inner_ttl (bpf/forward.h) and bpf/csum.h.

// xdpHeadroom is the headroom BPF_PROG_TEST_RUN gives an XDP frame
// (XDP_PACKET_HEADROOM): how far bpf_xdp_adjust_head can grow the frame.
const xdpHeadroom = 256

// adjustHead is bpf_xdp_adjust_head: delta > 0 strips bytes, delta < 0
// grows the frame (new bytes zero here; the program overwrites them all).
// It fails, leaving the frame alone, when the headroom is exceeded or fewer
// than an Ethernet header's bytes would remain.
func (x *run) adjustHead(delta int) bool {
	if -delta > xdpHeadroom || len(x.buf)-delta < ethHdrLen {
		return false
	}
	if delta >= 0 {
		x.buf = x.buf[delta:]
		return true
	}
	nb := make([]byte, len(x.buf)-delta)
	copy(nb[-delta:], x.buf)
	x.buf = nb
	return true
}

// decap is gtp_decap: strip everything before the inner IP header, keep
// the ingress MACs, set the ethertype.
func (x *run) decap() enforcer.Reason {
	if len(x.buf) < ethHdrLen {
		return enforcer.ReasonMalformed
	}
	var macs [12]byte
	copy(macs[:], x.buf)
	if !x.adjustHead(x.p.innerOff - ethHdrLen) {
		return enforcer.ReasonMalformed
	}
	if len(x.buf) < ethHdrLen {
		return enforcer.ReasonMalformed
	}
	copy(x.buf, macs[:])
	proto := uint16(ethPIP)
	if x.p.innerV6 {
		proto = ethPIPv6
	}
	binary.BigEndian.PutUint16(x.buf[12:], proto)
	return cont
}

// encap is gtp_encap: replace everything before the inner IP header with
// Ethernet (ingress MACs) + outer IP + UDP + GTP-U + PDU Session Container.
func (x *run) encap(cfg Config, t enforcer.Tunnel, v6 bool) enforcer.Reason {
	l3 := ipv4HdrLen
	if v6 {
		l3 = ipv6HdrLen
	}
	hdr := l3 + udpHdrLen + gtpPSCHdrLen
	udpLen := udpHdrLen + gtpPSCHdrLen + x.p.innerLen

	if len(x.buf) < ethHdrLen {
		return enforcer.ReasonMalformed
	}
	var macs [12]byte
	copy(macs[:], x.buf)
	if !x.adjustHead(x.p.innerOff - ethHdrLen - hdr) {
		return enforcer.ReasonMalformed
	}
	b := x.buf
	// The C checks room for the IPv6 variant whatever the family. It cannot
	// fail: the inner IP header alone is 20 bytes.
	if ethHdrLen+ipv6HdrLen+udpHdrLen+gtpPSCHdrLen > len(b) {
		return enforcer.ReasonMalformed
	}
	copy(b, macs[:])

	udp := ethHdrLen + l3
	if v6 {
		binary.BigEndian.PutUint16(b[12:], ethPIPv6)
		ip := b[ethHdrLen:]
		binary.BigEndian.PutUint32(ip, 0x60000000)
		binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
		ip[6] = ipprotoUDP
		ip[7] = outerTTL
		src := addr16(cfg.N3v6)
		copy(ip[8:24], src[:])
		peer := addr16(t.Peer)
		copy(ip[24:40], peer[:])
	} else {
		binary.BigEndian.PutUint16(b[12:], ethPIP)
		ip := b[ethHdrLen:]
		ip[0] = 0x45
		ip[1] = 0
		binary.BigEndian.PutUint16(ip[2:], uint16(ipv4HdrLen+udpLen))
		binary.BigEndian.PutUint16(ip[4:], 0) // id
		binary.BigEndian.PutUint16(ip[6:], 0) // frag_off
		ip[8] = outerTTL
		ip[9] = ipprotoUDP
		binary.BigEndian.PutUint16(ip[10:], 0)
		src := addr16(cfg.N3v4)
		copy(ip[12:16], src[12:])
		peer := addr16(t.Peer)
		copy(ip[16:20], peer[12:])
		binary.BigEndian.PutUint16(ip[10:], checksum(0, ip[:ipv4HdrLen]))
	}
	binary.BigEndian.PutUint16(b[udp:], gtpuPort)
	binary.BigEndian.PutUint16(b[udp+2:], gtpuPort)
	binary.BigEndian.PutUint16(b[udp+4:], uint16(udpLen))
	binary.BigEndian.PutUint16(b[udp+6:], 0)

	g := b[udp+udpHdrLen:]
	g[0] = gtpFlagsV1PT | gtpFlagE
	g[1] = gtpTypeGPDU
	binary.BigEndian.PutUint16(g[2:], uint16(gtpPSCHdrLen-gtpHdrLen+x.p.innerLen))
	binary.BigEndian.PutUint32(g[4:], t.PeerTEID)
	binary.BigEndian.PutUint16(g[8:], 0) // seq
	g[10] = 0                            // N-PDU
	g[11] = gtpExtPSC
	g[12] = 1 // PSC length: 4 bytes
	g[13] = 0 // PDU type 0: DL PDU SESSION INFORMATION
	g[14] = t.QFI & 0x3f
	g[15] = 0 // no next extension

	if v6 {
		return x.udp6Csum(udp, udpLen)
	}
	return cont
}

// addr16 is the datapath's 16-byte form: ::ffff:a.b.c.d for IPv4, zero for
// an unset address.
func addr16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}

// udp6Csum is udp6_csum: the UDP checksum over IPv6, summed in 512-byte
// chunks of at most 8; a longer datagram is malformed (and keeps checksum
// 0, already written).
func (x *run) udp6Csum(udp, udpLen int) enforcer.Reason {
	b := x.buf
	ip := b[ethHdrLen:]
	var ph [40]byte
	copy(ph[0:32], ip[8:40])
	binary.BigEndian.PutUint32(ph[32:], uint32(udpLen))
	ph[39] = ipprotoUDP
	sum := sum16(0, ph[:])
	for i := range csumChunks {
		off := i * csumChunk
		if off >= udpLen {
			break
		}
		n := min(udpLen-off, csumChunk)
		if udp+off+n > len(b) { // bpf_xdp_load_bytes out of the frame
			return enforcer.ReasonMalformed
		}
		sum = sum16(sum, b[udp+off:udp+off+n])
	}
	if udpLen > csumChunk*csumChunks {
		return enforcer.ReasonMalformed
	}
	c := fold(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[udp+6:], c)
	return cont
}

// sum16 adds b to a one's complement sum as big-endian 16-bit words, an
// odd last byte padded with zero. Chunks start at even offsets, so summing
// them one after the other is summing the whole.
func sum16(sum uint64, b []byte) uint64 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1]) << 8
	}
	return sum
}

// fold is csum_fold: carry the sum into 16 bits and complement it. The
// result does not depend on the byte order the words were summed in.
func fold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// checksum is the Internet checksum of b (ipv4_csum when b is an IPv4
// header with a zero checksum field).
func checksum(sum uint64, b []byte) uint16 { return fold(sum16(sum, b)) }

// ipv4DecTTL is ipv4_dec_ttl, bit for bit. The BPF target is little-endian:
// the checksum is loaded as a little-endian u16 and bpf_htons(0x0100) is 1,
// so the arithmetic (including check >= 0xffff, which turns a result of
// 0xffff into 0) is done on the byte-swapped value, as on the kernel.
func ipv4DecTTL(ip []byte) {
	check := uint32(binary.LittleEndian.Uint16(ip[10:]))
	check += 0x0001 // bpf_htons(0x0100) on a little-endian target
	if check >= 0xffff {
		check++
	}
	binary.LittleEndian.PutUint16(ip[10:], uint16(check))
	ip[8]--
}

// decInnerTTL is dec_inner_ttl (downlink, before encapsulation).
func (x *run) decInnerTTL() enforcer.Reason {
	off := x.p.innerOff
	if off > dlMaxInnerOff {
		return enforcer.ReasonMalformed
	}
	if x.p.innerV6 {
		if off+ipv6HdrLen > len(x.buf) {
			return enforcer.ReasonMalformed
		}
		x.buf[off+7]--
		return cont
	}
	if off+ipv4HdrLen > len(x.buf) {
		return enforcer.ReasonMalformed
	}
	ipv4DecTTL(x.buf[off:])
	return cont
}

// route is the FIB: the longest prefix holding dst, the first on a tie.
func (m *Model) route(dst netip.Addr) (Route, bool) {
	var best Route
	found := false
	for _, r := range m.cfg.Routes {
		pfx := r.Prefix.Masked()
		if !pfx.IsValid() || !pfx.Contains(dst) {
			continue
		}
		if !found || pfx.Bits() > best.Prefix.Masked().Bits() {
			best, found = r, true
		}
	}
	return best, found
}

// fibForward is fib_forward: route the IP packet after the Ethernet header
// (the inner one uplink, the outer one downlink); on success decrement the
// TTL when decTTL (uplink), rewrite the MACs and redirect.
func (m *Model) fibForward(x *run, v6, decTTL, fallback bool) enforcer.Reason {
	b := x.buf
	var dst netip.Addr
	var totLen int
	if v6 {
		if ethHdrLen+ipv6HdrLen > len(b) {
			return enforcer.ReasonMalformed
		}
		totLen = ipv6HdrLen + int(be16(b, ethHdrLen+4))
		dst = netip.AddrFrom16([16]byte(b[ethHdrLen+24 : ethHdrLen+40]))
	} else {
		if ethHdrLen+ipv4HdrLen > len(b) {
			return enforcer.ReasonMalformed
		}
		totLen = int(be16(b, ethHdrLen+2))
		dst = netip.AddrFrom4([4]byte(b[ethHdrLen+16 : ethHdrLen+20]))
	}

	r, ok := m.route(dst)
	if !ok || r.Unreachable {
		return enforcer.ReasonNoRoute
	}
	if r.Hop == nil || (r.Hop.MTU > 0 && totLen > r.Hop.MTU) { // NO_NEIGH, FRAG_NEEDED
		if fallback {
			return enforcer.ReasonPassFIB
		}
		return enforcer.ReasonNoRoute
	}
	if decTTL {
		if v6 {
			b[ethHdrLen+7]--
		} else {
			ipv4DecTTL(b[ethHdrLen:])
		}
	}
	copy(b[0:6], r.Hop.DstMAC[:])
	copy(b[6:12], r.Hop.SrcMAC[:])
	x.ifindex = r.Hop.IfIndex
	return enforcer.ReasonForward
}
