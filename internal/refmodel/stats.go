package refmodel

import (
	"slices"

	"github.com/pine-upf/pine-upf/enforcer"
)

// The datapath's counters (bpf/stats.h), kept per run.

// countSession is session_count: forwarded and dropped packets of a known
// session, in inner IP bytes (0 when the inner header was not parsed);
// pass verdicts are not counted.
func (m *Model) countSession(s *session, dir enforcer.Direction, reason enforcer.Reason, innerLen int) {
	u := m.sessUsage[s.SEID]
	switch {
	case reason == enforcer.ReasonForward:
		u.Forwarded[dir].Packets++
		u.Forwarded[dir].Bytes += uint64(innerLen)
	case reason.IsDrop():
		u.Dropped[dir].Packets++
		u.Dropped[dir].Bytes += uint64(innerLen)
	default:
		return
	}
	m.sessUsage[s.SEID] = u
}

// countRule is the rule_stats update of a forwarded packet.
func (m *Model) countRule(s *session, r *enforcer.Rule, innerLen int) {
	k := ruleKey{s.SEID, r.ID}
	c := m.ruleUsage[k]
	c.Packets++
	c.Bytes += uint64(innerLen)
	m.ruleUsage[k] = c
}

// Stats are the packets and ingress frame bytes by direction and reason.
// Events stay zero: the model has no ring buffer or per-second budget (see
// DenyEvents).
func (m *Model) Stats() enforcer.Stats {
	var st enforcer.Stats
	for d := range m.stats {
		st.Packets[d] = slices.Clone(m.stats[d])
	}
	return st
}

// RuleUsage is what the rule forwarded: packets and inner IP bytes.
func (m *Model) RuleUsage(seid uint64, ruleID uint32) enforcer.Counter {
	return m.ruleUsage[ruleKey{seid, ruleID}]
}

// SessionUsage is what the session forwarded and dropped, in inner IP bytes.
func (m *Model) SessionUsage(seid uint64) enforcer.SessionUsage {
	return m.sessUsage[seid]
}

// DenyEvents are the deny events the datapath would send (spoofed source,
// no rule) in order, before its per-session rate limit. KernelNS is 0.
func (m *Model) DenyEvents() []enforcer.DenyEvent {
	return slices.Clone(m.events)
}
