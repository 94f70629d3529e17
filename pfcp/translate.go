package pfcp

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/wmnsk/go-pfcp/ie"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/pfcp/flowdesc"
)

// translation is a PFCP session as the datapath's one session.
type translation struct {
	spec         enforcer.Session
	remoteFilter bool // some SDF filter restricts the remote side (not enforced)
}

// translate turns the PFCP session into one enforcer.Session. It is pure:
// it reads the session and the configuration, and changes nothing.
func (s *Server) translate(ss *session) (translation, *causeError) {
	var t translation
	t.spec.SEID = ss.seid
	pdrIDs := slices.Sorted(maps.Keys(ss.pdrs))

	// UE addresses: every PDR naming one must agree.
	for _, id := range pdrIDs {
		p := ss.pdrs[id]
		if p.ueV4.IsValid() {
			if t.spec.UEv4.IsValid() && t.spec.UEv4 != p.ueV4 {
				return t, pdrFail(p, "UE IPv4 address %s differs from %s of another PDR", p.ueV4, t.spec.UEv4)
			}
			t.spec.UEv4 = p.ueV4
		}
		if p.ueV6.IsValid() {
			if t.spec.UEv6.IsValid() && t.spec.UEv6 != p.ueV6 {
				return t, pdrFail(p, "UE IPv6 prefix %s differs from %s of another PDR", p.ueV6, t.spec.UEv6)
			}
			t.spec.UEv6 = p.ueV6
		}
	}

	teids := map[uint32]bool{}
	for _, id := range pdrIDs {
		p := ss.pdrs[id]
		if p.fteid.set && !teids[p.fteid.teid] {
			teids[p.fteid.teid] = true
			t.spec.TEIDs = append(t.spec.TEIDs, p.fteid.teid)
		}
		rules, remote, ce := s.pdrRules(ss, p, &t.spec)
		if ce != nil {
			return t, ce
		}
		t.remoteFilter = t.remoteFilter || remote
		t.spec.Rules = append(t.spec.Rules, rules...)
		if max := s.cfg.MaxRulesPerSession; len(t.spec.Rules) > max {
			return t, pdrFail(p, "session needs more than %d PINE rules (MaxRulesPerSession)", max)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(ss.qers)) {
		q := ss.qers[id]
		t.spec.QERs = append(t.spec.QERs, enforcer.QER{
			ID:           q.id,
			ULGateClosed: q.ulGate != 0, // 1 closed; 2 and 3 (spare) count as closed
			DLGateClosed: q.dlGate != 0,
			ULMBR:        q.ulMBR,
			DLMBR:        q.dlMBR,
		})
	}
	return t, nil
}

func pdrFail(p pdrState, format string, args ...any) *causeError {
	return fail(ie.CauseRuleCreationModificationFailure, p.op, "PDR %d: %s", p.id, fmt.Sprintf(format, args...)).rule(ie.RuleIDTypePDR, uint32(p.id))
}

func farFail(f farState, format string, args ...any) *causeError {
	return fail(ie.CauseRuleCreationModificationFailure, f.op, "FAR %d: %s", f.id, fmt.Sprintf(format, args...)).rule(ie.RuleIDTypeFAR, f.id)
}

// pdrRules translates one PDR: one rule per SDF filter (ID pdrID<<8 |
// filter index), or one rule for any address of the session.
func (s *Server) pdrRules(ss *session, p pdrState, spec *enforcer.Session) ([]enforcer.Rule, bool, *causeError) {
	base := enforcer.Rule{Precedence: p.precedence}
	switch p.source {
	case ifaceAccess:
		base.Direction = enforcer.Uplink
		if p.ohr >= 0 && !slices.Contains(ohrAccepted, p.ohr) {
			return nil, false, pdrFail(p, "outer header removal %d: only GTP-U/UDP/IP (0, 1, 6) is supported", p.ohr)
		}
	default:
		base.Direction = enforcer.Downlink
		if p.ohr >= 0 {
			return nil, false, pdrFail(p, "outer header removal on a downlink PDR is not supported")
		}
	}
	f, ok := ss.fars[p.farID]
	if !ok {
		return nil, false, pdrFail(p, "FAR %d does not exist", p.farID)
	}
	switch {
	case f.forw:
		base.Action = enforcer.Forward
	case f.drop, f.buff: // the datapath cannot hold packets: BUFF drops
		base.Action = enforcer.Drop
	default:
		return nil, false, farFail(f, "apply action has none of FORW, DROP, BUFF")
	}
	for _, id := range p.urrIDs {
		u, ok := ss.urrs[id]
		if !ok {
			return nil, false, pdrFail(p, "URR %d does not exist", id)
		}
		if u.quotaExhausted {
			base.Action = enforcer.Drop // volume quota used up: stop forwarding
		}
	}
	if len(p.qerIDs) > enforcer.MaxQERsPerRule {
		return nil, false, pdrFail(p, "%d QERs, the datapath applies at most %d per rule", len(p.qerIDs), enforcer.MaxQERsPerRule)
	}
	qfi, hasQFI := uint8(0), false
	for _, id := range p.qerIDs {
		q, ok := ss.qers[id]
		if !ok {
			return nil, false, pdrFail(p, "QER %d does not exist", id)
		}
		if q.hasQFI {
			if hasQFI && q.qfi != qfi {
				return nil, false, pdrFail(p, "QERs carry different QFIs (%d, %d)", qfi, q.qfi)
			}
			qfi, hasQFI = q.qfi, true
		}
	}
	base.QERs = slices.Clone(p.qerIDs)
	if f.ohc.set && base.Direction == enforcer.Uplink {
		return nil, false, farFail(f, "outer header creation on uplink (N9 forwarding) is not supported")
	}
	if base.Direction == enforcer.Downlink && base.Action == enforcer.Forward {
		if !f.ohc.set {
			return nil, false, farFail(f, "downlink forwarding needs outer header creation GTP-U")
		}
		tun := enforcer.Tunnel{PeerTEID: f.ohc.teid, QFI: qfi}
		switch {
		case f.ohc.desc&ohcGTPUv4 != 0 && f.ohc.v4.IsValid() && (s.cfg.N3v4.IsValid() || f.ohc.desc&ohcGTPUv6 == 0):
			tun.Peer = f.ohc.v4
		case f.ohc.desc&ohcGTPUv6 != 0 && f.ohc.v6.IsValid():
			tun.Peer = f.ohc.v6
		default:
			return nil, false, farFail(f, "outer header creation without a usable peer address")
		}
		base.Tunnel = tun
	}
	if len(p.filters) == 0 {
		r := base
		r.ID = uint32(p.id) << 8
		return []enforcer.Rule{r}, false, nil
	}
	rules := make([]enforcer.Rule, 0, len(p.filters))
	remote := false
	for i, sf := range p.filters {
		r := base
		r.ID = uint32(p.id)<<8 | uint32(i)
		if ce := pineSide(&r, sf.filter, spec); ce != nil {
			return nil, false, pdrFail(p, "SDF filter %q: %v", sf.desc, ce)
		}
		if !sf.filter.From.Any || len(sf.filter.From.Ports) > 0 {
			remote = true
		}
		rules = append(rules, r)
	}
	return rules, remote, nil
}

type pineErr string

func (e pineErr) Error() string { return string(e) }

// pineSide sets a rule's PINE address, protocol and ports from the "to"
// side of a flow description: flow descriptions are written from the data
// network to the UE, and for ACCESS PDRs source and destination swap, so
// in both directions "to" is the PINE. Whatever the datapath cannot
// express exactly is an error, never an approximation.
func pineSide(r *enforcer.Rule, f flowdesc.Filter, spec *enforcer.Session) error {
	to := f.To
	family := 0 // 4 or 6 when the filter names an address family
	for _, e := range []flowdesc.Endpoint{f.From, f.To} {
		if e.Prefix.IsValid() {
			fam := 6
			if e.Prefix.Addr().Is4() {
				fam = 4
			}
			if family != 0 && family != fam {
				return pineErr("mixes IPv4 and IPv6 addresses")
			}
			family = fam
		}
	}
	if len(to.Ports) > 0 {
		switch f.Protocol {
		case 6, 17, 132:
		default:
			return pineErr(fmt.Sprintf("ports need protocol TCP, UDP or SCTP, not %d", f.Protocol))
		}
	}
	hasV4, hasV6 := spec.UEv4.IsValid(), spec.UEv6.IsValid()
	// What the "to" side covers of the session's addresses.
	var v4, v6 bool      // the UE IPv4 address / the whole UE IPv6 prefix
	var exact netip.Addr // or a single address
	switch {
	case to.Any || to.Assigned:
		v4 = hasV4 && family != 6
		v6 = hasV6 && family != 4
		if !v4 && !v6 {
			return pineErr(fmt.Sprintf("%s: the session has no UE address of that family", to))
		}
	case to.Prefix.IsSingleIP():
		exact = to.Prefix.Addr()
	case hasV6 && to.Prefix.Masked() == spec.UEv6:
		v6 = true
	default:
		return pineErr(fmt.Sprintf("PINE prefix %s: only single addresses or the session's whole UE prefix", to.Prefix))
	}
	specific := f.Protocol != 0 || len(to.Ports) > 0
	if !exact.IsValid() {
		all := v4 == hasV4 && v6 == hasV6
		switch {
		case all && !specific:
			return nil // any address of the session
		case v4 && !v6:
			exact = spec.UEv4
		case v6 && !v4 && spec.UEv6.Bits() == 128:
			exact = spec.UEv6.Addr()
		case !specific:
			return pineErr(fmt.Sprintf("%s covers only part of the session's addresses (%s, %s)", to, spec.UEv4, spec.UEv6))
		default:
			return pineErr(fmt.Sprintf("%s with a protocol or ports names more than one PINE address", to))
		}
	}
	r.Addr = exact
	r.Protocol = f.Protocol
	for _, pr := range to.Ports {
		r.Ports = append(r.Ports, enforcer.PortRange{Lo: pr.Lo, Hi: pr.Hi})
	}
	slices.SortFunc(r.Ports, func(a, b enforcer.PortRange) int { return cmp.Compare(a.Lo, b.Lo) })
	return nil
}
