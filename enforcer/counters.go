package enforcer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/pine-upf/pine-upf/bpf"
)

func sumCounters(vals []bpf.PineCounter) Counter {
	var c Counter
	for _, v := range vals {
		c.add(Counter{v.Packets, v.Bytes})
	}
	return c
}

// ruleUsage reads a rule's per-CPU counters; a failed read counts zero,
// which the rule table's own consistency makes impossible in practice.
func (e *Enforcer) ruleUsage(idx uint32) Counter {
	c, err := readRuleUsage(e.ruleStats, e.cfg.MaxRules, idx)
	if err != nil {
		e.log.Error("read rule counters", "index", idx, "err", err)
	}
	return c
}

// readRuleUsage sums a rule's per-CPU counters from the mmap'ed rule_stats
// array: no syscall, so usage reporting costs nothing per rule.
func readRuleUsage(mem *ebpf.Memory, stride, idx uint32) (Counter, error) {
	var c Counter
	var b [16]byte
	for cpu := range uint32(ebpf.MustPossibleCPU()) {
		off := int64(cpu*stride+idx) * int64(len(b))
		if _, err := mem.ReadAt(b[:], off); err != nil {
			return c, fmt.Errorf("rule counter %d on CPU %d: %w", idx, cpu, err)
		}
		c.add(Counter{binary.NativeEndian.Uint64(b[:8]), binary.NativeEndian.Uint64(b[8:])})
	}
	return c, nil
}

func (e *Enforcer) sessionUsage(sid uint32) SessionUsage {
	var vals []bpf.PineSessStats
	var u SessionUsage
	if err := e.objs.SessionStats.Lookup(sid, &vals); err != nil {
		e.log.Error("read session counters", "sid", sid, "err", err)
		return u
	}
	for _, v := range vals {
		for d := range 2 {
			u.Forwarded[d].add(Counter{v.Fwd[d].Packets, v.Fwd[d].Bytes})
			u.Dropped[d].add(Counter{v.Drop[d].Packets, v.Drop[d].Bytes})
		}
	}
	return u
}

// RuleUsage is what a rule has forwarded (inner IP bytes).
func (e *Enforcer) RuleUsage(seid uint64, ruleID uint32) (Counter, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[seid]
	if !ok {
		return Counter{}, fmt.Errorf("usage of session %#x: %w", seid, ErrNotFound)
	}
	idx, ok := s.ruleIDs[ruleID]
	if !ok {
		return Counter{}, fmt.Errorf("usage of rule %d of session %#x: %w", ruleID, seid, ErrNotFound)
	}
	return e.ruleUsage(idx), nil
}

// SessionUsage is what a session forwarded and dropped.
func (e *Enforcer) SessionUsage(seid uint64) (SessionUsage, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[seid]
	if !ok {
		return SessionUsage{}, fmt.Errorf("usage of session %#x: %w", seid, ErrNotFound)
	}
	return e.sessionUsage(s.sid), nil
}

// Stats reads the datapath's counters, summed over CPUs, in two batch
// lookups: cheap enough to call per scrape, or per packet in tests.
func (e *Enforcer) Stats() (Stats, error) {
	return readStats(e.objs.Stats, e.objs.EventStats)
}

