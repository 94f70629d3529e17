// Command pine-bench is pine-upf's throughput harness: the datapath
// (ns/packet under BPF_PROG_TEST_RUN beside the floor programs, 1 to
// 1,000,000 PINE rules), end to end (a live-frame generator into veths,
// beside a plain XDP redirect) and the control plane (the pine-upf daemon
// driven over PFCP), measured side by side in one run.
//
//	pine-bench [--quick | --smoke] [--out bench/results] [--daemon bin/pine-upf] [--suites datapath,e2e,controlplane]
//	pine-bench compare OLD.json NEW.json
//
// A run writes <out>/<stamp>.json (results and machine facts), <stamp>.md
// (the summary tables), PNG plots, and copies them to latest.*; it needs
// root (BPF, namespaces). compare prints the changes with their
// significance (Mann-Whitney U test, as benchstat) and exits 1 when a
// figure got significantly worse, so it can gate a PR.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pine-upf/pine-upf/bench"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "compare" {
		os.Exit(compare(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:]))
}

func compare(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pine-bench compare OLD.json NEW.json")
		return 2
	}
	old, err := bench.ReadReport(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cur, err := bench.ReadReport(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if bench.Compare(os.Stdout, old, cur) > 0 {
		return 1
	}
	return 0
}

func run(args []string) int {
	fs := flag.NewFlagSet("pine-bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "smaller sizes: under 2 minutes")
	smoke := fs.Bool("smoke", false, "tiny sizes: seconds, for CI (checks the harness, not the figures)")
	out := fs.String("out", "bench/results", "directory for the JSON, Markdown and PNGs")
	daemon := fs.String("daemon", "", "pine-upf binary for the control-plane suite (default: go build ./cmd/pine-upf)")
	suites := fs.String("suites", "datapath,e2e,controlplane", "suites to run")
	verbose := fs.Bool("v", false, "log the fixtures' lines")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	mode := "full"
	if *quick {
		mode = "quick"
	}
	if *smoke {
		mode = "smoke"
	}
	o, err := bench.ModeOptions(mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o.Suites = map[string]bool{}
	for _, s := range strings.Split(*suites, ",") {
		switch s = strings.TrimSpace(s); s {
		case "datapath", "e2e", "controlplane":
			o.Suites[s] = true
		default:
			fmt.Fprintf(os.Stderr, "unknown suite %q (datapath, e2e, controlplane)\n", s)
			return 2
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "pine-bench loads BPF programs and creates network namespaces: run it as root")
		return 2
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if o.Suites["controlplane"] && *daemon == "" {
		tmp, err := os.MkdirTemp("", "pine-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		*daemon = filepath.Join(tmp, "pine-upf")
		cmd := exec.Command("go", "build", "-o", *daemon, "github.com/pine-upf/pine-upf/cmd/pine-upf")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build pine-upf for the control-plane suite (or pass --daemon): %v\n", err)
			return 1
		}
	}

	var logw io.Writer
	if *verbose {
		logw = os.Stderr
	}
	start := time.Now()
	fi, _ := os.Stderr.Stat()
	tty := fi != nil && fi.Mode()&os.ModeCharDevice != 0
	last := ""
	progress := func(s string) {
		line := fmt.Sprintf("[%5.0fs] %s", time.Since(start).Seconds(), s)
		if tty {
			fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
		} else if s != last {
			fmt.Fprintln(os.Stderr, line)
		}
		last = s
	}
	rep := bench.Run(o, *daemon, logw, progress)
	if tty {
		fmt.Fprintln(os.Stderr)
	}

	stamp := rep.Date.Format("20060102-150405") + "-" + mode
	base := filepath.Join(*out, stamp)
	if err := rep.WriteJSON(base + ".json"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var md strings.Builder
	rep.Markdown(&md)
	pngs, err := rep.Plots(*out, stamp+"-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "plots: %v\n", err)
	}
	if len(pngs) > 0 {
		md.WriteString("## Plots\n\n")
		for _, p := range pngs {
			fmt.Fprintf(&md, "![%s](%s)\n\n", filepath.Base(p), filepath.Base(p))
		}
	}
	if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// latest.* for a stable link; the stamped files stay for compare.
	for _, ext := range []string{".json", ".md"} {
		copyFile(base+ext, filepath.Join(*out, "latest-"+mode+ext))
	}
	fmt.Print(md.String())
	fmt.Fprintf(os.Stderr, "wrote %s.json, %s.md and %d plots in %.0f s\n", base, base, len(pngs), time.Since(start).Seconds())
	if len(rep.Errors) > 0 {
		for _, e := range rep.Errors {
			fmt.Fprintln(os.Stderr, "FAILED:", e)
		}
		return 1
	}
	return 0
}

func copyFile(from, to string) {
	if b, err := os.ReadFile(from); err == nil {
		os.WriteFile(to, b, 0o644)
	}
}
