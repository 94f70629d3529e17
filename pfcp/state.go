package pfcp

import (
	"maps"
	"net/netip"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/pfcp/flowdesc"
)

// The PFCP side of a session, as the SMF provisioned it. A session is
// copy-on-write: a request clones it (maps are copied; slices inside the
// rule states are never modified in place, only replaced), applies its IEs
// to the clone, translates and installs the clone, and only then replaces
// the stored session. A failed request leaves the stored one untouched.
type session struct {
	seid   uint64 // UP SEID, allocated here
	cpSEID uint64
	cpAddr netip.Addr // from the CP F-SEID
	owner  string     // Node ID of the association that created it

	pdrs  map[uint16]pdrState
	fars  map[uint32]farState
	qers  map[uint32]qerState
	urrs  map[uint32]urrState
	chids map[uint8]uint32 // CHOOSE ID → TEID

	installed    enforcer.Session            // what the datapath has
	seen         map[uint32]enforcer.Counter // last rule counters folded into URRs
	remoteLogged bool                        // the "remote side not enforced" note was logged
	blockPending bool                        // a quota block still has to reach the datapath
	created      time.Time
}

func newSession(seid uint64, owner string, now time.Time) *session {
	return &session{
		seid: seid, owner: owner, created: now,
		pdrs: map[uint16]pdrState{}, fars: map[uint32]farState{},
		qers: map[uint32]qerState{}, urrs: map[uint32]urrState{},
		chids: map[uint8]uint32{}, seen: map[uint32]enforcer.Counter{},
	}
}

func (s *session) clone() *session {
	c := *s
	c.pdrs = maps.Clone(s.pdrs)
	c.fars = maps.Clone(s.fars)
	c.qers = maps.Clone(s.qers)
	c.urrs = maps.Clone(s.urrs)
	c.chids = maps.Clone(s.chids)
	c.seen = maps.Clone(s.seen)
	return &c
}

// teidSet lists the local TEIDs the session's PDRs use.
func (s *session) teidSet() map[uint32]bool {
	out := map[uint32]bool{}
	for _, p := range s.pdrs {
		if p.fteid.set {
			out[p.fteid.teid] = true
		}
	}
	return out
}

type fteidState struct {
	set     bool
	teid    uint32
	v4, v6  netip.Addr // the addresses of the F-TEID (ours when chosen here)
	chosen  bool       // allocated by the UPF (CH)
	chid    uint8
	hasCHID bool
}

type sdfState struct {
	desc   string
	filter flowdesc.Filter
	id     uint32 // SDF Filter ID, when given
}

type pdrState struct {
	op         uint16 // IE that last created or updated it: Create PDR or Update PDR
	id         uint16
	precedence uint32
	source     uint8 // Source Interface
	fteid      fteidState
	ueV4       netip.Addr
	ueV6       netip.Prefix
	network    string  // Network Instance: recorded, not enforced
	qfis       []uint8 // PDI QFIs: recorded, not enforced
	filters    []sdfState
	ohr        int // Outer Header Removal description; -1 = none
	farID      uint32
	hasFAR     bool
	qerIDs     []uint32
	urrIDs     []uint32
}

type ohcState struct {
	set  bool
	desc uint16
	teid uint32
	v4   netip.Addr
	v6   netip.Addr
}

type farState struct {
	op                     uint16
	id                     uint32
	forw, drop, buff, nocp bool
	dest                   uint8 // Destination Interface
	hasDest                bool
	network                string
	ohc                    ohcState
}

type qerState struct {
	op             uint16
	id             uint32
	ulGate, dlGate uint8  // 0 open; 1 closed (2, 3: treated as closed)
	ulMBR, dlMBR   uint64 // bit/s
	qfi            uint8
	hasQFI         bool
}

// volumeLimit is a Volume Threshold or Volume Quota: flags as in the IE
// (TOVOL 1, ULVOL 2, DLVOL 4), volumes in bytes.
type volumeLimit struct {
	flags         uint8
	total, ul, dl uint64
}

func (v volumeLimit) set() bool { return v.flags&7 != 0 }

// reached reports whether the volumes meet any limit present.
func (v volumeLimit) reached(u volumes) bool {
	return (v.flags&1 != 0 && v.total > 0 && u.ulBytes+u.dlBytes >= v.total) ||
		(v.flags&2 != 0 && v.ul > 0 && u.ulBytes >= v.ul) ||
		(v.flags&4 != 0 && v.dl > 0 && u.dlBytes >= v.dl)
}

type volumes struct {
	ulBytes, dlBytes, ulPkts, dlPkts uint64
}

func (v *volumes) add(dir enforcer.Direction, c enforcer.Counter) {
	if dir == enforcer.Uplink {
		v.ulBytes += c.Bytes
		v.ulPkts += c.Packets
	} else {
		v.dlBytes += c.Bytes
		v.dlPkts += c.Packets
	}
}

// Reporting triggers this UPF acts on (octet 5 bits 1-2, octet 6 bit 1).
type triggers struct{ perio, volth, volqu bool }

type urrState struct {
	op        uint16
	id        uint32
	method    uint8 // Measurement Method: DURAT 1, VOLUM 2, EVENT 4
	trig      triggers
	threshold volumeLimit
	quota     volumeLimit
	period    time.Duration

	// Measurement.
	seqn           uint32  // UR-SEQN of the next report
	sinceReport    volumes // since the last usage report (or creation)
	sinceQuota     volumes // since the quota was provisioned
	quotaExhausted bool
	start          time.Time // start of the current measurement
	nextPeriodic   time.Time
}

// resetOps forgets which IE last touched each rule: a new request starts.
func (s *session) resetOps() {
	for id, p := range s.pdrs {
		p.op = 0
		s.pdrs[id] = p
	}
	for id, f := range s.fars {
		f.op = 0
		s.fars[id] = f
	}
	for id, q := range s.qers {
		q.op = 0
		s.qers[id] = q
	}
	for id, u := range s.urrs {
		u.op = 0
		s.urrs[id] = u
	}
}
