package bench

import (
	"fmt"
	"io"
	"math"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
	"github.com/pine-upf/pine-upf/internal/testnet"
)

// bpfFTestXDPLiveFrames is BPF_F_TEST_XDP_LIVE_FRAMES: the test run sends
// the program's XDP_TX/XDP_REDIRECT frames for real (Linux 5.18).
const bpfFTestXDPLiveFrames = 1 << 1

// e2eRules is the PINE rule set of the end-to-end suite: one PEGC session
// (UE 10.0.0.1) with this many PINEs, ports basePort.. ; the generator's
// frames run through all of them in turn.
const e2eRules = 1000

// e2eWorld is gnb ⇄ [n3 upf n6] ⇄ dn with multi-queue veths (one queue per
// CPU, so generator threads on different CPUs do not share a ring), the
// enforcer loaded in upf, the sink on dn0, the generator run in gnb.
type e2eWorld struct {
	gnb, upf, dn            *testnet.NS
	gnbLink, n3, n6, dnLink testnet.Link
	e                       *enforcer.Enforcer
	objs                    TrafficObjects
	n3Link                  io.Closer // what is attached to n3 now
	cpus                    int
	auth, flood             []byte // frame templates
	portOff                 int
}

// multiQueueVeth is testnet.Veth with q queues each way on both ends.
func multiQueueVeth(tb testing.TB, a *testnet.NS, aName string, b *testnet.NS, bName string, q int) (testnet.Link, testnet.Link) {
	tb.Helper()
	v := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: aName, NumTxQueues: q, NumRxQueues: q},
		PeerName:  bName, PeerNumTxQueues: uint32(q), PeerNumRxQueues: uint32(q),
		PeerNamespace: netlink.NsFd(int(b.NsHandle())),
	}
	if err := a.Handle().LinkAdd(v); err != nil {
		tb.Fatalf("add veth %s <-> %s: %v", aName, bName, err)
	}
	for _, e := range []struct {
		ns   *testnet.NS
		name string
	}{{a, aName}, {b, bName}} {
		l, err := e.ns.Handle().LinkByName(e.name)
		if err != nil {
			tb.Fatal(err)
		}
		if err := e.ns.Handle().LinkSetUp(l); err != nil {
			tb.Fatal(err)
		}
	}
	return a.Link(tb, aName), b.Link(tb, bName)
}

