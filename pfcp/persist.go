package pfcp

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/pfcp/flowdesc"
)

// StateVersion is the version of State and its parts; ImportState refuses
// any other.
const StateVersion = 1

// State is the server's association and session state as plain,
// JSON-serializable data: what a restarted process needs, with a datapath
// that still enforces the sessions (pinned maps and enforcer.Restore), to
// carry on serving the SMFs as if nothing happened (TS 23.007: the UPF
// keeps its Recovery Time Stamp and its sessions).
//
// Left out on purpose: the response cache (a retransmission of a request
// answered before the restart is executed again: establishments make a new
// session, deletions get Cause 65), UPF-initiated requests awaiting an
// answer (heartbeats, session reports) and heartbeat bookkeeping.
type State struct {
	Version           int                `json:"version"`
	RecoveryTimeStamp time.Time          `json:"recovery_time_stamp"`
	Associations      []AssociationState `json:"associations"`
	Sessions          []SessionState     `json:"sessions"`
}

// AssociationState is one PFCP association.
type AssociationState struct {
	NodeID            string         `json:"node_id"`
	Peer              netip.AddrPort `json:"peer"` // where its requests come from; ours go there
	RecoveryTimeStamp time.Time      `json:"recovery_time_stamp"`
	Since             time.Time      `json:"since"`
}

// SessionState is one PFCP session: the rules as the SMF provisioned them
// (in the server's own form), the URR measurements and the enforcer.Session
// the datapath enforces for it.
type SessionState struct {
	Version      int                         `json:"version"`
	SEID         uint64                      `json:"seid"` // UP SEID
	CPSEID       uint64                      `json:"cp_seid"`
	CPAddr       netip.Addr                  `json:"cp_addr"`
	Owner        string                      `json:"owner"` // Node ID of the association
	Created      time.Time                   `json:"created"`
	PDRs         []PDRState                  `json:"pdrs"`
	FARs         []FARState                  `json:"fars"`
	QERs         []QERState                  `json:"qers"`
	URRs         []URRState                  `json:"urrs"`
	ChooseIDs    map[uint8]uint32            `json:"choose_ids,omitempty"` // CHOOSE ID → TEID
	Installed    enforcer.Session            `json:"installed"`
	Seen         map[uint32]enforcer.Counter `json:"seen,omitempty"` // rule counters already folded into the URRs
	BlockPending bool                        `json:"block_pending,omitempty"`
}

// FTEIDState is a PDR's local F-TEID.
type FTEIDState struct {
	TEID     uint32     `json:"teid"`
	IPv4     netip.Addr `json:"ipv4"`
	IPv6     netip.Addr `json:"ipv6"`
	Chosen   bool       `json:"chosen,omitempty"` // allocated by the UPF (CH)
	ChooseID *uint8     `json:"choose_id,omitempty"`
}

// SDFState is one SDF filter of a PDR.
type SDFState struct {
	FlowDescription string `json:"flow_description"`
	ID              uint32 `json:"id,omitempty"`
}

// PDRState is a PDR.
type PDRState struct {
	ID                 uint16       `json:"id"`
	Precedence         uint32       `json:"precedence"`
	SourceInterface    uint8        `json:"source_interface"`
	FTEID              *FTEIDState  `json:"fteid,omitempty"`
	UEv4               netip.Addr   `json:"ue_v4"`
	UEv6               netip.Prefix `json:"ue_v6"`
	NetworkInstance    string       `json:"network_instance,omitempty"`
	QFIs               []uint8      `json:"qfis,omitempty"`
	SDFFilters         []SDFState   `json:"sdf_filters,omitempty"`
	OuterHeaderRemoval int          `json:"outer_header_removal"` // -1 = none
	FARID              *uint32      `json:"far_id,omitempty"`
	QERIDs             []uint32     `json:"qer_ids,omitempty"`
	URRIDs             []uint32     `json:"urr_ids,omitempty"`
}

// OuterHeaderCreationState is a FAR's Outer Header Creation.
type OuterHeaderCreationState struct {
	Description uint16     `json:"description"`
	TEID        uint32     `json:"teid"`
	IPv4        netip.Addr `json:"ipv4"`
	IPv6        netip.Addr `json:"ipv6"`
}

