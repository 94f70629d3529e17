// Package pkt builds Ethernet frames for pine-upf tests: uplink GTP-U frames
// (as a gNB sends them on N3) and downlink IP frames (as they arrive on N6).
//
// Every header is produced by a gopacket layer (layers.Ethernet, Dot1Q,
// IPv4, IPv6 and its extension headers, UDP, TCP, SCTP, ICMP) serialized with
// FixLengths and ComputeChecksums; GTP-U is written by the small gopacket
// layers in gtpu.go, since layers.GTPv1U cannot express every chain a test
// needs (empty E-flagged chains, explicit extension lengths).
//
// A description is a plain struct whose zero fields take sensible defaults:
//
//	f := pkt.Uplink{
//		GTP:   pkt.GTP{TEID: 7, Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeUL, 9)}},
//		Inner: pkt.Inner{IP: pkt.IP{Src: ue, Dst: server}, Proto: pkt.TCP, SrcPort: 4000, DstPort: 443},
//	}.MustBuild()
//
// The returned Frame lists where each header starts and ends (Spans), so
// tests can find fields or truncate the frame at every header boundary.
package pkt

import (
	"net/netip"
	"slices"
)

// IP protocol numbers used as Inner.Proto.
const (
	ICMP   uint8 = 1
	TCP    uint8 = 6
	UDP    uint8 = 17
	ICMPv6 uint8 = 58
	SCTP   uint8 = 132
)

// IPv6 extension header types for V6Ext.Type.
const (
	HopByHop uint8 = 0
	Routing  uint8 = 43
	Fragment uint8 = 44
	AH       uint8 = 51
	DestOpts uint8 = 60
)

// GTP-U constants.
const (
	GTPUPort           uint16 = 2152
	GTPEchoRequest     uint8  = 1
	GTPEchoResponse    uint8  = 2
	GTPErrorIndication uint8  = 26
	GTPEndMarker       uint8  = 254
	GTPGPDU            uint8  = 255
	ExtPSC             uint8  = 0x85 // PDU Session Container (TS 38.415)
	PDUTypeDL          uint8  = 0
	PDUTypeUL          uint8  = 1
)

// VLAN tag protocol identifiers.
const (
	TPID8021Q  uint16 = 0x8100
	TPID8021AD uint16 = 0x88a8
)

// DefaultTTL is the TTL / hop limit of a header whose TTL field is 0.
const DefaultTTL = 64

// TTLZero, as IP.TTL, asks for a literal TTL (hop limit) of 0.
const TTLZero = -1

// Default addresses taken when a description leaves them unset.
var (
	DefaultSrcMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	DefaultDstMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	DefaultGNB    = netip.MustParseAddr("192.0.2.1") // outer source of uplink frames
	DefaultN3     = netip.MustParseAddr("192.0.2.2") // outer destination of uplink frames
)

// VLAN is one 802.1Q / 802.1ad tag.
type VLAN struct {
	TPID uint16 // TPID8021Q (the default when 0) or TPID8021AD
	ID   uint16 // 12 bits
	PCP  uint8  // priority, 3 bits
}

// L2 is the Ethernet header and its VLAN tags.
type L2 struct {
	Src, Dst [6]byte // zero: DefaultSrcMAC, DefaultDstMAC
	VLANs    []VLAN  // outermost first
}

// V6Ext is one IPv6 extension header.
type V6Ext struct {
	Type uint8 // HopByHop, DestOpts, Routing, Fragment, AH, or any other number
	// Len is the header's length field: the header is 8*(Len+1) bytes long
	// (AH: 4*(Len+2)). Fragment headers are always 8 bytes.
	Len        uint8
	FragOffset uint16 // Fragment: offset in 8-byte units (13 bits)
	MF         bool   // Fragment: more fragments follow
	ID         uint32 // Fragment: identification
}

// IP describes an IPv4 or IPv6 header; the family of the addresses picks it.
type IP struct {
	Src, Dst netip.Addr // same family; an IPv4-mapped IPv6 address is IPv6
	TTL      int        // TTL / hop limit: 0 = DefaultTTL, TTLZero = literal 0
	TOS      uint8      // IPv4 TOS / IPv6 traffic class
	// IPv4 only.
	ID         uint16
	DF, MF     bool
	FragOffset uint16 // in 8-byte units (13 bits)
	OptWords   int    // IPv4 option words (NOPs), IHL = 5 + OptWords
	// IPv6 only: extension headers in order; the last one's next header is
	// the payload protocol.
	Ext []V6Ext
}

