package bench

import (
	"flag"
	"fmt"
	"math"
	"testing"

	"github.com/pine-upf/pine-upf/enforcer"
)

// The Go benchmarks of the datapath harness, for `go test -bench` (a
// single scenario under -cpuprofile, say). The harness people run is
// cmd/pine-bench (`make bench`), which measures every suite side by side.

var maxRulesFlag = flag.Int("bench.maxrules", 1_000_000, "largest PINE rule count to benchmark")

var framesFlag = flag.Int("bench.frames", defaultFrames,
	"distinct frames (installed rules) each measurement cycles through; fewer shows what locality buys")

// ruleCounts are the decades from 1 up to max, and max itself.
func ruleCounts(max int) []int {
	var out []int
	for n := 1; n <= max; n *= 10 {
		out = append(out, n)
	}
	if out[len(out)-1] != max {
		out = append(out, max)
	}
	return out
}

func BenchmarkUplink(b *testing.B)     { benchDirection(b, enforcer.Uplink, false) }
func BenchmarkUplinkV6(b *testing.B)   { benchDirection(b, enforcer.Uplink, true) }
func BenchmarkDownlink(b *testing.B)   { benchDirection(b, enforcer.Downlink, false) }
func BenchmarkDownlinkV6(b *testing.B) { benchDirection(b, enforcer.Downlink, true) }

// benchDirection measures every scenario of one direction and IP version
// at every rule count, growing one rule set:
// Benchmark<Dir>/rules=N/<verdict>-<payload>B. Each sub-benchmark takes
// b.N samples.
func benchDirection(b *testing.B, dir enforcer.Direction, v6 bool) {
	top := *maxRulesFlag
	h := newHarness(b, dir, v6, top)
	h.maxFrames = max(*framesFlag, 1)
	for _, n := range ruleCounts(top) {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			for _, sc := range Scenarios(dir, v6, Payloads) {
				b.Run(fmt.Sprintf("%s-%dB", sc.Verdict(), sc.Payload), func(b *testing.B) {
					h.ensure(b, n)
					b.ResetTimer()
					res, err := h.measure(sc, n, b.N)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(0, "ns/op") // wall time of four syscalls: meaningless here
					b.ReportMetric(res.Enf.Mean, "ns/pkt")
					b.ReportMetric(res.Enf.Median, "median-ns/pkt")
					b.ReportMetric(res.F1.Mean, "F1-ns/pkt")
					b.ReportMetric(res.F2.Mean, "F2-ns/pkt")
					b.ReportMetric(res.Pass.Mean, "pass-ns")
					if !math.IsNaN(res.RepEnf) {
						b.ReportMetric(res.RepEnf, "rep-ns/pkt")
					}
				})
			}
		})
	}
}