// FARState is a FAR.
type FARState struct {
	ID                   uint32                    `json:"id"`
	Forward              bool                      `json:"forw,omitempty"`
	Drop                 bool                      `json:"drop,omitempty"`
	Buffer               bool                      `json:"buff,omitempty"`
	NotifyCP             bool                      `json:"nocp,omitempty"`
	DestinationInterface *uint8                    `json:"destination_interface,omitempty"`
	NetworkInstance      string                    `json:"network_instance,omitempty"`
	OuterHeaderCreation  *OuterHeaderCreationState `json:"outer_header_creation,omitempty"`
}

// QERState is a QER.
type QERState struct {
	ID     uint32 `json:"id"`
	ULGate uint8  `json:"ul_gate"`
	DLGate uint8  `json:"dl_gate"`
	ULMBR  uint64 `json:"ul_mbr"` // bit/s
	DLMBR  uint64 `json:"dl_mbr"`
	QFI    *uint8 `json:"qfi,omitempty"`
}

// VolumeState is a volume threshold or quota (Flags as in the IE: TOVOL 1,
// ULVOL 2, DLVOL 4; bytes).
type VolumeState struct {
	Flags    uint8  `json:"flags"`
	Total    uint64 `json:"total,omitempty"`
	Uplink   uint64 `json:"uplink,omitempty"`
	Downlink uint64 `json:"downlink,omitempty"`
}

// VolumesState is measured usage.
type VolumesState struct {
	ULBytes   uint64 `json:"ul_bytes,omitempty"`
	DLBytes   uint64 `json:"dl_bytes,omitempty"`
	ULPackets uint64 `json:"ul_packets,omitempty"`
	DLPackets uint64 `json:"dl_packets,omitempty"`
}

// URRState is a URR with its measurement: the UR-SEQN of its next report
// and the volumes not reported yet.
type URRState struct {
	ID                uint32        `json:"id"`
	MeasurementMethod uint8         `json:"measurement_method"`
	PERIO             bool          `json:"perio,omitempty"`
	VOLTH             bool          `json:"volth,omitempty"`
	VOLQU             bool          `json:"volqu,omitempty"`
	Threshold         VolumeState   `json:"threshold"`
	Quota             VolumeState   `json:"quota"`
	Period            time.Duration `json:"period,omitempty"`
	SeqN              uint32        `json:"seqn"`
	SinceReport       VolumesState  `json:"since_report"`
	SinceQuota        VolumesState  `json:"since_quota"`
	QuotaExhausted    bool          `json:"quota_exhausted,omitempty"`
	Start             time.Time     `json:"start"`
	NextPeriodic      time.Time     `json:"next_periodic"`
}

// Change is what one accepted request (or a usage poll, or a heartbeat
// verdict) changed. OnChange receives it before the response is sent.
type Change struct {
	// Associations: all associations, when any was set up, released or
	// changed (there are few); nil otherwise.
	Associations []AssociationState
	// Sessions created or changed, in full; only these.
	Sessions []SessionState
	// Sessions removed (UP SEIDs).
	Removed []uint64
}

func (c Change) empty() bool {
	return c.Associations == nil && len(c.Sessions) == 0 && len(c.Removed) == 0
}

// changes accumulates what a handler changed, under s.mu.
type changes struct {
	assocs   bool
	sessions map[uint64]bool // true: changed; false: removed
}

func (s *Server) markSession(seid uint64) {
	if s.dirty.sessions == nil {
		s.dirty.sessions = map[uint64]bool{}
	}
	s.dirty.sessions[seid] = true
}

func (s *Server) markRemoved(seid uint64) {
	if s.dirty.sessions == nil {
		s.dirty.sessions = map[uint64]bool{}
	}
	s.dirty.sessions[seid] = false
}

func (s *Server) markAssocs() { s.dirty.assocs = true }

