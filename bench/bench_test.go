package bench

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
)

var maxRulesFlag = flag.Int("bench.maxrules", 0,
	"largest PINE rule count to benchmark (default 1,000,000, or $PINE_BENCH_MAXRULES)")

var framesFlag = flag.Int("bench.frames", defaultFrames,
	"distinct frames (installed rules) each measurement cycles through; fewer shows what locality buys")

// defaultCapacity is the rule table size the benchmarks load, whatever rule
// count they measure, so every count meets the same table.
const defaultCapacity = 1_000_000

// maxRules is the largest rule count benchmarked.
func maxRules(tb testing.TB) int {
	if *maxRulesFlag > 0 {
		return *maxRulesFlag
	}
	if v := os.Getenv("PINE_BENCH_MAXRULES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			tb.Fatalf("PINE_BENCH_MAXRULES=%q is not a positive number", v)
		}
		return n
	}
	return defaultCapacity
}

// ruleCounts are the rule counts up to max: 1, 1,000, 100,000, 1,000,000,
// and max itself.
func ruleCounts(max int) []int {
	var out []int
	for _, n := range []int{1, 1_000, 100_000, 1_000_000} {
		if n <= max {
			out = append(out, n)
		}
	}
	if out[len(out)-1] != max {
		out = append(out, max)
	}
	return out
}

// report collects what the benchmarks measured, for the summary TestMain
// prints.
var report reportT

type reportT struct {
	sync.Mutex
	results  map[string]result // by scenario/rules; the run with most samples
	installs []installStep
	memory   map[enforcer.Direction]memReport // at the largest count
	notes    []string
	cp       []string // control-plane figures
}

func (r *reportT) addCP(line string) {
	r.Lock()
	defer r.Unlock()
	r.cp = append(r.cp, line)
}

func record(r result) {
	report.Lock()
	defer report.Unlock()
	if report.results == nil {
		report.results = map[string]result{}
	}
	key := fmt.Sprintf("%s/%d", r.Scenario, r.Rules)
	if old, ok := report.results[key]; !ok || r.Samples >= old.Samples {
		report.results[key] = r
	}
}

func note(format string, args ...any) {
	report.Lock()
	defer report.Unlock()
	report.notes = append(report.notes, fmt.Sprintf(format, args...))
}

func TestMain(m *testing.M) {
	code := m.Run()
	printReport(os.Stdout)
	os.Exit(code)
}

func BenchmarkUplink(b *testing.B) {
	benchDirection(b, enforcer.Uplink, uplinkAllowed, uplinkDenied)
}

func BenchmarkDownlink(b *testing.B) {
	benchDirection(b, enforcer.Downlink, downlinkAllowed)
}

// benchDirection measures the scenarios of one direction at every rule
// count, growing one rule set: Benchmark<Dir>/rules=N/<scenario>. Each
// sub-benchmark takes b.N samples.
func benchDirection(b *testing.B, dir enforcer.Direction, scs ...scenario) {
	top := maxRules(b)
	h := newHarness(b, dir, max(defaultCapacity, top))
	h.maxFrames = max(*framesFlag, 1)
	h.onInstall = func(s installStep) {
		report.Lock()
		report.installs = append(report.installs, s)
		report.Unlock()
	}
	h.onMemory = func(m memReport) {
		report.Lock()
		if report.memory == nil {
			report.memory = map[enforcer.Direction]memReport{}
		}
		if m.Rules >= report.memory[dir].Rules {
			report.memory[dir] = m
		}
		report.Unlock()
	}
	if dir == enforcer.Downlink {
		note("F2 downlink with the floor tunnel as the BPF object initialises it (action forward, peer 0.0.0.0): %s; "+
			"the benchmarks set it to %v TEID %#x with enforcer.SetFloorTunnel.", h.zeroPeer, floorTunnel.Peer, floorTunnel.PeerTEID)
	}
	for _, n := range ruleCounts(top) {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			for _, sc := range scs {
				b.Run(sc.short, func(b *testing.B) {
					h.ensure(b, n)
					b.ResetTimer()
					res, err := h.measure(sc, n, b.N)
					if err != nil {
						b.Fatal(err)
					}
					record(res)
					b.ReportMetric(0, "ns/op") // wall time of four syscalls: meaningless here
					b.ReportMetric(res.Enf.Mean, "ns/pkt")
					b.ReportMetric(res.Enf.Median, "median-ns/pkt")
					b.ReportMetric(res.F1.Mean, "F1-ns/pkt")
					b.ReportMetric(res.F2.Mean, "F2-ns/pkt")
					b.ReportMetric(res.RatioF1(), "ratio_F1")
					b.ReportMetric(res.RatioF2(), "ratio_F2")
					b.ReportMetric(res.Pass.Mean, "pass-ns")
					if !math.IsNaN(res.RepEnf) {
						b.ReportMetric(res.RepEnf, "rep-ns/pkt")
					}
					b.ReportMetric(res.RepF1, "F1rep-ns/pkt")
				})
			}
		})
	}
}

