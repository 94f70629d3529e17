package refmodel

import (
	"net/netip"

	"github.com/pine-upf/pine-upf/enforcer"
)

// This file is the model's policy: sessions, anti-spoofing, PINE rules and
// QERs, from the domain types' declarative meaning rather than from the
// compiled map entries bpf/lookup.h and bpf/qos.h read.

// sessionByUE is session_by_ue: the UE IPv4 address (exact), or the
// longest UE IPv6 prefix holding the destination (the ue_v6 LPM trie).
func (m *Model) sessionByUE(p *pktInfo) *session {
	if !p.innerV6 {
		var a [4]byte
		copy(a[:], p.dst[12:])
		return m.byUEv4[a]
	}
	dst := netip.AddrFrom16(p.dst)
	var best *session
	for _, s := range m.sessions {
		pfx := s.UEv6.Masked()
		if !pfx.IsValid() || !pfx.Addr().Is6() || !pfx.Contains(dst) {
			continue
		}
		if best == nil || pfx.Bits() > best.UEv6.Bits() {
			best = s
		}
	}
	return best
}

// sourceAllowed is source_allowed: uplink anti-spoofing. IPv4 sources are
// compared as 4 bytes; an IPv6 source must lie in the session's prefix.
func (s *session) sourceAllowed(p *pktInfo) bool {
	if !p.innerV6 {
		ue, ok := v4Bytes(s.UEv4)
		return ok && [4]byte(p.src[12:]) == ue
	}
	pfx := s.UEv6.Masked()
	return pfx.IsValid() && pfx.Addr().Is6() && pfx.Contains(netip.AddrFrom16(p.src))
}

// pineAddr is the 16-byte datapath form of a PINE address as a netip.Addr;
// IPv4 (and IPv4-mapped IPv6, which the datapath cannot tell apart) unmapped.
func pineAddr(a [16]byte) netip.Addr { return netip.AddrFrom16(a).Unmap() }

// matches says whether rule r covers a packet of its session in dir whose
// PINE address and port are addr and port.
func matches(r *enforcer.Rule, dir enforcer.Direction, p *pktInfo, addr netip.Addr, port uint16) bool {
	if r.Direction != dir {
		return false
	}
	if r.Addr.IsValid() && r.Addr.WithZone("").Unmap() != addr {
		return false
	}
	if r.Protocol != 0 && r.Protocol != p.proto {
		return false
	}
	if len(r.Ports) == 0 {
		return true
	}
	if !p.hasPorts {
		return false
	}
	for _, pr := range r.Ports {
		if pr.Contains(port) {
			return true
		}
	}
	return false
}

// lookup is what rule_lookup finds when the enforcer compiled correctly:
// of the matching rules, the lowest Precedence, then the lowest ID.
func (s *session) lookup(dir enforcer.Direction, p *pktInfo, addr [16]byte, port uint16) *enforcer.Rule {
	pine := pineAddr(addr)
	var best *enforcer.Rule
	for i := range s.Rules {
		r := &s.Rules[i]
		if !matches(r, dir, p, pine, port) {
			continue
		}
		if best == nil || r.Precedence < best.Precedence ||
			(r.Precedence == best.Precedence && r.ID < best.ID) {
			best = r
		}
	}
	return best
}

// tunnelV6 is RULE_F_OUTER_V6: the peer's family picks the outer header.
// An IPv4-mapped peer is IPv4, as the datapath stores IPv4 that way.
func tunnelV6(t enforcer.Tunnel) bool {
	return t.Peer.IsValid() && !t.Peer.Unmap().Is4()
}

// qos is qos_apply: the rule's QERs in order; the first failing one
// decides, and earlier ones keep the tokens they took.
func (m *Model) qos(s *session, r *enforcer.Rule, dir enforcer.Direction, length int) enforcer.Reason {
	ids := r.QERs
	if len(ids) > enforcer.MaxQERsPerRule {
		ids = ids[:enforcer.MaxQERsPerRule]
	}
	for _, id := range ids {
		if ret := m.qerApply(s, id, dir, length); ret != cont {
			return ret
		}
	}
	return cont
}

// qerApply is qer_apply without refill: the bucket starts with burst bytes.
func (m *Model) qerApply(s *session, id uint32, dir enforcer.Direction, length int) enforcer.Reason {
	q := s.qers[id]
	if q == nil { // the datapath fails closed on a missing QER
		return enforcer.ReasonGateClosed
	}
	gate, mbr, burst := q.ULGateClosed, q.ULMBR, q.ULBurst
	if dir == enforcer.Downlink {
		gate, mbr, burst = q.DLGateClosed, q.DLMBR, q.DLBurst
	}
	if gate {
		return enforcer.ReasonGateClosed
	}
	if enforcer.BytesPerSecond(mbr) == 0 {
		return cont
	}
	if burst == 0 {
		burst = enforcer.DefaultBurst(mbr)
	}
	k := bucketKey{s, id, dir}
	tokens, seen := m.tokens[k]
	if !seen {
		tokens = uint64(burst)
	}
	if tokens < uint64(length) {
		m.tokens[k] = tokens
		return enforcer.ReasonRateExceeded
	}
	m.tokens[k] = tokens - uint64(length)
	return cont
}

// deny records the deny event the datapath tries to send (deny_event),
// before its per-session rate limit.
func (m *Model) deny(s *session, p *pktInfo, dir enforcer.Direction, reason enforcer.Reason, addr [16]byte, port uint16) {
	if !p.hasPorts {
		port = 0
	}
	m.events = append(m.events, enforcer.DenyEvent{
		SEID:      s.SEID,
		TEID:      p.teid,
		Addr:      pineAddr(addr),
		Port:      port,
		Protocol:  p.proto,
		Reason:    reason,
		Direction: dir,
	})
}
