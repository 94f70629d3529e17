package enforcer

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/pine-upf/pine-upf/bpf"
)

// session is the enforcer's record of an installed session.
type session struct {
	spec    Session
	sid     uint32
	gen     uint8
	levels  [2]uint8
	entries map[entryKey]bpf.PineRule
	ruleIDs map[uint32]uint32 // rule ID → rule_stats index
	qers    map[qerRef]qerSlot
	peers   map[netip.Addr]uint32 // tunnel peers its rules name → peers index
}

type qerRef struct {
	id  uint32
	dir Direction
}

type qerSlot struct {
	idx uint32
	val bpf.PineQer
}

func (s *session) ruleID(id uint32) uint32 { return s.ruleIDs[id] }

func (s *session) qerIndex(id uint32, dir Direction) uint32 {
	return s.qers[qerRef{id, dir}].idx
}

func (s *session) peerIndex(a netip.Addr) uint32 { return s.peers[a] }

// peerSlot is a tunnel peer address in the peers map, shared by sessions.
type peerSlot struct {
	idx  uint32
	refs int
}

// acquirePeer takes a reference on a peer address, writing it to the peers
// map when it is new.
func (e *Enforcer) acquirePeer(tx *txn, a netip.Addr) (uint32, error) {
	if ps, ok := e.peers[a]; ok {
		ps.refs++
		tx.onUndo(func() error { ps.refs--; return nil })
		return ps.idx, nil
	}
	idx, ok := e.peerIdx.alloc()
	if !ok {
		return 0, fmt.Errorf("tunnel peers: %w (%d in use)", ErrFull, e.cfg.MaxPeers-1)
	}
	if err := e.objs.Peers.Update(idx, bpf.PinePeer{Addr: a.As16()}, ebpf.UpdateAny); err != nil {
		e.peerIdx.release(idx)
		return 0, mapErr("write", "peers", err)
	}
	ps := &peerSlot{idx: idx, refs: 1}
	e.peers[a] = ps
	tx.onUndo(func() error { delete(e.peers, a); e.peerIdx.release(idx); return nil })
	return idx, nil
}

func (e *Enforcer) releasePeer(a netip.Addr) {
	ps, ok := e.peers[a]
	if !ok {
		return
	}
	if ps.refs--; ps.refs == 0 {
		delete(e.peers, a)
		e.peerIdx.release(ps.idx)
	}
}

func cloneSession(s Session) Session {
	s.TEIDs = slices.Clone(s.TEIDs)
	s.QERs = slices.Clone(s.QERs)
	s.Rules = slices.Clone(s.Rules)
	for i := range s.Rules {
		s.Rules[i].Ports = slices.Clone(s.Rules[i].Ports)
		s.Rules[i].QERs = slices.Clone(s.Rules[i].QERs)
	}
	if s.UEv6.IsValid() {
		s.UEv6 = s.UEv6.Masked()
	}
	return s
}

// qerValue is a QER's datapath form for one direction; the bucket starts full.
func qerValue(q *QER, dir Direction) bpf.PineQer {
	closed, mbr, burst := q.ULGateClosed, q.ULMBR, q.ULBurst
	if dir == Downlink {
		closed, mbr, burst = q.DLGateClosed, q.DLMBR, q.DLBurst
	}
	var v bpf.PineQer
	if closed {
		v.Flags = uint32(bpf.PineFlagsQER_F_GATE_CLOSED)
	}
	if rate := BytesPerSecond(mbr); rate > 0 {
		if burst == 0 {
			burst = DefaultBurst(mbr)
		}
		v.Rate = rate
		v.Cap = uint64(burst) * 1e9
		v.FillNs = v.Cap / rate
		v.Tokens = v.Cap
	}
	return v
}

func sessionValue(s *Session, gen uint8, levels [2]uint8) bpf.PineSession {
	v := bpf.PineSession{Gen: gen, Levels: levels}
	if s.UEv4.IsValid() {
		v.Flags |= uint8(bpf.PineFlagsSESS_F_V4)
		v.UeV4 = nativeEndianU32(s.UEv4.As4())
	}
	if s.UEv6.IsValid() {
		v.Flags |= uint8(bpf.PineFlagsSESS_F_V6)
		v.UeV6 = s.UEv6.Addr().As16()
		for i := 0; i < s.UEv6.Bits(); i++ {
			v.UeV6Mask[i/8] |= 0x80 >> (i % 8)
		}
	}
	return v
}