func readStats(stats, eventStats *ebpf.Map) (Stats, error) {
	var st Stats
	ncpu := ebpf.MustPossibleCPU()
	n := 2 * NumReasons
	keys := make([]uint32, n)
	vals := make([]bpf.PineCounter, n*ncpu)
	var cursor ebpf.MapBatchCursor
	got, err := stats.BatchLookup(&cursor, keys, vals, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return st, fmt.Errorf("read stats: %w", err)
	}
	for d := range 2 {
		st.Packets[d] = make([]Counter, NumReasons)
	}
	for i := range got {
		k := int(keys[i])
		st.Packets[k/NumReasons][k%NumReasons] = sumCounters(vals[i*ncpu : (i+1)*ncpu])
	}

	evKeys := make([]uint32, int(bpf.PineEventStatEV_MAX))
	evVals := make([]uint64, len(evKeys)*ncpu)
	var evCursor ebpf.MapBatchCursor
	got, err = eventStats.BatchLookup(&evCursor, evKeys, evVals, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return st, fmt.Errorf("read event stats: %w", err)
	}
	sum := func(i int) (n uint64) {
		for _, v := range evVals[i*ncpu : (i+1)*ncpu] {
			n += v
		}
		return n
	}
	for i := range got {
		switch bpf.PineEventStat(evKeys[i]) {
		case bpf.PineEventStatEV_SENT:
			st.Events.Sent = sum(i)
		case bpf.PineEventStatEV_SUPPRESSED:
			st.Events.Suppressed = sum(i)
		case bpf.PineEventStatEV_LOST:
			st.Events.Lost = sum(i)
		}
	}
	return st, nil
}

// Usage summarises what the maps hold against their capacity.
type Usage struct {
	Sessions, MaxSessions       int
	Rules, MaxRules             int
	RuleEntries, MaxRuleEntries int
	QERs, MaxQERs               int
}

// Usage reports map fill.
func (e *Enforcer) Usage() Usage {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := Usage{
		Sessions: len(e.sessions), MaxSessions: int(e.cfg.MaxSessions),
		Rules: int(e.ruleIDs.inUse(0)), MaxRules: int(e.cfg.MaxRules),
		MaxRuleEntries: int(e.cfg.MaxRuleEntries),
		QERs:           int(e.qerIdx.inUse(1)), MaxQERs: int(e.cfg.MaxQERs) - 1,
	}
	for _, s := range e.sessions {
		u.RuleEntries += len(s.entries)
	}
	return u
}

