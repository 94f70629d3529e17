package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/pine-upf/pine-upf/enforcer"
)

// Config is the daemon's configuration: a YAML file, then flags on top.
// Field paths in error messages are the YAML paths.
type Config struct {
	N3      IfaceConfig   `yaml:"n3"`
	N6      IfaceConfig   `yaml:"n6"`
	XDPMode string        `yaml:"xdp_mode"` // native | generic
	PFCP    PFCPConfig    `yaml:"pfcp"`
	Maps    MapsConfig    `yaml:"maps"`
	PinDir  string        `yaml:"pin_dir"`   // on a bpffs; "" = nothing pinned, no restart adoption
	State   string        `yaml:"state_dir"` // recovery time stamp and datapath snapshot
	Metrics MetricsConfig `yaml:"metrics"`
	Log     LogConfig     `yaml:"log"`
	Events  EventsConfig  `yaml:"deny_events"`
}

// IfaceConfig names an interface and its addresses.
type IfaceConfig struct {
	Interface string `yaml:"interface"`
	IPv4      string `yaml:"ipv4"`
	IPv6      string `yaml:"ipv6"`
}

// PFCPConfig is the N4 server's part.
type PFCPConfig struct {
	Listen             string        `yaml:"listen"`
	NodeID             string        `yaml:"node_id"`
	AllowedPeers       []string      `yaml:"allowed_peers"`
	HeartbeatInterval  time.Duration `yaml:"heartbeat_interval"`
	HeartbeatRetries   int           `yaml:"heartbeat_retries"`
	PurgeOnPeerRestart bool          `yaml:"purge_on_peer_restart"`
	PINEQuota          int           `yaml:"pine_quota"` // PINE rules per session
}

// MapsConfig sizes the datapath.
type MapsConfig struct {
	Sessions uint32 `yaml:"sessions"`
	Rules    uint32 `yaml:"rules"`
	QERs     uint32 `yaml:"qers"`
}

// MetricsConfig is the Prometheus endpoint.
type MetricsConfig struct {
	Listen string `yaml:"listen"` // "" = off
}

// LogConfig is slog's.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// EventsConfig rate-limits the deny event log.
type EventsConfig struct {
	LogPerSecond int `yaml:"log_per_second"` // deny event log lines per second overall
	Queue        int `yaml:"queue"`          // events waiting to be logged; more are dropped and counted
}

// Defaults.
func defaultConfig() Config {
	return Config{
		XDPMode: "native",
		PFCP: PFCPConfig{
			Listen:           "0.0.0.0:8805",
			HeartbeatRetries: 3,
			PINEQuota:        1024,
		},
		Maps:    MapsConfig{Sessions: 100_000, Rules: 1_000_000, QERs: 65_536},
		PinDir:  "/sys/fs/bpf/pine-upf",
		State:   "/var/lib/pine-upf",
		Metrics: MetricsConfig{Listen: "127.0.0.1:9464"},
		Log:     LogConfig{Level: "info", Format: "text"},
		Events:  EventsConfig{LogPerSecond: 10, Queue: 1024},
	}
}

// configError is a bad field: one line, naming it.
type configError struct {
	field, msg string
}

func (e *configError) Error() string { return "config: " + e.field + ": " + e.msg }

func bad(field, format string, args ...any) error {
	return &configError{field, fmt.Sprintf(format, args...)}
}

// loadConfigFile reads a YAML file over the defaults; unknown keys are errors.
func loadConfigFile(path string) (Config, error) {
	cfg := defaultConfig()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config: %s: %s", path, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return cfg, nil
}

// parsed is the validated configuration in the types the daemon uses.
type parsed struct {
	Config
	n3v4, n3v6, n6v4, n6v6 netip.Addr
	mode                   enforcer.XDPMode
	listen                 netip.AddrPort
	peers                  []netip.Prefix
	level                  slog.Level
	metrics                string
}

func parseAddrField(field, s string, want4 bool) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, bad(field, "%q is not an IP address", s)
	}
	if want4 && !a.Is4() {
		return a, bad(field, "%s is not an IPv4 address", s)
	}
	if !want4 && (!a.Is6() || a.Is4In6()) {
		return a, bad(field, "%s is not an IPv6 address", s)
	}
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() && want4 {
		return a, bad(field, "%s is not a unicast address", s)
	}
	return a, nil
}