// flush hands what changed to OnChange (under s.mu). Its cost is that of
// the sessions changed, not of all sessions.
func (s *Server) flush() {
	d := s.dirty
	s.dirty = changes{}
	if s.cfg.OnChange == nil || (!d.assocs && len(d.sessions) == 0) {
		return
	}
	var c Change
	if d.assocs {
		c.Associations = s.exportAssocs()
	}
	for _, seid := range slices.Sorted(maps.Keys(d.sessions)) {
		if ss, ok := s.sessions[seid]; ok && d.sessions[seid] {
			c.Sessions = append(c.Sessions, exportSession(ss))
		} else if !ok {
			c.Removed = append(c.Removed, seid)
		}
	}
	if c.empty() {
		return
	}
	if err := s.cfg.OnChange(c); err != nil {
		s.stats.PersistFailures++
		s.log.Error("persisting PFCP state failed; the change is in force but would not survive a restart",
			"sessions", len(c.Sessions), "removed", len(c.Removed), "err", err)
	}
}

func (s *Server) exportAssocs() []AssociationState {
	out := []AssociationState{}
	for _, id := range slices.Sorted(maps.Keys(s.assocs)) {
		a := s.assocs[id]
		out = append(out, AssociationState{NodeID: a.nodeID, Peer: a.peer, RecoveryTimeStamp: a.rts, Since: a.since})
	}
	return out
}

// ExportState returns the whole state. The daemon persists per-session
// changes through Config.OnChange; ExportState is for a full save, tests
// and inspection.
func (s *Server) ExportState() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Version: StateVersion, RecoveryTimeStamp: s.rts, Associations: s.exportAssocs(), Sessions: []SessionState{}}
	for _, seid := range slices.Sorted(maps.Keys(s.sessions)) {
		st.Sessions = append(st.Sessions, exportSession(s.sessions[seid]))
	}
	return st
}

func ptr[T any](v T) *T { return &v }

func exportSession(ss *session) SessionState {
	out := SessionState{
		Version: StateVersion, SEID: ss.seid, CPSEID: ss.cpSEID, CPAddr: ss.cpAddr, Owner: ss.owner, Created: ss.created,
		PDRs: []PDRState{}, FARs: []FARState{}, QERs: []QERState{}, URRs: []URRState{},
		ChooseIDs: maps.Clone(ss.chids), Installed: ss.installed, Seen: maps.Clone(ss.seen),
		BlockPending: ss.blockPending,
	}
	for _, id := range slices.Sorted(maps.Keys(ss.pdrs)) {
		p := ss.pdrs[id]
		ps := PDRState{ID: p.id, Precedence: p.precedence, SourceInterface: p.source, UEv4: p.ueV4, UEv6: p.ueV6,
			NetworkInstance: p.network, QFIs: slices.Clone(p.qfis), OuterHeaderRemoval: p.ohr,
			QERIDs: slices.Clone(p.qerIDs), URRIDs: slices.Clone(p.urrIDs)}
		if p.fteid.set {
			f := &FTEIDState{TEID: p.fteid.teid, IPv4: p.fteid.v4, IPv6: p.fteid.v6, Chosen: p.fteid.chosen}
			if p.fteid.hasCHID {
				f.ChooseID = ptr(p.fteid.chid)
			}
			ps.FTEID = f
		}
		for _, f := range p.filters {
			ps.SDFFilters = append(ps.SDFFilters, SDFState{FlowDescription: f.desc, ID: f.id})
		}
		if p.hasFAR {
			ps.FARID = ptr(p.farID)
		}
		out.PDRs = append(out.PDRs, ps)
	}
	for _, id := range slices.Sorted(maps.Keys(ss.fars)) {
		f := ss.fars[id]
		fs := FARState{ID: f.id, Forward: f.forw, Drop: f.drop, Buffer: f.buff, NotifyCP: f.nocp, NetworkInstance: f.network}
		if f.hasDest {
			fs.DestinationInterface = ptr(f.dest)
		}
		if f.ohc.set {
			fs.OuterHeaderCreation = &OuterHeaderCreationState{Description: f.ohc.desc, TEID: f.ohc.teid, IPv4: f.ohc.v4, IPv6: f.ohc.v6}
		}
		out.FARs = append(out.FARs, fs)
	}
	for _, id := range slices.Sorted(maps.Keys(ss.qers)) {
		q := ss.qers[id]
		qs := QERState{ID: q.id, ULGate: q.ulGate, DLGate: q.dlGate, ULMBR: q.ulMBR, DLMBR: q.dlMBR}
		if q.hasQFI {
			qs.QFI = ptr(q.qfi)
		}
		out.QERs = append(out.QERs, qs)
	}
	for _, id := range slices.Sorted(maps.Keys(ss.urrs)) {
		u := ss.urrs[id]
		out.URRs = append(out.URRs, URRState{
			ID: u.id, MeasurementMethod: u.method, PERIO: u.trig.perio, VOLTH: u.trig.volth, VOLQU: u.trig.volqu,
			Threshold: exportLimit(u.threshold), Quota: exportLimit(u.quota), Period: u.period,
			SeqN: u.seqn, SinceReport: exportVolumes(u.sinceReport), SinceQuota: exportVolumes(u.sinceQuota),
			QuotaExhausted: u.quotaExhausted, Start: u.start, NextPeriodic: u.nextPeriodic,
		})
	}
	return out
}

