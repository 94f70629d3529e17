package pfcp

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"
)

// association is a PFCP association with a CP function (an SMF).
type association struct {
	nodeID string
	peer   netip.AddrPort // where its requests came from; our requests go there
	rts    time.Time      // its Recovery Time Stamp at setup
	since  time.Time

	// UPF-initiated heartbeats.
	hbSeq         uint32
	hbOutstanding bool
	hbSent        time.Time // when the outstanding heartbeat left
	hbMissed      int
	hbAnswered    bool      // it answered at least one of our heartbeats
	hbLost        bool      // counted as lost, not yet answered again
	rtsNoted      time.Time // last heartbeat RTS change already logged
}

// upFeatures is the UP Function Features IE: only FTUP (the UPF allocates
// F-TEIDs), the one optional feature implemented.
func upFeatures() *ie.IE { return ie.NewUPFunctionFeatures(0x10, 0x00) }

// assocOf is the association whose peer address is a; nil when none.
func (s *Server) assocOf(a netip.Addr) *association {
	for _, id := range slices.Sorted(maps.Keys(s.assocs)) {
		if as := s.assocs[id]; as.peer.Addr() == a {
			return as
		}
	}
	return nil
}

func nodeIDOf(x *ie.IE) (string, error) {
	id, err := decode(x.NodeID)
	if err == nil && id == "" {
		err = errEmptyNodeID
	}
	return id, err
}

type constErr string

func (e constErr) Error() string { return string(e) }

const errEmptyNodeID = constErr("empty Node ID")

func (s *Server) handleAssociationSetup(peer netip.AddrPort, m *message.AssociationSetupRequest) []byte {
	respond := func(cause uint8, extra ...*ie.IE) []byte {
		ies := append([]*ie.IE{s.nodeID, ie.NewCause(cause), ie.NewRecoveryTimeStamp(s.rts)}, extra...)
		return s.reply(message.NewAssociationSetupResponse(m.Sequence(), ies...), cause)
	}
	reject := func(ce *causeError) []byte {
		s.log.Warn("association setup rejected", "peer", peer, "cause", ce.cause, "err", ce)
		ies := []*ie.IE{s.nodeID}
		ies = append(ies, ce.ies()...)
		ies = append(ies, ie.NewRecoveryTimeStamp(s.rts))
		return s.reply(message.NewAssociationSetupResponse(m.Sequence(), ies...), ce.cause)
	}
	if m.NodeID == nil {
		return reject(missing(ie.NodeID, "Association Setup Request"))
	}
	if m.RecoveryTimeStamp == nil {
		return reject(missing(ie.RecoveryTimeStamp, "Association Setup Request"))
	}
	nodeID, err := nodeIDOf(m.NodeID)
	if err != nil {
		return reject(incorrect(ie.NodeID, "Association Setup Request", err))
	}
	rts, err := decode(m.RecoveryTimeStamp.RecoveryTimeStamp)
	if err != nil {
		return reject(incorrect(ie.RecoveryTimeStamp, "Association Setup Request", err))
	}
	now := s.now()
	// Another Node ID from the same address replaces that association.
	if other := s.assocOf(peer.Addr()); other != nil && other.nodeID != nodeID {
		s.log.Warn("peer changed its Node ID: old association released", "peer", peer, "old", other.nodeID, "new", nodeID)
		s.purgeSessions(other.nodeID, "association replaced")
		delete(s.assocs, other.nodeID)
		delete(s.stats.HeartbeatRTT, other.nodeID)
	}
	if old, ok := s.assocs[nodeID]; ok {
		if !old.rts.Equal(rts) {
			// TS 23.007: a new Recovery Time Stamp means the peer restarted.
			s.stats.PeerRestarts++
			n := s.purgeSessions(nodeID, "peer restarted")
			s.log.Warn("peer re-associated with a new recovery time stamp: restarted, its sessions purged",
				"node_id", nodeID, "peer", peer, "old_rts", old.rts.UTC(), "new_rts", rts.UTC(), "sessions", n)
		} else {
			s.log.Info("peer re-associated with the same recovery time stamp: sessions kept", "node_id", nodeID, "peer", peer)
		}
	} else {
		s.log.Info("PFCP association set up", "node_id", nodeID, "peer", peer, "rts", rts.UTC())
	}
	s.assocs[nodeID] = &association{nodeID: nodeID, peer: peer, rts: rts, since: now}
	s.markAssocs()
	return respond(ie.CauseRequestAccepted, upFeatures())
}

