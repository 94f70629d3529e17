package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
	"github.com/pine-upf/pine-upf/pfcp/smfsim"
)

// CPOptions size the control-plane suite.
type CPOptions struct {
	Daemon      string        // the pine-upf binary
	Rules       int           // PINE rules (PDRs) to reach over PFCP
	RateRuns    int           // establishment-rate runs (the compare samples)
	RateSession int           // sessions per rate run
	AddPINE     int           // add-a-PINE round trips, at empty and at Rules
	SMFs        int           // concurrent SMF simulators
	StateBase   string        // where the daemon's state directory is made ("": the temp dir)
	FillBudget  time.Duration // stop filling towards Rules after this long (0: none)
}

// Latency is a round-trip distribution.
type Latency struct {
	N     int     `json:"n"`
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	MaxUs float64 `json:"max_us"`
}

// CPReport is the control-plane suite's result.
type CPReport struct {
	PDRsPerSession    int       `json:"pdrs_per_session"`
	SMFs              int       `json:"smfs"`
	EstablishPerSec   float64   `json:"establishments_per_s"` // median over runs, from an empty UPF
	EstablishRuns     []float64 `json:"establishment_runs"`
	SessionsPerRun    int       `json:"sessions_per_run"`
	AddPINEEmpty      Latency   `json:"add_pine_empty"`
	AddPINEFull       Latency   `json:"add_pine_full"`
	TargetRules       int       `json:"target_rules"`
	FillSeconds       float64   `json:"fill_s"` // time from an empty UPF to TargetRules
	FillSessions      int       `json:"fill_sessions"`
	FillRate          float64   `json:"fill_establishments_per_s"`
	MemEmptyBytes     uint64    `json:"map_memory_empty_bytes"` // memlock of the daemon's maps
	MemFullBytes      uint64    `json:"map_memory_full_bytes"`
	RuleMemFull       uint64    `json:"rule_map_memory_full_bytes"` // rules + rule_stats maps
	MaxRules          int       `json:"daemon_max_rules"`
	StateDir          string    `json:"-"`
	StateDisk         string    `json:"state_dir_disk"`
	StateTmpfs        string    `json:"state_dir_tmpfs"`
	EstablishDisk     float64   `json:"establishments_per_s_disk_state"`
	EstablishDiskRuns []float64 `json:"establishment_runs_disk_state"`
	AddPINEDisk       Latency   `json:"add_pine_disk_state"`
	DaemonRSSBytes    uint64    `json:"daemon_rss_bytes"`
	Notes             []string  `json:"notes,omitempty"`
}

// cpPEGC is PEGC session i: four PINEs, each an aligned NAT port block
// of 16 (one rule entry): 8 PINE PDRs.
func cpPEGC(i int) smfsim.PEGC {
	ue := netip.AddrFrom4([4]byte{10, byte(64 + i>>16), byte(i >> 8), byte(i)})
	p := smfsim.PEGC{UEIPv4: ue, GNB: dptest.GNBv4, GNBTEID: uint32(i + 1)}
	for k := range 4 {
		p.PINEs = append(p.PINEs, smfsim.PINE{ID: uint16(k + 1), Addr: ue, Proto: pkt.UDP,
			Ports: []smfsim.PortRange{{Lo: uint16(5120 + 16*k), Hi: uint16(5135 + 16*k)}}})
	}
	return p
}

// daemon is pine-upf run as a child process in the world's UPF namespace.
type daemon struct {
	stateDir string
	cmd      *exec.Cmd
	log      string
	addr     string
	done     chan error
}

func startDaemon(tb testing.TB, w *dptest.World, bin string, maxRules int, stateBase string) *daemon {
	tb.Helper()
	dir := tb.TempDir()
	stateDir := filepath.Join(dir, "state")
	if stateBase != "" {
		sd, err := os.MkdirTemp(stateBase, "pine-bench-state-")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(sd) })
		stateDir = sd
	}
	d := &daemon{log: filepath.Join(dir, "pine-upf.log"), addr: "127.0.0.1:8805", done: make(chan error, 1)}
	lf, err := os.Create(d.log)
	if err != nil {
		tb.Fatal(err)
	}
	sessions := maxRules/8 + 1024
	args := []string{"netns", "exec", w.UPF.Name, bin, "run",
		"--n3-interface", w.N3.Name, "--n3-ipv4", dptest.N3v4.String(),
		"--n6-interface", w.N6.Name, "--n6-ipv4", dptest.N6v4.String(),
		"--xdp-mode", "native", "--pfcp-listen", d.addr, "--node-id", "127.0.0.1",
		"--allowed-peer", "127.0.0.0/8",
		"--max-sessions", strconv.Itoa(sessions), "--max-rules", strconv.Itoa(maxRules),
		"--max-qers", strconv.Itoa(2*maxRules + 1024),
		"--pin-dir", "", "--state-dir", stateDir, "--metrics-listen", "",
		"--log-level", "warn", "--fresh"}
	d.stateDir = stateDir
	d.cmd = exec.Command("ip", args...)
	d.cmd.Stdout, d.cmd.Stderr = lf, lf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() { d.done <- d.cmd.Wait(); lf.Close() }()
	tb.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

