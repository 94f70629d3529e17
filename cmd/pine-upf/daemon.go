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
	store    *store
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
		if err := clearState(p.State); err != nil {
			return nil, fmt.Errorf("fresh start: %w", err)
		}
	}
	// The Recovery Time Stamp says the sessions the SMF installed are still
	// here: keep it only when there is a pinned datapath to adopt (after a
	// host reboot there is none, and the sessions are gone with it).
	rts, kept, err := recoveryTimeStamp(p.State, opts.fresh || !pinnedDatapath(p.PinDir), time.Now())
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
	imported, err := d.adopt(rts)
	if err != nil {
		return nil, err
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
		Enforcer:           d.enf,
		OnChange:           d.store.apply,
	})
	if err != nil {
		return nil, fmt.Errorf("config: pfcp: %w", err)
	}
	if err := d.srv.ImportState(imported); err != nil {
		return nil, fmt.Errorf("state: %w (run with --fresh to start clean)", err)
	}
	if err := d.store.setAssociations(imported.Associations); err != nil {
		return nil, fmt.Errorf("state: %w", err)
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
// pinnedDatapath reports whether an earlier run left maps pinned in dir.
func pinnedDatapath(dir string) bool {
	if dir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "sessions"))
	return err == nil
}

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
			Handler:           metricsHandler(newCollector(d.enf, d.srv, d.counters, d.store, d.log), d.ready),
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
			// The state directory is up to date: every change was saved
			// before it was answered.
			d.log.Info("keeping the datapath pinned and enforcing", "pin_dir", d.cfg.PinDir)
		} else {
			for _, iface := range []string{d.cfg.N3.Interface, d.cfg.N6.Interface} {
				if err := d.enf.Detach(iface); err != nil {
					errs = append(errs, err)
				}
			}
			errs = append(errs, d.enf.Unpin())
			// Nothing left to adopt: the saved sessions go with the pins.
			errs = append(errs, clearState(d.cfg.State))
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

// adopt restores the datapath bookkeeping and the PFCP state a previous
// run saved, reconciles the two with what the pinned maps hold, and
// returns the PFCP state to import. After it, the datapath enforces exactly
// the sessions of that state; anything else was swept or removed (and
// logged).
func (d *daemon) adopt(rts time.Time) (pfcp.State, error) {
	p, log := d.cfg, d.log
	imported := pfcp.State{Version: pfcp.StateVersion, RecoveryTimeStamp: rts}
	ld := &loadedState{sessions: map[uint64]sessionFile{}}
	if p.PinDir != "" {
		var err error
		if ld, err = loadState(p.State); err != nil {
			return imported, fmt.Errorf("%w (run with --fresh to start clean)", err)
		}
		if ld.node != nil && ld.node.MaxRules != 0 && ld.node.MaxRules != p.Maps.Rules {
			return imported, fmt.Errorf("datapath: the state in %s was saved with maps.rules %d, now %d (run with --fresh)", p.State, ld.node.MaxRules, p.Maps.Rules)
		}
		if ld.node != nil && !ld.node.RecoveryTimeStamp.IsZero() && !ld.node.RecoveryTimeStamp.Equal(rts) {
			// The sessions were accepted under another time stamp: the
			// SMFs consider them gone (TS 23.007).
			log.Warn("saved PFCP state belongs to another recovery time stamp: sessions not adopted",
				"saved", ld.node.RecoveryTimeStamp.UTC(), "now", rts.UTC(), "sessions", len(ld.sessions))
			ld = &loadedState{sessions: map[uint64]sessionFile{}, legacy: ld.legacy}
		}
		for _, f := range ld.temps {
			os.Remove(f)
		}
		for _, f := range ld.bad {
			log.Error("unreadable saved session: not restored, its datapath entries are swept", "file", f)
			os.Remove(f)
		}
	} else if err := clearState(p.State); err != nil {
		// Without pins nothing survives a restart: saved sessions are stale.
		return imported, fmt.Errorf("state: %w", err)
	}

	st := ld.datapathState()
	swept, lost, err := d.enf.Restore(st)
	if err != nil {
		return imported, fmt.Errorf("datapath: restore %d saved sessions: %w (run with --fresh to start clean)", len(st.Sessions), err)
	}
	for _, seid := range lost {
		// Saved, but the maps no longer have it: the last process removed
		// it and died before its file went. Gone from both now.
		log.Warn("saved session no longer in the datapath: dropped from the PFCP state", "seid", seid)
		delete(ld.sessions, seid)
		os.Remove(sessionPath(p.State, seid))
	}
	var assocs []pfcp.AssociationState
	if ld.node != nil {
		assocs = ld.node.Associations
	}
	owners := map[string]bool{}
	for _, a := range assocs {
		owners[a.NodeID] = true
	}
	remove := func(seid uint64, why string) {
		if _, err := d.enf.RemoveSession(seid); err != nil {
			log.Error("remove an unadoptable session from the datapath", "seid", seid, "err", err)
		}
		os.Remove(sessionPath(p.State, seid))
		log.Warn("restored datapath session removed: "+why, "seid", seid)
	}
	restored := 0
	for _, seid := range d.enf.SEIDs() {
		f, ok := ld.sessions[seid]
		switch {
		case !ok:
			remove(seid, "no PFCP state saved for it (no SMF could modify or delete it)")
		case !owners[f.PFCP.Owner]:
			remove(seid, "its PFCP association was not saved")
			delete(ld.sessions, seid)
		default:
			imported.Sessions = append(imported.Sessions, *f.PFCP)
			restored++
		}
	}
	imported.Associations = assocs
	if len(ld.legacy) > 0 {
		os.Remove(filepath.Join(p.State, snapshotFile))
	}
	if restored > 0 || swept > 0 || len(assocs) > 0 {
		log.Info("adopted pinned datapath and PFCP state", "sessions", restored, "associations", len(assocs),
			"swept_entries", swept, "lost", len(lost))
	}
	d.store, err = newStore(p.State, p.PinDir, p.Maps.Rules, rts, d.enf, log.With("component", "state"))
	if err != nil {
		return imported, fmt.Errorf("state: %w", err)
	}
	return imported, nil
}