func newE2EWorld(tb testing.TB) *e2eWorld {
	tb.Helper()
	testnet.RequirePrivileged(tb)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		tb.Fatal(err)
	}
	w := &e2eWorld{
		gnb: testnet.NewNS(tb, "bgnb"), upf: testnet.NewNS(tb, "bupf"), dn: testnet.NewNS(tb, "bdn"),
		cpus: cpus,
	}
	w.n3, w.gnbLink = multiQueueVeth(tb, w.upf, "n3", w.gnb, "gnb0", cpus)
	w.n6, w.dnLink = multiQueueVeth(tb, w.upf, "n6", w.dn, "dn0", cpus)
	for _, ns := range []*testnet.NS{w.gnb, w.upf, w.dn} {
		ns.Sysctl(tb, "net.ipv6.conf.all.disable_ipv6", "1") // no neighbour discovery in the counts
	}
	w.upf.Sysctl(tb, "net.ipv4.conf.all.forwarding", "1")
	w.upf.AddAddr(tb, "n3", dptest.N3v4.String()+"/24")
	w.upf.AddAddr(tb, "n6", dptest.N6v4.String()+"/24")
	w.gnb.AddAddr(tb, "gnb0", dptest.GNBv4.String()+"/24")
	w.dn.AddAddr(tb, "dn0", dptest.DNGWv4.String()+"/24")
	w.upf.AddNeigh(tb, "n3", dptest.GNBv4.String(), w.gnbLink.MAC)
	w.upf.AddNeigh(tb, "n6", dptest.DNGWv4.String(), w.dnLink.MAC)
	w.upf.AddRoute(tb, dptest.DNv4.String(), dptest.DNGWv4.String(), "n6")

	err = w.upf.Do(func() (err error) {
		w.e, err = enforcer.New(enforcer.Config{MaxSessions: 64, MaxRules: 4096, MaxQERs: 64, N3v4: dptest.N3v4})
		return err
	})
	if err != nil {
		tb.Fatalf("load datapath: %v", err)
	}
	tb.Cleanup(func() { w.e.Close() })
	if err := LoadTrafficObjects(&w.objs, nil); err != nil {
		tb.Fatalf("load traffic programs: %v", err)
	}
	tb.Cleanup(func() { w.objs.Close() })
	if err := w.objs.RedirectIfindex.Put(uint32(0), uint32(w.n6.Index)); err != nil {
		tb.Fatal(err)
	}

	// One session, e2eRules PINEs: UDP ports basePort.. on the UE address.
	s := enforcer.Session{SEID: 1, TEIDs: []uint32{localTEID(0)}, UEv4: ueAddr(0)}
	for j := range e2eRules {
		s.Rules = append(s.Rules, enforcer.Rule{
			ID: uint32(j) + 1, Precedence: uint32(j), Direction: enforcer.Uplink,
			Addr: ueAddr(0), Protocol: pkt.UDP,
			Ports:  []enforcer.PortRange{{Lo: basePort + uint16(j), Hi: basePort + uint16(j)}},
			Action: enforcer.Forward,
		})
	}
	if err := w.e.InstallSession(s); err != nil {
		tb.Fatal(err)
	}

	// The sink on dn0, pine-upf's xdp_n6 on n6 (as in production; it sees
	// no uplink traffic), and xdp_n3 on n3.
	var sink link.Link
	err = w.dn.Do(func() (err error) {
		sink, err = link.AttachXDP(link.XDPOptions{Program: w.objs.XdpSink, Interface: w.dnLink.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		tb.Fatalf("attach sink: %v", err)
	}
	tb.Cleanup(func() { sink.Close() })
	err = w.upf.Do(func() error {
		l, err := w.e.AttachProgram(enforcer.ProgDownlink, "n6", enforcer.XDPNative)
		if err != nil {
			return err
		}
		tb.Cleanup(func() { l.Close() })
		return nil
	})
	if err != nil {
		tb.Fatalf("attach xdp_n6: %v", err)
	}
	w.use(tb, true)
	tb.Cleanup(func() {
		if w.n3Link != nil {
			w.n3Link.Close()
		}
	})

	f, err := pkt.Uplink{
		L2:    pkt.L2{Src: [6]byte(w.gnbLink.MAC), Dst: [6]byte(w.n3.MAC)},
		Outer: pkt.IP{Src: dptest.GNBv4, Dst: dptest.N3v4},
		GTP:   pkt.GTP{TEID: localTEID(0), Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeUL, qfi)}},
		Inner: pkt.Inner{
			IP:    pkt.IP{Src: ueAddr(0), Dst: netip.MustParseAddr("203.0.113.7")},
			Proto: pkt.UDP, SrcPort: basePort, DstPort: serverPort, PayloadLen: 64,
		},
	}.Build()
	if err != nil {
		tb.Fatal(err)
	}
	w.auth = f.Bytes
	w.portOff = f.Offset(pkt.SpanL4) // the inner UDP source port: the PINE's
	if w.portOff <= 0 || w.portOff+2 > len(w.auth) {
		tb.Fatalf("no inner UDP header in the template")
	}
	return w
}

