package enforcer

import (
	"fmt"
	"net/netip"

	"github.com/pine-upf/pine-upf/bpf"
)

// Direction of a rule or a packet.
type Direction uint8

const (
	Uplink   Direction = Direction(bpf.PineDirDIR_UL) // N3 in: GTP-U from the gNB
	Downlink Direction = Direction(bpf.PineDirDIR_DL) // N6 in: IP from the data network
)

func (d Direction) String() string {
	switch d {
	case Uplink:
		return "uplink"
	case Downlink:
		return "downlink"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Action a rule applies to the packets it matches.
type Action uint8

const (
	Forward Action = Action(bpf.PineActionACT_FORWARD)
	Drop    Action = Action(bpf.PineActionACT_DROP)
)

func (a Action) String() string {
	switch a {
	case Forward:
		return "forward"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Reason says why a packet left the datapath; every drop has one.
type Reason uint8

const (
	ReasonForward          = Reason(bpf.PineReasonR_FORWARD)
	ReasonPassOther        = Reason(bpf.PineReasonR_PASS_OTHER)
	ReasonPassControl      = Reason(bpf.PineReasonR_PASS_CONTROL)
	ReasonPassFragment     = Reason(bpf.PineReasonR_PASS_FRAGMENT)
	ReasonPassFIB          = Reason(bpf.PineReasonR_PASS_FIB)
	ReasonPassTTL          = Reason(bpf.PineReasonR_PASS_TTL)
	ReasonUnknownTEID      = Reason(bpf.PineReasonR_DROP_UNKNOWN_TEID)
	ReasonSpoofed          = Reason(bpf.PineReasonR_DROP_SPOOFED)
	ReasonNoRule           = Reason(bpf.PineReasonR_DROP_NO_RULE)
	ReasonGateClosed       = Reason(bpf.PineReasonR_DROP_GATE)
	ReasonRateExceeded     = Reason(bpf.PineReasonR_DROP_RATE)
	ReasonMalformed        = Reason(bpf.PineReasonR_DROP_MALFORMED)
	ReasonRuleDrop         = Reason(bpf.PineReasonR_DROP_ACTION)
	ReasonNoRoute          = Reason(bpf.PineReasonR_DROP_NO_ROUTE)
	NumReasons         int = int(bpf.PineReasonR_MAX)
)

var reasonNames = [...]string{
	ReasonForward:      "forward",
	ReasonPassOther:    "pass_other",
	ReasonPassControl:  "pass_control",
	ReasonPassFragment: "pass_fragment",
	ReasonPassFIB:      "pass_fib",
	ReasonPassTTL:      "pass_ttl_expired",
	ReasonUnknownTEID:  "unknown_teid",
	ReasonSpoofed:      "spoofed_source",
	ReasonNoRule:       "no_pine_rule",
	ReasonGateClosed:   "gate_closed",
	ReasonRateExceeded: "rate_exceeded",
	ReasonMalformed:    "malformed",
	ReasonRuleDrop:     "rule_drop",
	ReasonNoRoute:      "no_route",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// IsDrop reports whether packets with this reason are dropped.
func (r Reason) IsDrop() bool { return r >= ReasonUnknownTEID }

// Verdict is the XDP action a reason maps to.
func (r Reason) Verdict() XDPAction {
	switch {
	case r == ReasonForward:
		return XDPRedirect
	case r.IsDrop():
		return XDPDrop
	}
	return XDPPass
}

// XDPAction is an XDP program's return value.
type XDPAction uint32

const (
	XDPAborted  XDPAction = 0
	XDPDrop     XDPAction = 1
	XDPPass     XDPAction = 2
	XDPTx       XDPAction = 3
	XDPRedirect XDPAction = 4
)

func (a XDPAction) String() string {
	switch a {
	case XDPAborted:
		return "XDP_ABORTED"
	case XDPDrop:
		return "XDP_DROP"
	case XDPPass:
		return "XDP_PASS"
	case XDPTx:
		return "XDP_TX"
	case XDPRedirect:
		return "XDP_REDIRECT"
	}
	return fmt.Sprintf("XDP(%d)", uint32(a))
}

// PortRange is an inclusive range of transport ports.
type PortRange struct{ Lo, Hi uint16 }

func (p PortRange) Contains(port uint16) bool { return p.Lo <= port && port <= p.Hi }

// Tunnel is where downlink packets go: the gNB's GTP-U endpoint.
type Tunnel struct {
	PeerTEID uint32
	Peer     netip.Addr // outer destination; its family picks the outer IP version
	QFI      uint8      // carried in the PDU Session Container
}

// Rule authorizes (or explicitly drops) one PINE's traffic in one direction.
//
// A rule matches a packet of its session when the PINE address (the inner
// source uplink, the destination downlink) equals Addr, or Addr is not set
// (any address of the session); the protocol equals Protocol or Protocol is
// 0; and the PINE port lies in one of Ports, or Ports is empty. Wildcards
// nest: a rule with no Addr has no Protocol, a rule with no Protocol has no
// Ports. Of the matching rules the lowest Precedence wins, then the lowest
// ID. A packet that no rule matches is dropped.
type Rule struct {
	ID         uint32 // unique within the session (the PDR ID under PFCP)
	Precedence uint32
	Direction  Direction
	Addr       netip.Addr // the PINE's address; invalid = any address of the session
	Protocol   uint8      // IP protocol number; 0 = any
	Ports      []PortRange
	Action     Action
	QERs       []uint32 // IDs of the session's QERs applied, at most MaxQERsPerRule
	Tunnel     Tunnel   // downlink forwarding only
}

// QER is a QoS enforcement rule of a session, shared by the rules naming it.
type QER struct {
	ID           uint32
	ULGateClosed bool
	DLGateClosed bool
	ULMBR        uint64 // maximum bit rate, bits per second; 0 = none
	DLMBR        uint64
	ULBurst      uint32 // bucket size in bytes; 0 = DefaultBurst(rate)
	DLBurst      uint32
}

// Session is a PEGC's PDU session with the rules of its PINEs.
type Session struct {
	SEID  uint64       // the caller's identifier for the session
	TEIDs []uint32     // local TEIDs of its uplink tunnels
	UEv4  netip.Addr   // UE IPv4 address, if any
	UEv6  netip.Prefix // UE IPv6 prefix (delegated prefix), if any
	Rules []Rule
	QERs  []QER
}

// MaxQERsPerRule is how many QERs the datapath applies to one rule
// (a session AMBR and a flow MBR, say).
const MaxQERsPerRule = 2

// MaxMBR bounds a maximum bit rate (bits/s) so token arithmetic cannot overflow.
const MaxMBR = 100_000_000_000

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

func (c *Counter) add(o Counter) {
	c.Packets += o.Packets
	c.Bytes += o.Bytes
}

// SessionUsage is what a session forwarded and dropped, in inner IP bytes.
type SessionUsage struct {
	Forwarded [2]Counter // by Direction
	Dropped   [2]Counter // by Direction
}

// DenyEvent reports a dropped packet of an unauthorized PINE.
type DenyEvent struct {
	SEID      uint64
	TEID      uint32 // uplink only
	Addr      netip.Addr
	Port      uint16 // 0 when the packet has no ports
	Protocol  uint8
	Reason    Reason
	Direction Direction
	KernelNS  uint64 // bpf_ktime_get_ns at the drop
}

// Stats are the datapath's packet counters by direction and reason.
type Stats struct {
	Packets [2][]Counter // [Direction][Reason]; bytes are ingress frame bytes
	Events  EventStats
}

// EventStats count deny events.
type EventStats struct {
	Sent, Suppressed, Lost uint64
}

// DefaultBurst is the token bucket size, in bytes, for a maximum bit rate
// when none is given: 100 ms at that rate, and at least two full frames.
func DefaultBurst(mbr uint64) uint32 {
	b := mbr / 8 / 10
	if b < 3000 {
		b = 3000
	}
	if b > 1<<30 {
		b = 1 << 30
	}
	return uint32(b)
}

// BytesPerSecond is the token refill rate for a maximum bit rate: never
// zero for a non-zero rate, since zero means "no limit" in the datapath.
func BytesPerSecond(mbr uint64) uint64 {
	if mbr == 0 {
		return 0
	}
	return max(mbr/8, 1)
}
