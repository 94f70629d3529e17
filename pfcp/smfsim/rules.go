package smfsim

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule ID scheme.
//
// Every rule set the simulator installs belongs to a "slot" n: slot 0 is the
// PEGC's default rule, slot n (1..MaxPINEID) is PINE n. A slot owns
//
//	PDR  2n+1 (uplink, Source Interface ACCESS)   PDR  2n+2 (downlink, Source Interface CORE)
//	FAR  2n+1 (FORW to CORE)                      FAR  2n+2 (FORW to ACCESS, Outer Header Creation to the gNB)
//	QER  n+1  (gate and MBR, both directions, shared by both PDRs)
//	URR  n+1  (volume measurement, both directions, shared by both PDRs)
//
// so the default rule is PDR 1/2, FAR 1/2, QER 1, URR 1 and PINE 7 is
// PDR 15/16, FAR 15/16, QER 8, URR 8. The mapping is invertible (URR ID - 1 is
// the PINE ID of a usage report) and IDs never collide between PINEs. PDR IDs
// are 16 bits wide, hence MaxPINEID.
const MaxPINEID = 32766

// PDRIDs returns the uplink and downlink PDR IDs of slot n (0 = default rule).
func PDRIDs(n uint16) (ul, dl uint16) { return 2*n + 1, 2*n + 2 }

// FARIDs returns the uplink and downlink FAR IDs of slot n.
func FARIDs(n uint16) (ul, dl uint32) { return 2*uint32(n) + 1, 2*uint32(n) + 2 }

// QERID returns the QER ID of slot n.
func QERID(n uint16) uint32 { return uint32(n) + 1 }

// URRID returns the URR ID of slot n.
func URRID(n uint16) uint32 { return uint32(n) + 1 }

// SlotOfURR inverts URRID: 0 is the default rule, n > 0 is PINE n. ok is false
// for IDs outside the scheme.
func SlotOfURR(urr uint32) (n uint16, ok bool) {
	if urr == 0 || urr > MaxPINEID+1 {
		return 0, false
	}
	return uint16(urr - 1), true
}

// PortRange is an inclusive range of transport ports; Lo == Hi is one port.
type PortRange struct {
	Lo, Hi uint16
}

// String renders the range the way TS 29.212 flow descriptions write it:
// "5000" or "5000-5009".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// ParsePortRange parses "5000" or "5000-5009".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	l, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w", s, err)
	}
	r := PortRange{Lo: uint16(l), Hi: uint16(l)}
	if isRange {
		h, err := strconv.ParseUint(hi, 10, 16)
		if err != nil {
			return PortRange{}, fmt.Errorf("port range %q: %w", s, err)
		}
		r.Hi = uint16(h)
	}
	if r.Hi < r.Lo {
		return PortRange{}, fmt.Errorf("port range %q: end before start", s)
	}
	return r, nil
}

// FlowDescription returns the TS 29.212 §5.4.2 flow description of a PINE
// rule, written in the downlink direction as the spec requires (remote side
// "from any", the PINE "to <addr> [ports]"); the UPF swaps source and
// destination for PDRs whose Source Interface is ACCESS. proto 0 is "ip". A
// nil or zero ports value means any port. Examples:
//
//	permit out 17 from any to 10.45.0.2 5000-5009
//	permit out ip from any to 2001:db8:1:0:aa::2
func FlowDescription(addr netip.Addr, proto uint8, ports *PortRange) string {
	p := "ip"
	if proto != 0 {
		p = strconv.Itoa(int(proto))
	}
	s := fmt.Sprintf("permit out %s from any to %s", p, addr.Unmap())
	if ports != nil {
		s += " " + ports.String()
	}
	return s
}

// pineFlowDescriptions returns one flow description per port range (one SDF
// Filter IE each; the PDI matches if any of them matches), or a single
// description without ports when ports is empty.
func pineFlowDescriptions(p PINE) []string {
	if len(p.Ports) == 0 {
		return []string{FlowDescription(p.Addr, p.Proto, nil)}
	}
	out := make([]string, 0, len(p.Ports))
	for i := range p.Ports {
		out = append(out, FlowDescription(p.Addr, p.Proto, &p.Ports[i]))
	}
	return out
}

// bpsToKbps converts a bit rate in bit/s to the kbit/s unit of the PFCP MBR
// IE (TS 29.244 §8.2.8), rounding up so a non-zero rate never becomes 0.
func bpsToKbps(bps uint64) uint64 {
	return (bps + 999) / 1000
}
