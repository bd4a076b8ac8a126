package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// sumSQL is an integer query's result.
func sumSQL(t *testing.T, st store.Store, q string) int64 {
	t.Helper()
	n, err := raw(t, st).QueryIntSQL(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// dsnNotice is a generated message reporting on the recipients about.
func dsnNotice(id string, now time.Time, about ...int64) store.Notice {
	return store.Notice{About: about, Message: store.QueuedMessage{
		Message:    store.Message{ID: id, TenantID: 1, Direction: store.DSN, BlobKey: id, ReceivedAt: now, Size: 1},
		Recipients: []store.Recipient{{Addr: "sender@y.test", NextAttempt: now, LeaseOwner: "node-a", LeaseUntil: now.Add(time.Minute)}},
		Events:     []store.Event{{MessageID: id, TenantID: 1, At: now, Kind: "received"}},
	}}
}

// testLeaseFencing: a node whose lease expired and was claimed by another
// node cannot record its outcome (updates, events, counters, notices),
// while the current holder can; a renewal with the old token fails too.
func testLeaseFencing(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	enqueue(t, st, 1, "m1", now, "a@x.test", "b@x.test")

	a, err := st.ClaimDue(ctx, "node-a", now, now.Add(10*time.Minute), 10)
	if err != nil || len(a) != 1 {
		t.Fatalf("claim a: %v %+v", err, a)
	}
	ra := a[0].Recipients
	// node-a stalls past its lease; node-b takes the recipients over.
	b, err := st.ClaimDue(ctx, "node-b", now.Add(11*time.Minute), now.Add(21*time.Minute), 10)
	if err != nil || len(b) != 1 {
		t.Fatalf("claim b: %v %+v", err, b)
	}
	rb := b[0].Recipients
	for i := range rb {
		if rb[i].LeaseToken <= ra[i].LeaseToken {
			t.Fatalf("token did not grow: %d then %d", ra[i].LeaseToken, rb[i].LeaseToken)
		}
	}
	completion := func(rs []store.Recipient, dsnID string) store.Completion {
		c := store.Completion{TenantID: 1, MessageID: "m1"}
		var ids []int64
		for _, r := range rs {
			c.Updates = append(c.Updates, store.RecipientUpdate{ID: r.ID, LeaseToken: r.LeaseToken, State: store.Delivered, CountAttempt: true})
			c.Events = append(c.Events, store.Event{MessageID: "m1", TenantID: 1, At: now, Kind: "delivered", Rcpt: r.Addr})
			ids = append(ids, r.ID)
		}
		c.Notices = []store.Notice{dsnNotice(dsnID, now, ids...)}
		return c
	}

	// node-a wakes up: nothing of its outcome is written.
	res, err := st.Complete(ctx, completion(ra, "dsn-a"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Done || len(res.Stale) != 2 || len(res.Notices) != 1 || res.Notices[0] != nil {
		t.Fatalf("stale completion: %+v", res)
	}
	_, rs, _ := st.Message(ctx, 1, "m1")
	for i, r := range rs {
		if r.State != store.Queued || r.Attempts != 0 || r.LeaseOwner != "node-b" || r.LeaseToken != rb[i].LeaseToken {
			t.Fatalf("stale completion changed %+v", r)
		}
	}
	if evs, _ := st.Events(ctx, 1, "m1"); len(evs) != 0 {
		t.Fatalf("stale events written: %+v", evs)
	}
	if _, _, err := st.Message(ctx, 1, "dsn-a"); err == nil {
		t.Fatal("notice of a stale completion queued")
	}
	if n := sumSQL(t, st, `SELECT coalesce(sum(n), 0) FROM report_counts WHERE metric = 'delivered'`); n != 0 {
		t.Fatalf("stale completion counted %d deliveries", n)
	}
	if lost, err := st.RenewLeases(ctx, "node-a", []store.Lease{{ID: ra[0].ID, Token: ra[0].LeaseToken}}, now.Add(time.Hour)); err != nil || !slices.Equal(lost, []int64{ra[0].ID}) {
		t.Fatalf("stale renewal: lost %v %v", lost, err)
	}
	if _, rs, _ := st.Message(ctx, 1, "m1"); rs[0].LeaseOwner != "node-b" || !rs[0].LeaseUntil.Equal(now.Add(21*time.Minute)) {
		t.Fatalf("stale renewal took the lease: %+v", rs[0])
	}

	// node-b, the current holder, records its outcome once.
	res, err = st.Complete(ctx, completion(rb, "dsn-b"))
	if err != nil || !res.Done || len(res.Stale) != 0 || len(res.Notices) != 1 || len(res.Notices[0]) != 1 || res.Notices[0][0].ID == 0 {
		t.Fatalf("current completion: %+v %v", res, err)
	}
	if n := res.Notices[0][0]; n.LeaseOwner != "node-a" || n.LeaseToken != 1 || n.MessageID != "dsn-b" {
		t.Fatalf("notice recipient %+v", n)
	}
	if evs, _ := st.Events(ctx, 1, "m1"); len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	if n := sumSQL(t, st, `SELECT coalesce(sum(n), 0) FROM report_counts WHERE metric = 'delivered'`); n != 2 {
		t.Fatalf("%d deliveries counted, want 2", n)
	}
	// A late second try of the stale outcome still changes nothing.
	if res, _ := st.Complete(ctx, completion(ra, "dsn-c")); res.Notices[0] != nil || res.Done {
		t.Fatalf("late completion after done: %+v", res)
	}
	if n := sumSQL(t, st, `SELECT coalesce(sum(n), 0) FROM report_counts WHERE metric = 'delivered'`); n != 2 {
		t.Fatalf("%d deliveries counted after a late completion, want 2", n)
	}

	// Partly stale: one recipient was made due again by an operator and
	// claimed by node-b; node-a's outcome for the other one stands, and the
	// notice about both is queued (never lost with the one that is final).
	enqueue(t, st, 1, "m2", now, "c@x.test", "d@x.test")
	a, _ = st.ClaimDue(ctx, "node-a", now, now.Add(10*time.Minute), 10)
	ra = a[0].Recipients
	if n, err := st.SetState(ctx, 1, "m2", []store.RcptState{store.Queued}, store.Queued, now, store.Event{Kind: "retry", Rcpt: "d@x.test", At: now}); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if b, _ := st.ClaimDue(ctx, "node-b", now, now.Add(10*time.Minute), 10); len(b) != 1 || len(b[0].Recipients) != 1 {
		t.Fatalf("claim of the retried recipient: %+v", b)
	}
	c := completion(ra, "dsn-m2")
	c.MessageID = "m2"
	for i := range c.Events {
		c.Events[i].MessageID = "m2"
	}
	res, err = st.Complete(ctx, c)
	if err != nil || res.Done || !slices.Equal(res.Stale, []int64{ra[1].ID}) || res.Notices[0] == nil {
		t.Fatalf("partly stale completion: %+v %v", res, err)
	}
	evs, _ := st.Events(ctx, 1, "m2")
	if names(evs, func(e store.Event) string { return e.Kind + ":" + e.Rcpt }) != "[retry:d@x.test delivered:c@x.test]" {
		t.Fatalf("events %+v", evs)
	}
	_, rs, _ = st.Message(ctx, 1, "m2")
	if rs[0].State != store.Delivered || rs[1].State != store.Queued || rs[1].LeaseOwner != "node-b" || rs[1].Attempts != 0 {
		t.Fatalf("partly stale: %+v", rs)
	}

	// Inserted already leased: token 1, and an update without it is refused.
	out, err := st.Enqueue(ctx, store.Message{ID: "m3", TenantID: 1, Direction: store.Inbound, BlobKey: "m3", ReceivedAt: now},
		[]store.Recipient{{Addr: "e@x.test", NextAttempt: now, LeaseOwner: "node-a", LeaseUntil: now.Add(time.Minute)}, {Addr: "f@x.test", NextAttempt: now}}, nil)
	if err != nil || out[0].LeaseToken != 1 || out[1].LeaseToken != 0 {
		t.Fatalf("enqueue leased: %+v %v", out, err)
	}
	res, err = st.Complete(ctx, store.Completion{TenantID: 1, MessageID: "m3", Updates: []store.RecipientUpdate{{ID: out[0].ID, State: store.Delivered}}})
	if err != nil || !slices.Equal(res.Stale, []int64{out[0].ID}) {
		t.Fatalf("completion without the token: %+v %v", res, err)
	}
	res, err = st.Complete(ctx, store.Completion{TenantID: 1, MessageID: "m3", Updates: []store.RecipientUpdate{{ID: out[0].ID, LeaseToken: 1, State: store.Delivered}}})
	if err != nil || len(res.Stale) != 0 {
		t.Fatalf("completion with the token: %+v %v", res, err)
	}
	if _, rs, _ := st.Message(ctx, 1, "m3"); rs[0].State != store.Delivered {
		t.Fatalf("m3 %+v", rs[0])
	}
}

// testLeaseRenewal: a renewed lease keeps its recipients from other nodes
// past the first expiry; a lost one is reported.
func testLeaseRenewal(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	enqueue(t, st, 1, "m1", now, "a@x.test", "b@x.test")
	jobs, _ := st.ClaimDue(ctx, "node-a", now, now.Add(10*time.Minute), 10)
	var leases []store.Lease
	for _, r := range jobs[0].Recipients {
		leases = append(leases, store.Lease{ID: r.ID, Token: r.LeaseToken})
	}
	if lost, err := st.RenewLeases(ctx, "node-a", leases, now.Add(18*time.Minute)); err != nil || len(lost) != 0 {
		t.Fatalf("renew: lost %v %v", lost, err)
	}
	_, rs, _ := st.Message(ctx, 1, "m1")
	for i, r := range rs {
		if r.LeaseOwner != "node-a" || !r.LeaseUntil.Equal(now.Add(18*time.Minute)) || r.LeaseToken != leases[i].Token {
			t.Fatalf("renewed %+v", r)
		}
	}
	if b, _ := st.ClaimDue(ctx, "node-b", now.Add(12*time.Minute), now.Add(22*time.Minute), 10); len(b) != 0 {
		t.Fatalf("renewed lease claimed by another node: %+v", b)
	}
	// A lease that ran out but was not claimed again is still the holder's.
	if lost, err := st.RenewLeases(ctx, "node-a", leases, now.Add(30*time.Minute)); err != nil || len(lost) != 0 {
		t.Fatalf("renew after expiry: lost %v %v", lost, err)
	}
	// A recipient settled by an operator is lost to the attempt.
	if n, _ := st.SetState(ctx, 1, "m1", []store.RcptState{store.Queued}, store.Deleted, time.Time{}, store.Event{Kind: "deleted", Rcpt: "b@x.test", At: now}); n != 1 {
		t.Fatal("delete")
	}
	if lost, err := st.RenewLeases(ctx, "node-a", leases, now.Add(40*time.Minute)); err != nil || !slices.Equal(lost, []int64{leases[1].ID}) {
		t.Fatalf("renew of a deleted recipient: lost %v %v", lost, err)
	}
	if lost, err := st.RenewLeases(ctx, "node-a", nil, now); err != nil || len(lost) != 0 {
		t.Fatalf("renew nothing: %v %v", lost, err)
	}
}

// testClaimsAcrossExpiry: several nodes claim the same due recipients
// in two rounds (the first round's leases expired before the second);
// each round hands every recipient to exactly one node with a larger
// token, and when old and new holders complete at the same time only the
// new one's outcome is recorded.
func testClaimsAcrossExpiry(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	for i := range 20 {
		enqueue(t, st, 1, fmt.Sprintf("m%02d", i), now, "a@x.test", "b@x.test")
	}
	type claim struct {
		node  string
		token int64
		msg   string
	}
	round := func(at time.Time) map[int64]claim {
		var mu sync.Mutex
		claimed := map[int64]claim{}
		var wg sync.WaitGroup
		for n := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				node := fmt.Sprintf("node-%d", n)
				for {
					jobs, err := st.ClaimDue(ctx, node, at, at.Add(10*time.Minute), 3)
					if err != nil {
						t.Error(err)
						return
					}
					if len(jobs) == 0 {
						return
					}
					mu.Lock()
					for _, j := range jobs {
						for _, r := range j.Recipients {
							if prev, ok := claimed[r.ID]; ok {
								t.Errorf("recipient %d claimed by %s and %s", r.ID, prev.node, node)
							}
							claimed[r.ID] = claim{node, r.LeaseToken, j.Message.ID}
						}
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(claimed) != 40 {
			t.Fatalf("%d recipients claimed, want 40", len(claimed))
		}
		return claimed
	}
	first := round(now)
	second := round(now.Add(11 * time.Minute))
	for id, c := range second {
		if c.token <= first[id].token {
			t.Fatalf("recipient %d: token %d after %d", id, c.token, first[id].token)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied, stale := 0, 0
	for id := range second {
		for _, c := range []claim{first[id], second[id]} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := st.Complete(ctx, store.Completion{TenantID: 1, MessageID: c.msg,
					Updates: []store.RecipientUpdate{{ID: id, LeaseToken: c.token, State: store.Delivered, CountAttempt: true}}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if len(res.Stale) == 1 {
					stale++
					if c.token == second[id].token {
						t.Errorf("recipient %d: the current holder was refused", id)
					}
				} else {
					applied++
				}
			}()
		}
	}
	wg.Wait()
	if applied != 40 || stale != 40 {
		t.Fatalf("applied %d, stale %d; want 40 each", applied, stale)
	}
	if n := sumSQL(t, st, `SELECT count(*) FROM recipients WHERE state = 'delivered' AND attempts = 1`); n != 40 {
		t.Fatalf("%d recipients delivered once, want 40", n)
	}
	if n := sumSQL(t, st, `SELECT coalesce(sum(n), 0) FROM report_counts WHERE metric = 'delivered'`); n != 40 {
		t.Fatalf("%d deliveries counted, want 40", n)
	}
}
