package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/pine-upf/pine-upf/enforcer"
)

// Options choose what a run measures and how much.
type Options struct {
	Mode       string // full, quick, smoke
	RuleCounts []int
	Payloads   []int
	Samples    int // per datapath row
	E2E        E2EOptions
	CP         CPOptions
	Suites     map[string]bool // datapath, e2e, controlplane
}

// ModeOptions are the sizes of a mode: full (`make bench`, under 10
// minutes), quick (under 2), smoke (seconds: CI).
func ModeOptions(mode string) (Options, error) {
	all := map[string]bool{"datapath": true, "e2e": true, "controlplane": true}
	o := Options{Mode: mode, Suites: all, Payloads: Payloads}
	switch mode {
	case "full":
		o.RuleCounts = []int{1, 10, 100, 1_000, 10_000, 100_000, 1_000_000}
		o.Samples = 4000
		o.E2E = E2EOptions{Frames: 4_000_000, Trials: 5}
		o.CP = CPOptions{Rules: 1_000_000, RateRuns: 5, RateSession: 1000, AddPINE: 1000, SMFs: 16, FillBudget: 150 * time.Second}
	case "quick":
		o.RuleCounts = []int{1, 100, 10_000, 100_000}
		o.Samples = 1000
		o.E2E = E2EOptions{Frames: 1_000_000, Trials: 3}
		o.CP = CPOptions{Rules: 100_000, RateRuns: 3, RateSession: 500, AddPINE: 300, SMFs: 16, FillBudget: 30 * time.Second}
	case "smoke":
		o.RuleCounts = []int{1, 10}
		o.Payloads = []int{64}
		o.Samples = 50
		o.E2E = E2EOptions{Frames: 20_000, Trials: 1}
		o.CP = CPOptions{Rules: 800, RateRuns: 2, RateSession: 20, AddPINE: 20, SMFs: 4}
	default:
		return o, fmt.Errorf("mode %q: full, quick or smoke", mode)
	}
	return o, nil
}

// Machine are the facts a result depends on.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	Clang  string `json:"clang"`
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty"`
	Host   string `json:"host"`
}

func machineFacts() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.Host, _ = os.Hostname()
	if out, err := exec.Command("clang-14", "--version").Output(); err == nil {
		m.Clang = strings.SplitN(string(out), "\n", 2)[0]
	}
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		m.Dirty = len(strings.TrimSpace(string(out))) > 0
	}
	return m
}

// DPRow is one datapath row: ns/packet net of the XDP_PASS baseline.
type DPRow struct {
	Dir      string    `json:"dir"`
	Verdict  string    `json:"verdict"`
	Family   string    `json:"family"`
	Payload  int       `json:"payload"`
	Rules    int       `json:"rules"`
	Samples  int       `json:"samples"`
	NS       float64   `json:"ns"` // mean
	Median   float64   `json:"median_ns"`
	F1       float64   `json:"f1_ns"`
	F2       float64   `json:"f2_ns"`
	Pass     float64   `json:"pass_ns"` // the baseline, raw
	RatioF1  float64   `json:"ratio_f1"`
	RatioF2  float64   `json:"ratio_f2"`
	Runs     []float64 `json:"runs"`
	RepeatNS *float64  `json:"repeat_ns,omitempty"`
	RepF1NS  float64   `json:"repeat_f1_ns"`
}

// Name is the row's key in compare: "uplink/allowed/ipv4/64B/1000".
func (r DPRow) Name() string {
	return fmt.Sprintf("%s/%s/%s/%dB/%d", r.Dir, r.Verdict, r.Family, r.Payload, r.Rules)
}

// DPInstall is how long growing a rule table took.
type DPInstall struct {
	Dir     string  `json:"dir"`
	Family  string  `json:"family"`
	From    int     `json:"from"`
	To      int     `json:"to"`
	Seconds float64 `json:"s"`
}

// DPMemory is the maps' kernel memory at the largest count.
type DPMemory struct {
	Dir        string            `json:"dir"`
	Family     string            `json:"family"`
	Rules      int               `json:"rules"`
	Capacity   int               `json:"capacity"`
	Maps       map[string]uint64 `json:"maps"`
	PerRuleCap float64           `json:"rule_bytes_per_capacity"` // (rules + rule_stats) / capacity
}

// DPReport is the datapath suite's result.
type DPReport struct {
	Rows     []DPRow     `json:"rows"`
	Installs []DPInstall `json:"installs"`
	Memory   []DPMemory  `json:"memory"`
	Notes    []string    `json:"notes,omitempty"`
}

// Report is a whole run.
type Report struct {
	Version  int        `json:"version"`
	Date     time.Time  `json:"date"`
	Mode     string     `json:"mode"`
	Command  string     `json:"command"`
	Machine  Machine    `json:"machine"`
	Seconds  float64    `json:"seconds"`
	Datapath *DPReport  `json:"datapath,omitempty"`
	E2E      *E2EReport `json:"e2e,omitempty"`
	CP       *CPReport  `json:"control_plane,omitempty"`
	Errors   []string   `json:"errors,omitempty"`
}

