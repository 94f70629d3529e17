package enforcer

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/pine-upf/pine-upf/bpf"
)

// ErrBadRule marks a rule or session the datapath cannot enforce as given.
var ErrBadRule = errors.New("bad rule")

// RuleError names the rule a refusal is about; it wraps ErrBadRule (or
// another sentinel), so errors.Is still works.
type RuleError struct {
	RuleID uint32
	Err    error
}

func (e *RuleError) Error() string { return e.Err.Error() }
func (e *RuleError) Unwrap() error { return e.Err }

// Levels of the rule table, most specific first (see bpf/consts.h).
const (
	levelPort     = uint8(bpf.PineLevelL_PORT)
	levelPort4096 = uint8(bpf.PineLevelL_PORT4096)
	levelProto    = uint8(bpf.PineLevelL_PROTO)
	levelAddr     = uint8(bpf.PineLevelL_ADDR)
	levelSession  = uint8(bpf.PineLevelL_SESSION)
)

// portBlockBits is the log2 of the port block size at each port level.
var portBlockBits = [...]uint8{0, 4, 8, 12}

func portMask(level uint8) uint16 { return uint16(0xffff << portBlockBits[level]) }

// entryKey is a rule table key without session and generation.
type entryKey struct {
	dir   Direction
	level uint8
	proto uint8
	addr  [16]byte
	port  uint16
}

func (k entryKey) mapKey(sid uint32, gen uint8) bpf.PineRuleKey {
	// RULE_META in bpf/consts.h.
	meta := gen<<7 | uint8(k.dir)<<6 | k.level
	return bpf.PineRuleKey{Sid: sid, Meta: meta, Proto: k.proto, Addr: k.addr, Port: k.port}
}

// ancestors lists the keys whose entries cover every packet k covers, from
// the nearest up to the session level, in a fixed array: compiling runs it
// for every entry of a session on every change.
func (k entryKey) ancestors() (out [levelSession]entryKey, n int) {
	up := k
	for l := k.level + 1; l <= levelSession; l++ {
		up.level = l
		switch {
		case l <= levelPort4096:
			up.port = k.port & portMask(l)
		case l == levelProto:
			up.port = 0
		case l == levelAddr:
			up.proto = 0
		case l == levelSession:
			up.addr = [16]byte{}
		}
		out[n] = up
		n++
	}
	return out, n
}

func addr16(a netip.Addr) [16]byte { return a.As16() }

// portBlocks splits an inclusive port range into aligned blocks of the
// sizes the datapath looks up (1, 16, 256, 4096), largest first.
func portBlocks(r PortRange) []struct {
	level uint8
	port  uint16
} {
	var out []struct {
		level uint8
		port  uint16
	}
	for p := uint32(r.Lo); p <= uint32(r.Hi); {
		level := uint8(0)
		for l := levelPort4096; l > levelPort; l-- {
			size := uint32(1) << portBlockBits[l]
			if p%size == 0 && p+size-1 <= uint32(r.Hi) {
				level = l
				break
			}
		}
		out = append(out, struct {
			level uint8
			port  uint16
		}{level, uint16(p)})
		p += uint32(1) << portBlockBits[level]
	}
	return out
}

// ruleKeys is where a rule's entries go in the rule table.
func ruleKeys(r *Rule) []entryKey {
	base := entryKey{dir: r.Direction}
	switch {
	case !r.Addr.IsValid():
		return []entryKey{{dir: r.Direction, level: levelSession}}
	case r.Protocol == 0:
		base.level, base.addr = levelAddr, addr16(r.Addr)
		return []entryKey{base}
	case len(r.Ports) == 0:
		base.level, base.addr, base.proto = levelProto, addr16(r.Addr), r.Protocol
		return []entryKey{base}
	}
	var keys []entryKey
	for _, pr := range r.Ports {
		for _, b := range portBlocks(pr) {
			keys = append(keys, entryKey{dir: r.Direction, level: b.level,
				proto: r.Protocol, addr: addr16(r.Addr), port: b.port})
		}
	}
	return keys
}

// validateSession checks what the datapath needs of a session and its rules.
func validateSession(s *Session, n3v4, n3v6 bool) error {
	if !s.UEv4.IsValid() && !s.UEv6.IsValid() {
		return fmt.Errorf("%w: session %#x has no UE address", ErrBadRule, s.SEID)
	}
	if s.UEv4.IsValid() && !s.UEv4.Is4() {
		return fmt.Errorf("%w: session %#x: UE IPv4 address %s is not IPv4", ErrBadRule, s.SEID, s.UEv4)
	}
	if s.UEv6.IsValid() && (!s.UEv6.Addr().Is6() || s.UEv6.Addr().Is4In6()) {
		return fmt.Errorf("%w: session %#x: UE IPv6 prefix %s is not IPv6", ErrBadRule, s.SEID, s.UEv6)
	}
	teids := map[uint32]bool{}
	for _, t := range s.TEIDs {
		if teids[t] {
			return fmt.Errorf("%w: session %#x lists TEID %#x twice", ErrBadRule, s.SEID, t)
		}
		teids[t] = true
	}
	qers := map[uint32]bool{}
	for _, q := range s.QERs {
		if qers[q.ID] {
			return fmt.Errorf("%w: session %#x: QER %d defined twice", ErrBadRule, s.SEID, q.ID)
		}
		qers[q.ID] = true
		if q.ULMBR > MaxMBR || q.DLMBR > MaxMBR {
			return fmt.Errorf("%w: QER %d: maximum bit rate above %d bit/s", ErrBadRule, q.ID, uint64(MaxMBR))
		}
	}
	ids := map[uint32]bool{}
	for i := range s.Rules {
		r := &s.Rules[i]
		if ids[r.ID] {
			return fmt.Errorf("%w: session %#x: rule %d defined twice", ErrBadRule, s.SEID, r.ID)
		}
		ids[r.ID] = true
		if err := validateRule(s, r, qers, n3v4, n3v6); err != nil {
			return err
		}
	}
	return nil
}

