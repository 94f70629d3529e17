// Package refmodel is a pure-Go reference model of the pine-upf XDP
// datapath (bpf/pine.c): for any frame it gives what xdp_n3 (Uplink) and
// xdp_n6 (Downlink) give under BPF_PROG_TEST_RUN — the XDP action, the
// reason, the frame as the program left it, and the redirect ifindex — and
// it keeps the counters the datapath keeps.
//
// Parsing, decapsulation, encapsulation and forwarding mirror the C line by
// line. Policy does not: the model takes the domain rules (enforcer.Session
// with its Rules and QERs) and applies their declarative meaning directly —
// the lowest-precedence matching rule wins — where the datapath looks up
// entries the enforcer compiled. A differential test between the two
// therefore checks that compilation.
//
// Time does not pass in the model: QER token buckets start full and are
// never refilled. Tests must only use QERs whose outcome does not depend on
// refill. A Model is not safe for concurrent use.
package refmodel

import (
	"net/netip"
	"slices"

	"github.com/pine-upf/pine-upf/enforcer"
)

// Hop is a resolved next hop: what bpf_fib_lookup returns on success.
type Hop struct {
	IfIndex        int
	SrcMAC, DstMAC [6]byte
	MTU            int // tot_len above it needs fragmenting (fallback); 0 = no limit
}

// Route is one FIB entry. A nil Hop is a route whose neighbour is not
// resolved (BPF_FIB_LKUP_RET_NO_NEIGH). An unreachable route is one the
// kernel does not forward to: local and broadcast addresses, blackholes.
type Route struct {
	Prefix      netip.Prefix
	Hop         *Hop
	Unreachable bool
}

// Config is the datapath's configuration.
type Config struct {
	N3v4, N3v6      netip.Addr // outer source of downlink encapsulation (cfg_n3_v4, cfg_n3_v6)
	FIBFallbackPass bool       // cfg_fib_fallback_pass (1 in the C by default): XDP_PASS what the FIB cannot finish
	Routes          []Route    // longest prefix match on the destination routed
}

// Result is what one program run gives.
type Result struct {
	Action  enforcer.XDPAction
	Reason  enforcer.Reason
	Out     []byte // the frame as the program left it
	IfIndex int    // redirect target, for XDPRedirect only
}

// session is a domain session with the lookups the model needs.
type session struct {
	enforcer.Session
	qers map[uint32]*enforcer.QER
}

type ruleKey struct {
	seid uint64
	rule uint32
}

// bucketKey names one token bucket: the enforcer allocates one datapath
// QER per (session QER, direction), shared by every rule naming it.
type bucketKey struct {
	sess *session
	qer  uint32
	dir  enforcer.Direction
}

// Model is the reference datapath with its state.
type Model struct {
	cfg      Config
	sessions []*session
	byTEID   map[uint32]*session
	byUEv4   map[[4]byte]*session
	tokens   map[bucketKey]uint64 // bytes left; absent = full

	stats     [2][]enforcer.Counter
	ruleUsage map[ruleKey]enforcer.Counter
	sessUsage map[uint64]enforcer.SessionUsage
	events    []enforcer.DenyEvent
}

// New is a model of the datapath configured with cfg and holding sessions.
// When several sessions claim one TEID or UE IPv4 address, the first wins.
func New(cfg Config, sessions []enforcer.Session) *Model {
	m := &Model{
		cfg:       cfg,
		byTEID:    map[uint32]*session{},
		byUEv4:    map[[4]byte]*session{},
		tokens:    map[bucketKey]uint64{},
		ruleUsage: map[ruleKey]enforcer.Counter{},
		sessUsage: map[uint64]enforcer.SessionUsage{},
	}
	m.cfg.Routes = slices.Clone(cfg.Routes)
	for d := range m.stats {
		m.stats[d] = make([]enforcer.Counter, enforcer.NumReasons)
	}
	for _, s := range sessions {
		ss := &session{Session: s, qers: map[uint32]*enforcer.QER{}}
		ss.Rules = slices.Clone(s.Rules)
		for i := range s.QERs {
			q := s.QERs[i]
			if _, dup := ss.qers[q.ID]; !dup {
				ss.qers[q.ID] = &q
			}
		}
		m.sessions = append(m.sessions, ss)
		for _, t := range s.TEIDs {
			if _, dup := m.byTEID[t]; !dup {
				m.byTEID[t] = ss
			}
		}
		if a, ok := v4Bytes(s.UEv4); ok {
			if _, dup := m.byUEv4[a]; !dup {
				m.byUEv4[a] = ss
			}
		}
	}
	return m
}

// v4Bytes are the 4 bytes of an IPv4 (or IPv4-mapped) address.
func v4Bytes(a netip.Addr) ([4]byte, bool) {
	if !a.IsValid() || !a.Unmap().Is4() {
		return [4]byte{}, false
	}
	return a.Unmap().As4(), true
}

// run is one program invocation: the frame being edited and struct pkt.
type run struct {
	buf     []byte
	p       pktInfo
	ifindex int
}

func newRun(frame []byte) *run {
	return &run{buf: slices.Clone(frame), p: pktInfo{frameLen: len(frame)}}
}

