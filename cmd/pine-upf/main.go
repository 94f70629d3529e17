// Command pine-upf is the pine-upf daemon and its operator CLI.
//
//	pine-upf run --config /etc/pine-upf/pine-upf.yaml [flags]
//	pine-upf inspect --pin-dir /sys/fs/bpf/pine-upf --state-dir /var/lib/pine-upf [--json]
//	pine-upf version
//
// run loads the XDP datapath, attaches it to the N3 and N6 interfaces,
// serves PFCP (N4) for the SMF, answers GTP-U echo on N3, logs deny events
// (rate-limited) and serves Prometheus metrics. SIGINT/SIGTERM detach and
// unpin the datapath, or with --keep-datapath leave it pinned and enforcing
// for the next run to adopt (with the saved sessions).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// Set with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

type buildVersion struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

func versionInfo() buildVersion {
	v := buildVersion{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && v.Commit == "" {
				v.Commit = s.Value
			}
		}
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries an exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// execute runs the CLI and returns the exit status: 0, 1 (failure while
// running), 2 (bad configuration or usage).
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else {
		code = 2 // cobra's own: unknown flag or command
	}
	var ce *configError
	msg := err.Error()
	if errors.As(err, &ce) || strings.HasPrefix(msg, "config: ") {
		msg = strings.ReplaceAll(msg, "\n", "; ")
	}
	fmt.Fprintln(stderr, msg)
	return code
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "pine-upf",
		Short:         "PFCP-controlled XDP user plane enforcing per-PINE rules (TR 33.882)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newRunCmd(stderr), newInspectCmd(stdout), newVersionCmd(stdout))
	return root
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionInfo()
			fmt.Fprintf(stdout, "pine-upf %s (commit %s, %s)\n", v.Version, v.Commit, v.GoVersion)
			return nil
		},
	}
}

// overrides are the run flags; each set flag replaces its config field.
type overrides struct {
	n3If, n3v4, n3v6, n6If, n6v4, n6v6 string
	mode, listen, nodeID               string
	peers                              []string
	hbInterval                         time.Duration
	hbRetries                          int
	purge                              bool
	sessions, rules, qers              uint32
	quota                              int
	pinDir, stateDir, metrics          string
	logLevel, logFormat                string
	eventsPerSec                       int
}

func newRunCmd(stderr io.Writer) *cobra.Command {
	var (
		cfgPath string
		o       overrides
		opts    runOptions
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfigFile(cfgPath)
			if err != nil {
				return &exitError{2, err}
			}
			o.apply(cmd, &cfg)
			p, err := cfg.validate()
			if err != nil {
				return &exitError{2, err}
			}
			log := newLogger(stderr, p)
			return runDaemon(cmd.Context(), p, opts, log)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "YAML configuration file")
	f.StringVar(&o.n3If, "n3-interface", "", "N3 interface (towards the gNBs)")
	f.StringVar(&o.n3v4, "n3-ipv4", "", "N3 IPv4 address (F-TEIDs, outer source of encapsulation)")
	f.StringVar(&o.n3v6, "n3-ipv6", "", "N3 IPv6 address")
	f.StringVar(&o.n6If, "n6-interface", "", "N6 interface (towards the data network)")
	f.StringVar(&o.n6v4, "n6-ipv4", "", "N6 IPv4 address")
	f.StringVar(&o.n6v6, "n6-ipv6", "", "N6 IPv6 address")
	f.StringVar(&o.mode, "xdp-mode", "", "XDP attach mode: native or generic")
	f.StringVar(&o.listen, "pfcp-listen", "", "PFCP listen address ip:port")
	f.StringVar(&o.nodeID, "node-id", "", "PFCP Node ID (IP address or FQDN)")
	f.StringSliceVar(&o.peers, "allowed-peer", nil, "SMF address prefix PFCP is accepted from (repeatable)")
	f.DurationVar(&o.hbInterval, "heartbeat-interval", 0, "UPF-initiated PFCP heartbeat interval (0 = off)")
	f.IntVar(&o.hbRetries, "heartbeat-retries", 0, "unanswered heartbeats before a peer counts as lost")
	f.BoolVar(&o.purge, "purge-on-peer-restart", false, "purge a peer's sessions on heartbeat evidence of its restart or loss")
	f.Uint32Var(&o.sessions, "max-sessions", 0, "datapath session capacity")
	f.Uint32Var(&o.rules, "max-rules", 0, "datapath PINE rule capacity")
	f.Uint32Var(&o.qers, "max-qers", 0, "datapath QER capacity")
	f.IntVar(&o.quota, "pine-quota", 0, "PINE rules per session")
	f.StringVar(&o.pinDir, "pin-dir", "", "bpffs directory for pinned maps and links (\"\" = no pinning)")
	f.StringVar(&o.stateDir, "state-dir", "", "state directory (recovery time stamp, PFCP and datapath state)")
	f.StringVar(&o.metrics, "metrics-listen", "", "metrics address host:port (\"\" = off)")
	f.StringVar(&o.logLevel, "log-level", "", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "", "text or json")
	f.IntVar(&o.eventsPerSec, "deny-log-rate", 0, "deny event log lines per second")
	f.BoolVar(&opts.keepDatapath, "keep-datapath", false, "on exit leave programs attached and maps pinned (they keep enforcing)")
	f.BoolVar(&opts.fresh, "fresh", false, "discard a pinned datapath and saved state and start clean (new recovery time stamp)")
	return cmd
}

