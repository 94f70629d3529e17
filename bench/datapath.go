package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
	"github.com/pine-upf/pine-upf/internal/testnet"
)

// The rule set: session s has rulesPerSession PINEs, PINE j being UDP port
// basePort+j on the session's PINE address (its UE IPv4 address, a NAT'd
// PEGC; or ::1 in its delegated IPv6 /64). Port deniedPort+j of the same
// address has no rule.
const (
	rulesPerSession = 1000
	basePort        = 10000
	deniedPort      = 40000
	serverPort      = 443
	qfi             = 9
	defaultFrames   = 16384 // distinct frames (rules) a measurement cycles through at most
	repeatRuns      = 64    // repeat of the Repeat>1 cross-check
	repeatFrames    = 256   // frames of the Repeat>1 cross-check
	runChunks       = 10    // a measurement's samples are split into this many runs for compare
	// n3MTU is the N3 link's MTU in the harness: a 1400-byte payload in
	// IPv6 is 1512 bytes once encapsulated, more than 1500 (at 1500 the
	// downlink program hands it to the kernel, pass_fib). GTP-U transport
	// networks are set up with room for the tunnel overhead.
	n3MTU = 1600
)

// Payloads are the inner UDP payload sizes measured.
var Payloads = []int{64, 512, 1400}

// floorTunnel is where F2 downlink encapsulates to: the world's gNB (of the
// harness's family), like the rules' tunnels.
func floorTunnel(v6 bool) enforcer.Tunnel {
	return enforcer.Tunnel{PeerTEID: 0xf100, Peer: gnbAddr(v6), QFI: qfi}
}

func gnbAddr(v6 bool) netip.Addr {
	if v6 {
		return dptest.GNBv6
	}
	return dptest.GNBv4
}

func n3Addr(v6 bool) netip.Addr {
	if v6 {
		return dptest.N3v6
	}
	return dptest.N3v4
}

func seid(s int) uint64      { return uint64(s) + 1 }
func localTEID(s int) uint32 { return 0x10_0000 + uint32(s) }
func peerTEID(s int) uint32  { return 0x20_0000 + uint32(s) }

// ueAddr is session s's UE IPv4 address, which its PINEs share (NAT).
func ueAddr(s int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(s >> 8), byte(s), 1}) }

// uePrefix is session s's delegated IPv6 prefix.
func uePrefix(s int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x10, 0x00, byte(s >> 8), byte(s)}), 64)
}

// pineAddr is the PINE address of session s's rules.
func pineAddr(s int, v6 bool) netip.Addr {
	if !v6 {
		return ueAddr(s)
	}
	a := uePrefix(s).Addr().As16()
	a[15] = 1
	return netip.AddrFrom16(a)
}

// dnHost is a host in the world's DN prefix, varied with the rule.
func dnHost(r int, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x0d, 15: byte(1 + r%250)})
	}
	return netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + r%250)})
}

// Scenario is one datapath row: a direction, allowed or denied traffic,
// the inner IP version (the outer one is the same uplink; downlink tunnels
// go to the gNB address of that version) and the inner UDP payload size.
type Scenario struct {
	Dir     enforcer.Direction
	Denied  bool
	V6      bool
	Payload int
}

func (sc Scenario) Verdict() string {
	if sc.Denied {
		return "denied"
	}
	return "allowed"
}

func (sc Scenario) Family() string {
	if sc.V6 {
		return "ipv6"
	}
	return "ipv4"
}

// Name is "uplink/allowed/ipv4/64B".
func (sc Scenario) Name() string {
	return fmt.Sprintf("%s/%s/%s/%dB", sc.Dir, sc.Verdict(), sc.Family(), sc.Payload)
}

func (sc Scenario) enf() enforcer.Program {
	if sc.Dir == enforcer.Uplink {
		return enforcer.ProgUplink
	}
	return enforcer.ProgDownlink
}

func (sc Scenario) f1() enforcer.Program {
	if sc.Dir == enforcer.Uplink {
		return enforcer.ProgUplinkFloorParse
	}
	return enforcer.ProgDownlinkFloorParse
}

func (sc Scenario) f2() enforcer.Program {
	if sc.Dir == enforcer.Uplink {
		return enforcer.ProgUplinkFloorForward
	}
	return enforcer.ProgDownlinkFloorForward
}

func (sc Scenario) want() enforcer.Reason {
	if sc.Denied {
		return enforcer.ReasonNoRule
	}
	return enforcer.ReasonForward
}

