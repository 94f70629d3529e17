package dptest

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/pine-upf/pine-upf/pfcp"
)

// StartN4 runs the N4 server on loopback in front of e (an enforcer of
// this world, or a wrapper around one) until the test ends. Fields of cfg
// the world decides — listen address, node ID, peers, N3 addresses — are
// set here; the rest is the caller's.
func StartN4(tb testing.TB, e pfcp.Enforcer, cfg pfcp.Config) *pfcp.Server {
	tb.Helper()
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NodeID = "127.0.0.1"
	cfg.AllowedPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.N3v4, cfg.N3v6 = N3v4, N3v6
	cfg.Enforcer = e
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := pfcp.NewServer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return srv
}
