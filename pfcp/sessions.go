package pfcp

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"
)

// fseid is our F-SEID IE for a session.
func (s *Server) fseid(seid uint64) *ie.IE {
	var v4, v6 []byte
	if s.n4v4.IsValid() {
		a := s.n4v4.As4()
		v4 = a[:]
	}
	if s.n4v6.IsValid() {
		a := s.n4v6.As16()
		v6 = a[:]
	}
	return ie.NewFSEID(seid, v4, v6)
}

// fteidIE is the F-TEID IE of a UPF-chosen TEID.
func fteidIE(f fteidState) *ie.IE {
	var flags uint8
	var v4, v6 []byte
	if f.v4.IsValid() {
		flags |= 0x01
		a := f.v4.As4()
		v4 = a[:]
	}
	if f.v6.IsValid() {
		flags |= 0x02
		a := f.v6.As16()
		v6 = a[:]
	}
	return ie.NewFTEID(flags, f.teid, v4, v6, 0)
}

// ruleOp applies a request's rule IEs in a fixed order: removals, then
// creations, then updates; references are checked when translating.
type ruleOps struct {
	removePDR, removeFAR, removeQER, removeURR []*ie.IE
	createFAR, createQER, createURR, createPDR []*ie.IE
	updateFAR, updateQER, updateURR, updatePDR []*ie.IE
}

func (b *build) apply(ops ruleOps) *causeError {
	steps := []struct {
		ies []*ie.IE
		f   func(*ie.IE) *causeError
	}{
		{ops.removePDR, b.removePDR}, {ops.removeFAR, b.removeFAR},
		{ops.removeQER, b.removeQER}, {ops.removeURR, b.removeURR},
		{ops.createFAR, b.createFAR}, {ops.createQER, b.createQER},
		{ops.createURR, b.createURR}, {ops.createPDR, b.createPDR},
		{ops.updateFAR, b.updateFAR}, {ops.updateQER, b.updateQER},
		{ops.updateURR, b.updateURR}, {ops.updatePDR, b.updatePDR},
	}
	for _, st := range steps {
		for _, x := range st.ies {
			if ce := st.f(x); ce != nil {
				return ce
			}
		}
	}
	return nil
}

// install translates the built session, installs it in the datapath and,
// only when that worked, commits it. On any error nothing has changed.
func (s *Server) install(b *build, offending uint16) *causeError {
	t, ce := s.translate(b.ss)
	if ce != nil {
		if ce.offending == 0 && ce.cause == ie.CauseRuleCreationModificationFailure {
			ce.offending = offending // a rule this request did not name broke
		}
		return ce
	}
	removed, err := s.enf.ReplaceSession(t.spec)
	if err != nil {
		return asCause(err, offending)
	}
	ss := b.ss
	// Rules the change removed: their last packets, counted between the
	// last reading and their removal, still go to the URRs of their PDR
	// (as it was before this request) that the session keeps.
	if old := s.sessions[ss.seid]; old != nil && len(removed) > 0 {
		for _, r := range ss.installed.Rules {
			if c, ok := removed[r.ID]; ok {
				accountTo(ss, old.pdrs, r, c)
			}
		}
	}
	ss.installed = t.spec
	forgetRules(ss)
	if t.remoteFilter && !ss.remoteLogged {
		ss.remoteLogged = true
		s.log.Info("SDF filters restrict the remote (data network) side; the datapath enforces only the PINE side",
			"seid", ss.seid)
	}
	if old := s.sessions[ss.seid]; old != nil {
		for tid := range old.teidSet() {
			if s.teids[tid] == ss.seid {
				delete(s.teids, tid)
			}
		}
	}
	for tid := range ss.teidSet() {
		s.teids[tid] = ss.seid
	}
	// CHOOSE IDs whose TEID no PDR uses any more are forgotten.
	used := ss.teidSet()
	maps.DeleteFunc(ss.chids, func(_ uint8, t uint32) bool { return !used[t] })
	s.sessions[ss.seid] = ss
	s.markSession(ss.seid)
	return nil
}

