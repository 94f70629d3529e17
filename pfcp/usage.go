package pfcp

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/wmnsk/go-pfcp/ie"
	"github.com/wmnsk/go-pfcp/message"

	"github.com/pine-upf/pine-upf/enforcer"
)

// Usage Report Trigger bits (TS 29.244 8.2.41), as octets 5 and 6.
type reportTrigger [2]uint8

var (
	trigPERIO = reportTrigger{0x01, 0}
	trigVOLTH = reportTrigger{0x02, 0}
	trigIMMER = reportTrigger{0x80, 0}
	trigVOLQU = reportTrigger{0, 0x01}
	trigTERMR = reportTrigger{0, 0x08}
)

type usageReport struct {
	urrID      uint32
	seqn       uint32
	trigger    reportTrigger
	vol        volumes
	start, end time.Time
}

// takeReport closes the URR's current measurement into a report: the
// volume since the previous report. The URR's UR-SEQN advances.
func takeReport(u *urrState, trig reportTrigger, now time.Time) usageReport {
	r := usageReport{urrID: u.id, seqn: u.seqn, trigger: trig, vol: u.sinceReport, start: u.start, end: now}
	u.seqn++
	u.sinceReport = volumes{}
	u.start = now
	return r
}

// ie builds the Usage Report IE of the given type (within a Session
// Modification Response, Deletion Response or Report Request).
func (r usageReport) ie(typ uint16) *ie.IE {
	v := r.vol
	trig := []uint8{r.trigger[0], r.trigger[1]}
	return ie.NewUsageReport(typ,
		ie.NewURRID(r.urrID),
		ie.NewURSEQN(r.seqn),
		ie.NewUsageReportTrigger(trig...),
		ie.NewStartTime(r.start),
		ie.NewEndTime(r.end),
		// TOVOL, ULVOL, DLVOL, TONOP, ULNOP, DLNOP: inner IP bytes and packets.
		ie.NewVolumeMeasurement(0x3f, v.ulBytes+v.dlBytes, v.ulBytes, v.dlBytes, v.ulPkts+v.dlPkts, v.ulPkts, v.dlPkts),
	)
}

// account folds a rule's counter into the URRs of its PDR: the increase
// since the last reading (a counter that went down belongs to a new rule).
func account(ss *session, r enforcer.Rule, c enforcer.Counter) { accountTo(ss, ss.pdrs, r, c) }

// accountTo is account with the rule's PDR looked up in pdrs (the
// session's PDRs before a change that removed the rule).
func accountTo(ss *session, pdrs map[uint16]pdrState, r enforcer.Rule, c enforcer.Counter) {
	prev := ss.seen[r.ID]
	d := c
	if c.Bytes >= prev.Bytes && c.Packets >= prev.Packets {
		d = enforcer.Counter{Packets: c.Packets - prev.Packets, Bytes: c.Bytes - prev.Bytes}
	}
	ss.seen[r.ID] = c
	if d == (enforcer.Counter{}) {
		return
	}
	p, ok := pdrs[uint16(r.ID>>8)]
	if !ok {
		return
	}
	for _, id := range p.urrIDs {
		u, ok := ss.urrs[id]
		if !ok {
			continue
		}
		u.sinceReport.add(r.Direction, d)
		u.sinceQuota.add(r.Direction, d)
		ss.urrs[id] = u
	}
}

// reportable is a URR that a poll can make report: a volume threshold or
// quota, or a measurement period.
func reportable(u urrState) bool {
	return (u.trig.volth && u.threshold.set()) || u.quota.set() || (u.trig.perio && u.period > 0)
}

func hasReportable(ss *session) bool {
	for _, u := range ss.urrs {
		if reportable(u) {
			return true
		}
	}
	return false
}

// foldUsage reads the counters of the installed rules into the URRs.
func (s *Server) foldUsage(ss *session) {
	if len(ss.urrs) == 0 {
		return
	}
	for _, r := range ss.installed.Rules {
		c, err := s.enf.RuleUsage(ss.seid, r.ID)
		if err != nil {
			s.log.Debug("read rule usage", "seid", ss.seid, "rule", r.ID, "err", err)
			continue
		}
		account(ss, r, c)
	}
}

// forgetRules drops the counter readings of rules no longer installed.
func forgetRules(ss *session) {
	keep := map[uint32]bool{}
	for _, r := range ss.installed.Rules {
		keep[r.ID] = true
	}
	maps.DeleteFunc(ss.seen, func(id uint32, _ enforcer.Counter) bool { return !keep[id] })
}

// checkURRs takes the reports due: volume threshold (VOLTH), volume quota
// (VOLQU, which also blocks the URR's PDRs), measurement period (PERIO).
// It reports whether a quota became exhausted.
func checkURRs(ss *session, now time.Time) (reports []usageReport, blocked bool) {
	for _, id := range slices.Sorted(maps.Keys(ss.urrs)) {
		u := ss.urrs[id]
		var trig reportTrigger
		if u.quota.set() && !u.quotaExhausted && u.quota.reached(u.sinceQuota) {
			u.quotaExhausted, blocked = true, true
			if u.trig.volqu {
				trig[1] |= trigVOLQU[1]
			}
		}
		if u.trig.volth && u.threshold.set() && u.threshold.reached(u.sinceReport) {
			trig[0] |= trigVOLTH[0]
		}
		if u.trig.perio && u.period > 0 && !now.Before(u.nextPeriodic) {
			trig[0] |= trigPERIO[0]
			for !now.Before(u.nextPeriodic) {
				u.nextPeriodic = u.nextPeriodic.Add(u.period)
			}
		}
		if trig != (reportTrigger{}) {
			reports = append(reports, takeReport(&u, trig, now))
		}
		ss.urrs[id] = u
	}
	return reports, blocked
}

