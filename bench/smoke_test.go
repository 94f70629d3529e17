package bench

import (
	"math"
	"testing"

	"github.com/pine-upf/pine-upf/enforcer"
	"github.com/pine-upf/pine-upf/internal/testnet"
)

// TestHarness runs the benchmark harness at 1 and 1,000 rules with few
// samples, so the benchmarks cannot rot unnoticed: every verdict, reason
// counter and forwarded frame is checked as in a benchmark run.
func TestHarness(t *testing.T) {
	testnet.RequirePrivileged(t)
	for _, c := range []struct {
		dir enforcer.Direction
		scs []scenario
	}{
		{enforcer.Uplink, []scenario{uplinkAllowed, uplinkDenied}},
		{enforcer.Downlink, []scenario{downlinkAllowed}},
	} {
		t.Run(c.dir.String(), func(t *testing.T) {
			h := newHarness(t, c.dir, 4096)
			if c.dir == enforcer.Downlink {
				t.Logf("F2 downlink with the initial floor tunnel: %s", h.zeroPeer)
			}
			for _, n := range []int{1, 1000} {
				h.ensure(t, n)
				for _, sc := range c.scs {
					res, err := h.measure(sc, n, 200)
					if err != nil {
						t.Fatal(err)
					}
					for _, v := range []float64{res.Pass.Mean, res.Enf.Mean, res.F1.Mean, res.F2.Mean, res.RepF1} {
						if math.IsNaN(v) || math.IsInf(v, 0) {
							t.Fatalf("%s at %d rules: a timing is %v: %+v", sc.name, n, v, res)
						}
					}
					t.Logf("%s, %d rules: %.1f ns/pkt (F1 %.1f, F2 %.1f, pass %.1f)",
						sc.name, n, res.Enf.Mean, res.F1.Mean, res.F2.Mean, res.Pass.Mean)
				}
			}
		})
	}
}
