package sqlite

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func enqueue(t *testing.T, db *DB, tid int64, id string, now time.Time, rcpts ...string) {
	t.Helper()
	var rs []store.Recipient
	for _, r := range rcpts {
		rs = append(rs, store.Recipient{Addr: r, NextAttempt: now})
	}
	if _, err := db.Enqueue(context.Background(), store.Message{ID: id, TenantID: tid, Direction: store.Inbound, BlobKey: id, ReceivedAt: now, Size: 1}, rs, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLeasesAcrossNodes(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	enqueue(t, db, 1, "m1", now, "a@x.test", "b@x.test")
	enqueue(t, db, 1, "m2", now.Add(time.Hour), "c@x.test")

	jobs, err := db.ClaimDue(ctx, "node-a", now, now.Add(10*time.Minute), 100)
	if err != nil || len(jobs) != 1 || len(jobs[0].Recipients) != 2 || jobs[0].Message.ID != "m1" {
		t.Fatalf("claim: %v %+v", err, jobs)
	}
	// A second node sees nothing while the lease holds...
	if jobs, _ := db.ClaimDue(ctx, "node-b", now.Add(time.Minute), now.Add(11*time.Minute), 100); len(jobs) != 0 {
		t.Fatalf("leased work claimed twice: %+v", jobs)
	}
	// ...and takes it over once the lease expired (node-a died).
	jobs, _ = db.ClaimDue(ctx, "node-b", now.Add(11*time.Minute), now.Add(21*time.Minute), 100)
	if len(jobs) != 1 || len(jobs[0].Recipients) != 2 {
		t.Fatalf("expired lease not taken over: %+v", jobs)
	}
	// A restarted node-b releases its own leases at start.
	if n, err := db.ReleaseLeases(ctx, "node-b"); err != nil || n != 2 {
		t.Fatalf("release: %d %v", n, err)
	}
	jobs, _ = db.ClaimDue(ctx, "node-b", now.Add(12*time.Minute), now.Add(22*time.Minute), 100)
	if len(jobs) != 1 {
		t.Fatal("released work not claimable")
	}
	r := jobs[0].Recipients
	done, err := db.Complete(ctx, 1, "m1", []store.RecipientUpdate{
		{ID: r[0].ID, State: store.Delivered, CountAttempt: true},
		{ID: r[1].ID, State: store.Queued, NextAttempt: now.Add(time.Hour), CountAttempt: true, LastCode: 451, LastReply: "451 later"},
	}, []store.Event{{MessageID: "m1", TenantID: 1, Kind: "delivered", Rcpt: "a@x.test"}})
	if err != nil || done {
		t.Fatalf("complete: done=%v err=%v", done, err)
	}
	// Completing with the wrong tenant changes nothing.
	if done, _ := db.Complete(ctx, 2, "m1", []store.RecipientUpdate{{ID: r[1].ID, State: store.Delivered}}, nil); done {
		t.Fatal("cross-tenant completion")
	}
	_, rs, _ := db.Message(ctx, 1, "m1")
	if rs[0].State != store.Delivered || rs[1].State != store.Queued || rs[1].Attempts != 1 || rs[1].LeaseOwner != "" {
		t.Fatalf("after complete: %+v", rs)
	}
	if _, _, err := db.Message(ctx, 2, "m1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("message visible to another tenant")
	}
}

func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	tn, err := db.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateDomain(ctx, tn.ID, "dup.test"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("d%d.test", i)
			if i%10 == 0 {
				name = "dup.test" // violates UNIQUE inside a shared batch
			}
			_, errs[i] = db.CreateDomain(ctx, tn.ID, name)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if i%10 == 0 && !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate %d: %v", i, err)
		}
		if i%10 != 0 && err != nil {
			t.Fatalf("domain %d failed because a neighbour in its batch did: %v", i, err)
		}
	}
	ds, _ := db.Domains(ctx, tn.ID)
	if len(ds) != 46 {
		t.Fatalf("%d domains, want 46", len(ds))
	}
}

func TestRelayNetMostSpecificWins(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	db.AddRelayNet(ctx, a.ID, netip.MustParsePrefix("10.0.0.0/8"))
	db.AddRelayNet(ctx, b.ID, netip.MustParsePrefix("10.1.2.0/24"))
	for ip, want := range map[string]int64{"10.9.9.9": a.ID, "10.1.2.3": b.ID, "::ffff:10.1.2.3": b.ID} {
		got, ok, err := db.TenantForRelayIP(ctx, netip.MustParseAddr(ip))
		if err != nil || !ok || got != want {
			t.Errorf("%s: tenant %d ok=%v err=%v, want %d", ip, got, ok, err, want)
		}
	}
	if _, ok, _ := db.TenantForRelayIP(ctx, netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("unregistered IP matched")
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	ctx := context.Background()
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := db.CreateTenant(ctx, "acme")
	db.Close()
	db, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.TenantByName(ctx, "acme")
	if err != nil || got.ID != tn.ID {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
}