func ue6Key(p netip.Prefix) bpf.PineUe6Key {
	return bpf.PineUe6Key{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
}

// InstallSession installs a session with its rules, or replaces the
// installed session with the same SEID. The change is make-before-break:
// while it is applied every packet meets either the old rule set or the new
// one, never a mix and never an empty table. A change that fails leaves
// everything as it was.
func (e *Enforcer) InstallSession(s Session) error {
	_, err := e.ReplaceSession(s)
	return err
}

// ReplaceSession is InstallSession returning the final usage of the rules
// the change removed, read after they stopped matching: nothing they
// counted is lost to usage reporting.
func (e *Enforcer) ReplaceSession(s Session) (removed map[uint32]Counter, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.install(cloneSession(s))
}

// AddRule adds a rule to an installed session, or replaces the rule with
// the same ID.
func (e *Enforcer) AddRule(seid uint64, r Rule) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, ok := e.sessions[seid]
	if !ok {
		return fmt.Errorf("add rule %d: session %#x: %w", r.ID, seid, ErrNotFound)
	}
	s := cloneSession(old.spec)
	s.Rules = slices.DeleteFunc(s.Rules, func(x Rule) bool { return x.ID == r.ID })
	s.Rules = append(s.Rules, r)
	_, err := e.install(cloneSession(s))
	return err
}

// RemoveRule removes a rule from an installed session and returns its
// final usage.
func (e *Enforcer) RemoveRule(seid uint64, ruleID uint32) (Counter, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, ok := e.sessions[seid]
	if !ok {
		return Counter{}, fmt.Errorf("remove rule %d: session %#x: %w", ruleID, seid, ErrNotFound)
	}
	s := cloneSession(old.spec)
	n := len(s.Rules)
	s.Rules = slices.DeleteFunc(s.Rules, func(x Rule) bool { return x.ID == ruleID })
	if len(s.Rules) == n {
		return Counter{}, fmt.Errorf("remove rule %d of session %#x: %w", ruleID, seid, ErrNotFound)
	}
	removed, err := e.install(s)
	return removed[ruleID], err
}

// install applies s under e.mu and returns the final usage of rules it removed.
func (e *Enforcer) install(s Session) (map[uint32]Counter, error) {
	if err := validateSession(&s, e.cfg.N3v4.IsValid(), e.cfg.N3v6.IsValid()); err != nil {
		return nil, err
	}
	if err := e.checkOwnership(&s); err != nil {
		return nil, err
	}
	old := e.sessions[s.SEID]
	tx := &txn{}
	ns, err := e.prepare(tx, old, &s)
	if err == nil {
		err = e.apply(tx, old, ns)
	}
	if err != nil {
		if rbErr := tx.rollback(); rbErr != nil {
			err = fmt.Errorf("%w (and rolling back: %v)", err, rbErr)
		}
		return nil, fmt.Errorf("install session %#x: %w", s.SEID, err)
	}
	return e.commit(old, ns), nil
}

// checkOwnership refuses TEIDs and UE addresses held by another session.
func (e *Enforcer) checkOwnership(s *Session) error {
	for _, t := range s.TEIDs {
		if o, ok := e.teids[t]; ok && o != s.SEID {
			return fmt.Errorf("session %#x: TEID %#x belongs to session %#x: %w", s.SEID, t, o, ErrConflict)
		}
	}
	if s.UEv4.IsValid() {
		if o, ok := e.ue4[s.UEv4]; ok && o != s.SEID {
			return fmt.Errorf("session %#x: UE address %s belongs to session %#x: %w", s.SEID, s.UEv4, o, ErrConflict)
		}
	}
	if s.UEv6.IsValid() {
		for p, o := range e.ue6 {
			if o != s.SEID && p.Overlaps(s.UEv6) {
				return fmt.Errorf("session %#x: UE prefix %s overlaps %s of session %#x: %w", s.SEID, s.UEv6, p, o, ErrConflict)
			}
		}
	}
	return nil
}

