package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func ratioStr(x float64) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x)
}

// Markdown writes the summary: headline figures first, then the tables.
func (r *Report) Markdown(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "# pine-upf benchmark (%s mode)\n\n", r.Mode)
	fmt.Fprintf(w, "%s · %s, %d cores · kernel %s · %s · %s · commit %.12s%s · %.0f s\n\n",
		r.Date.Format("2006-01-02 15:04 UTC"), m.CPU, m.Cores, m.Kernel, m.Go, m.Clang, m.Commit,
		map[bool]string{true: " (dirty)", false: ""}[m.Dirty], r.Seconds)
	fmt.Fprintf(w, "`%s`\n\n", r.Command)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "> **suite failed**: %s\n\n", e)
	}

	fmt.Fprintf(w, "## At a glance\n\n| question | answer |\n|---|---|\n")
	if dp := r.Datapath; dp != nil && len(dp.Rows) > 0 {
		top := dp.Rows[len(dp.Rows)-1].Rules
		for _, want := range []DPRow{
			{Dir: "uplink", Verdict: "allowed", Family: "ipv4", Payload: 64},
			{Dir: "uplink", Verdict: "denied", Family: "ipv4", Payload: 64},
			{Dir: "downlink", Verdict: "allowed", Family: "ipv4", Payload: 64},
		} {
			var one, big *DPRow
			for i := range dp.Rows {
				x := &dp.Rows[i]
				if x.Dir == want.Dir && x.Verdict == want.Verdict && x.Family == want.Family && x.Payload == want.Payload {
					if x.Rules == 1 {
						one = x
					}
					if x.Rules == top {
						big = x
					}
				}
			}
			if one == nil || big == nil {
				continue
			}
			fmt.Fprintf(w, "| %s %s IPv4 64 B, ns/packet (BPF_PROG_TEST_RUN) | %.0f at 1 rule, %.0f at %d rules (%.2f× of 1 rule); floors at %d: F1 %.0f, F2 %.0f |\n",
				want.Dir, want.Verdict, one.NS, big.NS, top, big.NS/one.NS, top, big.F1, big.F2)
		}
	}
	if e := r.E2E; e != nil {
		by := map[string]E2ERow{}
		for _, row := range e.Rows {
			by[row.Scenario] = row
		}
		a1, p1 := by["authorized, 1 thread"], by["plain redirect, 1 thread"]
		fmt.Fprintf(w, "| end to end, 1 generator thread (live frames, veths) | pine-upf %.2f Mpps vs plain redirect %.2f Mpps: **%.2f×** (target ≥ 0.8×: %s) |\n",
			a1.Mpps, p1.Mpps, e.RatioToPlain["1"], met(e.RatioToPlain["1"] >= 0.8))
		if r2, ok := e.RatioToPlain["2"]; ok {
			a2, p2 := by["authorized, 2 threads"], by["plain redirect, 2 threads"]
			fmt.Fprintf(w, "| end to end, 2 generator threads | pine-upf %.2f Mpps vs plain %.2f Mpps: **%.2f×** (target ≥ 0.8×: %s) |\n",
				a2.Mpps, p2.Mpps, r2, met(r2 >= 0.8))
		}
		fmt.Fprintf(w, "| authorized throughput under a same-rate unauthorized flood (1:1 on one CPU) | %.2f Mpps vs %.2f alone: keeps **%.0f%%** (target ≥ 50%%: %s) |\n",
			by["mixed 1:1 on 1 thread"].Mpps, a1.Mpps, 100*e.FloodCost, met(e.FloodCost >= 0.5))
		if e.FloodCost2 > 0 {
			fmt.Fprintf(w, "| … with the flood on the other CPU | %.2f Mpps: keeps %.0f%% |\n", by["authorized + flood thread"].Mpps, 100*e.FloodCost2)
		}
	}
	if c := r.CP; c != nil {
		fmt.Fprintf(w, "| PFCP session establishments/s (8 PINE PDRs each, %d SMFs) | %.0f with state on disk (a file write per change), %.0f with state on tmpfs |\n",
			c.SMFs, c.EstablishDisk, c.EstablishPerSec)
		fmt.Fprintf(w, "| add-a-PINE round trip p50 / p99 / max | disk state %.0f / %.0f / %.0f µs; tmpfs %.0f / %.0f / %.0f µs empty, %.0f / %.0f / %.0f µs at %d rules |\n",
			c.AddPINEDisk.P50us, c.AddPINEDisk.P99us, c.AddPINEDisk.MaxUs,
			c.AddPINEEmpty.P50us, c.AddPINEEmpty.P99us, c.AddPINEEmpty.MaxUs,
			c.AddPINEFull.P50us, c.AddPINEFull.P99us, c.AddPINEFull.MaxUs, c.FillSessions*8)
		fmt.Fprintf(w, "| %d PINE rules over PFCP | %.1f s (%d sessions, %.0f/s); maps %s (empty: %s; rules + rule_stats %s); daemon RSS %s |\n",
			c.FillSessions*8, c.FillSeconds, c.FillSessions, c.FillRate, mib(c.MemFullBytes), mib(c.MemEmptyBytes), mib(c.RuleMemFull), mib(c.DaemonRSSBytes))
	}
	fmt.Fprintln(w)

	if dp := r.Datapath; dp != nil && len(dp.Rows) > 0 {
		r.datapathTables(w)
	}
	if e := r.E2E; e != nil {
		fmt.Fprintf(w, "## End to end (BPF_F_TEST_XDP_LIVE_FRAMES generator → gnb0 ⇄ n3 [program] → n6 ⇄ dn0 sink)\n\n")
		fmt.Fprintf(w, "%d-byte GTP-U frames (64-byte inner UDP payload) over %d PINE rules of one session, %d frames per thread per trial, median of %d trials; Mpps counts frames that reached the sink.\n\n",
			e.FrameBytes, e.Rules, e.Frames, e.Trials)
		fmt.Fprintf(w, "| scenario | program | threads | load | Mpps | loss | trials (Mpps) |\n|---|---|--:|---|--:|--:|---|\n")
		for _, row := range e.Rows {
			var rs []string
			for _, x := range row.Runs {
				rs = append(rs, fmt.Sprintf("%.2f", x))
			}
			fmt.Fprintf(w, "| %s | %s | %d | %s | %.2f | %.2f%% | %s |\n", row.Scenario, row.Program, row.Threads, row.Load, row.Mpps, 100*row.Loss, strings.Join(rs, " "))
		}
		for _, n := range e.Notes {
			fmt.Fprintf(w, "\n%s\n", n)
		}
		fmt.Fprintln(w)
	}
	if c := r.CP; c != nil {
		fmt.Fprintf(w, "## Control plane (pine-upf `run` as a child process, smfsim over loopback)\n\n")
		fmt.Fprintf(w, "| figure | state on disk (%s) | state on tmpfs (%s) |\n|---|--:|--:|\n", "temp dir", c.StateTmpfs)
		fmt.Fprintf(w, "| establishments/s (runs of %d sessions) | %.0f %v | %.0f %v |\n", c.SessionsPerRun, c.EstablishDisk, fmtRuns(c.EstablishDiskRuns), c.EstablishPerSec, fmtRuns(c.EstablishRuns))
		fmt.Fprintf(w, "| add-a-PINE p50/p99/max µs, empty UPF (n=%d) | %.0f / %.0f / %.0f | %.0f / %.0f / %.0f |\n", c.AddPINEEmpty.N,
			c.AddPINEDisk.P50us, c.AddPINEDisk.P99us, c.AddPINEDisk.MaxUs, c.AddPINEEmpty.P50us, c.AddPINEEmpty.P99us, c.AddPINEEmpty.MaxUs)
		fmt.Fprintf(w, "| add-a-PINE p50/p99/max µs at %d rules | – | %.0f / %.0f / %.0f |\n", c.FillSessions*8, c.AddPINEFull.P50us, c.AddPINEFull.P99us, c.AddPINEFull.MaxUs)
		fmt.Fprintf(w, "| time to %d PINE rules | – | %.1f s |\n", c.FillSessions*8, c.FillSeconds)
		fmt.Fprintf(w, "| BPF map memory (memlock, fdinfo), empty → full | – | %s → %s (rules + rule_stats: %s; --max-rules %d) |\n\n",
			mib(c.MemEmptyBytes), mib(c.MemFullBytes), mib(c.RuleMemFull), c.MaxRules)
		for _, n := range c.Notes {
			fmt.Fprintf(w, "%s\n\n", n)
		}
	}
}