func (d *daemon) tail() string {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// smf dials and associates SMF simulator i inside the UPF namespace (the
// socket stays there), retrying while the daemon starts.
func (d *daemon) smf(w *dptest.World, i int, wait time.Duration) (*smfsim.Client, error) {
	node := fmt.Sprintf("127.0.1.%d", i+1)
	deadline := time.Now().Add(wait)
	for {
		select {
		case err := <-d.done:
			d.done <- err
			return nil, fmt.Errorf("pine-upf exited (%v): %s", err, d.tail())
		default:
		}
		var c *smfsim.Client
		err := w.UPF.Do(func() (err error) {
			c, err = smfsim.Dial(context.Background(), d.addr, smfsim.Options{
				NodeID: node, LocalAddr: node + ":0", Timeout: 2 * time.Second, Retries: 3})
			return err
		})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, _, err = c.Associate(ctx)
			cancel()
			if err == nil {
				return c, nil
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("associate with pine-upf: %v (log: %s)", err, d.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mapMemory sums the memlock of the BPF maps the process holds, from
// /proc/PID/fdinfo; rules is that of the maps of MaxRules entries (rules,
// rule_stats), told apart by their max_entries.
func mapMemory(pid, maxRules int) (total, rules uint64, err error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", pid))
	if err != nil {
		return 0, 0, err
	}
	seen := map[string]bool{}
	for _, fd := range fds {
		f, err := os.Open(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		kv := map[string]string{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok {
				kv[k] = strings.TrimSpace(v)
			}
		}
		f.Close()
		if kv["map_type"] == "" || seen[kv["map_id"]] {
			continue
		}
		seen[kv["map_id"]] = true
		m, _ := strconv.ParseUint(kv["memlock"], 10, 64)
		total += m
		if n, _ := strconv.Atoi(kv["max_entries"]); n >= maxRules {
			rules += m
		}
	}
	return total, rules, nil
}

func rss(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func latencyOf(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	return Latency{N: len(lat), P50us: us(q(0.5)), P99us: us(q(0.99)), MaxUs: us(lat[len(lat)-1])}
}

// addPINE times n Session Modifications adding one PINE (2 PDRs, 2 FARs, a
// QER, a URR) to session s; each is removed again untimed.
func addPINE(s *smfsim.Session, ue netip.Addr, n int) (Latency, error) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, n)
	for i := range n {
		p := smfsim.PINE{ID: 100, Addr: ue, Proto: pkt.UDP,
			Ports: []smfsim.PortRange{{Lo: uint16(20000 + i%1000), Hi: uint16(20000 + i%1000)}}}
		t0 := time.Now()
		if err := s.AddPINE(ctx, p); err != nil {
			return Latency{}, err
		}
		lat = append(lat, time.Since(t0))
		if _, err := s.RemovePINE(ctx, 100); err != nil {
			return Latency{}, err
		}
	}
	return latencyOf(lat), nil
}

// establish establishes sessions [from, to) from the clients at once.
func establish(clients []*smfsim.Client, from, to int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= to {
					return
				}
				if _, err := c.EstablishPEGC(context.Background(), cpPEGC(i)); err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// RunControlPlane runs the control-plane suite against pine-upf run as a
// child process, twice: with its state directory on disk (every session
// change is written, by temp file and rename, before the response: the
// daemon's restart design) for the establishment rate and add-a-PINE round trip,
// and with it on tmpfs (/dev/shm) for the same and the fill to o.Rules, so
// the run fits its time budget and shows the datapath and PFCP costs
// without the disk's.
func RunControlPlane(tb testing.TB, o CPOptions, progress func(string)) (*CPReport, error) {
	disk := o
	disk.Rules = 0
	disk.StateBase = "" // the temp dir: on disk
	base := o.StateBase
	if base == "" {
		base = "/dev/shm"
	}
	rd, err := runCP(tb, disk, "state on disk: ", progress)
	if err != nil {
		return nil, err
	}
	o.StateBase = base
	rep, err := runCP(tb, o, "state on tmpfs: ", progress)
	if err != nil {
		return nil, err
	}
	rep.EstablishDisk, rep.EstablishDiskRuns, rep.AddPINEDisk = rd.EstablishPerSec, rd.EstablishRuns, rd.AddPINEEmpty
	rep.StateDisk, rep.StateTmpfs = rd.StateDir, base
	return rep, nil
}

func runCP(tb testing.TB, o CPOptions, label string, progress0 func(string)) (*CPReport, error) {
	progress := func(s string) {
		if progress0 != nil {
			progress0(label + s)
		}
	}
	w := dptest.NewWorld(tb)
	maxRules := max(o.Rules, 8*(1+o.RateRuns*o.RateSession)) + o.Rules/10 + 1024
	d := startDaemon(tb, w, o.Daemon, maxRules, o.StateBase)
	rep := &CPReport{PDRsPerSession: 8, SMFs: o.SMFs, TargetRules: o.Rules, MaxRules: maxRules, SessionsPerRun: o.RateSession, StateDir: d.stateDir}
	clients := make([]*smfsim.Client, o.SMFs)
	for i := range clients {
		c, err := d.smf(w, i, 30*time.Second)
		if err != nil {
			return nil, err
		}
		tb.Cleanup(func() { c.Close() })
		clients[i] = c
	}
	pid := d.cmd.Process.Pid
	var err error
	if rep.MemEmptyBytes, _, err = mapMemory(pid, maxRules); err != nil {
		return nil, err
	}

	// Add-a-PINE on an otherwise empty UPF: session 0 (8 PDRs).
	progress("add-a-PINE round trips on an empty UPF")
	s0, err := clients[0].EstablishPEGC(context.Background(), cpPEGC(0))
	if err != nil {
		return nil, fmt.Errorf("establish: %w (log: %s)", err, d.tail())
	}
	if rep.AddPINEEmpty, err = addPINE(s0, cpPEGC(0).UEIPv4, o.AddPINE); err != nil {
		return nil, err
	}

	// Establishment rate, then on to the target: sessions 1, 2, ...
	sessions := (o.Rules + 7) / 8
	next := 1
	fillStart := time.Now()
	for r := range o.RateRuns {
		progress(fmt.Sprintf("establishment rate run %d/%d", r+1, o.RateRuns))
		t0 := time.Now()
		if err := establish(clients, next, next+o.RateSession); err != nil {
			return nil, fmt.Errorf("%w (log: %s)", err, d.tail())
		}
		rep.EstablishRuns = append(rep.EstablishRuns, float64(o.RateSession)/time.Since(t0).Seconds())
		next += o.RateSession
	}
	rep.EstablishPerSec = summarize(rep.EstablishRuns).Median
	const step = 5000
	for next < sessions {
		if o.FillBudget > 0 && time.Since(fillStart) > o.FillBudget {
			rep.Notes = append(rep.Notes, fmt.Sprintf("**the fill stopped at its budget of %v: %d of %d PINE rules**", o.FillBudget, next*8, sessions*8))
			break
		}
		to := min(sessions, next+step)
		progress(fmt.Sprintf("%d of %d PINE rules over PFCP (%.0f s)", next*8, sessions*8, time.Since(fillStart).Seconds()))
		if err := establish(clients, next, to); err != nil {
			return nil, fmt.Errorf("%w (log: %s)", err, d.tail())
		}
		next = to
	}
	rep.FillSeconds = time.Since(fillStart).Seconds()
	rep.FillSessions = next
	rep.FillRate = float64(next-1) / rep.FillSeconds
	if rep.MemFullBytes, rep.RuleMemFull, err = mapMemory(pid, maxRules); err != nil {
		return nil, err
	}
	rep.DaemonRSSBytes = rss(pid)

	progress(fmt.Sprintf("add-a-PINE round trips at %d rules", max(sessions, next)*8))
	if o.Rules > 0 {
		if rep.AddPINEFull, err = addPINE(s0, cpPEGC(0).UEIPv4, o.AddPINE); err != nil {
			return nil, err
		}
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf(
		"pine-upf run as a child process in a namespace (--max-rules %d, --max-sessions %d), %d SMF simulators over loopback in the same namespace; "+
			"each session 4 PINEs = 8 PINE PDRs (aligned 16-port blocks, one rule entry each); the first session carries the add-a-PINE round trips",
		maxRules, maxRules/8+1024, o.SMFs))
	return rep, nil
}