func exportLimit(v volumeLimit) VolumeState {
	return VolumeState{Flags: v.flags, Total: v.total, Uplink: v.ul, Downlink: v.dl}
}

func importLimit(v VolumeState) volumeLimit {
	return volumeLimit{flags: v.Flags & 7, total: v.Total, ul: v.Uplink, dl: v.Downlink}
}

func exportVolumes(v volumes) VolumesState {
	return VolumesState{ULBytes: v.ulBytes, DLBytes: v.dlBytes, ULPackets: v.ulPkts, DLPackets: v.dlPkts}
}

func importVolumes(v VolumesState) volumes {
	return volumes{ulBytes: v.ULBytes, dlBytes: v.DLBytes, ulPkts: v.ULPackets, dlPkts: v.DLPackets}
}

func importSession(st SessionState) (*session, error) {
	if st.Version != StateVersion {
		return nil, fmt.Errorf("session %#x: state version %d, want %d", st.SEID, st.Version, StateVersion)
	}
	if st.SEID == 0 || st.Owner == "" {
		return nil, fmt.Errorf("session %#x: no SEID or owner", st.SEID)
	}
	if st.Installed.SEID != st.SEID {
		return nil, fmt.Errorf("session %#x: installed datapath session has SEID %#x", st.SEID, st.Installed.SEID)
	}
	ss := newSession(st.SEID, st.Owner, st.Created)
	ss.cpSEID, ss.cpAddr = st.CPSEID, st.CPAddr
	ss.installed = st.Installed
	ss.blockPending = st.BlockPending
	maps.Copy(ss.chids, st.ChooseIDs)
	maps.Copy(ss.seen, st.Seen)
	for _, ps := range st.PDRs {
		if _, dup := ss.pdrs[ps.ID]; dup {
			return nil, fmt.Errorf("session %#x: PDR %d twice", st.SEID, ps.ID)
		}
		p := pdrState{id: ps.ID, precedence: ps.Precedence, source: ps.SourceInterface, ueV4: ps.UEv4, ueV6: ps.UEv6,
			network: ps.NetworkInstance, qfis: slices.Clone(ps.QFIs), ohr: ps.OuterHeaderRemoval,
			qerIDs: slices.Clone(ps.QERIDs), urrIDs: slices.Clone(ps.URRIDs)}
		if f := ps.FTEID; f != nil {
			p.fteid = fteidState{set: true, teid: f.TEID, v4: f.IPv4, v6: f.IPv6, chosen: f.Chosen}
			if f.ChooseID != nil {
				p.fteid.chid, p.fteid.hasCHID = *f.ChooseID, true
			}
		}
		for _, f := range ps.SDFFilters {
			fd, err := flowdesc.Parse(f.FlowDescription)
			if err != nil {
				return nil, fmt.Errorf("session %#x: PDR %d: %w", st.SEID, ps.ID, err)
			}
			p.filters = append(p.filters, sdfState{desc: f.FlowDescription, filter: fd, id: f.ID})
		}
		if ps.FARID != nil {
			p.farID, p.hasFAR = *ps.FARID, true
		}
		ss.pdrs[p.id] = p
	}
	for _, fs := range st.FARs {
		f := farState{id: fs.ID, forw: fs.Forward, drop: fs.Drop, buff: fs.Buffer, nocp: fs.NotifyCP, network: fs.NetworkInstance}
		if fs.DestinationInterface != nil {
			f.dest, f.hasDest = *fs.DestinationInterface, true
		}
		if o := fs.OuterHeaderCreation; o != nil {
			f.ohc = ohcState{set: true, desc: o.Description, teid: o.TEID, v4: o.IPv4, v6: o.IPv6}
		}
		ss.fars[f.id] = f
	}
	for _, qs := range st.QERs {
		q := qerState{id: qs.ID, ulGate: qs.ULGate, dlGate: qs.DLGate, ulMBR: qs.ULMBR, dlMBR: qs.DLMBR}
		if qs.QFI != nil {
			q.qfi, q.hasQFI = *qs.QFI, true
		}
		ss.qers[q.id] = q
	}
	for _, us := range st.URRs {
		ss.urrs[us.ID] = urrState{
			id: us.ID, method: us.MeasurementMethod, trig: triggers{perio: us.PERIO, volth: us.VOLTH, volqu: us.VOLQU},
			threshold: importLimit(us.Threshold), quota: importLimit(us.Quota), period: us.Period,
			seqn: us.SeqN, sinceReport: importVolumes(us.SinceReport), sinceQuota: importVolumes(us.SinceQuota),
			quotaExhausted: us.QuotaExhausted, start: us.Start, nextPeriodic: us.NextPeriodic,
		}
	}
	return ss, nil
}