func (r *run) cursor() cursor {
	return cursor{pos: 0, end: len(r.buf), limit: len(r.buf)}
}

// Uplink runs xdp_n3 on a frame received from the gNB.
func (m *Model) Uplink(frame []byte) Result {
	x := newRun(frame)
	s, reason := m.n3(x)
	return m.finish(x, enforcer.Uplink, s, reason)
}

// Downlink runs xdp_n6 on a frame received from the data network.
func (m *Model) Downlink(frame []byte) Result {
	x := newRun(frame)
	s, reason := m.n6(x)
	return m.finish(x, enforcer.Downlink, s, reason)
}

// n3 is process_n3 in MODE_ENFORCE up to its labels: it returns the
// session once it was found (the "done" label) or nil ("out").
func (m *Model) n3(x *run) (*session, enforcer.Reason) {
	b, p := x.buf, &x.p
	c := x.cursor()
	ethProto, ret := parseEth(&c, b)
	if ret != cont {
		return nil, ret
	}
	typ, ret := parseOuterGTP(&c, b, ethProto, p)
	if ret != cont {
		return nil, ret
	}
	if typ != gtpTypeGPDU {
		return nil, enforcer.ReasonPassControl
	}
	flags := b[c.pos-gtpHdrLen]

	s := m.byTEID[p.teid]
	if s == nil {
		return nil, enforcer.ReasonUnknownTEID
	}
	if ret = parseGTPExt(&c, b, flags, p); ret != cont {
		return s, ret
	}
	if ret = parseInner(&c, b, p); ret != cont {
		return s, ret
	}
	if !s.sourceAllowed(p) {
		m.deny(s, p, enforcer.Uplink, enforcer.ReasonSpoofed, p.src, p.sport)
		return s, enforcer.ReasonSpoofed
	}
	r := s.lookup(enforcer.Uplink, p, p.src, p.sport)
	if r == nil {
		m.deny(s, p, enforcer.Uplink, enforcer.ReasonNoRule, p.src, p.sport)
		return s, enforcer.ReasonNoRule
	}
	if r.Action != enforcer.Forward {
		return s, enforcer.ReasonRuleDrop
	}
	if ret = m.qos(s, r, enforcer.Uplink, p.innerLen); ret != cont {
		return s, ret
	}
	if ret = x.decap(); ret != cont {
		return s, ret
	}
	// An expired TTL goes to the kernel decapsulated, after QoS.
	if p.ttl <= 1 {
		return s, enforcer.ReasonPassTTL
	}
	ret = m.fibForward(x, p.innerV6, true, m.cfg.FIBFallbackPass)
	if ret == enforcer.ReasonForward {
		m.countRule(s, r, p.innerLen)
	}
	return s, ret
}

// n6 is process_n6 in MODE_ENFORCE up to its labels.
func (m *Model) n6(x *run) (*session, enforcer.Reason) {
	b, p := x.buf, &x.p
	c := x.cursor()
	ethProto, ret := parseEth(&c, b)
	if ret != cont {
		return nil, ret
	}
	if ethProto != ethPIP && ethProto != ethPIPv6 {
		return nil, enforcer.ReasonPassOther
	}
	if c.pos+1 > c.end {
		return nil, enforcer.ReasonMalformed
	}
	want := uint8(6)
	if ethProto == ethPIP {
		want = 4
	}
	if b[c.pos]>>4 != want {
		return nil, enforcer.ReasonMalformed
	}
	if ret = parseInner(&c, b, p); ret != cont {
		return nil, ret
	}

	s := m.sessionByUE(p)
	if s == nil {
		return nil, enforcer.ReasonPassOther
	}
	r := s.lookup(enforcer.Downlink, p, p.dst, p.dport)
	if r == nil {
		m.deny(s, p, enforcer.Downlink, enforcer.ReasonNoRule, p.dst, p.dport)
		return s, enforcer.ReasonNoRule
	}
	if r.Action != enforcer.Forward {
		return s, enforcer.ReasonRuleDrop
	}
	if ret = m.qos(s, r, enforcer.Downlink, p.innerLen); ret != cont {
		return s, ret
	}
	if p.ttl <= 1 {
		return s, enforcer.ReasonPassTTL
	}
	if ret = x.decInnerTTL(); ret != cont {
		return s, ret
	}
	outerV6 := tunnelV6(r.Tunnel)
	if ret = x.encap(m.cfg, r.Tunnel, outerV6); ret != cont {
		return s, ret
	}
	ret = m.fibForward(x, outerV6, false, false) // never passes encapsulated packets
	if ret == enforcer.ReasonForward {
		m.countRule(s, r, p.innerLen)
	}
	return s, ret
}

// finish is session_finish (when the session is known) and finish.
func (m *Model) finish(x *run, dir enforcer.Direction, s *session, reason enforcer.Reason) Result {
	if s != nil {
		m.countSession(s, dir, reason, x.p.innerLen)
	}
	m.stats[dir][reason].Packets++
	m.stats[dir][reason].Bytes += uint64(x.p.frameLen)
	res := Result{Action: reason.Verdict(), Reason: reason, Out: x.buf}
	if reason == enforcer.ReasonForward {
		res.IfIndex = x.ifindex
	}
	return res
}
