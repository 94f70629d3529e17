package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
)

// denyLog turns deny events into rate-limited log lines. The reader drains
// the enforcer's channel as fast as it comes (so the ring buffer never
// backs up because of logging); events within the rate go to a bounded
// queue for the writer, others are counted as suppressed; a full queue
// drops and counts. Memory is bounded by the queue.
type denyLog struct {
	log      *slog.Logger
	counters *daemonCounters
	perSec   int
	queue    chan enforcer.DenyEvent
}

func newDenyLog(log *slog.Logger, c *daemonCounters, perSec, queue int) *denyLog {
	return &denyLog{log: log, counters: c, perSec: perSec, queue: make(chan enforcer.DenyEvent, queue)}
}

// run reads events until the channel closes or ctx ends.
func (d *denyLog) run(ctx context.Context, events <-chan enforcer.DenyEvent) {
	done := make(chan struct{})
	go d.write(ctx, done)
	defer func() { close(d.queue); <-done }()

	// A token bucket of perSec tokens, refilled continuously.
	tokens := float64(d.perSec)
	last := time.Now()
	var suppressed uint64 // since the last summary
	summary := time.NewTicker(time.Second)
	defer summary.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-summary.C:
			if suppressed > 0 {
				d.log.Warn("deny events suppressed", "count", suppressed, "interval", "1s")
				suppressed = 0
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			d.counters.denyReceived.Add(1)
			now := time.Now()
			tokens = min(float64(d.perSec), tokens+now.Sub(last).Seconds()*float64(d.perSec))
			last = now
			if tokens < 1 {
				suppressed++
				d.counters.denySuppressed.Add(1)
				continue
			}
			tokens--
			select {
			case d.queue <- ev:
			default:
				d.counters.denyQueueDropped.Add(1)
			}
		}
	}
}

func (d *denyLog) write(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	for ev := range d.queue {
		attrs := []slog.Attr{
			slog.String("reason", ev.Reason.String()),
			slog.String("direction", ev.Direction.String()),
			slog.String("seid", "0x"+formatHex(ev.SEID)),
			slog.String("pine", ev.Addr.String()),
			slog.Int("port", int(ev.Port)),
			slog.Int("proto", int(ev.Protocol)),
		}
		if ev.Direction == enforcer.Uplink {
			attrs = append(attrs, slog.String("teid", "0x"+formatHex(uint64(ev.TEID))))
		}
		d.log.LogAttrs(ctx, slog.LevelWarn, "deny", attrs...)
		d.counters.denyLogged.Add(1)
	}
}

func formatHex(v uint64) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0"
	}
	var b [16]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[i:])
}