func (s *Server) handleAssociationUpdate(peer netip.AddrPort, m *message.AssociationUpdateRequest) []byte {
	respond := func(cause uint8, extra ...*ie.IE) []byte {
		ies := append([]*ie.IE{s.nodeID, ie.NewCause(cause)}, extra...)
		return s.reply(message.NewAssociationUpdateResponse(m.Sequence(), ies...), cause)
	}
	if m.NodeID == nil {
		return respond(ie.CauseMandatoryIEMissing, ie.NewOffendingIE(ie.NodeID))
	}
	nodeID, err := nodeIDOf(m.NodeID)
	if err != nil {
		return respond(ie.CauseMandatoryIEIncorrect, ie.NewOffendingIE(ie.NodeID))
	}
	a, ok := s.assocs[nodeID]
	if !ok || a.peer.Addr() != peer.Addr() {
		return respond(ie.CauseNoEstablishedPFCPAssociation)
	}
	s.log.Info("PFCP association updated", "node_id", nodeID, "peer", peer)
	return respond(ie.CauseRequestAccepted, upFeatures())
}

func (s *Server) handleAssociationRelease(peer netip.AddrPort, m *message.AssociationReleaseRequest) []byte {
	respond := func(cause uint8, extra ...*ie.IE) []byte {
		return s.reply(message.NewAssociationReleaseResponse(m.Sequence(), s.nodeID, ie.NewCause(cause), extra...), cause)
	}
	if m.NodeID == nil {
		return respond(ie.CauseMandatoryIEMissing, ie.NewOffendingIE(ie.NodeID))
	}
	nodeID, err := nodeIDOf(m.NodeID)
	if err != nil {
		return respond(ie.CauseMandatoryIEIncorrect, ie.NewOffendingIE(ie.NodeID))
	}
	a, ok := s.assocs[nodeID]
	if !ok || a.peer.Addr() != peer.Addr() {
		return respond(ie.CauseNoEstablishedPFCPAssociation)
	}
	// TS 29.244 6.2.8.3: the UP function deletes the association's sessions.
	n := s.purgeSessions(nodeID, "association released")
	delete(s.assocs, nodeID)
	delete(s.stats.HeartbeatRTT, nodeID)
	s.markAssocs()
	s.log.Info("PFCP association released", "node_id", nodeID, "peer", peer, "sessions_deleted", n)
	return respond(ie.CauseRequestAccepted)
}

// purgeSessions removes every session of an association, from the
// datapath and from memory, and returns how many there were.
func (s *Server) purgeSessions(nodeID, why string) int {
	n := 0
	for _, seid := range slices.Sorted(maps.Keys(s.sessions)) {
		ss := s.sessions[seid]
		if ss.owner != nodeID {
			continue
		}
		if _, err := s.enf.RemoveSession(seid); err != nil {
			s.log.Error("remove session from the datapath", "seid", seid, "err", err)
		}
		s.dropSession(ss)
		n++
		s.log.Info("session deleted", "seid", seid, "node_id", nodeID, "reason", why)
	}
	for seq, p := range s.pending {
		if s.sessions[p.seid] == nil {
			delete(s.pending, seq)
		}
	}
	return n
}

// dropSession forgets a session and frees its TEIDs (under s.mu).
func (s *Server) dropSession(ss *session) {
	for t := range ss.teidSet() {
		if s.teids[t] == ss.seid {
			delete(s.teids, t)
		}
	}
	delete(s.sessions, ss.seid)
	s.markRemoved(ss.seid)
}

// ---- heartbeats ----

