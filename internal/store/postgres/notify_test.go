package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

// waitWake waits for a wake-up; the deadline only keeps a broken test
// from hanging.
func waitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no wake-up", what)
	}
}

func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// Work made due through one store handle (another node, the CLI) wakes
// the watchers on every other; after its connection is cut the watcher
// listens again by itself and says so once.
func TestWatchQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := pgtest.DB(t, migrated)
	a, err := Open(ctx, Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ch := b.WatchQueue(ctx)
	waitWake(t, ch, "listening")

	now := time.Now()
	enq := func(id string, leased bool) {
		r := store.Recipient{Addr: "a@x.test", NextAttempt: now}
		if leased {
			r.LeaseOwner, r.LeaseUntil = "node-a", now.Add(time.Hour)
		}
		if _, err := a.Enqueue(ctx, store.Message{ID: id, TenantID: 1, Direction: store.Inbound, BlobKey: id, ReceivedAt: now}, []store.Recipient{r}, nil); err != nil {
			t.Fatal(err)
		}
	}
	enq("m1", false)
	waitWake(t, ch, "unleased message accepted")
	if n, err := a.SetState(ctx, 1, "m1", []store.RcptState{store.Queued}, store.Held, time.Time{}, store.Event{Kind: "held"}); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	drain(ch)
	if n, err := a.SetState(ctx, 1, "m1", []store.RcptState{store.Held}, store.Queued, now, store.Event{Kind: "released"}); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	waitWake(t, ch, "release")
	enq("m2", true)
	drain(ch)
	if n, err := a.ReleaseLeases(ctx, "node-a"); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	waitWake(t, ch, "leases given up")

	// Cut the listening connection.
	if _, err := a.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, listenerName); err != nil {
		t.Fatal(err)
	}
	waitWake(t, ch, "listening again")
	enq("m3", false)
	waitWake(t, ch, "accepted after the reconnection")

	cancel()
	for range ch {
	}
}

// Only work no node holds is announced: a message accepted already
// leased to its node (handed to that node's workers in memory) is not.
func TestLeasedAcceptNotAnnounced(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t, migrated)
	db, err := Open(ctx, Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `LISTEN `+queueChannel); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, c := range []struct {
		id    string
		owner string
	}{{"leased", "node-a"}, {"free", ""}} {
		r := store.Recipient{Addr: "a@x.test", NextAttempt: now, LeaseOwner: c.owner, LeaseUntil: now.Add(time.Hour)}
		if _, err := db.Enqueue(ctx, store.Message{ID: c.id, TenantID: 1, Direction: store.Inbound, BlobKey: c.id, ReceivedAt: now}, []store.Recipient{r}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Notifications arrive in commit order: the first is the second message's.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(wctx)
	if err != nil || n.Payload != "free" {
		t.Fatalf("first notification %+v %v, want the unleased message's", n, err)
	}
}