// printReport writes the Markdown summary of everything measured.
func printReport(w io.Writer) {
	report.Lock()
	defer report.Unlock()
	if len(report.cp) > 0 {
		fmt.Fprintln(w, "\n### Control plane (PFCP over loopback, real server and datapath)")
		for _, l := range report.cp {
			fmt.Fprintln(w, "- "+l)
		}
	}
	if len(report.results) == 0 {
		return
	}
	var rs []result
	for _, r := range report.results {
		rs = append(rs, r)
	}
	order := map[string]int{uplinkAllowed.name: 0, uplinkDenied.name: 1, downlinkAllowed.name: 2}
	slices.SortFunc(rs, func(a, b result) int {
		if a.Scenario != b.Scenario {
			return order[a.Scenario] - order[b.Scenario]
		}
		return a.Rules - b.Rules
	})
	one := map[string]float64{}
	for _, r := range rs {
		if r.Rules == 1 {
			one[r.Scenario] = r.Enf.Mean
		}
	}
	f := func(x float64) string {
		if math.IsNaN(x) {
			return "–"
		}
		return fmt.Sprintf("%.1f", x)
	}
	// A ratio to a figure within noise of zero (F1 net of the baseline can
	// be) means nothing: left out.
	ratio := func(x, y float64) string {
		if math.IsNaN(y) || y < 1 {
			return "–"
		}
		return fmt.Sprintf("%.2f", x/y)
	}
	fmt.Fprintf(w, "\n## pine-upf datapath, BPF_PROG_TEST_RUN (ns per packet, net of the XDP_PASS baseline)\n\n")
	fmt.Fprintf(w, "| scenario | rules | samples | ns/pkt | median | F1 | F2 | ratio to F1 | ratio to F2 | vs 1 rule | Repeat×%d: ns/pkt, F1 |\n", repeatRuns)
	fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		vs1 := math.NaN()
		if b, ok := one[r.Scenario]; ok {
			vs1 = b
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s, %s |\n",
			r.Scenario, r.Rules, r.Samples, f(r.Enf.Mean), f(r.Enf.Median), f(r.F1.Mean), f(r.F2.Mean),
			ratio(r.Enf.Mean, r.F1.Mean), ratio(r.Enf.Mean, r.F2.Mean), ratio(r.Enf.Mean, vs1), f(r.RepEnf), f(r.RepF1))
	}
	fmt.Fprintf(w, "\nEach sample is one run (repeat 1) of XDP_PASS, F1, F2 and the enforcer on the same frame, order rotated per sample, "+
		"all attached to interfaces of the UPF namespace and run there; the columns are kernel-measured means (median: of the enforcer) "+
		"minus the XDP_PASS baseline's (%.1f ns mean in the last row). Frames cycle through up to %d random installed rules. "+
		"The Repeat column runs each of %d frames %d times in one test run (hot key; only programs that leave the frame alone). "+
		"A ratio to a figure below 1 ns is shown as –. Targets: uplink-allowed ≤ 1.3× F2, uplink-denied ≤ 1.5× F1, 1,000,000 rules ≤ 2× 1 rule.\n",
		rs[len(rs)-1].Pass.Mean, max(*framesFlag, 1), repeatFrames, repeatRuns)

	for _, dir := range []enforcer.Direction{enforcer.Uplink, enforcer.Downlink} {
		m, ok := report.memory[dir]
		if !ok {
			continue
		}
		ruleMem := m.Maps["rules"] + m.Maps["rule_stats"]
		var total uint64
		for _, v := range m.Maps {
			total += v
		}
		fmt.Fprintf(w, "\n### Kernel memory (%s rule set)\n\n", dir)
		fmt.Fprintf(w, "- per PINE rule of capacity: (rules %d + rule_stats %d bytes) / %d = **%.1f bytes** (target ≤ 160); "+
			"memlock from the maps' fdinfo, capacity MaxRules = MaxRuleEntries = %d, %d possible CPUs for the per-CPU rule_stats\n",
			m.Maps["rules"], m.Maps["rule_stats"], m.Capacity, float64(ruleMem)/float64(m.Capacity), m.Capacity, m.PossibleCPU)
		fmt.Fprintf(w, "- all maps per installed rule at %d rules (%d sessions): %d bytes / %d = **%.1f bytes**\n",
			m.Rules, sessionsFor(m.Rules), total, m.Rules, float64(total)/float64(m.Rules))
		names := make([]string, 0, len(m.Maps))
		for k := range m.Maps {
			names = append(names, k)
		}
		slices.Sort(names)
		fmt.Fprintf(w, "- by map:")
		for _, k := range names {
			fmt.Fprintf(w, " %s %d;", k, m.Maps[k])
		}
		fmt.Fprintln(w)
	}
	if len(report.installs) > 0 {
		fmt.Fprintf(w, "\n### Installing rules (InstallSession, %d rules per session)\n\n", rulesPerSession)
		for _, s := range report.installs {
			fmt.Fprintf(w, "- %s: %d → %d rules (%d sessions): %v; %v since the first rule\n",
				s.Dir, s.From, s.To, s.Sessions, s.Took.Round(time.Millisecond), s.Cumulated.Round(time.Millisecond))
		}
	}
	for _, n := range report.notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
}