// validate checks every field that needs no look at the host. The first bad
// field is the error.
func (c Config) validate() (*parsed, error) {
	p := &parsed{Config: c}
	var err error
	if c.N3.Interface == "" {
		return nil, bad("n3.interface", "required")
	}
	if c.N6.Interface == "" {
		return nil, bad("n6.interface", "required")
	}
	if c.N3.Interface == c.N6.Interface {
		return nil, bad("n6.interface", "%q is also the N3 interface", c.N6.Interface)
	}
	for _, f := range []struct {
		field, v string
	}{{"n3.interface", c.N3.Interface}, {"n6.interface", c.N6.Interface}} {
		if len(f.v) >= unix.IFNAMSIZ || strings.ContainsAny(f.v, "/ \t") {
			return nil, bad(f.field, "%q is not a valid interface name", f.v)
		}
	}
	if p.n3v4, err = parseAddrField("n3.ipv4", c.N3.IPv4, true); err != nil {
		return nil, err
	}
	if p.n3v6, err = parseAddrField("n3.ipv6", c.N3.IPv6, false); err != nil {
		return nil, err
	}
	if !p.n3v4.IsValid() && !p.n3v6.IsValid() {
		return nil, bad("n3.ipv4", "an N3 IPv4 or IPv6 address is required (F-TEIDs and encapsulation use it)")
	}
	if p.n6v4, err = parseAddrField("n6.ipv4", c.N6.IPv4, true); err != nil {
		return nil, err
	}
	if p.n6v6, err = parseAddrField("n6.ipv6", c.N6.IPv6, false); err != nil {
		return nil, err
	}
	switch c.XDPMode {
	case "native":
		p.mode = enforcer.XDPNative
	case "generic":
		p.mode = enforcer.XDPGeneric
	default:
		return nil, bad("xdp_mode", "%q is neither native nor generic", c.XDPMode)
	}
	if p.listen, err = netip.ParseAddrPort(c.PFCP.Listen); err != nil {
		return nil, bad("pfcp.listen", "%q is not an ip:port address", c.PFCP.Listen)
	}
	if c.PFCP.NodeID == "" && p.listen.Addr().IsUnspecified() {
		return nil, bad("pfcp.node_id", "required when pfcp.listen is %s", p.listen.Addr())
	}
	if c.PFCP.NodeID != "" && !validNodeID(c.PFCP.NodeID) {
		return nil, bad("pfcp.node_id", "%q is neither an IP address nor an FQDN", c.PFCP.NodeID)
	}
	for i, s := range c.PFCP.AllowedPeers {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, bad(fmt.Sprintf("pfcp.allowed_peers[%d]", i), "%q is not an address prefix", s)
			}
			pf = netip.PrefixFrom(a, a.BitLen())
		}
		p.peers = append(p.peers, pf.Masked())
	}
	if c.PFCP.HeartbeatInterval < 0 {
		return nil, bad("pfcp.heartbeat_interval", "%s is negative", c.PFCP.HeartbeatInterval)
	}
	if c.PFCP.HeartbeatInterval > 0 && c.PFCP.HeartbeatInterval < 100*time.Millisecond {
		return nil, bad("pfcp.heartbeat_interval", "%s is below 100ms", c.PFCP.HeartbeatInterval)
	}
	if c.PFCP.HeartbeatRetries < 1 || c.PFCP.HeartbeatRetries > 100 {
		return nil, bad("pfcp.heartbeat_retries", "%d is outside 1..100", c.PFCP.HeartbeatRetries)
	}
	if c.Maps.Sessions == 0 || c.Maps.Sessions > 10_000_000 {
		return nil, bad("maps.sessions", "%d is outside 1..10000000", c.Maps.Sessions)
	}
	if c.Maps.Rules == 0 || c.Maps.Rules > 100_000_000 {
		return nil, bad("maps.rules", "%d is outside 1..100000000", c.Maps.Rules)
	}
	if c.Maps.QERs < 2 || c.Maps.QERs > 10_000_000 {
		return nil, bad("maps.qers", "%d is outside 2..10000000", c.Maps.QERs)
	}
	if c.PFCP.PINEQuota < 1 || uint64(c.PFCP.PINEQuota) > uint64(c.Maps.Rules) {
		return nil, bad("pfcp.pine_quota", "%d is outside 1..maps.rules (%d)", c.PFCP.PINEQuota, c.Maps.Rules)
	}
	if c.PinDir != "" && !filepath.IsAbs(c.PinDir) {
		return nil, bad("pin_dir", "%q is not an absolute path", c.PinDir)
	}
	if c.State == "" {
		return nil, bad("state_dir", "required (the recovery time stamp and datapath snapshot live there)")
	}
	if !filepath.IsAbs(c.State) {
		return nil, bad("state_dir", "%q is not an absolute path", c.State)
	}
	if c.Metrics.Listen != "" {
		host, port, err := net.SplitHostPort(c.Metrics.Listen)
		if err != nil {
			return nil, bad("metrics.listen", "%q is not a host:port address", c.Metrics.Listen)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return nil, bad("metrics.listen", "port %q is not a port number", port)
		}
		if host != "" {
			if _, err := netip.ParseAddr(host); err != nil {
				return nil, bad("metrics.listen", "host %q is not an IP address", host)
			}
		}
		p.metrics = c.Metrics.Listen
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug":
		p.level = slog.LevelDebug
	case "info", "":
		p.level = slog.LevelInfo
	case "warn", "warning":
		p.level = slog.LevelWarn
	case "error":
		p.level = slog.LevelError
	default:
		return nil, bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return nil, bad("log.format", "%q is neither text nor json", c.Log.Format)
	}
	if c.Events.LogPerSecond < 0 {
		return nil, bad("deny_events.log_per_second", "%d is negative", c.Events.LogPerSecond)
	}
	if c.Events.Queue < 1 || c.Events.Queue > 1<<20 {
		return nil, bad("deny_events.queue", "%d is outside 1..1048576", c.Events.Queue)
	}
	return p, nil
}