// pendingRequest is a UPF-initiated request awaiting its response.
type pendingRequest struct {
	to    netip.AddrPort
	b     []byte
	sent  time.Time
	tries int
	seid  uint64
}

// Retransmission of UPF-initiated Session Report Requests (TS 29.244 6.4:
// T1 and N1).
const (
	reportT1 = 3 * time.Second
	reportN1 = 3
)

// pollUsage runs once per UsagePollInterval: fold counters, send the
// reports due, block PDRs whose quota ran out, retransmit unanswered
// report requests.
func (s *Server) pollUsage() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// Only sessions with something to report are read: a poll costs the
	// URRs with thresholds, quotas or periods, not every session.
	var due []uint64
	for seid, ss := range s.sessions {
		if ss.blockPending || hasReportable(ss) {
			due = append(due, seid)
		}
	}
	slices.Sort(due)
	for _, seid := range due {
		ss := s.sessions[seid]
		ns := ss.clone()
		s.foldUsage(ns)
		reports, blocked := checkURRs(ns, now)
		if blocked || ns.blockPending {
			t, ce := s.translate(ns)
			if ce == nil {
				removed, err := s.enf.ReplaceSession(t.spec)
				if err != nil {
					ce = asCause(err, 0)
				}
				for _, r := range ns.installed.Rules {
					if c, ok := removed[r.ID]; ok {
						account(ns, r, c)
					}
				}
			}
			if ce != nil {
				ns.blockPending = true
				s.log.Error("volume quota exhausted but blocking the PDRs failed; retrying next poll", "seid", seid, "err", ce)
			} else {
				ns.installed, ns.blockPending = t.spec, false
				forgetRules(ns)
				s.log.Info("volume quota exhausted: the URR's PDRs now drop", "seid", seid)
			}
		}
		s.sessions[seid] = ns
		if len(reports) > 0 || blocked || ss.blockPending {
			// Reports taken (UR-SEQN advanced, volumes zeroed) or rules
			// blocked: persisted before the report leaves.
			s.markSession(seid)
		}
		if len(reports) > 0 {
			s.flush()
			s.sendReport(ns, reports)
		}
	}
	s.flush()
	for seq, p := range s.pending {
		if now.Sub(p.sent) < reportT1 {
			continue
		}
		if p.tries >= reportN1 {
			s.log.Warn("session report request unanswered, giving up", "seid", p.seid, "peer", p.to, "seq", seq)
			delete(s.pending, seq)
			continue
		}
		p.tries++
		p.sent = now
		s.transmit(p.to, p.b, message.MsgTypeSessionReportRequest)
	}
}

// sendReport sends a Session Report Request (Report Type USAR) with usage
// reports to the SMF owning the session.
func (s *Server) sendReport(ss *session, reports []usageReport) {
	a, ok := s.assocs[ss.owner]
	if !ok {
		s.log.Warn("usage report for a session without association", "seid", ss.seid)
		return
	}
	ies := []*ie.IE{ie.NewReportType(0, 0, 1, 0)}
	for _, r := range reports {
		ies = append(ies, r.ie(ie.UsageReportWithinSessionReportRequest))
	}
	seq := s.nextSeq()
	m := message.NewSessionReportRequest(0, 0, ss.cpSEID, seq, 0, ies...)
	b, err := m.Marshal()
	if err != nil {
		s.log.Error("marshal session report request", "err", err)
		return
	}
	if len(s.pending) >= maxPending {
		s.log.Warn("too many unanswered session report requests; not tracking this one", "seid", ss.seid)
	} else {
		s.pending[seq] = &pendingRequest{to: a.peer, b: b, sent: s.now(), seid: ss.seid}
	}
	for _, r := range reports {
		s.log.Info("usage report", "seid", ss.seid, "urr", r.urrID, "seqn", r.seqn, "trigger", r.trigger,
			"ul_bytes", r.vol.ulBytes, "dl_bytes", r.vol.dlBytes)
	}
	s.transmit(a.peer, b, message.MsgTypeSessionReportRequest)
}

const maxPending = 4096

// handleSessionReportResponse matches an SMF's answer to our report.
func (s *Server) handleSessionReportResponse(peer netip.AddrPort, m *message.SessionReportResponse) {
	p, ok := s.pending[m.Sequence()]
	if !ok || p.to.Addr() != peer.Addr() {
		s.stats.Unexpected++
		return
	}
	delete(s.pending, m.Sequence())
	cause := uint8(0)
	if m.Cause != nil {
		cause, _ = m.Cause.Cause()
	}
	if cause != ie.CauseRequestAccepted {
		s.log.Warn("SMF refused a session report", "seid", p.seid, "peer", peer, "cause", cause)
	}
}