func (o *overrides) apply(cmd *cobra.Command, c *Config) {
	f := cmd.Flags()
	set := func(name string, fn func()) {
		if f.Changed(name) {
			fn()
		}
	}
	set("n3-interface", func() { c.N3.Interface = o.n3If })
	set("n3-ipv4", func() { c.N3.IPv4 = o.n3v4 })
	set("n3-ipv6", func() { c.N3.IPv6 = o.n3v6 })
	set("n6-interface", func() { c.N6.Interface = o.n6If })
	set("n6-ipv4", func() { c.N6.IPv4 = o.n6v4 })
	set("n6-ipv6", func() { c.N6.IPv6 = o.n6v6 })
	set("xdp-mode", func() { c.XDPMode = o.mode })
	set("pfcp-listen", func() { c.PFCP.Listen = o.listen })
	set("node-id", func() { c.PFCP.NodeID = o.nodeID })
	set("allowed-peer", func() { c.PFCP.AllowedPeers = o.peers })
	set("heartbeat-interval", func() { c.PFCP.HeartbeatInterval = o.hbInterval })
	set("heartbeat-retries", func() { c.PFCP.HeartbeatRetries = o.hbRetries })
	set("purge-on-peer-restart", func() { c.PFCP.PurgeOnPeerRestart = o.purge })
	set("max-sessions", func() { c.Maps.Sessions = o.sessions })
	set("max-rules", func() { c.Maps.Rules = o.rules })
	set("max-qers", func() { c.Maps.QERs = o.qers })
	set("pine-quota", func() { c.PFCP.PINEQuota = o.quota })
	set("pin-dir", func() { c.PinDir = o.pinDir })
	set("state-dir", func() { c.State = o.stateDir })
	set("metrics-listen", func() { c.Metrics.Listen = o.metrics })
	set("log-level", func() { c.Log.Level = o.logLevel })
	set("log-format", func() { c.Log.Format = o.logFormat })
	set("deny-log-rate", func() { c.Events.LogPerSecond = o.eventsPerSec })
}

// runDaemon starts the daemon in the caller's network namespace and serves
// until ctx ends.
func runDaemon(ctx context.Context, p *parsed, opts runOptions, log *slog.Logger) error {
	d, err := newDaemon(p, opts, log)
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			return &exitError{2, err}
		}
		return &exitError{1, err}
	}
	if err := d.serve(ctx); err != nil {
		return &exitError{1, err}
	}
	return nil
}