// rewrites: the enforcer rewrites the frame, so no Repeat>1 cross-check.
func (sc Scenario) rewrites() bool { return !sc.Denied }

// Scenarios are every combination of allowed/denied and payloads for one
// direction and family.
func Scenarios(dir enforcer.Direction, v6 bool, payloads []int) []Scenario {
	var out []Scenario
	for _, denied := range []bool{false, true} {
		for _, p := range payloads {
			out = append(out, Scenario{Dir: dir, Denied: denied, V6: v6, Payload: p})
		}
	}
	return out
}

// stat is a timing in ns.
type stat struct{ Mean, Median float64 }

// result is one scenario at one rule count.
type result struct {
	Scenario Scenario
	Rules    int
	Samples  int
	Pass     stat // raw time of the XDP_PASS baseline
	Enf      stat // the enforcer's program, net of the baseline
	F1, F2   stat // the floors, net of the baseline
	// Runs are the enforcer's net mean over each of runChunks consecutive
	// slices of the samples: the sample set compare tests.
	Runs []float64
	// Repeat>1 cross-check (mean over frames of one run of repeatRuns on
	// each, net of the baseline); NaN where the program rewrites the frame.
	RepEnf, RepF1 float64
}

func (r result) RatioF1() float64 { return r.Enf.Mean / r.F1.Mean }
func (r result) RatioF2() float64 { return r.Enf.Mean / r.F2.Mean }

// installStep is how long growing the rule table took.
type installStep struct {
	Dir             enforcer.Direction
	V6              bool
	From, To        int
	Sessions        int
	Took, Cumulated time.Duration
}

// memReport is the kernel memory of the maps at a rule count.
type memReport struct {
	Dir         enforcer.Direction
	Rules       int // installed
	Capacity    int // MaxRules = MaxRuleEntries
	Maps        map[string]uint64
	PossibleCPU int
}

// harness is a loaded datapath in the namespace world, its programs
// attached, growing one direction's rule set of one IP version.
type harness struct {
	w        *dptest.World
	e        *enforcer.Enforcer
	dir      enforcer.Direction
	v6       bool
	capacity int

	perSession  []int // rules installed per session
	installed   int
	installTime time.Duration

	maxFrames int                 // distinct frames a measurement cycles through
	frames    map[string][][]byte // by scenario name and rule count
	verified  map[string]bool

	// Downlink: F2's verdict before the floor tunnel was set.
	zeroPeer enforcer.XDPAction

	onInstall func(installStep)
	onMemory  func(memReport)
}

// sessionsFor is how many sessions hold n rules.
func sessionsFor(n int) int { return (n + rulesPerSession - 1) / rulesPerSession }