// use puts pine-upf's xdp_n3 (pine) or the plain redirect on n3.
func (w *e2eWorld) use(tb testing.TB, pine bool) {
	tb.Helper()
	if w.n3Link != nil {
		w.n3Link.Close()
		w.n3Link = nil
	}
	err := w.upf.Do(func() (err error) {
		if pine {
			w.n3Link, err = w.e.AttachProgram(enforcer.ProgUplink, "n3", enforcer.XDPNative)
			return err
		}
		w.n3Link, err = link.AttachXDP(link.XDPOptions{Program: w.objs.XdpRedirect, Interface: w.n3.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		tb.Fatalf("attach to n3: %v", err)
	}
	time.Sleep(20 * time.Millisecond) // veth NAPI set-up after an XDP change
}

// genLoad is what one generator thread sends: frames in all, and every
// denyEvery-th one for a PINE without rule (0: none; 1: all).
type genLoad struct {
	frames    int
	denyEvery uint32
}

// trialResult is one trial: what the sink counted over the wall time of
// the generator threads.
type trialResult struct {
	Offered, OfferedAuth uint64
	Received             uint64 // at the sink: what the program under test delivers
	All, Decap, GTPU     uint64 // at the sink: all frames, decapsulated ones, GTP-U ones
	Elapsed              time.Duration
}

func (r trialResult) Mpps() float64 { return float64(r.Received) / r.Elapsed.Seconds() / 1e6 }
func (r trialResult) Loss() float64 {
	if r.OfferedAuth == 0 {
		return 0
	}
	return 1 - float64(r.Received)/float64(r.OfferedAuth)
}

// trial runs one generator thread per load, thread i pinned to CPU i.
func (w *e2eWorld) trial(loads []genLoad, pine bool) (trialResult, error) {
	var res trialResult
	if len(loads) > w.cpus {
		return res, fmt.Errorf("%d generator threads on %d CPUs", len(loads), w.cpus)
	}
	cfgs := make([]TrafficGenCfg, w.cpus)
	for i := range cfgs {
		c := &cfgs[i]
		c.HdrLen = uint32(min(len(c.Hdr), len(w.auth)) &^ 7)
		copy(c.Hdr[:], w.auth)
		c.PortOff = uint32(w.portOff)
		c.Variants = e2eRules
		c.BasePort = basePort
		c.DeniedBase = deniedPort
		if i < len(loads) {
			c.DenyEvery = loads[i].denyEvery
		}
	}
	if err := w.objs.GenCfgs.Put(uint32(0), cfgs); err != nil {
		return res, err
	}
	zero := make([]TrafficSinkCount, w.cpus)
	for k := uint32(0); k < 4; k++ {
		if err := w.objs.SinkCounts.Put(k, zero); err != nil {
			return res, err
		}
	}
	for _, l := range loads {
		res.Offered += uint64(l.frames)
		switch l.denyEvery {
		case 0:
			res.OfferedAuth += uint64(l.frames)
		case 1:
		default:
			res.OfferedAuth += uint64(l.frames) - uint64(l.frames)/uint64(l.denyEvery)
		}
	}

	var wg sync.WaitGroup
	var ready sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, len(loads))
	ends := make([]time.Time, len(loads))
	ready.Add(len(loads))
	var t0 time.Time
	for i, l := range loads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.gnb.Do(func() error {
				var one unix.CPUSet
				one.Set(i)
				if err := unix.SchedSetaffinity(0, &one); err != nil {
					ready.Done()
					return fmt.Errorf("pin generator to CPU %d: %w", i, err)
				}
				frame := append([]byte(nil), w.auth...)
				opts := &ebpf.RunOptions{
					Data: frame, Repeat: uint32(l.frames), Flags: bpfFTestXDPLiveFrames, BatchSize: 64,
					Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(w.gnbLink.Index)},
				}
				ready.Done()
				<-start
				ret, err := w.objs.XdpGen.Run(opts)
				ends[i] = time.Now()
				if err != nil {
					return fmt.Errorf("live-frame run: %w", err)
				}
				_ = ret
				return nil
			})
		}()
	}
	ready.Wait()
	t0 = time.Now()
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	// The wall time of the threads that send authorized frames (a
	// flood-only thread may finish earlier or later).
	for i, e := range ends {
		if loads[i].denyEvery != 1 {
			res.Elapsed = max(res.Elapsed, e.Sub(t0))
		}
	}
	time.Sleep(5 * time.Millisecond) // the last NAPI polls
	for k, dst := range []*uint64{&res.All, &res.Decap, &res.GTPU} {
		var vals []TrafficSinkCount
		if err := w.objs.SinkCounts.Lookup(uint32(k), &vals); err != nil {
			return res, err
		}
		for _, v := range vals {
			*dst += v.Packets
		}
	}
	res.Received = res.GTPU
	if pine {
		res.Received = res.Decap
	}
	return res, nil
}

// xdpMD is the kernel's struct xdp_md, the context of a test run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// E2EOptions size the end-to-end suite.
type E2EOptions struct {
	Frames int // per generator thread per trial
	Trials int // alternating pine-upf / plain redirect
}

// E2ERow is one end-to-end scenario over its trials.
type E2ERow struct {
	Scenario string    `json:"scenario"`
	Program  string    `json:"program"` // pine-upf (xdp_n3) or plain-redirect
	Threads  int       `json:"threads"`
	Load     string    `json:"load"`    // what the generator threads send
	Mpps     float64   `json:"mpps"`    // median over trials, of frames that reached the sink
	Loss     float64   `json:"loss"`    // median fraction of authorized frames offered that did not arrive
	Offered  uint64    `json:"offered"` // frames per trial
	Runs     []float64 `json:"runs"`    // Mpps of each trial
	Elapsed  []float64 `json:"elapsed_s"`
}

// E2EReport is the end-to-end suite's result.
type E2EReport struct {
	Rules        int                `json:"rules"`
	FrameBytes   int                `json:"frame_bytes"`
	Frames       int                `json:"frames_per_thread"`
	Trials       int                `json:"trials"`
	Rows         []E2ERow           `json:"rows"`
	RatioToPlain map[string]float64 `json:"ratio_to_plain"`  // by thread count: pine-upf Mpps / plain Mpps
	FloodCost    float64            `json:"flood_cost"`      // authorized Mpps with a same-rate flood on the same CPU / without
	FloodCost2   float64            `json:"flood_cost_2cpu"` // authorized Mpps with the flood on the other CPU / without
	Notes        []string           `json:"notes,omitempty"`
}