// ImportState rebuilds associations and sessions from a saved State, before
// Serve. It does not touch the datapath: the caller has restored the
// enforcer (enforcer.Restore) so that it already enforces exactly
// st.Sessions' Installed sessions. The TEID and SEID allocators see the
// imported TEIDs and SEIDs as taken. A non-zero st.RecoveryTimeStamp must
// equal the server's (the daemon keeps it across restarts): sessions
// accepted under one Recovery Time Stamp are not announced under another.
//
// All or nothing: on error the server is unchanged.
func (s *Server) ImportState(st State) error {
	if st.Version != StateVersion {
		return fmt.Errorf("pfcp: import state: version %d, want %d", st.Version, StateVersion)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.assocs) > 0 || len(s.sessions) > 0 {
		return errors.New("pfcp: import state: the server already has state")
	}
	if !st.RecoveryTimeStamp.IsZero() && !st.RecoveryTimeStamp.Truncate(time.Second).Equal(s.rts) {
		return fmt.Errorf("pfcp: import state: saved under recovery time stamp %s, the server has %s",
			st.RecoveryTimeStamp.UTC(), s.rts.UTC())
	}
	assocs := map[string]*association{}
	peers := map[netip.Addr]string{}
	for _, a := range st.Associations {
		if a.NodeID == "" || !a.Peer.IsValid() {
			return fmt.Errorf("pfcp: import state: association %q from %s: incomplete", a.NodeID, a.Peer)
		}
		if _, dup := assocs[a.NodeID]; dup {
			return fmt.Errorf("pfcp: import state: association %q twice", a.NodeID)
		}
		if o, dup := peers[a.Peer.Addr()]; dup {
			return fmt.Errorf("pfcp: import state: associations %q and %q from the same address %s", o, a.NodeID, a.Peer.Addr())
		}
		peers[a.Peer.Addr()] = a.NodeID
		assocs[a.NodeID] = &association{nodeID: a.NodeID, peer: a.Peer, rts: a.RecoveryTimeStamp, since: a.Since}
	}
	sessions := map[uint64]*session{}
	teids := map[uint32]uint64{}
	for _, ss := range st.Sessions {
		x, err := importSession(ss)
		if err != nil {
			return fmt.Errorf("pfcp: import state: %w", err)
		}
		if _, dup := sessions[x.seid]; dup {
			return fmt.Errorf("pfcp: import state: session %#x twice", x.seid)
		}
		if assocs[x.owner] == nil {
			return fmt.Errorf("pfcp: import state: session %#x belongs to association %q, which is not in the state", x.seid, x.owner)
		}
		for t := range x.teidSet() {
			if o, dup := teids[t]; dup {
				return fmt.Errorf("pfcp: import state: TEID %#x in sessions %#x and %#x", t, o, x.seid)
			}
			teids[t] = x.seid
		}
		sessions[x.seid] = x
	}
	s.assocs, s.sessions, s.teids = assocs, sessions, teids
	if len(assocs) > 0 || len(sessions) > 0 {
		s.log.Info("PFCP state imported", "associations", len(assocs), "sessions", len(sessions), "teids", len(teids))
	}
	return nil
}
