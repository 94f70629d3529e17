// Command pine-smf-sim drives a UPF over PFCP (N4) as an SMF would, using
// package pfcp/smfsim: for the demo, for benchmarks of the control plane and
// by hand.
//
//	pine-smf-sim [global flags] <command> [command flags]
//
// Commands:
//
//	scenario     associate, establish the PEGC session, add the --pine PINEs,
//	             hold (--hold), remove them, delete the session, release
//	associate    associate and release (--keep: stay associated)
//	heartbeat    send heartbeats (--count, --interval), no association needed
//	establish    associate and establish (--keep: leave session and
//	             association in place and print the IDs for later commands;
//	             else delete and release at once)
//	add-pine     add --pine PINEs to a kept session (--cp-seid, --up-seid,
//	             --teid, --n3 and the PEGC flags as at establishment)
//	remove-pine  remove PINEs (--id, repeatable) from a kept session
//	delete       delete a kept session (--up-seid); --release to end the
//	             association too
//	release      release the association of this Node ID
//	fake-upf     run the canned fake UPF of package smfsim/fakeupf on
//	             --listen (default 127.0.0.1:8805) until SIGINT, for trying the
//	             simulator and the dissector check without a real UPF; it
//	             accepts everything, allocates TEIDs per CHOOSE ID, and (unless
//	             --poke=false) sends a Heartbeat and a Session Report after
//	             each establishment
//
// State lives only within one process: a scenario run is self-contained.
// The add-pine/remove-pine/delete/release commands work on a session kept by
// an earlier "establish --keep" only if the UPF keys associations by Node ID
// (use the same --node-id) and accepts requests from a new source port; the
// PINEs an earlier process installed are not known to a later one.
//
// Global flags: --upf host:port (default 127.0.0.1:8805), --node-id (default:
// the local socket's IP), --local ip:port, --timeout (T1), --retries (N1),
// --json (one JSON object per step), -v (protocol log on stderr).
//
// --pine takes comma-separated key=value pairs: id (1..32766), addr, proto
// (number or ip/tcp/udp/icmp/icmpv6/sctp), ports (a port or range; repeat the
// key for several), prec, mbr-ul and mbr-dl (bit/s, suffixes k/M/G), gate
// (open|closed), threshold (bytes), e.g.
//
//	--pine id=1,addr=10.45.0.2,proto=udp,ports=5000-5009,ports=6000,mbr-ul=1M
//
// The exit status is 1 if any step failed (the scenario still tries to clean
// up), 2 for usage errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pfcp/smfsim/fakeupf"
	"github.com/wmnsk/go-pfcp/ie"
)