func (s *Server) handleEstablishment(peer netip.AddrPort, m *message.SessionEstablishmentRequest) []byte {
	var cpSEID uint64
	respond := func(ce *causeError, ies ...*ie.IE) []byte {
		cause := uint8(ie.CauseRequestAccepted)
		head := []*ie.IE{s.nodeID}
		if ce != nil {
			cause = ce.cause
			head = append(head, ce.ies()...)
			s.log.Warn("session establishment rejected", "peer", peer, "cp_seid", cpSEID, "cause", ce.cause,
				"offending_ie", ce.offending, "err", ce)
		} else {
			head = append(head, ie.NewCause(cause))
		}
		return s.reply(message.NewSessionEstablishmentResponse(0, 0, cpSEID, m.Sequence(), 0, append(head, ies...)...), cause)
	}
	if m.CPFSEID != nil {
		if f, err := decode(m.CPFSEID.FSEID); err == nil {
			cpSEID = f.SEID
		}
	}
	switch {
	case m.NodeID == nil:
		return respond(missing(ie.NodeID, "Session Establishment Request"))
	case m.CPFSEID == nil:
		return respond(missing(ie.FSEID, "Session Establishment Request"))
	case len(m.CreatePDR) == 0:
		return respond(missing(ie.CreatePDR, "Session Establishment Request"))
	case len(m.CreateFAR) == 0:
		return respond(missing(ie.CreateFAR, "Session Establishment Request"))
	}
	nodeID, err := nodeIDOf(m.NodeID)
	if err != nil {
		return respond(incorrect(ie.NodeID, "Session Establishment Request", err))
	}
	f, err := decode(m.CPFSEID.FSEID)
	if err != nil {
		return respond(incorrect(ie.FSEID, "Session Establishment Request", err))
	}
	if !f.HasIPv4() && !f.HasIPv6() {
		return respond(incorrect(ie.FSEID, "Session Establishment Request", constErr("CP F-SEID without an address")))
	}
	a := s.assocOf(peer.Addr())
	if a == nil || a.nodeID != nodeID {
		return respond(fail(ie.CauseNoEstablishedPFCPAssociation, 0, "no PFCP association with node %q from %s", nodeID, peer.Addr()))
	}
	ss := newSession(s.allocSEID(), nodeID, s.now())
	ss.cpSEID = f.SEID
	ss.cpAddr = addrFromIP(f.IPv4Address)
	if !ss.cpAddr.IsValid() {
		ss.cpAddr = addrFromIP(f.IPv6Address)
	}
	b := &build{srv: s, ss: ss, teids: map[uint32]bool{}}
	ops := ruleOps{createFAR: m.CreateFAR, createQER: m.CreateQER, createURR: m.CreateURR, createPDR: m.CreatePDR}
	if ce := b.apply(ops); ce != nil {
		return respond(ce)
	}
	if ce := s.install(b, ie.CreatePDR); ce != nil {
		return respond(ce)
	}
	s.log.Info("session established", "seid", ss.seid, "cp_seid", ss.cpSEID, "node_id", nodeID,
		"ue_v4", ss.installed.UEv4, "ue_v6", ss.installed.UEv6, "rules", len(ss.installed.Rules), "teids", len(ss.installed.TEIDs))
	ies := []*ie.IE{s.fseid(ss.seid)}
	for _, id := range b.chosen {
		ies = append(ies, ie.NewCreatedPDR(ie.NewPDRID(id), fteidIE(ss.pdrs[id].fteid)))
	}
	return respond(nil, ies...)
}

// sessionFor finds the session a session request names, for the peer
// that sent it: no association → 72; unknown SEID or a session of another
// association → 65 (the two are indistinguishable to the requester).
func (s *Server) sessionFor(peer netip.AddrPort, seid uint64) (*session, *causeError) {
	a := s.assocOf(peer.Addr())
	if a == nil {
		return nil, fail(ie.CauseNoEstablishedPFCPAssociation, 0, "no PFCP association with %s", peer.Addr())
	}
	ss, ok := s.sessions[seid]
	if !ok || ss.owner != a.nodeID {
		if ok {
			s.log.Warn("request for a session of another association refused", "peer", peer, "node_id", a.nodeID,
				"seid", seid, "owner", ss.owner)
		}
		return nil, fail(ie.CauseSessionContextNotFound, 0, "session %#x not found", seid)
	}
	return ss, nil
}

