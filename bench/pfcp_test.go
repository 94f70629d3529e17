package bench

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/internal/dptest"
	"github.com/pine-upf/pine-upf/internal/pkt"
	"github.com/pine-upf/pine-upf/pfcp"
	"github.com/pine-upf/pine-upf/pfcp/smfsim"
	"github.com/pine-upf/pine-upf/pfcp/smfsim/fakeupf"
)

// cpEnv is the N4 server on loopback with the real datapath behind it.
type cpEnv struct {
	srv *pfcp.Server
}

func newCPEnv(tb testing.TB, maxSessions uint32) *cpEnv {
	w := dptest.NewWorld(tb)
	cfg := w.Config()
	cfg.MaxSessions = maxSessions
	cfg.MaxRules = 16 * maxSessions
	cfg.MaxQERs = 16 * maxSessions
	cfg.MaxRuleEntries = 128 * maxSessions // an unaligned 16-port block is 9 entries
	e := w.Load(tb, cfg)
	srv := dptest.StartN4(tb, e, pfcp.Config{})
	return &cpEnv{srv: srv}
}

func (c *cpEnv) smf(tb testing.TB, i int) *smfsim.Client {
	node := fmt.Sprintf("127.0.1.%d", i+1)
	s, err := smfsim.Dial(context.Background(), c.srv.Addr().String(), smfsim.Options{
		NodeID: node, LocalAddr: node + ":0", Timeout: 2 * time.Second, Retries: 3})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if _, _, err := s.Associate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s
}

func cpUE(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(64 + i>>16), byte(i >> 8), byte(i)})
}

// pegc is a PEGC session with four PINEs, each a NAT port block of 16:
// 8 PINE PDRs.
func pegc(i int) smfsim.PEGC {
	ue := cpUE(i)
	p := smfsim.PEGC{UEIPv4: ue, GNB: dptest.GNBv4, GNBTEID: uint32(i + 1)}
	for k := range 4 {
		p.PINEs = append(p.PINEs, smfsim.PINE{ID: uint16(k + 1), Addr: ue, Proto: pkt.UDP,
			Ports: []smfsim.PortRange{{Lo: uint16(5120 + 16*k), Hi: uint16(5135 + 16*k)}}})
	}
	return p
}

// BenchmarkSessionEstablishment: establishments per second over loopback,
// each with 8 PINE PDRs, from 4 SMF simulators at once, through the real
// server and datapath.
func BenchmarkSessionEstablishment(b *testing.B) {
	const smfs = 16
	env := newCPEnv(b, uint32(b.N+16))
	clients := make([]*smfsim.Client, smfs)
	for i := range clients {
		clients[i] = env.smf(b, i)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, smfs)
	b.ResetTimer()
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if _, err := c.EstablishPEGC(context.Background(), pegc(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "establishments/s")
	b.ReportMetric(0, "ns/op")
	b.Log(fmt.Sprintf("session establishments (8 PINE PDRs each, %d SMFs): %.0f/s over %d", smfs, rate, b.N))
}

// BenchmarkAddPINE: request-to-response time of a Session Modification
// that adds one PINE (2 PDRs, 2 FARs, a QER, a URR), and removes it again.
func BenchmarkAddPINE(b *testing.B) {
	env := newCPEnv(b, 64)
	c := env.smf(b, 0)
	ctx := context.Background()
	sess, err := c.EstablishPEGC(ctx, pegc(0))
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		p := smfsim.PINE{ID: 100, Addr: cpUE(0), Proto: pkt.UDP,
			Ports: []smfsim.PortRange{{Lo: uint16(20000 + i%1000), Hi: uint16(20000 + i%1000)}}}
		t0 := time.Now()
		if err := sess.AddPINE(ctx, p); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		if _, err := sess.RemovePINE(ctx, 100); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(q(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(q(0.99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(0, "ns/op")
	b.Log(fmt.Sprintf("add-a-PINE round trip over %d: p50 %v, p99 %v, max %v", len(lat), q(0.5), q(0.99), lat[len(lat)-1]))
}

// BenchmarkEstablishmentServer: the server's own capacity, without the
// simulators on the same two cores: establishment requests (8 PINE PDRs
// each) are recorded once from the simulator, then fed to the server's
// message path in a loop, each committing to the real datapath.
func BenchmarkEstablishmentServer(b *testing.B) {
	upf, err := fakeupf.New("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer upf.Close()
	rec, err := smfsim.Dial(context.Background(), upf.Addr(), smfsim.Options{NodeID: "127.0.1.1", LocalAddr: "127.0.1.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	if _, _, err := rec.Associate(context.Background()); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		if _, err := rec.EstablishPEGC(context.Background(), pegc(i)); err != nil {
			b.Fatal(err)
		}
	}
	assoc := upf.Requests(5) // Association Setup Request
	reqs := upf.Requests(50) // Session Establishment Request
	if len(assoc) != 1 || len(reqs) != b.N {
		b.Fatalf("recorded %d association and %d establishment requests", len(assoc), len(reqs))
	}

	env := newCPEnv(b, uint32(b.N+16))
	peer := assoc[0].From
	if resp := env.srv.HandleMessage(peer, assoc[0].Raw); resp == nil {
		b.Fatal("no association response")
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if resp := env.srv.HandleMessage(peer, reqs[i].Raw); resp == nil {
			b.Fatal("no establishment response")
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if n := env.srv.Stats().Sessions; n != b.N {
		b.Fatalf("%d sessions established, want %d", n, b.N)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "establishments/s")
	b.ReportMetric(0, "ns/op")
	b.Log(fmt.Sprintf("server alone, one goroutine (recorded requests into its message path): %.0f establishments/s over %d", rate, b.N))
}