func validNodeID(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, r := range l {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

// checkHost checks what the configuration names on this host (in the
// caller's network namespace): the pin directory is on a bpffs, the state
// directory is usable, the interfaces exist and carry their addresses.
func (p *parsed) checkHost() error {
	if p.PinDir != "" {
		if err := checkPinDir(p.PinDir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(p.State, 0o700); err != nil {
		return bad("state_dir", "%v", err)
	}
	if f, err := os.CreateTemp(p.State, ".probe-*"); err != nil {
		return bad("state_dir", "%q is not writable: %v", p.State, err)
	} else {
		f.Close()
		os.Remove(f.Name())
	}
	sides := []struct {
		field string
		cfg   IfaceConfig
		addrs []netip.Addr
		ifc   *net.Interface
	}{
		{"n3", p.N3, []netip.Addr{p.n3v4, p.n3v6}, nil},
		{"n6", p.N6, []netip.Addr{p.n6v4, p.n6v6}, nil},
	}
	for i := range sides {
		ifc, err := net.InterfaceByName(sides[i].cfg.Interface)
		if err != nil {
			return bad(sides[i].field+".interface", "%q: no such interface", sides[i].cfg.Interface)
		}
		sides[i].ifc = ifc
	}
	for _, side := range sides {
		have, err := side.ifc.Addrs()
		if err != nil {
			return bad(side.field+".interface", "%q: list addresses: %v", side.cfg.Interface, err)
		}
		for i, a := range side.addrs {
			if !a.IsValid() {
				continue
			}
			field := side.field + ".ipv4"
			if i == 1 {
				field = side.field + ".ipv6"
			}
			if !hasAddr(have, a) {
				return bad(field, "%s is not an address of %s", a, side.cfg.Interface)
			}
		}
	}
	return nil
}

func hasAddr(have []net.Addr, a netip.Addr) bool {
	for _, h := range have {
		if n, ok := h.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == a {
				return true
			}
		}
	}
	return false
}

// checkPinDir: the directory (or, if it does not exist yet, its nearest
// existing parent) must be on a bpffs.
func checkPinDir(dir string) error {
	d := dir
	for {
		var st unix.Statfs_t
		err := unix.Statfs(d, &st)
		if err == nil {
			if st.Type != unix.BPF_FS_MAGIC {
				return bad("pin_dir", "%q is not on a bpffs (mount -t bpf bpf /sys/fs/bpf)", dir)
			}
			if d != dir {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return bad("pin_dir", "%v", err)
				}
			}
			return nil
		}
		if !errors.Is(err, unix.ENOENT) {
			return bad("pin_dir", "%q: %v", dir, err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return bad("pin_dir", "%q: no such directory", dir)
		}
		d = parent
	}
}

func (p *parsed) enforcerConfig(log *slog.Logger) enforcer.Config {
	return enforcer.Config{
		MaxSessions: p.Maps.Sessions,
		MaxRules:    p.Maps.Rules,
		MaxQERs:     p.Maps.QERs,
		N3v4:        p.n3v4,
		N3v6:        p.n3v6,
		PinDir:      p.PinDir,
		Logger:      log,
	}
}
