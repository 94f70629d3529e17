package enforcer

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/pine-upf/pine-upf/bpf"
)

// State is the enforcer's bookkeeping: what a restarted process needs, with
// the pinned maps, to carry on managing the sessions it finds there. It is
// plain data, meant to be saved (as JSON, say) after every change.
type State struct {
	Sessions []SessionState
}

// SessionState is one installed session and the datapath indices it holds.
type SessionState struct {
	Session Session
	SID     uint32
	Gen     uint8
	RuleIDs map[uint32]uint32 // rule ID → rule counter index
	QERs    []QERState
	Peers   map[netip.Addr]uint32 // tunnel peer → peers index
}

// QERState is a datapath QER a session holds.
type QERState struct {
	ID        uint32
	Direction Direction
	Index     uint32
}

// Snapshot returns the bookkeeping, for Restore in a later process.
func (e *Enforcer) Snapshot() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	var st State
	for _, seid := range slices.Sorted(mapKeys(e.sessions)) {
		st.Sessions = append(st.Sessions, e.sessions[seid].state())
	}
	return st
}

// SnapshotSession returns one session's bookkeeping, as Snapshot has it:
// a caller saving per session pays for that session only. A State made of
// SessionStates taken at different times restores as well, as long as each
// is the latest of its session.
func (e *Enforcer) SnapshotSession(seid uint64) (SessionState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[seid]
	if !ok {
		return SessionState{}, false
	}
	return s.state(), true
}

func (s *session) state() SessionState {
	ss := SessionState{Session: cloneSession(s.spec), SID: s.sid, Gen: s.gen,
		RuleIDs: cloneMap(s.ruleIDs), Peers: cloneMap(s.peers)}
	for ref, slot := range s.qers {
		ss.QERs = append(ss.QERs, QERState{ID: ref.id, Direction: ref.dir, Index: slot.idx})
	}
	slices.SortFunc(ss.QERs, func(a, b QERState) int {
		return int(a.Index) - int(b.Index)
	})
	return ss
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ErrStateMismatch is returned when saved state and pinned maps disagree.
var ErrStateMismatch = errors.New("saved state does not match the pinned datapath")

// Restore takes over the sessions of a saved State, on maps adopted from
// PinDir, without touching what the datapath enforces for them; then it
// sweeps what belongs to no restored session (entries of removed sessions,
// an old generation half deleted when the last process died). It must be
// called on a fresh Enforcer, before any other change.
//
// A saved session whose slot the maps no longer hold (the last process
// removed it after saving) is not restored: it is in lost, and its
// leftovers are swept.
func (e *Enforcer) Restore(st State) (swept int, lost []uint64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sessions) > 0 {
		return 0, nil, errors.New("restore: the enforcer already has sessions")
	}
	used := struct{ sids, rules, qers, peers map[uint32]bool }{
		map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}}
	for _, ss := range st.Sessions {
		var live bpf.PineSession
		if ss.SID >= e.cfg.MaxSessions {
			return 0, nil, fmt.Errorf("restore session %#x: sid %d: %w", ss.Session.SEID, ss.SID, ErrStateMismatch)
		}
		if err := e.objs.Sessions.Lookup(ss.SID, &live); err != nil || live.Flags == 0 {
			lost = append(lost, ss.Session.SEID)
			continue
		}
		s := &session{spec: cloneSession(ss.Session), sid: ss.SID, gen: ss.Gen & 1,
			ruleIDs: cloneMap(ss.RuleIDs), qers: map[qerRef]qerSlot{}, peers: cloneMap(ss.Peers)}
		if err := validateSession(&s.spec, e.cfg.N3v4.IsValid(), e.cfg.N3v6.IsValid()); err != nil {
			return 0, nil, fmt.Errorf("restore session %#x: %w", s.spec.SEID, err)
		}
		if s.sid >= e.cfg.MaxSessions || used.sids[s.sid] {
			return 0, nil, fmt.Errorf("restore session %#x: sid %d: %w", s.spec.SEID, s.sid, ErrStateMismatch)
		}
		used.sids[s.sid] = true
		for _, idx := range s.ruleIDs {
			if idx >= e.cfg.MaxRules || used.rules[idx] {
				return 0, nil, fmt.Errorf("restore session %#x: rule index %d: %w", s.spec.SEID, idx, ErrStateMismatch)
			}
			used.rules[idx] = true
		}
		for _, q := range ss.QERs {
			if q.Index == 0 || q.Index >= e.cfg.MaxQERs || used.qers[q.Index] {
				return 0, nil, fmt.Errorf("restore session %#x: QER index %d: %w", s.spec.SEID, q.Index, ErrStateMismatch)
			}
			s.qers[qerRef{q.ID, q.Direction}] = qerSlot{idx: q.Index, val: qerValueOf(&s.spec, q)}
			used.qers[q.Index] = true
		}
		for a, idx := range s.peers {
			ps, ok := e.peers[a]
			if !ok {
				ps = &peerSlot{idx: idx}
				e.peers[a] = ps
				used.peers[idx] = true
			}
			ps.refs++
		}
		s.gen = live.Gen & 1 // the maps say which generation is live
		c := compileRules(s.spec.Rules, s)
		s.entries, s.levels = c.entries, c.levels
		e.remember(s)
	}
	e.sids = restoredAllocator(0, e.cfg.MaxSessions, used.sids)
	e.ruleIDs = restoredAllocator(0, e.cfg.MaxRules, used.rules)
	e.qerIdx = restoredAllocator(1, e.cfg.MaxQERs, used.qers)
	e.peerIdx = restoredAllocator(1, e.cfg.MaxPeers, used.peers)
	swept, err = e.sweep()
	return swept, lost, err
}