func (s *Server) handleModification(peer netip.AddrPort, m *message.SessionModificationRequest) []byte {
	var cpSEID uint64
	respond := func(ce *causeError, ies ...*ie.IE) []byte {
		cause := uint8(ie.CauseRequestAccepted)
		var head []*ie.IE
		if ce != nil {
			cause = ce.cause
			head = ce.ies()
			s.log.Warn("session modification rejected", "peer", peer, "seid", m.SEID(), "cause", ce.cause,
				"offending_ie", ce.offending, "err", ce)
		} else {
			head = []*ie.IE{ie.NewCause(cause)}
		}
		return s.reply(message.NewSessionModificationResponse(0, 0, cpSEID, m.Sequence(), 0, append(head, ies...)...), cause)
	}
	cur, ce := s.sessionFor(peer, m.SEID())
	if ce != nil {
		return respond(ce)
	}
	cpSEID = cur.cpSEID
	ss := cur.clone()
	ss.resetOps()
	s.foldUsage(ss)
	if m.CPFSEID != nil {
		f, err := decode(m.CPFSEID.FSEID)
		if err != nil {
			return respond(fail(ie.CauseRuleCreationModificationFailure, ie.FSEID, "CP F-SEID: %w", err))
		}
		ss.cpSEID = f.SEID
		if a := addrFromIP(f.IPv4Address); a.IsValid() {
			ss.cpAddr = a
		} else if a := addrFromIP(f.IPv6Address); a.IsValid() {
			ss.cpAddr = a
		}
	}
	b := &build{srv: s, ss: ss, teids: map[uint32]bool{}}
	ops := ruleOps{
		removePDR: m.RemovePDR, removeFAR: m.RemoveFAR, removeQER: m.RemoveQER, removeURR: m.RemoveURR,
		createFAR: m.CreateFAR, createQER: m.CreateQER, createURR: m.CreateURR, createPDR: m.CreatePDR,
		updateFAR: m.UpdateFAR, updateQER: m.UpdateQER, updateURR: m.UpdateURR, updatePDR: m.UpdatePDR,
	}
	if ce := b.apply(ops); ce != nil {
		return respond(ce)
	}
	// Query URR, or all URRs with the QAURR flag: immediate reports.
	queried := map[uint32]bool{}
	if m.PFCPSMReqFlags != nil && len(m.PFCPSMReqFlags.Payload) > 0 && m.PFCPSMReqFlags.Payload[0]&0x04 != 0 {
		for id := range ss.urrs {
			queried[id] = true
		}
	}
	for _, q := range m.QueryURR {
		idIE := find(q.ChildIEs, ie.URRID)
		if idIE == nil {
			return respond(missing(ie.URRID, "Query URR"))
		}
		id, err := decode(idIE.URRID)
		if err != nil {
			return respond(incorrect(ie.URRID, "Query URR", err))
		}
		if _, ok := ss.urrs[id]; !ok {
			return respond(fail(ie.CauseRuleCreationModificationFailure, ie.QueryURR, "query of unknown URR %d", id).rule(ie.RuleIDTypeURR, id))
		}
		queried[id] = true
	}
	now := s.now()
	for _, id := range slices.Sorted(maps.Keys(queried)) {
		u := ss.urrs[id]
		b.reports = append(b.reports, takeReport(&u, trigIMMER, now))
		ss.urrs[id] = u
	}
	if ce := s.install(b, modOffending(m)); ce != nil {
		return respond(ce)
	}
	s.log.Info("session modified", "seid", ss.seid, "rules", len(ss.installed.Rules), "teids", len(ss.installed.TEIDs))
	var ies []*ie.IE
	for _, id := range b.chosen {
		ies = append(ies, ie.NewCreatedPDR(ie.NewPDRID(id), fteidIE(ss.pdrs[id].fteid)))
	}
	for _, r := range b.reports {
		ies = append(ies, r.ie(ie.UsageReportWithinSessionModificationResponse))
	}
	for _, id := range b.updated {
		ies = append(ies, ie.NewUpdatedPDR(ie.NewPDRID(id), fteidIE(ss.pdrs[id].fteid)))
	}
	return respond(nil, ies...)
}

func (s *Server) handleDeletion(peer netip.AddrPort, m *message.SessionDeletionRequest) []byte {
	var cpSEID uint64
	respond := func(cause uint8, ies ...*ie.IE) []byte {
		return s.reply(message.NewSessionDeletionResponse(0, 0, cpSEID, m.Sequence(), 0, append([]*ie.IE{ie.NewCause(cause)}, ies...)...), cause)
	}
	cur, ce := s.sessionFor(peer, m.SEID())
	if ce != nil {
		s.log.Warn("session deletion rejected", "peer", peer, "seid", m.SEID(), "cause", ce.cause, "err", ce)
		return respond(ce.cause)
	}
	cpSEID = cur.cpSEID
	ss := cur.clone()
	s.foldUsage(ss)
	rep, err := s.enf.RemoveSession(ss.seid)
	if err != nil {
		// The enforcer forgets the session even when a map update failed.
		s.log.Error("remove session from the datapath", "seid", ss.seid, "err", err)
	}
	for _, r := range ss.installed.Rules {
		if c, ok := rep.Rules[r.ID]; ok {
			account(ss, r, c)
		}
	}
	now := s.now()
	var ies []*ie.IE
	for _, id := range slices.Sorted(maps.Keys(ss.urrs)) {
		u := ss.urrs[id]
		ies = append(ies, takeReport(&u, trigTERMR, now).ie(ie.UsageReportWithinSessionDeletionResponse))
	}
	s.dropSession(cur)
	for seq, p := range s.pending {
		if p.seid == ss.seid {
			delete(s.pending, seq)
		}
	}
	s.log.Info("session deleted", "seid", ss.seid, "cp_seid", ss.cpSEID, "usage_reports", len(ies))
	return respond(ie.CauseRequestAccepted, ies...)
}

// modOffending is the Offending IE for a modification that leaves a rule
// it did not name untranslatable (a FAR removed under a PDR, say): the
// first kind of rule IE the request carries.
func modOffending(m *message.SessionModificationRequest) uint16 {
	for _, c := range []struct {
		ies []*ie.IE
		t   uint16
	}{
		{m.CreatePDR, ie.CreatePDR}, {m.UpdatePDR, ie.UpdatePDR}, {m.RemovePDR, ie.RemovePDR},
		{m.CreateFAR, ie.CreateFAR}, {m.UpdateFAR, ie.UpdateFAR}, {m.RemoveFAR, ie.RemoveFAR},
		{m.CreateQER, ie.CreateQER}, {m.UpdateQER, ie.UpdateQER}, {m.RemoveQER, ie.RemoveQER},
		{m.CreateURR, ie.CreateURR}, {m.UpdateURR, ie.UpdateURR}, {m.RemoveURR, ie.RemoveURR},
	} {
		if len(c.ies) > 0 {
			return c.t
		}
	}
	return 0
}
