// Package flowdesc parses IP flow descriptions as PFCP carries them in SDF
// filters: the IPFilterRule syntax of RFC 6733 as restricted by TS 29.212
// clause 5.4.2 (Flow-Description AVP):
//
//	permit out <proto> from <src> [<ports>] to <dst> [<ports>]
//
//	proto: "ip" (any protocol), a protocol number 0-255, or one of the
//	       names tcp, udp, icmp, icmpv6, sctp
//	src, dst: "any", "assigned" (the UE's address), an IPv4 or IPv6
//	       address, or address/prefix-length
//	ports: a comma separated list of ports and inclusive ranges "lo-hi"
//
// Only "permit out" is valid: TS 29.212 writes every flow description in the
// downlink sense, from the data network ("from") to the UE ("to"). Negation
// ("!") and IPFilterRule options (frag, established, tcpflags, ...) are not
// allowed by TS 29.212 and are refused, as is anything else the grammar
// does not name: Parse never guesses.
package flowdesc

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrSyntax marks a flow description that does not follow the grammar.
var ErrSyntax = errors.New("flow description syntax")

// PortRange is an inclusive range of transport ports.
type PortRange struct{ Lo, Hi uint16 }

// Endpoint is one side of a flow description.
type Endpoint struct {
	Any      bool         // "any"
	Assigned bool         // "assigned": the UE's address
	Prefix   netip.Prefix // otherwise; a bare address is a full-length prefix. Not masked: as written.
	Ports    []PortRange  // empty: any port
}

func (e Endpoint) String() string {
	var s string
	switch {
	case e.Any:
		s = "any"
	case e.Assigned:
		s = "assigned"
	case e.Prefix.IsSingleIP():
		s = e.Prefix.Addr().String()
	default:
		s = e.Prefix.String()
	}
	if len(e.Ports) > 0 {
		s += " " + formatPorts(e.Ports)
	}
	return s
}

// Filter is a parsed flow description.
type Filter struct {
	Protocol uint8 // IP protocol number; 0 = any ("ip")
	From     Endpoint
	To       Endpoint
}

// String renders the filter in canonical form; Parse(f.String()) == f.
func (f Filter) String() string {
	proto := "ip"
	if f.Protocol != 0 {
		proto = strconv.Itoa(int(f.Protocol))
	}
	return fmt.Sprintf("permit out %s from %s to %s", proto, f.From, f.To)
}

var protoNames = map[string]uint8{"ip": 0, "icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132}

// Parse parses a flow description.
func Parse(s string) (Filter, error) {
	var f Filter
	tok := strings.Fields(s)
	bad := func(format string, args ...any) (Filter, error) {
		return Filter{}, fmt.Errorf("%w: %q: %s", ErrSyntax, s, fmt.Sprintf(format, args...))
	}
	if len(tok) < 7 {
		return bad("too short; want \"permit out <proto> from <src> [ports] to <dst> [ports]\"")
	}
	if !strings.EqualFold(tok[0], "permit") {
		return bad("action %q: only \"permit\" is allowed", tok[0])
	}
	if !strings.EqualFold(tok[1], "out") {
		return bad("direction %q: only \"out\" is allowed", tok[1])
	}
	if p, ok := protoNames[strings.ToLower(tok[2])]; ok {
		f.Protocol = p
	} else {
		n, err := strconv.ParseUint(tok[2], 10, 8)
		if err != nil {
			return bad("protocol %q: want ip, a name or a number 0-255", tok[2])
		}
		f.Protocol = uint8(n)
	}
	if !strings.EqualFold(tok[3], "from") {
		return bad("want \"from\", got %q", tok[3])
	}
	i := 4
	var err error
	if f.From, i, err = parseEndpoint(tok, i); err != nil {
		return bad("source: %v", err)
	}
	if i >= len(tok) || !strings.EqualFold(tok[i], "to") {
		return bad("want \"to\" after the source")
	}
	if f.To, i, err = parseEndpoint(tok, i+1); err != nil {
		return bad("destination: %v", err)
	}
	if i < len(tok) {
		return bad("unexpected %q (options are not supported)", strings.Join(tok[i:], " "))
	}
	return f, nil
}

func parseEndpoint(tok []string, i int) (Endpoint, int, error) {
	var e Endpoint
	if i >= len(tok) {
		return e, i, errors.New("missing address")
	}
	a := tok[i]
	switch {
	case strings.EqualFold(a, "any"):
		e.Any = true
	case strings.EqualFold(a, "assigned"):
		e.Assigned = true
	case strings.HasPrefix(a, "!"):
		return e, i, fmt.Errorf("negated address %q is not allowed", a)
	case strings.Contains(a, "/"):
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return e, i, fmt.Errorf("address %q: %w", a, err)
		}
		if p.Addr().Zone() != "" {
			return e, i, fmt.Errorf("address %q has a zone", a)
		}
		e.Prefix = p
	default:
		ad, err := netip.ParseAddr(a)
		if err != nil {
			return e, i, fmt.Errorf("address %q: %w", a, err)
		}
		if ad.Zone() != "" {
			return e, i, fmt.Errorf("address %q has a zone", a)
		}
		e.Prefix = netip.PrefixFrom(ad, ad.BitLen())
	}
	if e.Prefix.IsValid() && e.Prefix.Addr().Is4In6() {
		return e, i, fmt.Errorf("address %q is an IPv4-mapped IPv6 address", a)
	}
	i++
	if i < len(tok) && tok[i] != "" && tok[i][0] >= '0' && tok[i][0] <= '9' {
		ports, err := parsePorts(tok[i])
		if err != nil {
			return e, i, err
		}
		e.Ports = ports
		i++
	}
	return e, i, nil
}

func parsePorts(s string) ([]PortRange, error) {
	var out []PortRange
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		l, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q: want 0-65535", lo)
		}
		h := l
		if isRange {
			if h, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return nil, fmt.Errorf("port %q: want 0-65535", hi)
			}
			if h < l {
				return nil, fmt.Errorf("port range %q is empty", item)
			}
		}
		out = append(out, PortRange{uint16(l), uint16(h)})
	}
	return out, nil
}

func formatPorts(ps []PortRange) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		if p.Lo == p.Hi {
			parts[i] = strconv.Itoa(int(p.Lo))
		} else {
			parts[i] = fmt.Sprintf("%d-%d", p.Lo, p.Hi)
		}
	}
	return strings.Join(parts, ",")
}