// prepare allocates indices and compiles the rule table of the new state.
func (e *Enforcer) prepare(tx *txn, old *session, s *Session) (*session, error) {
	ns := &session{spec: *s, ruleIDs: map[uint32]uint32{}, qers: map[qerRef]qerSlot{},
		peers: map[netip.Addr]uint32{}}
	if old != nil {
		ns.sid = old.sid
	} else {
		sid, ok := e.sids.alloc()
		if !ok {
			return nil, fmt.Errorf("sessions: %w (%d installed)", ErrFull, e.cfg.MaxSessions)
		}
		tx.onUndo(func() error { e.sids.release(sid); return nil })
		ns.sid = sid
	}
	for _, r := range s.Rules {
		if old != nil {
			if id, ok := old.ruleIDs[r.ID]; ok {
				ns.ruleIDs[r.ID] = id
				continue
			}
		}
		id, ok := e.ruleIDs.alloc()
		if !ok {
			return nil, fmt.Errorf("PINE rules: %w (%d installed)", ErrFull, e.cfg.MaxRules)
		}
		tx.onUndo(func() error { e.ruleIDs.release(id); return nil })
		ns.ruleIDs[r.ID] = id
	}
	used := map[qerRef]bool{}
	for _, r := range s.Rules {
		for _, q := range r.QERs {
			used[qerRef{q, r.Direction}] = true
		}
	}
	for i := range s.QERs {
		q := &s.QERs[i]
		for _, dir := range []Direction{Uplink, Downlink} {
			ref := qerRef{q.ID, dir}
			if !used[ref] {
				continue
			}
			val := qerValue(q, dir)
			if old != nil {
				if slot, ok := old.qers[ref]; ok && slot.val == val {
					ns.qers[ref] = slot
					continue
				}
			}
			// A changed QER gets a new index: the old rule set keeps its
			// own until the switch, and a failure has nothing to restore.
			idx, ok := e.qerIdx.alloc()
			if !ok {
				return nil, fmt.Errorf("QERs: %w (%d in use)", ErrFull, e.cfg.MaxQERs)
			}
			tx.onUndo(func() error { e.qerIdx.release(idx); return nil })
			ns.qers[ref] = qerSlot{idx: idx, val: val}
		}
	}
	for _, r := range s.Rules {
		if r.Direction != Downlink || r.Action != Forward {
			continue
		}
		a := r.Tunnel.Peer.Unmap()
		if _, ok := ns.peers[a]; ok {
			continue
		}
		if old != nil {
			if idx, ok := old.peers[a]; ok {
				ns.peers[a] = idx
				continue
			}
		}
		idx, err := e.acquirePeer(tx, a)
		if err != nil {
			return nil, err
		}
		ns.peers[a] = idx
	}
	c := compileRules(s.Rules, ns)
	ns.entries, ns.levels = c.entries, c.levels
	return ns, nil
}

// apply writes the new state to the maps, recording how to undo each step.
func (e *Enforcer) apply(tx *txn, old, ns *session) error {
	if err := e.writeQERs(tx, old, ns); err != nil {
		return err
	}
	if err := e.zeroNewCounters(old, ns); err != nil {
		return err
	}
	switch {
	case old == nil:
		return e.applyNew(tx, ns)
	case inPlace(old, ns):
		ns.gen = old.gen
		return e.applyInPlace(tx, old, ns)
	default:
		ns.gen = old.gen ^ 1
		return e.applyFlip(tx, old, ns)
	}
}

// inPlace reports whether the change only adds and removes entries: then
// it is applied within the live generation (inserts most specific first,
// deletes most general first), which keeps each packet's verdict either
// old or new. When an entry's winner changes, a new generation is written
// and switched to at once.
func inPlace(old, ns *session) bool {
	for k, v := range ns.entries {
		if ov, ok := old.entries[k]; ok && ov != v {
			return false
		}
	}
	return true
}

// writeQERs writes the QERs the new state holds alone, in one batch. Their
// indices are fresh, so no reader uses them yet.
func (e *Enforcer) writeQERs(tx *txn, old, ns *session) error {
	var keys []uint32
	var vals []bpf.PineQer
	for ref, slot := range ns.qers {
		if old != nil && old.qers[ref].idx == slot.idx {
			continue
		}
		keys, vals = append(keys, slot.idx), append(vals, slot.val)
	}
	if len(keys) == 0 {
		return nil
	}
	if _, err := e.objs.Qers.BatchUpdate(keys, vals, nil); err != nil {
		return mapErr("write", "qers", err)
	}
	return nil
}

