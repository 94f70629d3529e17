package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/pfcp"
)

// runOptions are the run command's switches that are not configuration.
type runOptions struct {
	keepDatapath bool // on exit, leave links and maps pinned (and enforcing)
	fresh        bool // unpin whatever a previous run left and start clean
}

// daemon is a running pine-upf. newDaemon does everything that depends on
// the network namespace (interface lookups, XDP attach, sockets); serve may
// then run on any goroutine.
type daemon struct {
	cfg  *parsed
	opts runOptions
	log  *slog.Logger

	enf      *enforcer.Enforcer
	snap     *snapshotter
	srv      *pfcp.Server
	counters *daemonCounters
	gtpConns []*net.UDPConn
	metrics  net.Listener

	attached  atomic.Int32
	serving   atomic.Bool
	closeOnce sync.Once
}

func newLogger(w io.Writer, p *parsed) *slog.Logger {
	opts := &slog.HandlerOptions{Level: p.level}
	if p.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// startError is a failure to start; its message is one line for the user.
type startError struct{ err error }

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// newDaemon checks the host, loads (or adopts) the datapath, restores the
// saved sessions, attaches the programs and opens every socket.
func newDaemon(p *parsed, opts runOptions, log *slog.Logger) (_ *daemon, err error) {
	if err := p.checkHost(); err != nil {
		return nil, err
	}
	d := &daemon{cfg: p, opts: opts, log: log, counters: &daemonCounters{}}
	defer func() {
		if err != nil {
			d.abort()
		}
	}()

	if opts.fresh {
		if err := clearPins(p.PinDir); err != nil {
			return nil, fmt.Errorf("fresh start: %w", err)
		}
		if err := os.Remove(filepath.Join(p.State, snapshotFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("fresh start: %w", err)
		}
	}
	rts, kept, err := recoveryTimeStamp(p.State, opts.fresh, time.Now())
	if err != nil {
		return nil, err
	}

	d.enf, err = enforcer.New(p.enforcerConfig(log.With("component", "enforcer")))
	if err != nil {
		if errors.Is(err, enforcer.ErrStateMismatch) || p.PinDir != "" {
			return nil, fmt.Errorf("datapath: %w (run with --fresh to discard what %s holds)", err, p.PinDir)
		}
		return nil, fmt.Errorf("datapath: %w", err)
	}
	// Adopt the saved sessions (or sweep whatever the pinned maps hold when
	// there is no snapshot: nothing unaccounted for stays enforced).
	var st enforcer.State
	if p.PinDir != "" {
		saved, err := readSnapshot(p.State)
		switch {
		case err == nil:
			if saved.MaxRules != p.Maps.Rules {
				return nil, fmt.Errorf("datapath: the snapshot in %s was taken with maps.rules %d, now %d (run with --fresh)", p.State, saved.MaxRules, p.Maps.Rules)
			}
			st = saved.State
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w (run with --fresh to start clean)", err)
		}
	}
	swept, lost, err := d.enf.Restore(st)
	if err != nil {
		return nil, fmt.Errorf("datapath: restore %d saved sessions: %w (run with --fresh to start clean)", len(st.Sessions), err)
	}
	if len(lost) > 0 {
		log.Warn("saved sessions no longer in the datapath were not restored", "seids", lost)
	}
	if len(st.Sessions) > 0 || swept > 0 {
		log.Info("adopted pinned datapath", "sessions", len(st.Sessions), "swept_entries", swept)
	}
	if len(st.Sessions) > 0 {
		// Package pfcp keeps its session state in memory only: the SMF
		// cannot modify or delete these until it re-establishes them.
		log.Warn("restored sessions are enforced but unknown to the PFCP server (it does not persist its session state yet)", "sessions", len(st.Sessions))
	}
	d.snap = &snapshotter{enf: d.enf, path: filepath.Join(p.State, snapshotFile), pinDir: p.PinDir,
		maxRules: p.Maps.Rules, log: log}
	if err := d.snap.save(); err != nil {
		return nil, fmt.Errorf("state: save datapath snapshot: %w", err)
	}

	nodeID := p.PFCP.NodeID
	d.srv, err = pfcp.NewServer(pfcp.Config{
		ListenAddr:         p.listen.String(),
		NodeID:             nodeID,
		RecoveryTimeStamp:  rts,
		AllowedPeers:       p.peers,
		N3v4:               p.n3v4,
		N3v6:               p.n3v6,
		HeartbeatInterval:  p.PFCP.HeartbeatInterval,
		HeartbeatRetries:   p.PFCP.HeartbeatRetries,
		PurgeOnPeerRestart: p.PFCP.PurgeOnPeerRestart,
		MaxRulesPerSession: p.PFCP.PINEQuota,
		Logger:             log.With("component", "pfcp"),
		Enforcer:           savingEnforcer{Enforcer: d.enf, snap: d.snap},
	})
	if err != nil {
		return nil, fmt.Errorf("config: pfcp: %w", err)
	}
	log.Info("PFCP recovery time stamp", "time", rts.UTC(), "kept", kept)

	for _, side := range []struct {
		iface string
		s     enforcer.Side
	}{{p.N3.Interface, enforcer.N3}, {p.N6.Interface, enforcer.N6}} {
		if err := d.enf.Attach(side.iface, side.s, p.mode); err != nil {
			return nil, err
		}
		d.attached.Add(1)
	}

	if err := d.srv.Listen(); err != nil {
		return nil, fmt.Errorf("config: pfcp.listen: %s: %w", p.listen, err)
	}
	for i, a := range [2]struct{ field string }{{"n3.ipv4"}, {"n3.ipv6"}} {
		addr := p.n3v4
		if i == 1 {
			addr = p.n3v6
		}
		if !addr.IsValid() {
			continue
		}
		c, err := listenGTPU(addr)
		if err != nil {
			return nil, fmt.Errorf("config: %s: GTP-U socket on %s: %w", a.field, addr, err)
		}
		d.gtpConns = append(d.gtpConns, c)
	}
	if p.metrics != "" {
		d.metrics, err = net.Listen("tcp", p.metrics)
		if err != nil {
			return nil, fmt.Errorf("config: metrics.listen: %w", err)
		}
	}
	return d, nil
}

// clearPins removes everything pinned in the pin directory: maps and
// links of a previous run (the links' programs leave the interfaces).
// clearPins removes what an earlier run pinned in dir, and nothing else.
func clearPins(dir string) error {
	if dir == "" {
		return nil
	}
	return enforcer.UnpinDir(dir)
}

// ready: programs attached and PFCP listening.
func (d *daemon) ready() (bool, string) {
	switch {
	case d.attached.Load() < 2:
		return false, "XDP programs not attached"
	case !d.serving.Load() || d.srv.Addr() == nil:
		return false, "PFCP server not listening"
	}
	return true, ""
}

// MetricsAddr is where /metrics is served; nil when off.
func (d *daemon) MetricsAddr() net.Addr {
	if d.metrics == nil {
		return nil
	}
	return d.metrics.Addr()
}

// serve runs until ctx ends or a component fails, then shuts down.
func (d *daemon) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)

	events, err := d.enf.Events(ctx)
	if err != nil {
		d.shutdown()
		return fmt.Errorf("deny events: %w", err)
	}
	dl := newDenyLog(d.log.With("component", "deny"), d.counters, d.cfg.Events.LogPerSecond, d.cfg.Events.Queue)
	wg.Go(func() { dl.run(ctx, events) })
	for _, c := range d.gtpConns {
		wg.Go(func() { serveGTPU(ctx, c, d.counters, d.log.With("component", "gtpu")) })
	}
	var hs *http.Server
	if d.metrics != nil {
		hs = &http.Server{
			Handler:           metricsHandler(newCollector(d.enf, d.srv, d.counters, d.snap, d.log), d.ready),
			ReadHeaderTimeout: 5 * time.Second,
		}
		wg.Go(func() {
			if err := hs.Serve(d.metrics); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		})
		d.log.Info("metrics listening", "addr", d.metrics.Addr().String())
	}
	wg.Go(func() {
		d.serving.Store(true)
		err := d.srv.Serve(ctx)
		d.serving.Store(false)
		if err != nil {
			errc <- fmt.Errorf("pfcp: %w", err)
		}
	})
	d.log.Info("pine-upf running", "n3", d.cfg.N3.Interface, "n6", d.cfg.N6.Interface,
		"xdp_mode", d.cfg.XDPMode, "pfcp", d.srv.Addr().String(), "pin_dir", d.cfg.PinDir)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		d.log.Error("stopping after failure", "err", runErr)
	}
	cancel() // stops PFCP first: no session changes during the teardown
	if hs != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		hs.Shutdown(sctx)
		scancel()
	}
	wg.Wait()
	return errors.Join(runErr, d.shutdown())
}

