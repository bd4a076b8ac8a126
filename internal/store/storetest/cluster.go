package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// testNodes: heartbeats on the store's clock, the cluster status (nodes
// alive and dead, leases per owner, queue depth) and forgetting old nodes.
func testNodes(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	started := time.Unix(1_800_000_000, 123456000).UTC()
	before := time.Now()
	seen, err := st.Heartbeat(ctx, store.Node{ID: "node-a", Hostname: "mx1.example", Version: "1.2.3", Started: started,
		Addrs: []string{"0.0.0.0:25", "[::]:587"}})
	after := time.Now()
	// The store's clock: the database server's, on this machine in tests.
	if err != nil || seen.Before(before.Add(-time.Minute)) || seen.After(after.Add(time.Minute)) {
		t.Fatalf("heartbeat: %v at %v (local %v)", err, seen, before)
	}
	n, err := st.NodeByID(ctx, "node-a")
	if err != nil || n.Hostname != "mx1.example" || n.Version != "1.2.3" || !n.Started.Equal(started) || !n.Seen.Equal(seen) ||
		!slices.Equal(n.Addrs, []string{"0.0.0.0:25", "[::]:587"}) {
		t.Fatalf("node read back: %+v %v", n, err)
	}
	if _, err := st.NodeByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	// A second beat replaces the row.
	again, err := st.Heartbeat(ctx, store.Node{ID: "node-a", Hostname: "mx1.example", Version: "1.2.4", Started: started})
	if err != nil || again.Before(seen) {
		t.Fatalf("second heartbeat: %v %v", again, err)
	}
	if n, _ := st.NodeByID(ctx, "node-a"); n.Version != "1.2.4" || len(n.Addrs) != 0 || !n.Seen.Equal(again) {
		t.Fatalf("after the second beat: %+v", n)
	}
	if _, err := st.Heartbeat(ctx, store.Node{ID: "node-b", Hostname: "mx2.example", Version: "1.2.4", Started: started}); err != nil {
		t.Fatal(err)
	}
	// node-b went quiet an hour ago.
	stale := seen.Add(-time.Hour)
	if err := raw(t, st).ExecSQL(ctx, fmt.Sprintf(`UPDATE nodes SET seen_us = %d WHERE id = 'node-b'`, stale.UnixMicro())); err != nil {
		t.Fatal(err)
	}

	// Leases: node-a holds two live ones; node-b one that expired; a
	// command-line owner without heartbeat one more.
	past := seen.Add(-2 * time.Hour)
	enqueue(t, st, 1, "m1", past, "a@x.test", "b@x.test")
	if jobs, _ := st.ClaimDue(ctx, "node-a", past, seen.Add(time.Hour), 10); len(jobs) != 1 {
		t.Fatal("claim a")
	}
	enqueue(t, st, 1, "m2", past, "c@x.test")
	if jobs, _ := st.ClaimDue(ctx, "node-b", past, past.Add(time.Minute), 10); len(jobs) != 1 {
		t.Fatal("claim b")
	}
	enqueue(t, st, 1, "m3", past, "d@x.test")
	jobs, _ := st.ClaimDue(ctx, "cli", past, seen.Add(time.Hour), 10)
	if len(jobs) != 1 {
		t.Fatal("claim cli")
	}
	// Depth: m4 queued, one deferred (m3 after an attempt), one held (m5).
	enqueue(t, st, 1, "m4", seen.Add(time.Hour), "e@x.test")
	r := jobs[0].Recipients[0]
	if _, err := st.Complete(ctx, store.Completion{TenantID: 1, MessageID: "m3", Updates: []store.RecipientUpdate{{ID: r.ID, LeaseToken: r.LeaseToken,
		State: store.Queued, CountAttempt: true, NextAttempt: seen.Add(time.Hour)}}}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, st, 1, "m5", seen.Add(time.Hour), "f@x.test")
	if n, _ := st.SetState(ctx, 1, "m5", []store.RcptState{store.Queued}, store.Held, time.Time{}, store.Event{Kind: "held"}); n != 1 {
		t.Fatal("hold")
	}
	enqueue(t, st, 1, "m6", past, "g@x.test")
	if _, err := st.SetState(ctx, 1, "m6", []store.RcptState{store.Queued}, store.Deleted, time.Time{}, store.Event{Kind: "deleted"}); err != nil {
		t.Fatal(err)
	}

	c, err := st.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Now.Before(again) || len(c.Nodes) != 2 || c.Nodes[0].ID != "node-a" || c.Nodes[1].ID != "node-b" {
		t.Fatalf("status: %+v", c)
	}
	wantLeases := []store.OwnerLeases{{Owner: "node-a", Recipients: 2}, {Owner: "node-b", Recipients: 1, Expired: 1}}
	if !slices.Equal(c.Leases, wantLeases) {
		t.Fatalf("leases %+v, want %+v", c.Leases, wantLeases)
	}
	// m1's two and m2's one are queued (leased or not, never attempted).
	if c.Queued != 4 || c.Deferred != 1 || c.Held != 1 {
		t.Fatalf("depth queued=%d deferred=%d held=%d, want 4 1 1", c.Queued, c.Deferred, c.Held)
	}
	// The oldest waiting message is m1 (m6, as old, is deleted).
	if !c.Oldest.Equal(past) || c.ArchivePending != 0 {
		t.Fatalf("oldest %v (want %v), archive pending %d", c.Oldest, past, c.ArchivePending)
	}
	states := c.States(30 * time.Second)
	got := names(states, func(s store.NodeState) string {
		return fmt.Sprintf("%s:%v:%d/%d", s.ID, s.Alive, s.Leases.Recipients, s.Leases.Expired)
	})
	if got != "[node-a:true:2/0 node-b:false:1/1]" {
		t.Fatalf("states %s", got)
	}

	if n, err := st.ForgetNodes(ctx, seen.Add(-time.Minute)); err != nil || n != 1 {
		t.Fatalf("forget: %d %v", n, err)
	}
	if _, err := st.NodeByID(ctx, "node-b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("node-b not forgotten")
	}
}