func fmtRuns(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprintf("%.0f", x))
	}
	return "(" + strings.Join(s, " ") + ")"
}

func (r *Report) datapathTables(w io.Writer) {
	dp := r.Datapath
	var counts []int
	type key struct {
		dir, verdict, family string
		payload              int
	}
	var keys []key
	cell := map[key]map[int]DPRow{}
	for _, row := range dp.Rows {
		if !slices.Contains(counts, row.Rules) {
			counts = append(counts, row.Rules)
		}
		k := key{row.Dir, row.Verdict, row.Family, row.Payload}
		if cell[k] == nil {
			cell[k] = map[int]DPRow{}
			keys = append(keys, k)
		}
		cell[k][row.Rules] = row
	}
	slices.Sort(counts)
	fmt.Fprintf(w, "## Datapath: ns per packet by rule count (BPF_PROG_TEST_RUN, net of the XDP_PASS baseline)\n\n")
	fmt.Fprintf(w, "Each cell: the enforcer's mean ns/packet, and its distance to the floor measured in the same run on the same frames — allowed rows: the ratio to F2 (same parse, decap/encap, FIB lookup and redirect, no session or rule lookup); denied rows: the ratio to F1 (same parse, XDP_DROP), or, where F1 is under %d ns net (parsing costs a few ns, within single-run noise), the ns above F1. Floors are the last columns, at the largest count.\n\n", minFloorNS)
	fmt.Fprintf(w, "| scenario |")
	for _, n := range counts {
		fmt.Fprintf(w, " %s |", human(n))
	}
	fmt.Fprintf(w, " F1 | F2 |\n|---|")
	for range counts {
		fmt.Fprintf(w, "--:|")
	}
	fmt.Fprintf(w, "--:|--:|\n")
	for _, k := range keys {
		fmt.Fprintf(w, "| %s %s %s %dB |", k.dir, k.verdict, k.family, k.payload)
		var last DPRow
		for _, n := range counts {
			row, ok := cell[k][n]
			if !ok {
				fmt.Fprintf(w, " |")
				continue
			}
			last = row
			switch {
			case k.verdict == "allowed":
				fmt.Fprintf(w, " %.0f (%s F2) |", row.NS, ratioStr(row.RatioF2))
			case row.RatioF1 > 0:
				fmt.Fprintf(w, " %.0f (%s F1) |", row.NS, ratioStr(row.RatioF1))
			default:
				fmt.Fprintf(w, " %.0f (F1 %+.0f) |", row.NS, row.NS-row.F1)
			}
		}
		fmt.Fprintf(w, " %.0f | %.0f |\n", last.F1, last.F2)
	}
	fmt.Fprintf(w, "\nMethod: each sample is one run (repeat 1) of XDP_PASS, F1, F2 and the enforcer on the same frame, order rotated per sample, all attached to interfaces of the UPF namespace and run there; frames cycle through up to %d randomly chosen installed rules, so lookups spread over the table (cold-ish caches, as with real traffic). Each combination of direction and IP version has its own datapath, its rule table sized for the largest count and grown through the counts; 1,000 PINE rules per session.\n\n", defaultFrames)

	fmt.Fprintf(w, "<details><summary>every row</summary>\n\n| row | samples | ns | median | F1 | F2 | ratio F1 | ratio F2 | XDP_PASS raw | Repeat×%d ns, F1 |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n", repeatRuns)
	for _, row := range dp.Rows {
		rep := "–"
		if row.RepeatNS != nil {
			rep = fmt.Sprintf("%.1f", *row.RepeatNS)
		}
		fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f | %.1f | %s | %s | %.1f | %s, %.1f |\n", row.Name(), row.Samples, row.NS, row.Median, row.F1, row.F2,
			ratioStr(row.RatioF1), ratioStr(row.RatioF2), row.Pass, rep, row.RepF1NS)
	}
	fmt.Fprintf(w, "\n</details>\n\n")
	if len(dp.Memory) > 0 {
		fmt.Fprintf(w, "Kernel memory at the largest count (memlock from fdinfo):")
		for _, m := range dp.Memory {
			var total uint64
			for _, v := range m.Maps {
				total += v
			}
			fmt.Fprintf(w, " %s %s: %.1f B per rule of capacity for rules + rule_stats, %s all maps;", m.Dir, m.Family, m.PerRuleCap, mib(total))
		}
		fmt.Fprintln(w)
	}
	if len(dp.Installs) > 0 {
		fmt.Fprintf(w, "\nInstalling rules (enforcer.InstallSession):")
		for _, s := range dp.Installs {
			if s.To-s.From >= 100_000 {
				fmt.Fprintf(w, " %s %s %s→%s in %.2f s;", s.Dir, s.Family, human(s.From), human(s.To), s.Seconds)
			}
		}
		fmt.Fprintln(w)
	}
	for _, n := range dp.Notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
	fmt.Fprintln(w)
}

func human(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