type globalFlags struct {
	upf, nodeID, local string
	timeout            time.Duration
	retries            int
	json, verbose      bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: pine-smf-sim [global flags] scenario|associate|heartbeat|establish|add-pine|remove-pine|delete|release [flags]")
	fmt.Fprintln(w, "global flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func run(args []string, stdout, stderr io.Writer) int {
	var g globalFlags
	fs := flag.NewFlagSet("pine-smf-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.upf, "upf", "127.0.0.1:8805", "UPF PFCP address host:port")
	fs.StringVar(&g.nodeID, "node-id", "", "Node ID (IPv4, IPv6 or FQDN); default the local socket's IP")
	fs.StringVar(&g.local, "local", "", "local address ip:port to bind (default: routed source IP, ephemeral port)")
	fs.DurationVar(&g.timeout, "timeout", smfsim.DefaultTimeout, "retransmission timer T1")
	fs.IntVar(&g.retries, "retries", smfsim.DefaultRetries, "retransmissions N1 (negative: none)")
	fs.BoolVar(&g.json, "json", false, "print one JSON object per step")
	fs.BoolVar(&g.verbose, "v", false, "log PFCP events to stderr")
	fs.Usage = func() { usage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		usage(stderr, fs)
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	out := &printer{w: stdout, json: g.json}
	if cmd == "fake-upf" {
		return runFakeUPF(rest, out, stderr)
	}

	cmdFS := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cmdFS.SetOutput(stderr)
	var r runner
	r.g, r.out = g, out
	var exec func(ctx context.Context) error
	switch cmd {
	case "scenario":
		r.pegcFlags(cmdFS)
		r.pineFlag(cmdFS)
		cmdFS.DurationVar(&r.hold, "hold", 0, "hold the PINEs this long before removing them (negative: until SIGINT/SIGTERM; a signal ends any hold)")
		cmdFS.DurationVar(&r.hbInterval, "heartbeat-interval", 0, "send heartbeats this often while holding")
		cmdFS.BoolVar(&r.keepPINEs, "keep-pines", false, "delete the session without removing the PINEs first")
		exec = r.scenario
	case "associate":
		cmdFS.BoolVar(&r.keep, "keep", false, "stay associated (no Association Release)")
		exec = r.associate
	case "heartbeat":
		cmdFS.IntVar(&r.count, "count", 1, "heartbeats to send")
		cmdFS.DurationVar(&r.hbInterval, "interval", time.Second, "interval between heartbeats")
		exec = r.heartbeat
	case "establish":
		r.pegcFlags(cmdFS)
		r.pineFlag(cmdFS)
		cmdFS.BoolVar(&r.keep, "keep", false, "keep the session and the association")
		exec = r.establish
	case "add-pine":
		r.pegcFlags(cmdFS)
		r.pineFlag(cmdFS)
		r.resumeFlags(cmdFS)
		exec = r.addPINE
	case "remove-pine":
		r.resumeFlags(cmdFS)
		cmdFS.Func("id", "PINE ID to remove (repeatable)", func(s string) error {
			id, err := strconv.ParseUint(s, 0, 16)
			r.ids = append(r.ids, uint16(id))
			return err
		})
		exec = r.removePINE
	case "delete":
		r.resumeFlags(cmdFS)
		cmdFS.BoolVar(&r.release, "release", false, "release the association afterwards")
		exec = r.deleteSession
	case "release":
		exec = func(ctx context.Context) error { return r.step("release", r.c.Release(ctx)) }
	default:
		fmt.Fprintf(stderr, "unknown command %q\n", cmd)
		usage(stderr, fs)
		return 2
	}
	if err := cmdFS.Parse(rest); err != nil {
		return 2
	}
	if cmdFS.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", cmd, cmdFS.Args())
		return 2
	}
	if err := r.finishFlags(cmd); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 2
	}

	// SIGINT/SIGTERM end a hold; otherwise they abort the run.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	r.holdEnd = make(chan struct{}, 1)
	go func() {
		for range sig {
			if r.holding.Load() {
				select {
				case r.holdEnd <- struct{}{}:
				default:
				}
				continue
			}
			cancel()
		}
	}()

	logger := slog.New(slog.DiscardHandler)
	if g.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := smfsim.Dial(ctx, g.upf, smfsim.Options{NodeID: g.nodeID, LocalAddr: g.local, Logger: logger,
		Timeout: g.timeout, Retries: g.retries})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer c.Close()
	r.c = c
	out.print("dial", nil, kv{"local", c.LocalAddr().String()}, kv{"upf", c.UPFAddr().String()}, kv{"node_id", c.NodeID()})
	if err := exec(ctx); err != nil || r.failed {
		return 1
	}
	return 0
}

type runner struct {
	g   globalFlags
	out *printer
	c   *smfsim.Client

	pegc          smfsim.PEGC
	ue, ue6, gnb  string
	gnbTEID       uint
	defaultRule   bool
	defaultFilter string
	defaultDrop   bool
	pines         []smfsim.PINE

	hold       time.Duration
	hbInterval time.Duration
	keepPINEs  bool
	keep       bool
	count      int
	release    bool

	cpSEID, upSEID uint64
	teid           uint
	n3             string
	ids            []uint16

	holding atomic.Bool
	holdEnd chan struct{}
	failed  bool
}

func (r *runner) pegcFlags(fs *flag.FlagSet) {
	fs.StringVar(&r.ue, "ue", "10.45.0.2", "PEGC UE IPv4 address (empty: none)")
	fs.StringVar(&r.ue6, "ue6-prefix", "", "PEGC UE IPv6 prefix, e.g. 2001:db8:1::/56 (empty: none)")
	fs.StringVar(&r.gnb, "gnb", "127.0.0.3", "gNB N3 address (downlink Outer Header Creation)")
	fs.UintVar(&r.gnbTEID, "gnb-teid", 0x100, "gNB TEID for downlink")
	fs.StringVar(&r.pegc.NetworkInstance, "dnn", "", "Network Instance for PDIs and uplink FARs (empty: none)")
	fs.BoolVar(&r.defaultRule, "default-rule", false, "install the PEGC's default rule (PDR 1/2)")
	fs.StringVar(&r.defaultFilter, "default-filter", "permit out ip from any to assigned", "default rule SDF filter (empty: none)")
	fs.BoolVar(&r.defaultDrop, "default-drop", false, "default rule FAR action DROP")
	var choose, qfi uint
	fs.Func("choose-id", "CHOOSE ID of the N3 F-TEID request (default 1)", func(s string) error {
		v, err := strconv.ParseUint(s, 0, 8)
		choose = uint(v)
		r.pegc.ChooseID = uint8(choose)
		return err
	})
	fs.Func("qfi", "QFI in every QER (default 1)", func(s string) error {
		v, err := strconv.ParseUint(s, 0, 6)
		qfi = uint(v)
		r.pegc.QFI = uint8(qfi)
		return err
	})
	fs.BoolVar(&r.pegc.ChooseOnModify, "choose-on-modify", false, "request the F-TEID with CH again in add-PINE modifications")
}

func (r *runner) pineFlag(fs *flag.FlagSet) {
	fs.Func("pine", "PINE: id=N,addr=A[,proto=P][,ports=LO[-HI]]...[,prec=N][,mbr-ul=BPS][,mbr-dl=BPS][,gate=closed][,threshold=BYTES] (repeatable)",
		func(s string) error {
			p, err := parsePINE(s)
			if err == nil {
				r.pines = append(r.pines, p)
			}
			return err
		})
}

func (r *runner) resumeFlags(fs *flag.FlagSet) {
	fs.Func("cp-seid", "CP SEID of the kept session", func(s string) (err error) { r.cpSEID, err = strconv.ParseUint(s, 0, 64); return })
	fs.Func("up-seid", "UP SEID of the kept session (required)", func(s string) (err error) { r.upSEID, err = strconv.ParseUint(s, 0, 64); return })
	fs.UintVar(&r.teid, "teid", 0, "N3 TEID the UPF allocated (add-pine)")
	fs.StringVar(&r.n3, "n3", "", "N3 address the UPF allocated (add-pine)")
}

func (r *runner) finishFlags(cmd string) error {
	switch cmd {
	case "scenario", "establish", "add-pine":
		var err error
		if r.ue != "" {
			if r.pegc.UEIPv4, err = netip.ParseAddr(r.ue); err != nil {
				return fmt.Errorf("--ue: %w", err)
			}
		}
		if r.ue6 != "" {
			if r.pegc.UEIPv6Prefix, err = netip.ParsePrefix(r.ue6); err != nil {
				return fmt.Errorf("--ue6-prefix: %w", err)
			}
		}
		if r.pegc.GNB, err = netip.ParseAddr(r.gnb); err != nil {
			return fmt.Errorf("--gnb: %w", err)
		}
		if r.gnbTEID > 0xffffffff {
			return errors.New("--gnb-teid: more than 32 bits")
		}
		r.pegc.GNBTEID = uint32(r.gnbTEID)
		if r.defaultRule || r.defaultDrop {
			r.pegc.Default = &smfsim.DefaultRule{Filter: r.defaultFilter, Drop: r.defaultDrop}
		}
	}
	switch cmd {
	case "add-pine", "remove-pine", "delete":
		if r.upSEID == 0 {
			return errors.New("--up-seid required")
		}
	}
	if cmd == "add-pine" {
		if len(r.pines) == 0 {
			return errors.New("no --pine given")
		}
		if r.n3 == "" || r.teid == 0 {
			return errors.New("--teid and --n3 required")
		}
		if _, err := netip.ParseAddr(r.n3); err != nil {
			return fmt.Errorf("--n3: %w", err)
		}
	}
	if cmd == "remove-pine" && len(r.ids) == 0 {
		return errors.New("no --id given")
	}
	return nil
}

// step prints a step's outcome and records failure.
func (r *runner) step(name string, err error, fields ...kv) error {
	if err != nil {
		r.failed = true
	}
	r.out.print(name, err, fields...)
	return err
}

func (r *runner) associate(ctx context.Context) error {
	if err := r.doAssociate(ctx); err != nil {
		return err
	}
	if r.keep {
		return nil
	}
	return r.step("release", r.c.Release(ctx))
}

func (r *runner) doAssociate(ctx context.Context) error {
	id, feat, err := r.c.Associate(ctx)
	rec := ""
	if t := r.c.PeerRecoveryTime(); !t.IsZero() {
		rec = t.UTC().Format(time.RFC3339)
	}
	return r.step("associate", err, kv{"cause", causeOK(err)}, kv{"upf_node_id", id},
		kv{"up_features", fmt.Sprintf("%x", feat)}, kv{"upf_recovery", rec})
}

func (r *runner) heartbeat(ctx context.Context) error {
	for i := 0; i < r.count; i++ {
		if i > 0 {
			select {
			case <-time.After(r.hbInterval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		rtt, rec, err := r.c.Heartbeat(ctx)
		if err := r.step("heartbeat", err, kv{"rtt", rtt.String()}, kv{"upf_recovery", rec.UTC().Format(time.RFC3339)}); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) doEstablish(ctx context.Context) (*smfsim.Session, error) {
	p := r.pegc
	s, err := r.c.EstablishPEGC(ctx, p)
	if err != nil {
		return nil, r.step("establish", err, kv{"cause", causeOK(err)})
	}
	ids := make([]string, 0, len(s.PINEs()))
	for _, pn := range s.PINEs() {
		ids = append(ids, strconv.Itoa(int(pn.ID)))
	}
	return s, r.step("establish", nil, kv{"cause", causeOK(nil)}, kv{"cp_seid", hex(s.CPSEID)}, kv{"up_seid", hex(s.UPSEID)},
		kv{"teid", hex(uint64(s.TEID))}, kv{"n3", s.N3Addr.String()}, kv{"pines", strings.Join(ids, " ")})
}

func (r *runner) establish(ctx context.Context) error {
	if err := r.doAssociate(ctx); err != nil {
		return err
	}
	s, err := r.doEstablish(ctx)
	if err != nil {
		_ = r.step("release", r.c.Release(ctx))
		return err
	}
	if r.keep {
		r.out.note(fmt.Sprintf("kept: add-pine --cp-seid %s --up-seid %s --teid %s --n3 %s ...; delete --up-seid %s --release",
			hex(s.CPSEID), hex(s.UPSEID), hex(uint64(s.TEID)), s.N3Addr, hex(s.UPSEID)))
		return nil
	}
	r.doDelete(ctx, s)
	return r.step("release", r.c.Release(ctx))
}

func (r *runner) resumed() *smfsim.Session {
	n3, _ := netip.ParseAddr(r.n3)
	return r.c.ResumeSession(r.cpSEID, r.upSEID, uint32(r.teid), n3, r.pegc)
}

func (r *runner) addPINE(ctx context.Context) error {
	s := r.resumed()
	for _, p := range r.pines {
		r.doAddPINE(ctx, s, p)
	}
	return nil
}

func (r *runner) doAddPINE(ctx context.Context, s *smfsim.Session, p smfsim.PINE) error {
	filters := make([]string, 0, len(p.Ports)+1)
	if len(p.Ports) == 0 {
		filters = append(filters, smfsim.FlowDescription(p.Addr, p.Proto, nil))
	}
	for i := range p.Ports {
		filters = append(filters, smfsim.FlowDescription(p.Addr, p.Proto, &p.Ports[i]))
	}
	ul, dl := smfsim.PDRIDs(p.ID)
	return r.step("add-pine", s.AddPINE(ctx, p), kv{"pine", p.ID}, kv{"pdrs", fmt.Sprintf("%d,%d", ul, dl)},
		kv{"filter", strings.Join(filters, "; ")})
}

func (r *runner) doRemovePINE(ctx context.Context, s *smfsim.Session, id uint16) {
	usage, err := s.RemovePINE(ctx, id)
	_ = r.step("remove-pine", err, kv{"pine", id}, kv{"cause", causeOK(err)}, kv{"usage", usage})
}

func (r *runner) removePINE(ctx context.Context) error {
	s := r.resumed()
	for _, id := range r.ids {
		r.doRemovePINE(ctx, s, id)
	}
	return nil
}

func (r *runner) doDelete(ctx context.Context, s *smfsim.Session) {
	usage, err := s.Delete(ctx)
	_ = r.step("delete", err, kv{"up_seid", hex(s.UPSEID)}, kv{"cause", causeOK(err)}, kv{"usage", usage})
}

func (r *runner) deleteSession(ctx context.Context) error {
	r.doDelete(ctx, r.resumed())
	if r.release {
		return r.step("release", r.c.Release(ctx))
	}
	return nil
}

func (r *runner) scenario(ctx context.Context) error {
	if err := r.doAssociate(ctx); err != nil {
		return err
	}
	s, err := r.doEstablish(ctx)
	if err != nil {
		_ = r.step("release", r.c.Release(ctx))
		return err
	}
	var added []uint16
	for _, p := range r.pines {
		if r.doAddPINE(ctx, s, p) == nil {
			added = append(added, p.ID)
		}
	}
	if r.hold != 0 && ctx.Err() == nil {
		r.doHold(ctx)
	}
	if !r.keepPINEs {
		for _, id := range added {
			r.doRemovePINE(ctx, s, id)
		}
	}
	r.doDelete(ctx, s)
	return r.step("release", r.c.Release(ctx))
}

func (r *runner) doHold(ctx context.Context) {
	desc := r.hold.String()
	var timeout <-chan time.Time
	if r.hold > 0 {
		t := time.NewTimer(r.hold)
		defer t.Stop()
		timeout = t.C
	} else {
		desc = "until signal"
	}
	r.out.note("holding " + desc)
	var hb <-chan time.Time
	if r.hbInterval > 0 {
		tk := time.NewTicker(r.hbInterval)
		defer tk.Stop()
		hb = tk.C
	}
	r.holding.Store(true)
	defer r.holding.Store(false)
	for {
		select {
		case <-timeout:
			return
		case <-r.holdEnd:
			r.out.note("signal: ending hold")
			return
		case <-ctx.Done():
			return
		case rep, ok := <-r.c.Reports():
			if !ok {
				return
			}
			r.out.print("report", nil, kv{"cp_seid", hex(rep.SEID)}, kv{"types", strings.Join(rep.Types, ",")}, kv{"usage", rep.Usage})
		case <-hb:
			rtt, rec, err := r.c.Heartbeat(ctx)
			_ = r.step("heartbeat", err, kv{"rtt", rtt.String()}, kv{"upf_recovery", rec.UTC().Format(time.RFC3339)})
		}
	}
}

func hex(v uint64) string { return fmt.Sprintf("%#x", v) }

func causeOK(err error) string {
	var ce *smfsim.CauseError
	switch {
	case err == nil:
		return smfsim.CauseName(1)
	case errors.As(err, &ce):
		return smfsim.CauseName(ce.Cause)
	default:
		return ""
	}
}

var protoNames = map[string]uint8{"ip": 0, "any": 0, "icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}

// parsePINE parses the --pine value.
func parsePINE(s string) (smfsim.PINE, error) {
	var p smfsim.PINE
	var haveID bool
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return p, fmt.Errorf("--pine %q: %q is not key=value", s, part)
		}
		var err error
		switch k {
		case "id":
			var n uint64
			n, err = strconv.ParseUint(v, 0, 16)
			p.ID, haveID = uint16(n), true
		case "addr":
			p.Addr, err = netip.ParseAddr(v)
		case "proto":
			if n, ok := protoNames[strings.ToLower(v)]; ok {
				p.Proto = n
			} else {
				var n uint64
				n, err = strconv.ParseUint(v, 0, 8)
				p.Proto = uint8(n)
			}
		case "ports", "port":
			var pr smfsim.PortRange
			pr, err = smfsim.ParsePortRange(v)
			p.Ports = append(p.Ports, pr)
		case "prec", "precedence":
			var n uint64
			n, err = strconv.ParseUint(v, 0, 32)
			p.Precedence = uint32(n)
		case "mbr-ul":
			p.MBRUL, err = parseRate(v)
		case "mbr-dl":
			p.MBRDL, err = parseRate(v)
		case "gate":
			switch v {
			case "open":
				p.GateClosed = false
			case "closed":
				p.GateClosed = true
			default:
				err = errors.New("want open or closed")
			}
		case "threshold":
			p.VolumeThreshold, err = parseRate(v)
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			return p, fmt.Errorf("--pine %q: %s: %v", s, k, err)
		}
	}
	if !haveID || !p.Addr.IsValid() {
		return p, fmt.Errorf("--pine %q: id and addr required", s)
	}
	if p.ID == 0 || p.ID > smfsim.MaxPINEID {
		return p, fmt.Errorf("--pine %q: id outside 1..%d", s, smfsim.MaxPINEID)
	}
	return p, nil
}

// parseRate parses "1500", "10k", "2M", "1G" (decimal multipliers).
func parseRate(s string) (uint64, error) {
	mult := uint64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, s[:len(s)-1]
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v * mult, err
}

type kv struct {
	k string
	v any
}

// printer writes steps as aligned text lines or JSON objects.
type printer struct {
	w    io.Writer
	json bool
}

func (p *printer) print(step string, err error, fields ...kv) {
	var ce *smfsim.CauseError
	isCause := errors.As(err, &ce)
	if p.json {
		m := map[string]any{"step": step, "ok": err == nil}
		for _, f := range fields {
			if s, ok := f.v.(string); ok && s == "" {
				continue
			}
			m[f.k] = f.v
		}
		if err != nil {
			m["error"] = err.Error()
		}
		if isCause {
			m["cause_value"] = ce.Cause
			if ce.OffendingIE != 0 {
				m["offending_ie"] = smfsim.IEName(ce.OffendingIE)
			}
		}
		b, _ := json.Marshal(m)
		fmt.Fprintln(p.w, string(b))
		return
	}
	status := "ok"
	if err != nil {
		status = "FAILED"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-12s %-6s", step, status)
	for _, f := range fields {
		switch v := f.v.(type) {
		case string:
			if v == "" {
				continue
			}
			if strings.ContainsAny(v, " ;") {
				fmt.Fprintf(&sb, " %s=%q", f.k, v)
			} else {
				fmt.Fprintf(&sb, " %s=%s", f.k, v)
			}
		case []smfsim.UsageReport:
			sort.Slice(v, func(i, j int) bool { return v[i].URRID < v[j].URRID })
			for _, u := range v {
				fmt.Fprintf(&sb, "\n%13s %s", "", u)
			}
		default:
			fmt.Fprintf(&sb, " %s=%v", f.k, v)
		}
	}
	if err != nil {
		fmt.Fprintf(&sb, "\n%13s error: %v", "", err)
	}
	fmt.Fprintln(p.w, sb.String())
}

func (p *printer) note(s string) {
	if p.json {
		b, _ := json.Marshal(map[string]any{"note": s})
		fmt.Fprintln(p.w, string(b))
		return
	}
	fmt.Fprintf(p.w, "%-12s %s\n", "--", s)
}

func runFakeUPF(args []string, out *printer, stderr io.Writer) int {
	fs := flag.NewFlagSet("fake-upf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8805", "address to listen on")
	poke := fs.Bool("poke", true, "send a Heartbeat and a Session Report Request after each establishment")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	u, err := fakeupf.New(*listen)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer u.Close()
	u.SetPoke(*poke)
	u.SetDeletionUsage(ie.NewUsageReportWithinSessionDeletionResponse(ie.NewURRID(1), ie.NewURSEQN(2),
		ie.NewUsageReportTrigger(0x00, 0x08, 0x00), ie.NewVolumeMeasurement(0x3f, 3000, 2000, 1000, 6, 4, 2)))
	out.print("fake-upf", nil, kv{"listen", u.Addr()})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	counts := map[string]int{}
	for _, r := range u.Requests(0) {
		counts[r.Msg.MessageTypeName()]++
	}
	var fields []kv
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fields = append(fields, kv{strings.ReplaceAll(k, " ", ""), counts[k]})
	}
	errs := u.Errors()
	for _, e := range errs {
		fmt.Fprintln(stderr, "fake-upf:", e)
	}
	var err2 error
	if len(errs) > 0 {
		err2 = fmt.Errorf("%d protocol errors", len(errs))
	}
	out.print("fake-upf", err2, fields...)
	if err2 != nil {
		return 1
	}
	return 0
}