// Events delivers deny events until ctx ends. There is one reader: call it
// once. Events of sessions removed meanwhile carry SEID 0.
func (e *Enforcer) Events(ctx context.Context) (<-chan DenyEvent, error) {
	var err error
	first := false
	e.eventsOnce.Do(func() {
		first = true
		e.mu.Lock()
		e.events, err = ringbuf.NewReader(e.objs.Events)
		e.mu.Unlock()
	})
	if !first {
		return nil, errors.New("deny events already have a reader")
	}
	if err != nil {
		return nil, fmt.Errorf("open deny event ring: %w", err)
	}
	out := make(chan DenyEvent, 256)
	go func() {
		<-ctx.Done()
		e.events.Close()
	}()
	go func() {
		defer close(out)
		for {
			rec, err := e.events.Read()
			if err != nil {
				if !errors.Is(err, ringbuf.ErrClosed) {
					e.log.Error("read deny events", "err", err)
				}
				return
			}
			ev, ok := e.decodeEvent(rec.RawSample)
			if !ok {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (e *Enforcer) decodeEvent(raw []byte) (DenyEvent, bool) {
	var v bpf.PineDenyEvent
	if len(raw) < int(unsafe.Sizeof(v)) {
		return DenyEvent{}, false
	}
	v = *(*bpf.PineDenyEvent)(unsafe.Pointer(&raw[0]))
	ev := DenyEvent{
		TEID:      v.Teid,
		Addr:      netip.AddrFrom16(v.Addr).Unmap(),
		Port:      v.Port,
		Protocol:  v.Proto,
		Reason:    Reason(v.Reason),
		Direction: Direction(v.Dir),
		KernelNS:  v.TsNs,
	}
	e.mu.Lock()
	if s, ok := e.bySID[v.Sid]; ok {
		ev.SEID = s.spec.SEID
	}
	e.mu.Unlock()
	return ev, true
}

// Program names a datapath program, for tests and benchmarks.
type Program uint8

const (
	ProgUplink Program = iota
	ProgDownlink
	ProgUplinkFloorParse
	ProgUplinkFloorForward
	ProgDownlinkFloorParse
	ProgDownlinkFloorForward
	ProgPass // returns XDP_PASS: the baseline of single-run timing
)

func (e *Enforcer) prog(p Program) (*ebpf.Program, error) {
	switch p {
	case ProgUplink:
		return e.objs.XdpN3, nil
	case ProgDownlink:
		return e.objs.XdpN6, nil
	case ProgUplinkFloorParse:
		return e.objs.XdpN3FloorParse, nil
	case ProgUplinkFloorForward:
		return e.objs.XdpN3FloorForward, nil
	case ProgDownlinkFloorParse:
		return e.objs.XdpN6FloorParse, nil
	case ProgDownlinkFloorForward:
		return e.objs.XdpN6FloorForward, nil
	case ProgPass:
		return e.objs.XdpPass, nil
	}
	return nil, fmt.Errorf("no program %d", p)
}

// xdpMD is the kernel's struct xdp_md, the context of a test run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// TestRun runs a program once on a frame with BPF_PROG_TEST_RUN, as if it
// arrived on ingressIfindex (0: loopback of the caller's network namespace),
// and returns the verdict and the frame as the program left it.
func (e *Enforcer) TestRun(p Program, frame []byte, ingressIfindex int) (XDPAction, []byte, error) {
	prog, err := e.prog(p)
	if err != nil {
		return 0, nil, err
	}
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
	if ingressIfindex != 0 {
		opts.Context = xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ingressIfindex)}
	}
	ret, err := prog.Run(opts)
	if err != nil {
		return 0, nil, fmt.Errorf("test run: %w", err)
	}
	return XDPAction(ret), opts.DataOut, nil
}

// TimeRun runs a program repeat times on a frame and returns the kernel's
// mean time per run. Programs that rewrite the frame must be timed with
// repeat 1: later repetitions would run on the rewritten frame.
func (e *Enforcer) TimeRun(p Program, frame []byte, repeat int) (XDPAction, float64, error) {
	prog, err := e.prog(p)
	if err != nil {
		return 0, 0, err
	}
	ret, d, err := prog.Benchmark(frame, repeat, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("time run: %w", err)
	}
	return XDPAction(ret), float64(d.Nanoseconds()), nil
}

// MapMemory is the kernel memory (memlock) of each map, by name.
func (e *Enforcer) MapMemory() (map[string]uint64, error) {
	maps := map[string]*ebpf.Map{
		"sessions": e.objs.Sessions, "teids": e.objs.Teids, "ue_v4": e.objs.UeV4,
		"ue_v6": e.objs.UeV6, "rules": e.objs.Rules, "rule_stats": e.objs.RuleStats,
		"qers": e.objs.Qers, "peers": e.objs.Peers, "session_stats": e.objs.SessionStats, "stats": e.objs.Stats,
		"event_stats": e.objs.EventStats, "event_limits": e.objs.EventLimits,
		"events": e.objs.Events, "scratch": e.objs.Scratch,
	}
	out := map[string]uint64{}
	for name, m := range maps {
		info, err := m.Info()
		if err != nil {
			return nil, fmt.Errorf("map %s info: %w", name, err)
		}
		if n, ok := info.Memlock(); ok {
			out[name] = n
		}
	}
	return out, nil
}

// SetFloorTunnel sets where the F2 downlink floor program encapsulates to:
// it has no rule to take a tunnel from.
func (e *Enforcer) SetFloorTunnel(t Tunnel) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	idx, err := e.acquirePeer(&txn{}, t.Peer.Unmap())
	if err != nil {
		return fmt.Errorf("set floor tunnel: %w", err)
	}
	r := Rule{Direction: Downlink, Action: Forward, Tunnel: t}
	v := datapathRule(&r, floorRefs{idx})
	if err := e.objs.FloorRule.Set(v); err != nil {
		return fmt.Errorf("set floor tunnel: %w", err)
	}
	return nil
}

type floorRefs struct{ peer uint32 }

func (floorRefs) ruleID(uint32) uint32              { return 0 }
func (floorRefs) qerIndex(uint32, Direction) uint32 { return 0 }
func (f floorRefs) peerIndex(netip.Addr) uint32     { return f.peer }
