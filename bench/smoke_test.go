package bench

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/testnet"
)

// TestHarness runs the datapath harness at 1 and 1,000 rules with few
// samples, every scenario: every verdict, reason counter and forwarded
// frame is checked as in a benchmark run.
func TestHarness(t *testing.T) {
	testnet.RequirePrivileged(t)
	for _, dir := range []enforcer.Direction{enforcer.Uplink, enforcer.Downlink} {
		for _, v6 := range []bool{false, true} {
			sc0 := Scenario{Dir: dir, V6: v6}
			t.Run(dir.String()+"-"+sc0.Family(), func(t *testing.T) {
				h := newHarness(t, dir, v6, 4096)
				for _, n := range []int{1, 1000} {
					h.ensure(t, n)
					for _, sc := range Scenarios(dir, v6, Payloads) {
						res, err := h.measure(sc, n, 100)
						if err != nil {
							t.Fatal(err)
						}
						for _, v := range []float64{res.Pass.Mean, res.Enf.Mean, res.F1.Mean, res.F2.Mean, res.RepF1} {
							if math.IsNaN(v) || math.IsInf(v, 0) {
								t.Fatalf("%s at %d rules: a timing is %v: %+v", sc.Name(), n, v, res)
							}
						}
					}
				}
			})
		}
	}
}

// TestSmokeRun is `pine-bench --smoke` as a test: all three suites at tiny
// sizes (the daemon built and run as a child process), then the JSON, the
// Markdown, the plots and compare, so the harness cannot rot.
func TestSmokeRun(t *testing.T) {
	testnet.RequirePrivileged(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "pine-upf")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/pine-upf").CombinedOutput(); err != nil {
		t.Fatalf("build pine-upf: %v\n%s", err, out)
	}
	o, err := ModeOptions("smoke")
	if err != nil {
		t.Fatal(err)
	}
	rep := Run(o, bin, nil, func(s string) { t.Log(s) })
	if len(rep.Errors) > 0 {
		t.Fatalf("suites failed: %v", rep.Errors)
	}
	if rep.Datapath == nil || len(rep.Datapath.Rows) != 4*2*len(o.RuleCounts)*len(o.Payloads) {
		t.Fatalf("datapath rows: %+v", rep.Datapath)
	}
	for _, r := range rep.E2E.Rows {
		if r.Mpps <= 0 {
			t.Errorf("e2e %s: nothing reached the sink", r.Scenario)
		}
	}
	if c := rep.CP; c.EstablishPerSec <= 0 || c.EstablishDisk <= 0 || c.AddPINEFull.N == 0 || c.MemFullBytes <= c.MemEmptyBytes {
		t.Errorf("control plane: %+v", c)
	}
	path := filepath.Join(dir, "r.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	back.Markdown(&md)
	if !strings.Contains(md.String(), "At a glance") || !strings.Contains(md.String(), "uplink allowed ipv4 64B") {
		t.Errorf("markdown:\n%s", md.String())
	}
	pngs, err := back.Plots(dir, "")
	if err != nil || len(pngs) != 3 {
		t.Fatalf("plots %v: %v", pngs, err)
	}
	for _, p := range pngs {
		if fi, err := os.Stat(p); err != nil || fi.Size() < 1000 {
			t.Errorf("plot %s: %v", p, err)
		}
	}
	var cmp bytes.Buffer
	Compare(&cmp, back, rep)
	if !strings.Contains(cmp.String(), "Mann-Whitney") {
		t.Errorf("compare:\n%s", cmp.String())
	}
}