// minFloorNS is the smallest floor a ratio is taken to: F1 net of the
// XDP_PASS baseline is a few ns, within the noise of single runs, and a
// ratio to it means nothing (0 in the JSON, – in the tables).
const minFloorNS = 10

func ratioTo(x, floor float64) float64 {
	r := x / floor
	if floor < minFloorNS || math.IsNaN(r) || math.IsInf(r, 0) {
		return 0
	}
	return r
}

// RunDatapath runs the datapath suite: one world and datapath per direction
// and IP version, its rule table sized for the largest count and grown
// through the counts, every scenario measured at each.
func RunDatapath(newEnv func(name string) *Env, o Options, progress func(string)) (*DPReport, error) {
	rep := &DPReport{}
	top := o.RuleCounts[len(o.RuleCounts)-1]
	type combo struct {
		dir enforcer.Direction
		v6  bool
	}
	combos := []combo{{enforcer.Uplink, false}, {enforcer.Uplink, true}, {enforcer.Downlink, false}, {enforcer.Downlink, true}}
	total := len(combos) * len(o.RuleCounts) * 2 * len(o.Payloads)
	done := 0
	for _, c := range combos {
		fam := "ipv4"
		if c.v6 {
			fam = "ipv6"
		}
		env := newEnv(fmt.Sprintf("datapath-%s-%s", c.dir, fam))
		err := env.Run(func(tb testing.TB) error {
			h := newHarness(tb, c.dir, c.v6, top)
			h.maxFrames = min(defaultFrames, o.Samples)
			h.onInstall = func(s installStep) {
				rep.Installs = append(rep.Installs, DPInstall{Dir: c.dir.String(), Family: fam, From: s.From, To: s.To, Seconds: s.Took.Seconds()})
			}
			h.onMemory = func(m memReport) {
				if m.Rules != top {
					return
				}
				rep.Memory = append(rep.Memory, DPMemory{Dir: c.dir.String(), Family: fam, Rules: m.Rules, Capacity: m.Capacity, Maps: m.Maps,
					PerRuleCap: float64(m.Maps["rules"]+m.Maps["rule_stats"]) / float64(m.Capacity)})
			}
			if c.dir == enforcer.Downlink && !c.v6 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("F2 downlink with the floor tunnel as the BPF object initialises it (peer 0.0.0.0): %s; set with enforcer.SetFloorTunnel for the runs", h.zeroPeer))
			}
			for _, n := range o.RuleCounts {
				progress(fmt.Sprintf("datapath %s %s: installing %d rules", c.dir, fam, n))
				h.ensure(tb, n)
				for _, sc := range Scenarios(c.dir, c.v6, o.Payloads) {
					done++
					progress(fmt.Sprintf("datapath [%d/%d] %s at %d rules", done, total, sc.Name(), n))
					r, err := h.measure(sc, n, o.Samples)
					if err != nil {
						return err
					}
					row := DPRow{Dir: c.dir.String(), Verdict: sc.Verdict(), Family: fam, Payload: sc.Payload, Rules: n, Samples: r.Samples,
						NS: r.Enf.Mean, Median: r.Enf.Median, F1: r.F1.Mean, F2: r.F2.Mean, Pass: r.Pass.Mean,
						RatioF1: ratioTo(r.Enf.Mean, r.F1.Mean), RatioF2: ratioTo(r.Enf.Mean, r.F2.Mean), Runs: r.Runs, RepF1NS: r.RepF1}
					if !math.IsNaN(r.RepEnf) {
						v := r.RepEnf
						row.RepeatNS = &v
					}
					rep.Rows = append(rep.Rows, row)
				}
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// Run runs the suites o selects; a suite that fails is reported in Errors
// and the others still run.
func Run(o Options, daemon string, logw io.Writer, progress func(string)) *Report {
	start := time.Now()
	rep := &Report{Version: 1, Date: start.UTC(), Mode: o.Mode, Command: strings.Join(os.Args, " "), Machine: machineFacts()}
	newEnv := func(name string) *Env { return NewEnv(name, logw) }
	if o.Suites["datapath"] {
		dp, err := RunDatapath(newEnv, o, progress)
		rep.Datapath = dp
		if err != nil {
			rep.Errors = append(rep.Errors, "datapath: "+err.Error())
		}
	}
	if o.Suites["e2e"] {
		err := newEnv("e2e").Run(func(tb testing.TB) (err error) {
			rep.E2E, err = RunE2E(tb, o.E2E, progress)
			return err
		})
		if err != nil {
			rep.Errors = append(rep.Errors, "e2e: "+err.Error())
		}
	}
	if o.Suites["controlplane"] {
		cp := o.CP
		cp.Daemon = daemon
		err := newEnv("controlplane").Run(func(tb testing.TB) (err error) {
			rep.CP, err = RunControlPlane(tb, cp, progress)
			return err
		})
		if err != nil {
			rep.Errors = append(rep.Errors, "control plane: "+err.Error())
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep
}

// WriteJSON writes the report.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadReport reads a report JSON file.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

var _ = ebpf.PossibleCPU