// RunE2E runs the end-to-end suite.
func RunE2E(tb testing.TB, o E2EOptions, progress func(string)) (*E2EReport, error) {
	w := newE2EWorld(tb)
	rep := &E2EReport{Rules: e2eRules, FrameBytes: len(w.auth), Frames: o.Frames, Trials: o.Trials, RatioToPlain: map[string]float64{}}
	type sc struct {
		name, load string
		pine       bool
		loads      []genLoad
	}
	f := o.Frames
	scs := []sc{
		{"authorized, 1 thread", "authorized", true, []genLoad{{f, 0}}},
		{"plain redirect, 1 thread", "same frames", false, []genLoad{{f, 0}}},
		{"mixed 1:1 on 1 thread", "authorized + unauthorized flood, alternating", true, []genLoad{{f, 2}}},
	}
	if w.cpus >= 2 {
		scs = append(scs,
			sc{"authorized, 2 threads", "authorized", true, []genLoad{{f, 0}, {f, 0}}},
			sc{"plain redirect, 2 threads", "same frames", false, []genLoad{{f, 0}, {f, 0}}},
			sc{"authorized + flood thread", "CPU 0 authorized, CPU 1 unauthorized flood", true, []genLoad{{f, 0}, {f, 1}}},
		)
	}
	rows := make([]E2ERow, len(scs))
	for i, s := range scs {
		prog := "pine-upf"
		if !s.pine {
			prog = "plain-redirect"
		}
		rows[i] = E2ERow{Scenario: s.name, Program: prog, Threads: len(s.loads), Load: s.load}
	}
	var losses = make([][]float64, len(scs))
	// Trials interleave the scenarios, so drift hits them alike.
	pineNow := true
	for t := range o.Trials {
		for i, s := range scs {
			if progress != nil {
				progress(fmt.Sprintf("e2e trial %d/%d: %s", t+1, o.Trials, s.name))
			}
			if s.pine != pineNow {
				w.use(tb, s.pine)
				pineNow = s.pine
			}
			r, err := w.trial(s.loads, s.pine)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			if s.pine && r.GTPU != 0 || !s.pine && r.Decap != 0 {
				return nil, fmt.Errorf("%s: the sink counted %d decapsulated and %d GTP-U frames", s.name, r.Decap, r.GTPU)
			}
			if r.Received > r.OfferedAuth {
				return nil, fmt.Errorf("%s: the sink counted %d frames of %d authorized offered", s.name, r.Received, r.OfferedAuth)
			}
			rows[i].Offered = r.Offered
			rows[i].Runs = append(rows[i].Runs, r.Mpps())
			rows[i].Elapsed = append(rows[i].Elapsed, r.Elapsed.Seconds())
			losses[i] = append(losses[i], r.Loss())
		}
	}
	if !pineNow {
		w.use(tb, true)
	}
	for i := range rows {
		rows[i].Mpps = summarize(rows[i].Runs).Median
		rows[i].Loss = summarize(losses[i]).Median
	}
	rep.Rows = rows
	by := map[string]float64{}
	for _, r := range rows {
		by[r.Scenario] = r.Mpps
	}
	ratio := func(a, b string) float64 {
		if by[b] == 0 || math.IsNaN(by[a]) {
			return 0 // JSON has no NaN
		}
		return by[a] / by[b]
	}
	rep.RatioToPlain["1"] = ratio("authorized, 1 thread", "plain redirect, 1 thread")
	rep.FloodCost = ratio("mixed 1:1 on 1 thread", "authorized, 1 thread")
	if w.cpus >= 2 {
		rep.RatioToPlain["2"] = ratio("authorized, 2 threads", "plain redirect, 2 threads")
		rep.FloodCost2 = ratio("authorized + flood thread", "authorized, 1 thread")
	}
	st, err := w.e.Stats()
	if err == nil {
		c := st.Packets[enforcer.Uplink]
		rep.Notes = append(rep.Notes, fmt.Sprintf("pine-upf's uplink counters after the suite: forward %d, no_pine_rule %d, pass_other %d, no_route %d",
			c[enforcer.ReasonForward].Packets, c[enforcer.ReasonNoRule].Packets, c[enforcer.ReasonPassOther].Packets, c[enforcer.ReasonNoRoute].Packets))
	}
	return rep, nil
}