// zeroNewCounters clears the counters of rule indices the new state takes,
// through the mmap'ed rule_stats: no syscall. A session's own counters are
// cleared when it is removed (resetSessionCounters), off this path.
func (e *Enforcer) zeroNewCounters(old, ns *session) error {
	var zero [16]byte
	for id, idx := range ns.ruleIDs {
		if old != nil {
			if _, ok := old.ruleIDs[id]; ok {
				continue
			}
		}
		for cpu := range uint32(ebpf.MustPossibleCPU()) {
			if _, err := e.ruleStats.WriteAt(zero[:], int64(cpu*e.cfg.MaxRules+idx)*16); err != nil {
				return fmt.Errorf("reset rule counter %d: %w", idx, err)
			}
		}
	}
	return nil
}

// resetSessionCounters clears a released sid's counters for its next owner.
func (e *Enforcer) resetSessionCounters(sid uint32) error {
	ncpu := ebpf.MustPossibleCPU()
	return errors.Join(
		mapErr("reset", "session_stats", e.objs.SessionStats.Update(sid, make([]bpf.PineSessStats, ncpu), ebpf.UpdateAny)),
		mapErr("reset", "event_limits", e.objs.EventLimits.Update(sid, make([]bpf.PineEvLimit, ncpu), ebpf.UpdateAny)),
	)
}

func (e *Enforcer) insertEntries(tx *txn, sid uint32, gen uint8, keys []entryKey, vals map[entryKey]bpf.PineRule) error {
	if len(keys) == 0 {
		return nil
	}
	mk := make([]bpf.PineRuleKey, len(keys))
	mv := make([]bpf.PineRule, len(keys))
	for i, k := range keys {
		mk[i], mv[i] = k.mapKey(sid, gen), vals[k]
	}
	tx.onUndo(func() error { return deleteKeys(e.objs.Rules, "rules", mk) })
	if _, err := e.objs.Rules.BatchUpdate(mk, mv, &ebpf.BatchOptions{}); err != nil {
		return mapErr("insert into", "rules", err)
	}
	return nil
}

func (e *Enforcer) deleteEntries(sid uint32, gen uint8, keys []entryKey) error {
	mk := make([]bpf.PineRuleKey, len(keys))
	for i, k := range keys {
		mk[len(keys)-1-i] = k.mapKey(sid, gen) // most general first
	}
	return deleteKeys(e.objs.Rules, "rules", mk)
}

// writeSession writes a session's slot in place. Callers change one field
// group per write (see maps.h), so a racing reader never sees a harmful mix.
func (e *Enforcer) writeSession(tx *txn, ns *session, gen uint8, levels [2]uint8, prev *bpf.PineSession) error {
	v := sessionValue(&ns.spec, gen, levels)
	if err := e.objs.Sessions.Update(ns.sid, v, ebpf.UpdateAny); err != nil {
		return mapErr("write", "sessions", err)
	}
	tx.onUndo(func() error {
		if prev == nil {
			return e.objs.Sessions.Update(ns.sid, bpf.PineSession{}, ebpf.UpdateAny)
		}
		return e.objs.Sessions.Update(ns.sid, *prev, ebpf.UpdateAny)
	})
	return nil
}

func unionLevels(a, b [2]uint8) [2]uint8 { return [2]uint8{a[0] | b[0], a[1] | b[1]} }

// addresses is what routes packets to a session: TEIDs and UE addresses.
type addresses struct {
	teids []uint32
	ue4   []uint32
	ue6   []bpf.PineUe6Key
}

func sessionAddresses(s *Session) addresses {
	a := addresses{teids: slices.Clone(s.TEIDs)}
	if s.UEv4.IsValid() {
		a.ue4 = []uint32{nativeEndianU32(s.UEv4.As4())}
	}
	if s.UEv6.IsValid() {
		a.ue6 = []bpf.PineUe6Key{ue6Key(s.UEv6)}
	}
	return a
}