func (s *Server) handleHeartbeatRequest(peer netip.AddrPort, m *message.HeartbeatRequest) []byte {
	if m.RecoveryTimeStamp != nil {
		if rts, err := decode(m.RecoveryTimeStamp.RecoveryTimeStamp); err == nil {
			if a := s.assocOf(peer.Addr()); a != nil {
				s.heartbeatRTS(a, rts, "heartbeat request")
			}
		}
	}
	return s.reply(message.NewHeartbeatResponse(m.Sequence(), ie.NewRecoveryTimeStamp(s.rts)), 0)
}

func (s *Server) handleHeartbeatResponse(peer netip.AddrPort, m *message.HeartbeatResponse) {
	a := s.assocOf(peer.Addr())
	if a == nil || !a.hbOutstanding || a.hbSeq != m.Sequence() {
		s.stats.Unexpected++
		return
	}
	a.hbOutstanding, a.hbMissed, a.hbAnswered = false, 0, true
	s.stats.HeartbeatRTT[a.nodeID] = s.now().Sub(a.hbSent)
	if a.hbLost {
		a.hbLost = false
		s.log.Info("peer answers heartbeats again", "node_id", a.nodeID, "peer", peer)
	}
	if m.RecoveryTimeStamp != nil {
		if rts, err := decode(m.RecoveryTimeStamp.RecoveryTimeStamp); err == nil {
			s.heartbeatRTS(a, rts, "heartbeat response")
		}
	}
}

// heartbeatRTS weighs a Recovery Time Stamp seen in a heartbeat. A change
// is weak evidence of a restart (some simulators send the current time in
// every heartbeat): it purges the peer's sessions only with
// PurgeOnPeerRestart.
func (s *Server) heartbeatRTS(a *association, rts time.Time, where string) {
	if rts.Equal(a.rts) {
		return
	}
	if !s.cfg.PurgeOnPeerRestart {
		if !rts.Equal(a.rtsNoted) {
			lvl := slog.LevelDebug
			if a.rtsNoted.IsZero() {
				lvl = slog.LevelInfo
			}
			a.rtsNoted = rts
			s.log.Log(context.Background(), lvl, "peer recovery time stamp changed in a heartbeat; ignored (PurgeOnPeerRestart off)",
				"node_id", a.nodeID, "where", where, "association_rts", a.rts.UTC(), "heartbeat_rts", rts.UTC())
		}
		return
	}
	s.stats.PeerRestarts++
	n := s.purgeSessions(a.nodeID, "peer restarted (heartbeat)")
	s.log.Warn("peer recovery time stamp changed in a heartbeat: restarted, its sessions purged",
		"node_id", a.nodeID, "where", where, "old_rts", a.rts.UTC(), "new_rts", rts.UTC(), "sessions", n)
	a.rts = rts
	s.markAssocs()
}

// heartbeatTick runs every HeartbeatInterval: counts the unanswered
// heartbeat of each association and sends the next one.
func (s *Server) heartbeatTick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.flush()
	for _, id := range slices.Sorted(maps.Keys(s.assocs)) {
		a := s.assocs[id]
		if a.hbOutstanding {
			a.hbMissed++
			// A peer that never answered is not lost: some never answer.
			if a.hbAnswered && !a.hbLost && a.hbMissed >= s.cfg.HeartbeatRetries {
				a.hbLost = true
				s.stats.PeersLost++
				if s.cfg.PurgeOnPeerRestart {
					n := s.purgeSessions(id, "peer lost")
					delete(s.assocs, id)
					delete(s.stats.HeartbeatRTT, id)
					s.markAssocs()
					s.log.Warn("peer lost: no heartbeat answer; association and sessions released",
						"node_id", id, "peer", a.peer, "missed", a.hbMissed, "sessions", n)
					continue
				}
				s.log.Warn("peer lost: no heartbeat answer; sessions kept (PurgeOnPeerRestart off)",
					"node_id", id, "peer", a.peer, "missed", a.hbMissed)
			}
		}
		a.hbSeq, a.hbOutstanding, a.hbSent = s.nextSeq(), true, s.now()
		b, err := message.NewHeartbeatRequest(a.hbSeq, ie.NewRecoveryTimeStamp(s.rts), nil).Marshal()
		if err != nil {
			s.log.Error("marshal heartbeat request", "err", err)
			continue
		}
		s.transmit(a.peer, b, message.MsgTypeHeartbeatRequest)
	}
}
