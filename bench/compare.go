package bench

import (
	"fmt"
	"io"
	"math"

	"golang.org/x/perf/benchmath"
)

// Compare writes what changed from old to new: for every figure both runs
// have with per-run samples (datapath rows: the enforcer's ns/packet over
// runChunks slices of the samples; end to end: Mpps per trial; control
// plane: establishments/s per run), the medians, the change, and the
// p-value of benchstat's test: a Mann-Whitney U test on the two sample
// sets (golang.org/x/perf/benchmath, AssumeNothing), α = 0.05. A change
// whose p is above α is shown as "~". It returns how many figures got
// significantly worse.
func Compare(w io.Writer, old, cur *Report) int {
	thr := benchmath.DefaultThresholds
	fmt.Fprintf(w, "# pine-bench compare\n\nold: %s, commit %.12s, %s mode · new: %s, commit %.12s, %s mode\n\n",
		old.Date.Format("2006-01-02 15:04"), old.Machine.Commit, old.Mode, cur.Date.Format("2006-01-02 15:04"), cur.Machine.Commit, cur.Mode)
	if old.Machine.CPU != cur.Machine.CPU || old.Machine.Kernel != cur.Machine.Kernel {
		fmt.Fprintf(w, "> different machines: %s / %s vs %s / %s: absolute figures are not comparable\n\n", old.Machine.CPU, old.Machine.Kernel, cur.Machine.CPU, cur.Machine.Kernel)
	}
	fmt.Fprintf(w, "Test: Mann-Whitney U on the per-run samples (benchstat's method), α = %.2f; `~` = no significant change.\n\n", thr.CompareAlpha)
	fmt.Fprintf(w, "| figure | unit | old | new | change | p | n |\n|---|---|--:|--:|--:|--:|---|\n")
	worse := 0
	row := func(name, unit string, a, b []float64, higherBetter bool) {
		if len(a) == 0 || len(b) == 0 {
			return
		}
		s1, s2 := benchmath.NewSample(a, &thr), benchmath.NewSample(b, &thr)
		c := benchmath.AssumeNothing.Compare(s1, s2)
		m1, m2 := summarize(a).Median, summarize(b).Median
		change := "~"
		if c.P <= c.Alpha && m1 != 0 {
			d := (m2 - m1) / math.Abs(m1) * 100
			change = fmt.Sprintf("%+.1f%%", d)
			if (d < 0) == higherBetter {
				change += " worse"
				worse++
			} else {
				change += " better"
			}
		}
		note := ""
		for _, w := range c.Warnings {
			note = " (" + w.Error() + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %s | %.3f | %d+%d%s |\n", name, unit, m1, m2, change, c.P, c.N1, c.N2, note)
	}
	if old.Datapath != nil && cur.Datapath != nil {
		olds := map[string]DPRow{}
		for _, r := range old.Datapath.Rows {
			olds[r.Name()] = r
		}
		for _, r := range cur.Datapath.Rows {
			if o, ok := olds[r.Name()]; ok {
				row("datapath "+r.Name(), "ns/pkt", o.Runs, r.Runs, false)
			}
		}
	}
	if old.E2E != nil && cur.E2E != nil {
		olds := map[string]E2ERow{}
		for _, r := range old.E2E.Rows {
			olds[r.Scenario] = r
		}
		for _, r := range cur.E2E.Rows {
			if o, ok := olds[r.Scenario]; ok {
				row("e2e "+r.Scenario, "Mpps", o.Runs, r.Runs, true)
			}
		}
	}
	if old.CP != nil && cur.CP != nil {
		row("PFCP establishments, state on tmpfs", "/s", old.CP.EstablishRuns, cur.CP.EstablishRuns, true)
		row("PFCP establishments, state on disk", "/s", old.CP.EstablishDiskRuns, cur.CP.EstablishDiskRuns, true)
	}
	fmt.Fprintf(w, "\n%d figures significantly worse.\n", worse)
	return worse
}