// minus is what a has and b lacks.
func (a addresses) minus(b addresses) addresses {
	return addresses{
		teids: slices.DeleteFunc(slices.Clone(a.teids), func(t uint32) bool { return slices.Contains(b.teids, t) }),
		ue4:   slices.DeleteFunc(slices.Clone(a.ue4), func(t uint32) bool { return slices.Contains(b.ue4, t) }),
		ue6:   slices.DeleteFunc(slices.Clone(a.ue6), func(t bpf.PineUe6Key) bool { return slices.Contains(b.ue6, t) }),
	}
}

func (e *Enforcer) insertAddresses(tx *txn, sid uint32, a addresses) error {
	for _, t := range a.teids {
		if err := e.objs.Teids.Update(t, sid, ebpf.UpdateNoExist); err != nil {
			return mapErr("insert into", "teids", err)
		}
		tx.onUndo(func() error { return e.objs.Teids.Delete(t) })
	}
	for _, u := range a.ue4 {
		if err := e.objs.UeV4.Update(u, sid, ebpf.UpdateNoExist); err != nil {
			return mapErr("insert into", "ue_v4", err)
		}
		tx.onUndo(func() error { return e.objs.UeV4.Delete(u) })
	}
	for _, u := range a.ue6 {
		if err := e.objs.UeV6.Update(u, sid, ebpf.UpdateNoExist); err != nil {
			return mapErr("insert into", "ue_v6", err)
		}
		tx.onUndo(func() error { return e.objs.UeV6.Delete(u) })
	}
	return nil
}

func (e *Enforcer) deleteAddresses(a addresses) error {
	return errors.Join(
		deleteKeys(e.objs.Teids, "teids", a.teids),
		deleteKeys(e.objs.UeV4, "ue_v4", a.ue4),
		deleteKeys(e.objs.UeV6, "ue_v6", a.ue6),
	)
}

// applyNew: rules, then the session, then what routes packets to it.
func (e *Enforcer) applyNew(tx *txn, ns *session) error {
	if err := e.insertEntries(tx, ns.sid, ns.gen, sortedKeys(ns.entries), ns.entries); err != nil {
		return err
	}
	if err := e.writeSession(tx, ns, ns.gen, ns.levels, nil); err != nil {
		return err
	}
	return e.insertAddresses(tx, ns.sid, sessionAddresses(&ns.spec))
}

func (e *Enforcer) applyInPlace(tx *txn, old, ns *session) error {
	var added, removed []entryKey
	for _, k := range sortedKeys(ns.entries) {
		if _, ok := old.entries[k]; !ok {
			added = append(added, k)
		}
	}
	for _, k := range sortedKeys(old.entries) {
		if _, ok := ns.entries[k]; !ok {
			removed = append(removed, k)
		}
	}
	prev := sessionValue(&old.spec, old.gen, old.levels)
	// The level mask only lets lookups skip levels, so it widens first.
	if err := e.writeSession(tx, ns, ns.gen, unionLevels(old.levels, ns.levels), &prev); err != nil {
		return err
	}
	if err := e.insertEntries(tx, ns.sid, ns.gen, added, ns.entries); err != nil {
		return err
	}
	oldAddr, newAddr := sessionAddresses(&old.spec), sessionAddresses(&ns.spec)
	if err := e.insertAddresses(tx, ns.sid, newAddr.minus(oldAddr)); err != nil {
		return err
	}
	// Nothing below fails in practice; past here the change is not undone.
	tx.undo = nil
	return errors.Join(
		e.deleteEntries(ns.sid, ns.gen, removed),
		e.writeSession(tx, ns, ns.gen, ns.levels, nil),
		e.deleteAddresses(oldAddr.minus(newAddr)),
	)
}

func (e *Enforcer) applyFlip(tx *txn, old, ns *session) error {
	if err := e.insertEntries(tx, ns.sid, ns.gen, sortedKeys(ns.entries), ns.entries); err != nil {
		return err
	}
	oldAddr, newAddr := sessionAddresses(&old.spec), sessionAddresses(&ns.spec)
	if err := e.insertAddresses(tx, ns.sid, newAddr.minus(oldAddr)); err != nil {
		return err
	}
	// Widen the masks, switch the generation byte, narrow the masks: each
	// write changes one field group, each intermediate state is safe.
	prev := sessionValue(&old.spec, old.gen, old.levels)
	union := unionLevels(old.levels, ns.levels)
	if err := e.writeSession(tx, ns, old.gen, union, &prev); err != nil {
		return err
	}
	if err := e.writeSession(tx, ns, ns.gen, union, &prev); err != nil { // the switch
		return err
	}
	tx.undo = nil
	return errors.Join(
		e.deleteAddresses(oldAddr.minus(newAddr)),
		e.deleteEntries(ns.sid, old.gen, sortedKeys(old.entries)),
		e.writeSession(tx, ns, ns.gen, ns.levels, nil),
	)
}