// qerValueOf recomputes a restored QER's datapath value from the session,
// so a later change can tell whether it changed.
func qerValueOf(s *Session, q QERState) bpf.PineQer {
	for i := range s.QERs {
		if s.QERs[i].ID == q.ID {
			return qerValue(&s.QERs[i], q.Direction)
		}
	}
	return bpf.PineQer{}
}

func restoredAllocator(first, limit uint32, used map[uint32]bool) *allocator {
	a := newAllocator(first, limit)
	for id := range used {
		a.next = max(a.next, id+1)
	}
	for id := first; id < a.next; id++ {
		if !used[id] {
			a.free = append(a.free, id)
		}
	}
	return a
}

// sweep deletes map entries no restored session owns, and makes sure each
// session's live entries are all there (rewriting any that are missing).
func (e *Enforcer) sweep() (int, error) {
	swept := 0
	var errs []error
	var teid, sid uint32
	var stale []uint32
	for it := e.objs.Teids.Iterate(); it.Next(&teid, &sid); {
		if s, ok := e.bySID[sid]; !ok || !slices.Contains(s.spec.TEIDs, teid) {
			stale = append(stale, teid)
		}
	}
	swept += len(stale)
	errs = append(errs, deleteKeys(e.objs.Teids, "teids", stale))

	var ue4 uint32
	stale = stale[:0]
	for it := e.objs.UeV4.Iterate(); it.Next(&ue4, &sid); {
		if _, ok := e.bySID[sid]; !ok {
			stale = append(stale, ue4)
		}
	}
	swept += len(stale)
	errs = append(errs, deleteKeys(e.objs.UeV4, "ue_v4", stale))

	var ue6 bpf.PineUe6Key
	var stale6 []bpf.PineUe6Key
	for it := e.objs.UeV6.Iterate(); it.Next(&ue6, &sid); {
		if _, ok := e.bySID[sid]; !ok {
			stale6 = append(stale6, ue6)
		}
	}
	swept += len(stale6)
	errs = append(errs, deleteKeys(e.objs.UeV6, "ue_v6", stale6))

	// Rule entries: exactly the restored sessions' live generation. This
	// also undoes a change the last process was making when it died (the
	// peer never got its answer and will ask again).
	expected := map[bpf.PineRuleKey]bool{}
	for _, s := range e.bySID {
		for k := range s.entries {
			expected[k.mapKey(s.sid, s.gen)] = true
		}
	}
	var rk bpf.PineRuleKey
	var rv bpf.PineRule
	var staleRules []bpf.PineRuleKey
	present := map[bpf.PineRuleKey]bool{}
	for it := e.objs.Rules.Iterate(); it.Next(&rk, &rv); {
		if !expected[rk] {
			staleRules = append(staleRules, rk)
		} else {
			present[rk] = true
		}
	}
	swept += len(staleRules)
	errs = append(errs, deleteKeys(e.objs.Rules, "rules", staleRules))

	var slot bpf.PineSession
	for id := range e.cfg.MaxSessions {
		if _, ok := e.bySID[id]; ok {
			continue
		}
		if err := e.objs.Sessions.Lookup(id, &slot); err == nil && slot.Flags != 0 {
			swept++
			errs = append(errs, e.objs.Sessions.Update(id, bpf.PineSession{}, ebpf.UpdateAny),
				e.resetSessionCounters(id))
		}
	}

	// What the live sessions need must be there: insert what is missing
	// (nothing, when the last process finished its change), then set the
	// level masks for exactly what is left.
	for _, s := range e.bySID {
		var mk []bpf.PineRuleKey
		var mv []bpf.PineRule
		for _, k := range sortedKeys(s.entries) {
			if key := k.mapKey(s.sid, s.gen); !present[key] {
				mk, mv = append(mk, key), append(mv, s.entries[k])
			}
		}
		if len(mk) > 0 {
			if _, err := e.objs.Rules.BatchUpdate(mk, mv, nil); err != nil {
				errs = append(errs, mapErr("restore", "rules", err))
			}
		}
		errs = append(errs, e.objs.Sessions.Update(s.sid, sessionValue(&s.spec, s.gen, s.levels), ebpf.UpdateAny))
	}
	return swept, errors.Join(errs...)
}
