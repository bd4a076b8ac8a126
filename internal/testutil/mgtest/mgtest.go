// Package mgtest starts a complete mailgate node in-process for tests: real
// listeners on 127.0.0.1, a real store and spool in a temporary directory,
// and sink servers standing in for the customer's server (downstream) and
// for the internet (smart host, where DSNs and outbound mail go).
package mgtest

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
)

// Node is a running test instance.
type Node struct {
	*app.App
	Down     *sink.Sink // the tenant's own mail server (route of example.test)
	Internet *sink.Sink // smart host: mail to everyone else, DSNs included
	Tenant   store.Tenant
	Domain   store.Domain
	Dir      string
}

// Options adjust the node before it starts.
type Options struct {
	Clock  clock.Clock
	Config func(*config.Config)
	// NoStart opens the node without listeners or queue workers.
	NoStart bool
	// Stages replaces the inbound checks (nil: the configured ones).
	Stages []policy.Stage
	// NoChecks runs the relay without any inbound check (queue tests).
	NoChecks bool
	// Passwords replaces the node's password verifier (tests that
	// instrument or fill its memory budget).
	Passwords *passwd.Verifier
}

// Start builds and starts a node serving example.test (users alice and bob)
// for tenant "acme", with 127.0.0.1/32 allowed to relay outbound.
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	dir := t.TempDir()
	down, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { down.Close() })
	inet, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inet.Close() })

	cfg := config.Default()
	cfg.Hostname = "mx.mailgate.test"
	cfg.DataDir = dir
	cfg.Inbound.Listen = []string{"127.0.0.1:0"}
	cfg.Outbound.Listen = []string{"127.0.0.1:0"}
	cfg.Limits.MinFreeBytes = 0
	cfg.Limits.RejectTalkFirst = true
	cfg.Queue.Jitter = 0
	cfg.Queue.PollInterval = config.D(50 * time.Millisecond)
	cfg.Delivery.SmartHost = "smtp://" + inet.Addr()
	cfg.Delivery.ConnectTimeout = config.D(5 * time.Second)
	// Fake upstreams (IMAP, SMTP, identity provider) listen on loopback.
	cfg.Auth.UpstreamAllow = []string{"127.0.0.0/8", "::1/128"}
	if o.Config != nil {
		o.Config(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("MAILGATE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx := context.Background()
	if o.NoChecks {
		o.Stages = []policy.Stage{}
	}
	a, err := app.Open(ctx, cfg, log, app.Options{Clock: o.Clock, Stages: o.Stages, Passwords: o.Passwords})
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{App: a, Down: down, Internet: inet, Dir: dir}
	n.Tenant, err = a.Store.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	n.Domain, err = a.Store.CreateDomain(ctx, n.Tenant.ID, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store.SetRoutes(ctx, n.Tenant.ID, n.Domain.ID, []store.Route{{Priority: 10, Target: "smtp://" + down.Addr(), TLS: "opportunistic"}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice@example.test", "bob@example.test"} {
		if _, err := a.Store.CreateUser(ctx, n.Tenant.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Store.AddRelayNet(ctx, n.Tenant.ID, netip.MustParsePrefix("127.0.0.1/32")); err != nil {
		t.Fatal(err)
	}
	if o.NoStart {
		t.Cleanup(func() { a.Close() })
		return n
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(sctx)
	})
	return n
}

// WaitFor polls cond until it is true or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