// Inner is an IP packet: the T-PDU of an uplink frame, the whole packet of a
// downlink frame.
type Inner struct {
	IP
	Proto uint8 // IP protocol of the payload (after any IPv6 extension headers)
	// TCP, UDP, SCTP ports.
	SrcPort, DstPort uint16
	// ICMP / ICMPv6 type and code; type 0 means echo request (8 or 128).
	ICMPType, ICMPCode uint8
	// Bytes after the transport header (after the IP header for protocols
	// this package has no header for): Payload if set, else PayloadLen bytes
	// of a counting pattern.
	Payload    []byte
	PayloadLen int
}

// GTPExt is one GTP-U extension header.
type GTPExt struct {
	Type uint8 // its type: what the previous header's next-type byte says
	// Len is the length field in 4-byte units; 0 = the least that holds
	// Content. The header is Len*4 bytes: length, content, next type.
	Len     uint8
	Content []byte // zero-padded to Len*4-2 bytes
}

// PSC is a PDU Session Container extension header (TS 38.415) with the PDU
// type (PDUTypeDL, PDUTypeUL) and the QFI.
func PSC(pduType, qfi uint8) GTPExt {
	return GTPExt{Type: ExtPSC, Len: 1, Content: []byte{pduType << 4, qfi & 0x3f}}
}

// GTP is a GTP-U v1 header.
type GTP struct {
	Type uint8 // message type; 0 = GTPGPDU
	TEID uint32
	S    bool // sequence number present
	Seq  uint16
	PN   bool // N-PDU number present
	NPDU uint8
	E    bool // force the E flag (it is set anyway when Ext is not empty)
	Ext  []GTPExt
	// Payload is the message body when the frame has no inner packet
	// (echo, error indication, end marker ...).
	Payload []byte
}

// Uplink is a GTP-U frame from the gNB: Ethernet, outer IP, UDP, GTP-U,
// and the inner packet.
type Uplink struct {
	L2
	Outer            IP     // zero addresses: DefaultGNB -> DefaultN3
	SrcPort, DstPort uint16 // outer UDP ports; 0 = GTPUPort
	GTP              GTP
	Inner            Inner // absent when both addresses are unset
	InnerTrailer     int   // bytes inside the GTP-U message after the inner packet
	Trailer          int   // bytes after the outer IP packet
}

// Downlink is an IP frame from the data network: Ethernet and the inner
// packet.
type Downlink struct {
	L2
	Inner   Inner
	Trailer int // bytes after the IP packet
}

// Span is one header (or payload, trailer, padding) of a frame: bytes
// [Start, End).
type Span struct {
	Name       string
	Start, End int
}

// Span names. Indexed names carry their position: "vlan0", "gtpu-ext1",
// "inner-ext0".
const (
	SpanEth          = "eth"
	SpanVLAN         = "vlan"      // + index
	SpanOuterIP      = "outer-ip"  // uplink
	SpanOuterExt     = "outer-ext" // + index
	SpanUDP          = "udp"
	SpanGTPU         = "gtpu"     // the mandatory 8 bytes
	SpanGTPUOpt      = "gtpu-opt" // sequence number, N-PDU, next type
	SpanGTPUExt      = "gtpu-ext" // + index
	SpanGTPUPayload  = "gtpu-payload"
	SpanInnerIP      = "inner-ip"  // the uplink T-PDU or the downlink packet
	SpanInnerExt     = "inner-ext" // + index
	SpanL4           = "l4"
	SpanPayload      = "payload"
	SpanInnerTrailer = "inner-trailer"
	SpanTrailer      = "trailer"
	SpanPad          = "eth-pad" // what layers.Ethernet adds up to 60 bytes
)

// Frame is a built frame and where its headers are.
type Frame struct {
	Bytes []byte
	Spans []Span // in frame order, contiguous, covering Bytes
}

// Span returns the span called name.
func (f Frame) Span(name string) (Span, bool) {
	for _, s := range f.Spans {
		if s.Name == name {
			return s, true
		}
	}
	return Span{}, false
}

// Offset is where the span called name starts, -1 if there is none.
func (f Frame) Offset(name string) int {
	if s, ok := f.Span(name); ok {
		return s.Start
	}
	return -1
}

// Boundaries are the distinct offsets where spans start or end, ascending.
func (f Frame) Boundaries() []int {
	var b []int
	for _, s := range f.Spans {
		b = append(b, s.Start, s.End)
	}
	slices.Sort(b)
	return slices.Compact(b)
}

// Cuts are the lengths worth truncating the frame to: every boundary and
// the byte either side of it, shorter than the frame, ascending.
func (f Frame) Cuts() []int {
	var c []int
	for _, b := range f.Boundaries() {
		for _, n := range []int{b - 1, b, b + 1} {
			if n >= 0 && n < len(f.Bytes) {
				c = append(c, n)
			}
		}
	}
	slices.Sort(c)
	return slices.Compact(c)
}

// Truncated is a copy of the first n bytes of the frame.
func (f Frame) Truncated(n int) []byte {
	return slices.Clone(f.Bytes[:min(max(n, 0), len(f.Bytes))])
}