// shutdown detaches and unpins, or with keepDatapath leaves the pinned
// datapath enforcing for the next process to adopt.
func (d *daemon) shutdown() error {
	var err error
	d.closeOnce.Do(func() {
		var errs []error
		if d.opts.keepDatapath && d.cfg.PinDir != "" {
			errs = append(errs, d.snap.save())
			d.log.Info("keeping the datapath pinned and enforcing", "pin_dir", d.cfg.PinDir)
		} else {
			for _, iface := range []string{d.cfg.N3.Interface, d.cfg.N6.Interface} {
				if err := d.enf.Detach(iface); err != nil {
					errs = append(errs, err)
				}
			}
			errs = append(errs, d.enf.Unpin())
			if d.cfg.PinDir != "" {
				// Nothing left to adopt: the snapshot goes with the pins.
				if err := os.Remove(filepath.Join(d.cfg.State, snapshotFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			d.log.Info("detached and unpinned the datapath")
		}
		errs = append(errs, d.enf.Close())
		err = errors.Join(errs...)
	})
	return err
}

// abort releases what a failed newDaemon acquired. Links it attached are
// detached (unless they were adopted from a kept datapath: those go on).
func (d *daemon) abort() {
	if d.enf != nil && !d.opts.keepDatapath {
		for i, iface := range []string{d.cfg.N3.Interface, d.cfg.N6.Interface} {
			if int32(i) < d.attached.Load() {
				d.enf.Detach(iface)
			}
		}
	}
	for _, c := range d.gtpConns {
		c.Close()
	}
	if d.metrics != nil {
		d.metrics.Close()
	}
	if d.enf != nil {
		d.enf.Close()
	}
}
