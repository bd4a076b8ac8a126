package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

// cluster status lists the nodes alive and dead with what they hold, and
// the queue depth.
func TestClusterStatus(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t, nil)
	cfg := writeConfig(t, fmt.Sprintf("[store]\ndriver = \"postgres\"\ndsn = %q\n", dsn))
	if out, err := runCLI(t, "-c", cfg, "migrate"); err != nil {
		t.Fatalf("migrate: %q %v", out, err)
	}
	st, err := postgres.Open(ctx, postgres.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	started := time.Now().Add(-time.Hour)
	for _, n := range []store.Node{
		{ID: "node-a", Hostname: "mx1.example", Version: "1.0", Started: started, Addrs: []string{"0.0.0.0:25", "0.0.0.0:8080"}},
		{ID: "node-b", Hostname: "mx2.example", Version: "1.0", Started: started},
	} {
		if _, err := st.Heartbeat(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE nodes SET seen_us = seen_us - 600000000 WHERE id = 'node-b'`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, rcpts := range [][]store.Recipient{{{Addr: "a@x.test"}, {Addr: "b@x.test"}}, {{Addr: "c@x.test"}}} {
		id := fmt.Sprintf("m%d", i)
		if _, err := st.Enqueue(ctx, store.Message{ID: id, TenantID: 1, Direction: store.Inbound, BlobKey: id, ReceivedAt: now}, rcpts, nil); err != nil {
			t.Fatal(err)
		}
	}
	if jobs, err := st.ClaimDue(ctx, "node-a", now, now.Add(time.Hour), 2); err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %v", jobs, err)
	}

	out, err := runCLI(t, "-c", cfg, "cluster", "status")
	if err != nil {
		t.Fatalf("%q %v", out, err)
	}
	for _, want := range []string{
		`(?m)^NODE +STATE +LAST SEEN +LEASED +HOST +VERSION +STARTED +LISTEN$`,
		`(?m)^node-a +alive +[0-9]+s ago +2 +mx1\.example +1\.0 +\S+ \S+ +0\.0\.0\.0:25,0\.0\.0\.0:8080$`,
		`(?m)^node-b +dead +10m[0-9]+s ago +0 +mx2\.example`, // the command runs a moment after the heartbeat was written
		`(?m)^nodes: 1 alive, 1 dead$`,
		`(?m)^queue: 3 queued, 0 deferred, 0 held$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if strings.Count(out, "\n") != 5 {
		t.Errorf("output:\n%s", out)
	}
}
