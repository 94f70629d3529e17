package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pine-upf/pine-upf/enforcer"
)

// A flood of deny events is drained at once: a few lines logged, the rest
// counted as suppressed, nothing blocks.
func TestDenyLogFlood(t *testing.T) {
	c := &daemonCounters{}
	d := newDenyLog(slog.New(slog.NewTextHandler(io.Discard, nil)), c, 5, 4)
	events := make(chan enforcer.DenyEvent)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { d.run(ctx, events); close(done) }()
	const n = 100_000
	start := time.Now()
	for range n {
		events <- enforcer.DenyEvent{Reason: enforcer.ReasonNoRule, Port: 6000}
	}
	close(events)
	<-done
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("draining %d events took %v", n, el)
	}
	logged, supp, dropped := c.denyLogged.Load(), c.denySuppressed.Load(), c.denyQueueDropped.Load()
	if c.denyReceived.Load() != n || logged+supp+dropped != n {
		t.Errorf("received %d, logged %d + suppressed %d + dropped %d, want %d", c.denyReceived.Load(), logged, supp, dropped, n)
	}
	if logged+dropped > 10 {
		t.Errorf("%d events passed a limit of 5/s", logged+dropped)
	}
}