// commit updates the bookkeeping and frees what the old state held alone.
func (e *Enforcer) commit(old, ns *session) map[uint32]Counter {
	removed := map[uint32]Counter{}
	if old != nil {
		for id, idx := range old.ruleIDs {
			if _, ok := ns.ruleIDs[id]; !ok {
				removed[id] = e.ruleUsage(idx)
				e.ruleIDs.release(idx)
			}
		}
		for ref, slot := range old.qers {
			if ns.qers[ref].idx != slot.idx {
				e.qerIdx.release(slot.idx)
			}
		}
		for a := range old.peers {
			if _, ok := ns.peers[a]; !ok {
				e.releasePeer(a)
			}
		}
		e.forgetAddresses(&old.spec)
	}
	e.remember(ns)
	return removed
}

// remember records an installed session and what it owns.
func (e *Enforcer) remember(s *session) {
	e.sessions[s.spec.SEID] = s
	e.bySID[s.sid] = s
	for _, t := range s.spec.TEIDs {
		e.teids[t] = s.spec.SEID
	}
	if s.spec.UEv4.IsValid() {
		e.ue4[s.spec.UEv4] = s.spec.SEID
	}
	if s.spec.UEv6.IsValid() {
		e.ue6[s.spec.UEv6] = s.spec.SEID
	}
}

func (e *Enforcer) forgetAddresses(s *Session) {
	for _, t := range s.TEIDs {
		delete(e.teids, t)
	}
	if s.UEv4.IsValid() {
		delete(e.ue4, s.UEv4)
	}
	if s.UEv6.IsValid() {
		delete(e.ue6, s.UEv6)
	}
}

// SessionReport is a removed session's final usage.
type SessionReport struct {
	Usage SessionUsage
	Rules map[uint32]Counter // by rule ID
}

// RemoveSession removes a session and all its rules: its traffic is dropped
// from then on (unknown TEID uplink, not a UE downlink). It returns the
// session's final usage.
func (e *Enforcer) RemoveSession(seid uint64) (SessionReport, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[seid]
	if !ok {
		return SessionReport{}, fmt.Errorf("remove session %#x: %w", seid, ErrNotFound)
	}
	// First what routes packets to it, so nothing reaches half a session.
	err := errors.Join(
		e.deleteAddresses(sessionAddresses(&s.spec)),
		e.objs.Sessions.Update(s.sid, bpf.PineSession{}, ebpf.UpdateAny), // flags 0: free
		e.deleteEntries(s.sid, s.gen, sortedKeys(s.entries)),
	)
	rep := SessionReport{Usage: e.sessionUsage(s.sid), Rules: map[uint32]Counter{}}
	for id, idx := range s.ruleIDs {
		rep.Rules[id] = e.ruleUsage(idx)
		e.ruleIDs.release(idx)
	}
	for _, slot := range s.qers {
		e.qerIdx.release(slot.idx)
	}
	for a := range s.peers {
		e.releasePeer(a)
	}
	err = errors.Join(err, e.resetSessionCounters(s.sid))
	e.sids.release(s.sid)
	e.forgetAddresses(&s.spec)
	delete(e.sessions, seid)
	delete(e.bySID, s.sid)
	if err != nil {
		return rep, fmt.Errorf("remove session %#x: %w", seid, err)
	}
	return rep, nil
}

// Session returns a copy of an installed session.
func (e *Enforcer) Session(seid uint64) (Session, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[seid]
	if !ok {
		return Session{}, false
	}
	return cloneSession(s.spec), true
}

// SEIDs lists the installed sessions.
func (e *Enforcer) SEIDs() []uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Sorted(maps.Keys(e.sessions))
}

// RuleEntries is how many rule table entries a session uses.
func (e *Enforcer) RuleEntries(seid uint64) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.sessions[seid]; ok {
		return len(s.entries)
	}
	return 0
}
