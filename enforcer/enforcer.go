// Package enforcer owns pine-upf's XDP datapath: it loads the BPF programs,
// sizes and pins their maps, attaches them to the N3 and N6 interfaces, and
// compiles sessions and PINE rules into map entries. Its API speaks the
// domain (sessions, PINE rules, QoS, usage), never PFCP. It is the only
// package that touches BPF objects.
package enforcer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/pine-upf/pine-upf/bpf"
)

// Config sizes and tunes the datapath. Zero values take the defaults.
type Config struct {
	MaxSessions    uint32 // default 100,000
	MaxTEIDs       uint32 // default 2 × MaxSessions
	MaxRules       uint32 // PINE rules (usage counters), default 1,000,000
	MaxRuleEntries uint32 // rule table entries (a port range may take several), default MaxRules
	MaxQERs        uint32 // datapath QERs (one per QER and direction), default 65,536
	MaxPeers       uint32 // distinct tunnel peer (gNB) addresses, default 4,096

	// N3 addresses: the outer source of downlink encapsulation.
	N3v4, N3v6 netip.Addr

	// NoFIBFallback drops packets the FIB cannot resolve to a neighbour yet
	// instead of passing them to the kernel to resolve and forward.
	NoFIBFallback bool

	EventsPerSecond uint32 // deny events per session and second, default 16
	EventRingBytes  uint32 // deny event ring buffer, default 1 MiB

	// PinDir is a directory on a bpffs where maps and links are pinned, so a
	// restarted process adopts them. Empty: nothing is pinned.
	PinDir string

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxSessions, 100_000)
	def(&c.MaxTEIDs, 2*c.MaxSessions)
	def(&c.MaxRules, 1_000_000)
	def(&c.MaxRuleEntries, c.MaxRules)
	def(&c.MaxQERs, 65_536)
	def(&c.MaxPeers, 4096)
	def(&c.EventsPerSecond, 16)
	def(&c.EventRingBytes, 1<<20)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	if c.N3v4.IsValid() && !c.N3v4.Is4() {
		return fmt.Errorf("N3 IPv4 address %s is not IPv4", c.N3v4)
	}
	if c.N3v6.IsValid() && (!c.N3v6.Is6() || c.N3v6.Is4In6()) {
		return fmt.Errorf("N3 IPv6 address %s is not IPv6", c.N3v6)
	}
	if r := c.EventRingBytes; r&(r-1) != 0 || r < 4096 {
		return fmt.Errorf("event ring size %d is not a power of two of at least 4096", r)
	}
	return nil
}

// Enforcer is a loaded datapath. Its methods are safe for concurrent use.
type Enforcer struct {
	cfg  Config
	log  *slog.Logger
	objs bpf.PineObjects

	mu       sync.Mutex
	sessions map[uint64]*session // by SEID
	bySID    map[uint32]*session
	teids    map[uint32]uint64 // TEID → SEID
	ue4      map[netip.Addr]uint64
	ue6      map[netip.Prefix]uint64
	sids     *allocator
	ruleIDs  *allocator
	qerIdx   *allocator
	peerIdx  *allocator
	peers    map[netip.Addr]*peerSlot

	links map[string]link.Link // by interface name

	ruleStats *ebpf.Memory // rule_stats, mmap'ed

	events     *ringbuf.Reader
	eventsOnce sync.Once
}

// mapCapacities names the maps whose size Config sets.
func (c *Config) mapCapacities() map[string]uint32 {
	return map[string]uint32{
		"sessions":      c.MaxSessions,
		"teids":         c.MaxTEIDs,
		"ue_v4":         c.MaxSessions,
		"ue_v6":         c.MaxSessions,
		"rules":         c.MaxRuleEntries,
		"rule_stats":    c.MaxRules * uint32(ebpf.MustPossibleCPU()),
		"qers":          c.MaxQERs,
		"peers":         c.MaxPeers,
		"session_stats": c.MaxSessions,
		"event_limits":  c.MaxSessions,
		"events":        c.EventRingBytes,
	}
}

// pinnedMaps is the state a restarted process adopts: everything but the
// load-time constants and the checksum scratch space.
var pinnedMaps = []string{"sessions", "teids", "ue_v4", "ue_v6", "rules", "rule_stats",
	"qers", "peers", "session_stats", "stats", "event_stats", "event_limits", "events"}