func validateRule(s *Session, r *Rule, qers map[uint32]bool, n3v4, n3v6 bool) error {
	bad := func(format string, args ...any) error {
		return &RuleError{RuleID: r.ID, Err: fmt.Errorf("%w: session %#x rule %d: %s", ErrBadRule, s.SEID, r.ID, fmt.Sprintf(format, args...))}
	}
	if r.Direction != Uplink && r.Direction != Downlink {
		return bad("direction %d", r.Direction)
	}
	if r.Action != Forward && r.Action != Drop {
		return bad("action %d", r.Action)
	}
	if r.Addr.IsValid() && !sessionOwns(s, r.Addr) {
		// A rule may only claim addresses of its own session (TR 33.882 KI#2).
		return bad("PINE address %s is not the session's UE address or in its prefix", r.Addr)
	}
	if !r.Addr.IsValid() && (r.Protocol != 0 || len(r.Ports) > 0) {
		return bad("a rule for any address must not name a protocol or ports")
	}
	if r.Protocol == 0 && len(r.Ports) > 0 {
		return bad("ports need a protocol")
	}
	for _, p := range r.Ports {
		if p.Lo > p.Hi {
			return bad("port range %d-%d is empty", p.Lo, p.Hi)
		}
	}
	if len(r.QERs) > MaxQERsPerRule {
		return bad("%d QERs, at most %d apply", len(r.QERs), MaxQERsPerRule)
	}
	for _, q := range r.QERs {
		if !qers[q] {
			return bad("QER %d is not defined in the session", q)
		}
	}
	if r.Direction == Downlink && r.Action == Forward {
		peer := r.Tunnel.Peer
		switch {
		case !peer.IsValid():
			return bad("downlink forwarding needs a tunnel peer")
		case peer.Unmap().Is4() && !n3v4:
			return bad("IPv4 tunnel peer %s but no N3 IPv4 address is configured", peer)
		case !peer.Unmap().Is4() && !n3v6:
			return bad("IPv6 tunnel peer %s but no N3 IPv6 address is configured", peer)
		case r.Tunnel.QFI > 63:
			return bad("QFI %d does not fit 6 bits", r.Tunnel.QFI)
		}
	}
	return nil
}

func sessionOwns(s *Session, a netip.Addr) bool {
	a = a.Unmap()
	if a.Is4() {
		return s.UEv4.IsValid() && a == s.UEv4
	}
	return s.UEv6.IsValid() && s.UEv6.Contains(a)
}

// ruleRefs resolves a domain rule to the datapath's indices.
type ruleRefs interface {
	ruleID(id uint32) uint32
	qerIndex(id uint32, dir Direction) uint32
	peerIndex(peer netip.Addr) uint32
}

// compiled is a session's rule table: every entry holds the winner among
// all rules whose entries cover it, so the datapath's first hit is final.
type compiled struct {
	entries map[entryKey]bpf.PineRule
	levels  [2]uint8 // per direction, bit L set when level L has entries
}

func better(a, b *Rule) bool {
	return cmp.Or(cmp.Compare(a.Precedence, b.Precedence), cmp.Compare(a.ID, b.ID)) < 0
}

func compileRules(rules []Rule, refs ruleRefs) compiled {
	own := map[entryKey]*Rule{} // best rule emitting exactly this key
	for i := range rules {
		r := &rules[i]
		for _, k := range ruleKeys(r) {
			if cur, ok := own[k]; !ok || better(r, cur) {
				own[k] = r
			}
		}
	}
	c := compiled{entries: make(map[entryKey]bpf.PineRule, len(own))}
	for k, win := range own {
		anc, n := k.ancestors()
		for _, a := range anc[:n] {
			if r, ok := own[a]; ok && better(r, win) {
				win = r
			}
		}
		c.entries[k] = datapathRule(win, refs)
		c.levels[k.dir] |= 1 << k.level
	}
	return c
}

func datapathRule(r *Rule, refs ruleRefs) bpf.PineRule {
	v := bpf.PineRule{RuleId: refs.ruleID(r.ID), Action: uint8(r.Action)}
	for i, q := range r.QERs {
		v.Qer[i] = refs.qerIndex(q, r.Direction)
	}
	if r.Direction == Downlink && r.Action == Forward {
		peer := r.Tunnel.Peer.Unmap()
		if !peer.Is4() {
			v.Flags |= uint8(bpf.PineFlagsRULE_F_OUTER_V6)
		}
		v.Teid = r.Tunnel.PeerTEID
		v.Peer = refs.peerIndex(peer)
		v.Qfi = r.Tunnel.QFI
	}
	return v
}

// sortedKeys orders keys most specific level first: inserts go in this
// order and deletes in the reverse, so that during an in-place change each
// packet meets either the old rule set's verdict or the new one's.
func sortedKeys(m map[entryKey]bpf.PineRule) []entryKey {
	keys := make([]entryKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b entryKey) int { return cmp.Compare(a.level, b.level) })
	return keys
}
