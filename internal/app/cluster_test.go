package app_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var migrated = pgtest.NewTemplate("app", func(ctx context.Context, dsn string) error {
	_, _, err := postgres.Migrate(ctx, postgres.Config{DSN: dsn})
	return err
})

// clusterConfig is a node on loopback ports with its store on dsn
// (SQLite in its data directory when dsn is "").
func clusterConfig(t *testing.T, dsn string) config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Hostname = "mx.mailgate.test"
	cfg.NodeID = "node-a"
	cfg.Inbound.Listen = []string{"127.0.0.1:0"}
	cfg.Outbound.Listen = nil
	cfg.Limits.MinFreeBytes = 0
	if dsn != "" {
		cfg.Store.Driver, cfg.Store.DSN = "postgres", dsn
	}
	return cfg
}

func startNode(t *testing.T, cfg config.Config, opt app.Options) (*app.App, error) {
	t.Helper()
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		a.Close()
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return a, nil
}

// A node whose clock is off from the PostgreSQL server's by more than
// cluster.max_clock_skew refuses to start, with one line saying so.
func TestClockSkewRefusesStart(t *testing.T) {
	dsn := pgtest.DB(t, migrated)
	for _, c := range []struct {
		skew time.Duration
		want string
	}{
		{5 * time.Second, "s ahead of the database server's (cluster.max_clock_skew is 2s); synchronise the clocks (NTP)"},
		{-3 * time.Second, "s behind the database server's (cluster.max_clock_skew is 2s); synchronise the clocks (NTP)"},
	} {
		wall := func() time.Time { return time.Now().Add(c.skew) }
		_, err := startNode(t, clusterConfig(t, dsn), app.Options{WallClock: wall})
		if err == nil || !strings.HasPrefix(err.Error(), "clock skew: this node's clock is ") || !strings.HasSuffix(err.Error(), c.want) ||
			strings.Contains(err.Error(), "\n") {
			t.Fatalf("skew %s: %v, want %q", c.skew, err, c.want)
		}
		// Inside the limit, or with the check off, it starts.
		cfg := clusterConfig(t, dsn)
		cfg.Cluster.MaxClockSkew = config.D(0)
		a, err := startNode(t, cfg, app.Options{WallClock: wall})
		if err != nil {
			t.Fatalf("check off: %v", err)
		}
		a.Shutdown(context.Background())
	}
	if _, err := startNode(t, clusterConfig(t, dsn), app.Options{WallClock: func() time.Time { return time.Now().Add(time.Second) }}); err != nil {
		t.Fatalf("1s skew: %v", err)
	}
}

// SQLite has one node and one clock: no skew check.
func TestClockSkewNotCheckedOnSQLite(t *testing.T) {
	if _, err := startNode(t, clusterConfig(t, ""), app.Options{WallClock: func() time.Time { return time.Now().Add(time.Hour) }}); err != nil {
		t.Fatal(err)
	}
}

// A running node records its heartbeat with its bound addresses; cluster
// status shows it alive with the leases it holds.
func TestHeartbeat(t *testing.T) {
	cfg := clusterConfig(t, pgtest.DB(t, migrated))
	cfg.Cluster.Heartbeat, cfg.Cluster.DeadAfter = config.D(20*time.Millisecond), config.D(time.Minute)
	a, err := startNode(t, cfg, app.Options{Version: "9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	host, _ := os.Hostname()
	var n store.Node
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err = a.Store.NodeByID(ctx, "node-a")
		if err == nil && slices.Equal(n.Addrs, a.Addrs()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat with the bound addresses %v not seen: %+v %v", a.Addrs(), n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n.Hostname != host || n.Version != "9.9.9" || n.Started.IsZero() {
		t.Fatalf("node %+v", n)
	}
	c, err := a.Store.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := c.States(cfg.Cluster.DeadAfter.Duration); len(s) != 1 || !s[0].Alive || s[0].ID != "node-a" {
		t.Fatalf("states %+v", s)
	}
}

// A second node configured with the node_id of a live node on another
// host refuses to start: their leases would be one owner's.
func TestDuplicateNodeIDRefused(t *testing.T) {
	dsn := pgtest.DB(t, migrated)
	cfg := clusterConfig(t, dsn)
	st, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Heartbeat(context.Background(), store.Node{ID: "node-a", Hostname: "other-host.example", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, err = startNode(t, cfg, app.Options{})
	if err == nil || !strings.Contains(err.Error(), `node_id "node-a" is in use by a running node on host other-host.example`) {
		t.Fatalf("start: %v", err)
	}
	// Another node_id starts.
	cfg.NodeID = "node-b"
	if _, err := startNode(t, cfg, app.Options{}); err != nil {
		t.Fatal(err)
	}
}