// newHarness builds the world, loads the datapath with room for capacity
// rules and attaches every program the benchmarks time.
func newHarness(tb testing.TB, dir enforcer.Direction, v6 bool, capacity int) *harness {
	tb.Helper()
	testnet.RequirePrivileged(tb)
	w := dptest.NewWorld(tb)
	w.UPF.SetMTU(tb, w.N3.Name, n3MTU)
	w.GNB.SetMTU(tb, w.GNBLink.Name, n3MTU)
	cfg := w.Config()
	cfg.MaxRules = uint32(capacity)
	cfg.MaxRuleEntries = uint32(capacity)
	cfg.MaxSessions = uint32(max(int(cfg.MaxSessions), sessionsFor(capacity)))
	h := &harness{
		w: w, e: w.Load(tb, cfg), dir: dir, v6: v6, capacity: capacity,
		maxFrames: defaultFrames, frames: map[string][][]byte{}, verified: map[string]bool{},
	}

	// Every timed program sits on an interface of the UPF namespace: the
	// enforcer's on N3/N6, the rest on veths made for them.
	fa0, fb0 := testnet.Veth(tb, w.UPF, "fa0", w.UPF, "fb0")
	fa1, fb1 := testnet.Veth(tb, w.UPF, "fa1", w.UPF, "fb1")
	fa2, _ := testnet.Veth(tb, w.UPF, "fa2", w.UPF, "fb2")
	attach := []struct {
		p     enforcer.Program
		iface string
	}{
		{enforcer.ProgUplink, w.N3.Name},
		{enforcer.ProgDownlink, w.N6.Name},
		{enforcer.ProgPass, fa0.Name},
		{enforcer.ProgUplinkFloorParse, fb0.Name},
		{enforcer.ProgUplinkFloorForward, fa1.Name},
		{enforcer.ProgDownlinkFloorParse, fb1.Name},
		{enforcer.ProgDownlinkFloorForward, fa2.Name},
	}
	var links []io.Closer
	tb.Cleanup(func() {
		for _, l := range links {
			l.Close()
		}
	})
	err := w.UPF.Do(func() error {
		for _, a := range attach {
			l, err := h.e.AttachProgram(a.p, a.iface, enforcer.XDPNative)
			if err != nil {
				return err
			}
			links = append(links, l)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("attach programs: %v", err)
	}

	if dir == enforcer.Downlink {
		// What F2 does with the floor tunnel as the object initialises it
		// (action forward, no peer), then give it the gNB as its peer.
		f := h.frame(Scenario{Dir: dir, V6: v6, Payload: 64}, 0)
		err := w.UPF.Do(func() (err error) {
			h.zeroPeer, _, err = h.e.TimeRun(enforcer.ProgDownlinkFloorForward, f, 1)
			return err
		})
		if err != nil {
			tb.Fatalf("F2 downlink with the initial floor tunnel: %v", err)
		}
		if err := h.e.SetFloorTunnel(floorTunnel(v6)); err != nil {
			tb.Fatal(err)
		}
	}
	return h
}

// session is the spec of session s holding its first k rules.
func (h *harness) session(s, k int) enforcer.Session {
	ss := enforcer.Session{SEID: seid(s), TEIDs: []uint32{localTEID(s)}}
	if h.v6 {
		ss.UEv6 = uePrefix(s)
	} else {
		ss.UEv4 = ueAddr(s)
	}
	ss.Rules = make([]enforcer.Rule, k)
	for j := range k {
		r := enforcer.Rule{
			ID: uint32(j) + 1, Precedence: uint32(j), Direction: h.dir,
			Addr: pineAddr(s, h.v6), Protocol: pkt.UDP,
			Ports:  []enforcer.PortRange{{Lo: basePort + uint16(j), Hi: basePort + uint16(j)}},
			Action: enforcer.Forward,
		}
		if h.dir == enforcer.Downlink {
			r.Tunnel = enforcer.Tunnel{PeerTEID: peerTEID(s), Peer: gnbAddr(h.v6), QFI: qfi}
		}
		ss.Rules[j] = r
	}
	return ss
}

// ensure grows the installed rule set to n rules.
func (h *harness) ensure(tb testing.TB, n int) {
	tb.Helper()
	if n == h.installed {
		return
	}
	if n < h.installed || n > h.capacity {
		tb.Fatalf("rule set of %d rules cannot become %d (capacity %d)", h.installed, n, h.capacity)
	}
	from := h.installed
	start := time.Now()
	for s := 0; s < sessionsFor(n); s++ {
		k := min(rulesPerSession, n-s*rulesPerSession)
		if s == len(h.perSession) {
			h.perSession = append(h.perSession, 0)
		}
		if h.perSession[s] == k {
			continue
		}
		if err := h.e.InstallSession(h.session(s, k)); err != nil {
			tb.Fatalf("install %d rules: %v", n, err)
		}
		h.perSession[s] = k
	}
	took := time.Since(start)
	h.installTime += took
	h.installed = n
	step := installStep{Dir: h.dir, V6: h.v6, From: from, To: n, Sessions: sessionsFor(n), Took: took, Cumulated: h.installTime}
	tb.Logf("%s: grew the rule set from %d to %d rules (%d sessions) in %v; %v in all",
		h.dir, from, n, step.Sessions, took.Round(time.Millisecond), h.installTime.Round(time.Millisecond))
	if h.onInstall != nil {
		h.onInstall(step)
	}
	if u := h.e.Usage(); u.Rules != n || u.RuleEntries != n {
		tb.Fatalf("after installing %d rules the enforcer holds %d rules, %d entries", n, u.Rules, u.RuleEntries)
	}
	if h.onMemory != nil {
		mem, err := h.e.MapMemory()
		if err != nil {
			tb.Fatal(err)
		}
		cpus, _ := ebpf.PossibleCPU()
		h.onMemory(memReport{Dir: h.dir, Rules: n, Capacity: h.capacity, Maps: mem, PossibleCPU: cpus})
	}
}

// frame builds the frame of scenario sc for rule r (session r/1000, PINE
// r%1000).
func (h *harness) frame(sc Scenario, r int) []byte {
	s, j := r/rulesPerSession, r%rulesPerSession
	port := uint16(basePort + j)
	if sc.Denied {
		port = uint16(deniedPort + j)
	}
	var f pkt.Frame
	var err error
	if sc.Dir == enforcer.Uplink {
		f, err = pkt.Uplink{
			L2:    pkt.L2{Src: [6]byte(h.w.GNBLink.MAC), Dst: [6]byte(h.w.N3.MAC)},
			Outer: pkt.IP{Src: gnbAddr(sc.V6), Dst: n3Addr(sc.V6)},
			GTP:   pkt.GTP{TEID: localTEID(s), Ext: []pkt.GTPExt{pkt.PSC(pkt.PDUTypeUL, qfi)}},
			Inner: pkt.Inner{
				IP:    pkt.IP{Src: pineAddr(s, sc.V6), Dst: dnHost(r, sc.V6)},
				Proto: pkt.UDP, SrcPort: port, DstPort: serverPort, PayloadLen: sc.Payload,
			},
		}.Build()
	} else {
		f, err = pkt.Downlink{
			L2: pkt.L2{Src: [6]byte(h.w.DNLink.MAC), Dst: [6]byte(h.w.N6.MAC)},
			Inner: pkt.Inner{
				IP:    pkt.IP{Src: dnHost(r, sc.V6), Dst: pineAddr(s, sc.V6)},
				Proto: pkt.UDP, SrcPort: serverPort, DstPort: port, PayloadLen: sc.Payload,
			},
		}.Build()
	}
	if err != nil {
		panic(err) // the descriptions above are always valid
	}
	return f.Bytes
}

// framesFor are frames of sc over a random sample (all, up to h.maxFrames)
// of the n installed rules, in random order: lookups spread over the keys.
func (h *harness) framesFor(sc Scenario, n int) [][]byte {
	key := fmt.Sprintf("%s/%d", sc.Name(), n)
	if f, ok := h.frames[key]; ok {
		return f
	}
	rng := rand.New(rand.NewPCG(uint64(n), 0x9e3779b97f4a7c15))
	var picks []int
	if n <= h.maxFrames {
		picks = rng.Perm(n)
	} else {
		seen := make(map[int]bool, h.maxFrames)
		for len(picks) < h.maxFrames {
			r := rng.IntN(n)
			if !seen[r] {
				seen[r] = true
				picks = append(picks, r)
			}
		}
	}
	frames := make([][]byte, len(picks))
	for i, r := range picks {
		frames[i] = h.frame(sc, r)
	}
	h.frames = map[string][][]byte{key: frames} // one scenario's frames at a time
	return frames
}

// progs are the programs of one sample and the verdicts they must return:
// baseline, F1, F2, enforcer.
func (sc Scenario) progs() ([4]enforcer.Program, [4]enforcer.XDPAction) {
	return [4]enforcer.Program{enforcer.ProgPass, sc.f1(), sc.f2(), sc.enf()},
		[4]enforcer.XDPAction{enforcer.XDPPass, enforcer.XDPDrop, enforcer.XDPRedirect, sc.want().Verdict()}
}

// reasonCounts is the datapath's count of packets of a direction by reason.
func (h *harness) reasonCounts(dir enforcer.Direction) ([]uint64, error) {
	st, err := h.e.Stats()
	if err != nil {
		return nil, err
	}
	out := make([]uint64, enforcer.NumReasons)
	for r, c := range st.Packets[dir] {
		out[r] = c.Packets
	}
	return out, nil
}

// checkReasons requires the enforcer's runs since before to all have
// reason want, and no other packet of the direction to have any reason but
// pass_other.
func (h *harness) checkReasons(dir enforcer.Direction, before []uint64, runs int, want enforcer.Reason) error {
	after, err := h.reasonCounts(dir)
	if err != nil {
		return err
	}
	var errs []error
	for r := range after {
		got, exp := after[r]-before[r], uint64(0)
		if enforcer.Reason(r) == want {
			exp = uint64(runs)
		}
		// The enforcer's programs sit on N3 and N6, which see the world's
		// own background traffic (IPv6 neighbour discovery, MLD): passed.
		if enforcer.Reason(r) == enforcer.ReasonPassOther && want != enforcer.ReasonPassOther {
			continue
		}
		if got != exp {
			errs = append(errs, fmt.Errorf("%s: %d packets counted as %s, want %d", dir, got, enforcer.Reason(r), exp))
		}
	}
	return errors.Join(errs...)
}

// pinnedDo runs fn in namespace ns on a thread pinned to one CPU (the last
// allowed one), so the samples of a measurement do not migrate between CPUs.
func pinnedDo(ns *testnet.NS, fn func() error) error {
	return ns.Do(func() error {
		var old, one unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err == nil {
			cpu := -1
			for c := range 1024 {
				if old.IsSet(c) {
					cpu = c
				}
			}
			if cpu >= 0 {
				one.Set(cpu)
				if unix.SchedSetaffinity(0, &one) == nil {
					defer unix.SchedSetaffinity(0, &old)
				}
			}
		}
		return fn()
	})
}

func (h *harness) inUPF(fn func() error) error { return pinnedDo(h.w.UPF, fn) }

// verify runs every frame once through each program and checks verdicts,
// reason counters and (first frame) the forwarded frame itself.
func (h *harness) verify(sc Scenario, n int, frames [][]byte) error {
	key := fmt.Sprintf("%s/%d", sc.Name(), n)
	if h.verified[key] {
		return nil
	}
	progs, wants := sc.progs()
	before, err := h.reasonCounts(sc.Dir)
	if err != nil {
		return err
	}
	err = h.inUPF(func() error {
		for i, f := range frames {
			for k, p := range progs {
				act, _, err := h.e.TimeRun(p, f, 1)
				if err != nil {
					return err
				}
				if act != wants[k] {
					return fmt.Errorf("%s, %d rules, frame %d: program %d returned %s, want %s", sc.Name(), n, i, p, act, wants[k])
				}
			}
		}
		if sc.want() != enforcer.ReasonForward {
			return nil
		}
		for _, p := range []enforcer.Program{sc.enf(), sc.f2()} {
			act, out, err := h.e.TestRun(p, frames[0], 0)
			if err != nil {
				return err
			}
			if act != enforcer.XDPRedirect {
				return fmt.Errorf("%s: program %d returned %s on loopback ingress, want XDP_REDIRECT", sc.Name(), p, act)
			}
			if err := h.checkForwarded(sc, p, frames[0], out); err != nil {
				return fmt.Errorf("%s, program %d: %w", sc.Name(), p, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := h.checkReasons(sc.Dir, before, len(frames)+btoi(sc.want() == enforcer.ReasonForward), sc.want()); err != nil {
		return fmt.Errorf("%s, %d rules, verification: %w", sc.Name(), n, err)
	}
	h.verified[key] = true
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ipOf is the source, destination and TTL/hop limit of an IP layer.
func ipOf(l gopacket.Layer) (src, dst netip.Addr, ttl uint8, ok bool) {
	switch ip := l.(type) {
	case *layers.IPv4:
		src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
		return src, dst, ip.TTL, true
	case *layers.IPv6:
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
		return src, dst, ip.HopLimit, true
	}
	return src, dst, 0, false
}

func ipLayers(p gopacket.Packet) []gopacket.Layer {
	var out []gopacket.Layer
	for _, l := range p.Layers() {
		if _, _, _, ok := ipOf(l); ok {
			out = append(out, l)
		}
	}
	return out
}

// checkForwarded checks a forwarded frame: uplink, the inner packet with
// the DN gateway's MACs and TTL−1; downlink, the packet in GTP-U towards
// the gNB with the gNB's MACs.
func (h *harness) checkForwarded(sc Scenario, p enforcer.Program, in, out []byte) error {
	pin := gopacket.NewPacket(in, layers.LayerTypeEthernet, gopacket.Default)
	pout := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pout.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil {
		return fmt.Errorf("output is not Ethernet")
	}
	src, dst := h.w.N6.MAC, h.w.DNLink.MAC
	if sc.Dir == enforcer.Downlink {
		src, dst = h.w.N3.MAC, h.w.GNBLink.MAC
	}
	if eth.SrcMAC.String() != src.String() || eth.DstMAC.String() != dst.String() {
		return fmt.Errorf("MACs %s -> %s, want %s -> %s", eth.SrcMAC, eth.DstMAC, src, dst)
	}
	ins, outs := ipLayers(pin), ipLayers(pout)
	if len(ins) == 0 || len(outs) == 0 {
		return fmt.Errorf("no IP header in %v", pout)
	}
	_, innerDst, innerTTL, _ := ipOf(ins[len(ins)-1])
	if sc.Dir == enforcer.Uplink {
		_, d, ttl, _ := ipOf(outs[0])
		if len(outs) != 1 || pout.Layer(layers.LayerTypeGTPv1U) != nil {
			return fmt.Errorf("output is not a bare IP packet: %v", pout)
		}
		if d != innerDst || ttl != innerTTL-1 {
			return fmt.Errorf("output to %v TTL %d, want the inner packet to %v with TTL %d", d, ttl, innerDst, innerTTL-1)
		}
		return nil
	}
	gtp, _ := pout.Layer(layers.LayerTypeGTPv1U).(*layers.GTPv1U)
	if len(outs) != 2 || gtp == nil {
		return fmt.Errorf("output is not IP in GTP-U in IP: %v", pout)
	}
	wantTEID := floorTunnel(sc.V6).PeerTEID
	if p == sc.enf() {
		s := -1
		for i := 0; i < sessionsFor(h.installed); i++ {
			if pineAddr(i, sc.V6) == innerDst {
				s = i
			}
		}
		wantTEID = peerTEID(s)
	}
	os, od, _, _ := ipOf(outs[0])
	if os != n3Addr(sc.V6) || od != gnbAddr(sc.V6) || gtp.TEID != wantTEID {
		return fmt.Errorf("tunnel %v -> %v TEID %#x, want %v -> %v TEID %#x",
			os, od, gtp.TEID, n3Addr(sc.V6), gnbAddr(sc.V6), wantTEID)
	}
	return nil
}

// measure times samples single runs of each program, round-robin with the
// order rotated per sample, over the frames in turn; then the Repeat>1
// cross-check of the programs that leave the frame alone.
func (h *harness) measure(sc Scenario, n, samples int) (result, error) {
	frames := h.framesFor(sc, n)
	if err := h.verify(sc, n, frames); err != nil {
		return result{}, err
	}
	progs, wants := sc.progs()
	var raw [4][]float64
	for k := range raw {
		raw[k] = make([]float64, samples)
	}
	var rep [3]float64 // pass, F1, enforcer: sums over frames
	repN := min(len(frames), repeatFrames)
	before, err := h.reasonCounts(sc.Dir)
	if err != nil {
		return result{}, err
	}
	err = h.inUPF(func() error {
		for i := range samples {
			f := frames[i%len(frames)]
			for k := range 4 {
				idx := (i + k) % 4
				act, ns, err := h.e.TimeRun(progs[idx], f, 1)
				if err != nil {
					return err
				}
				if act != wants[idx] {
					return fmt.Errorf("%s, %d rules, sample %d: program %d returned %s, want %s",
						sc.Name(), n, i, progs[idx], act, wants[idx])
				}
				raw[idx][i] = ns
			}
		}
		for i := range repN {
			f := frames[i]
			for k, p := range []enforcer.Program{enforcer.ProgPass, sc.f1(), sc.enf()} {
				if p == sc.enf() && sc.rewrites() {
					continue
				}
				_, ns, err := h.e.TimeRun(p, f, repeatRuns)
				if err != nil {
					return err
				}
				rep[k] += ns
			}
		}
		return nil
	})
	if err != nil {
		return result{}, err
	}
	runs := samples
	if !sc.rewrites() {
		runs += repN * repeatRuns
	}
	if err := h.checkReasons(sc.Dir, before, runs, sc.want()); err != nil {
		return result{}, fmt.Errorf("%s, %d rules: %w", sc.Name(), n, err)
	}

	pass := summarize(raw[0])
	net := func(xs []float64) stat {
		s := summarize(xs)
		return stat{s.Mean - pass.Mean, s.Median - pass.Median}
	}
	res := result{
		Scenario: sc, Rules: n, Samples: samples, Pass: pass,
		F1: net(raw[1]), F2: net(raw[2]), Enf: net(raw[3]),
		RepEnf: math.NaN(),
		RepF1:  (rep[1] - rep[0]) / float64(repN),
	}
	chunks := min(runChunks, samples)
	for c := range chunks {
		lo, hi := c*samples/chunks, (c+1)*samples/chunks
		res.Runs = append(res.Runs, summarize(raw[3][lo:hi]).Mean-summarize(raw[0][lo:hi]).Mean)
	}
	if !sc.rewrites() {
		res.RepEnf = (rep[2] - rep[0]) / float64(repN)
	}
	return res, nil
}

func summarize(xs []float64) stat {
	if len(xs) == 0 {
		return stat{math.NaN(), math.NaN()}
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{sum / float64(len(xs)), med}
}
