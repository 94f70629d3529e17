package enforcer

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/pine-upf/pine-upf/bpf"
)

// Pinned reads the counters of a datapath pinned by another process (a
// running daemon), without loading or changing anything.
type Pinned struct {
	maxRules                uint32
	ruleStats, sessionStats *ebpf.Map
	stats, eventStats       *ebpf.Map
}

// OpenPinned opens the counter maps pinned under dir read-only. maxRules
// is the daemon's MaxRules (the stride of rule counters between CPUs).
func OpenPinned(dir string, maxRules uint32) (*Pinned, error) {
	if maxRules == 0 {
		maxRules = 1_000_000
	}
	p := &Pinned{maxRules: maxRules}
	open := func(name string) (*ebpf.Map, error) {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("open pinned map %s in %s: %w", name, dir, err)
		}
		return m, nil
	}
	var err error
	if p.ruleStats, err = open("rule_stats"); err != nil {
		return nil, err
	}
	if p.sessionStats, err = open("session_stats"); err != nil {
		p.Close()
		return nil, err
	}
	if p.stats, err = open("stats"); err != nil {
		p.Close()
		return nil, err
	}
	if p.eventStats, err = open("event_stats"); err != nil {
		p.Close()
		return nil, err
	}
	if n := p.ruleStats.MaxEntries(); n%maxRules != 0 {
		p.Close()
		return nil, fmt.Errorf("pinned rule counters hold %d entries, not a multiple of MaxRules %d: the daemon runs with another MaxRules", n, maxRules)
	}
	return p, nil
}

// Close releases the maps.
func (p *Pinned) Close() error {
	var errs []error
	for _, m := range []*ebpf.Map{p.ruleStats, p.sessionStats, p.stats, p.eventStats} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// RuleUsage reads a rule's counters by the index a State gives it.
func (p *Pinned) RuleUsage(idx uint32) (Counter, error) {
	var c Counter
	for cpu := range uint32(ebpf.MustPossibleCPU()) {
		var v bpf.PineCounter
		if err := p.ruleStats.Lookup(cpu*p.maxRules+idx, &v); err != nil {
			return c, fmt.Errorf("read rule counter %d: %w", idx, err)
		}
		c.add(Counter{v.Packets, v.Bytes})
	}
	return c, nil
}

// SessionUsage reads a session's counters by its sid.
func (p *Pinned) SessionUsage(sid uint32) (SessionUsage, error) {
	var vals []bpf.PineSessStats
	var u SessionUsage
	if err := p.sessionStats.Lookup(sid, &vals); err != nil {
		return u, fmt.Errorf("read session counter %d: %w", sid, err)
	}
	for _, v := range vals {
		for d := range 2 {
			u.Forwarded[d].add(Counter{v.Fwd[d].Packets, v.Fwd[d].Bytes})
			u.Dropped[d].add(Counter{v.Drop[d].Packets, v.Drop[d].Bytes})
		}
	}
	return u, nil
}

// Stats reads the datapath's counters by direction and reason.
func (p *Pinned) Stats() (Stats, error) {
	return readStats(p.stats, p.eventStats)
}