// New loads the datapath. With Config.PinDir, maps already pinned there are
// adopted (their contents kept) and new ones are pinned.
func New(cfg Config) (*Enforcer, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("enforcer config: %w", err)
	}
	spec, err := bpf.LoadPine()
	if err != nil {
		return nil, fmt.Errorf("read BPF object: %w", err)
	}
	for name, n := range cfg.mapCapacities() {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("BPF object has no map %q", name)
		}
		ms.MaxEntries = n
	}
	if cfg.PinDir != "" {
		for _, name := range pinnedMaps {
			spec.Maps[name].Pinning = ebpf.PinByName
		}
	}
	if err := setVariables(spec, &cfg); err != nil {
		return nil, err
	}

	opts := &ebpf.CollectionOptions{}
	if cfg.PinDir != "" {
		if err := os.MkdirAll(cfg.PinDir, 0o700); err != nil {
			return nil, fmt.Errorf("pin directory: %w", err)
		}
		opts.Maps.PinPath = cfg.PinDir
	}
	e := &Enforcer{
		cfg:      cfg,
		log:      cfg.Logger,
		sessions: map[uint64]*session{},
		bySID:    map[uint32]*session{},
		teids:    map[uint32]uint64{},
		ue4:      map[netip.Addr]uint64{},
		ue6:      map[netip.Prefix]uint64{},
		sids:     newAllocator(0, cfg.MaxSessions),
		ruleIDs:  newAllocator(0, cfg.MaxRules),
		qerIdx:   newAllocator(1, cfg.MaxQERs), // index 0 means "no QER"
		peerIdx:  newAllocator(1, cfg.MaxPeers),
		peers:    map[netip.Addr]*peerSlot{},
		links:    map[string]link.Link{},
	}
	if err := spec.LoadAndAssign(&e.objs, opts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load XDP programs: verifier rejected them: %w\n%+v", err, ve)
		}
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("adopt maps pinned in %s (sized or built differently; start fresh to replace them): %w", cfg.PinDir, err)
		}
		return nil, fmt.Errorf("load XDP programs: %w", err)
	}
	if e.ruleStats, err = e.objs.RuleStats.Memory(); err != nil {
		e.objs.Close()
		return nil, fmt.Errorf("map rule counters: %w", err)
	}
	return e, nil
}

func setVariables(spec *ebpf.CollectionSpec, cfg *Config) error {
	set := func(name string, v any) error {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF object has no variable %q", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		return nil
	}
	var n3v4 uint32
	if cfg.N3v4.IsValid() {
		b := cfg.N3v4.As4()
		n3v4 = nativeEndianU32(b)
	}
	var n3v6 [4]uint32 // network byte order, word by word
	if cfg.N3v6.IsValid() {
		b := cfg.N3v6.As16()
		for i := range n3v6 {
			n3v6[i] = nativeEndianU32([4]byte(b[4*i : 4*i+4]))
		}
	}
	fallback := uint8(1)
	if cfg.NoFIBFallback {
		fallback = 0
	}
	return errors.Join(
		set("cfg_n3_v4", n3v4),
		set("cfg_n3_v6", n3v6),
		set("cfg_fib_fallback_pass", fallback),
		set("cfg_events_per_sec", cfg.EventsPerSecond),
		set("cfg_max_rules", cfg.MaxRules),
	)
}

// Close releases the datapath. Links and maps pinned under PinDir stay in
// the kernel (and keep enforcing) until Detach or Unpin removes them.
func (e *Enforcer) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	if e.events != nil {
		errs = append(errs, e.events.Close())
	}
	for name, l := range e.links {
		errs = append(errs, l.Close())
		delete(e.links, name)
	}
	errs = append(errs, e.objs.Close())
	return errors.Join(errs...)
}

// Unpin removes every pin under PinDir, so the datapath goes when the last
// process holding it closes.
func (e *Enforcer) Unpin() error {
	if e.cfg.PinDir == "" {
		return nil
	}
	e.mu.Lock()
	var errs []error
	for _, l := range e.links {
		errs = append(errs, l.Unpin())
	}
	e.mu.Unlock()
	return errors.Join(append(errs, UnpinDir(e.cfg.PinDir))...)
}

// UnpinDir removes what an enforcer pins under dir — its maps and links,
// nothing else — for a fresh start without loading anything.
func UnpinDir(dir string) error {
	var errs []error
	remove := func(p string) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, name := range pinnedMaps {
		remove(filepath.Join(dir, name))
	}
	links, _ := filepath.Glob(filepath.Join(dir, "link_*"))
	for _, l := range links {
		remove(l)
	}
	return errors.Join(errs...)
}
