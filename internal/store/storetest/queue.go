package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

func enqueue(t *testing.T, st store.Store, tid int64, id string, now time.Time, rcpts ...string) {
	t.Helper()
	var rs []store.Recipient
	for _, r := range rcpts {
		rs = append(rs, store.Recipient{Addr: r, NextAttempt: now})
	}
	if _, err := st.Enqueue(context.Background(), store.Message{ID: id, TenantID: tid, Direction: store.Inbound, BlobKey: id, ReceivedAt: now, Size: 1}, rs, nil); err != nil {
		t.Fatal(err)
	}
}

func testLeasesAcrossNodes(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	enqueue(t, st, 1, "m1", now, "a@x.test", "b@x.test")
	enqueue(t, st, 1, "m2", now.Add(time.Hour), "c@x.test")

	jobs, err := st.ClaimDue(ctx, "node-a", now, now.Add(10*time.Minute), 100)
	if err != nil || len(jobs) != 1 || len(jobs[0].Recipients) != 2 || jobs[0].Message.ID != "m1" {
		t.Fatalf("claim: %v %+v", err, jobs)
	}
	// A second node sees nothing while the lease holds...
	if jobs, _ := st.ClaimDue(ctx, "node-b", now.Add(time.Minute), now.Add(11*time.Minute), 100); len(jobs) != 0 {
		t.Fatalf("leased work claimed twice: %+v", jobs)
	}
	// ...and takes it over once the lease expired (node-a died).
	jobs, _ = st.ClaimDue(ctx, "node-b", now.Add(11*time.Minute), now.Add(21*time.Minute), 100)
	if len(jobs) != 1 || len(jobs[0].Recipients) != 2 {
		t.Fatalf("expired lease not taken over: %+v", jobs)
	}
	// A restarted node-b releases its own leases at start.
	if n, err := st.ReleaseLeases(ctx, "node-b"); err != nil || n != 2 {
		t.Fatalf("release: %d %v", n, err)
	}
	jobs, _ = st.ClaimDue(ctx, "node-b", now.Add(12*time.Minute), now.Add(22*time.Minute), 100)
	if len(jobs) != 1 {
		t.Fatal("released work not claimable")
	}
	r := jobs[0].Recipients
	res, err := st.Complete(ctx, store.Completion{TenantID: 1, MessageID: "m1", Updates: []store.RecipientUpdate{
		{ID: r[0].ID, LeaseToken: r[0].LeaseToken, State: store.Delivered, CountAttempt: true},
		{ID: r[1].ID, LeaseToken: r[1].LeaseToken, State: store.Queued, NextAttempt: now.Add(time.Hour), CountAttempt: true, LastCode: 451, LastReply: "451 later"},
	}, Events: []store.Event{{MessageID: "m1", TenantID: 1, Kind: "delivered", Rcpt: "a@x.test"}}})
	if err != nil || res.Done || len(res.Stale) != 0 {
		t.Fatalf("complete: %+v err=%v", res, err)
	}
	// Completing with the wrong tenant changes nothing.
	if res, _ := st.Complete(ctx, store.Completion{TenantID: 2, MessageID: "m1", Updates: []store.RecipientUpdate{{ID: r[1].ID, State: store.Delivered}}}); res.Done {
		t.Fatal("cross-tenant completion")
	}
	_, rs, _ := st.Message(ctx, 1, "m1")
	if rs[0].State != store.Delivered || rs[1].State != store.Queued || rs[1].Attempts != 1 || rs[1].LeaseOwner != "" {
		t.Fatalf("after complete: %+v", rs)
	}
	if _, _, err := st.Message(ctx, 2, "m1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("message visible to another tenant")
	}
}

func testRelayNetMostSpecificWins(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	a, _ := st.CreateTenant(ctx, "a")
	b, _ := st.CreateTenant(ctx, "b")
	st.AddRelayNet(ctx, a.ID, netip.MustParsePrefix("10.0.0.0/8"))
	st.AddRelayNet(ctx, b.ID, netip.MustParsePrefix("10.1.2.0/24"))
	for ip, want := range map[string]int64{"10.9.9.9": a.ID, "10.1.2.3": b.ID, "::ffff:10.1.2.3": b.ID} {
		got, ok, err := st.TenantForRelayIP(ctx, netip.MustParseAddr(ip))
		if err != nil || !ok || got != want {
			t.Errorf("%s: tenant %d ok=%v err=%v, want %d", ip, got, ok, err, want)
		}
	}
	if _, ok, _ := st.TenantForRelayIP(ctx, netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("unregistered IP matched")
	}
}

// testClaimDueConcurrent: nodes claiming at the same time never get the
// same recipient, and together they get every due one.
func testClaimDueConcurrent(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	for i := range 40 {
		enqueue(t, st, 1, fmt.Sprintf("m%02d", i), now.Add(-time.Duration(i)*time.Second), "a@x.test", "b@x.test")
	}
	enqueue(t, st, 1, "later", now.Add(time.Hour), "c@x.test")
	var mu sync.Mutex
	claimed := map[int64]string{}
	var wg sync.WaitGroup
	for n := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := fmt.Sprintf("node-%d", n)
			for {
				jobs, err := st.ClaimDue(ctx, node, now, now.Add(time.Hour), 7)
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
							t.Errorf("recipient %d claimed by %s and %s", r.ID, prev, node)
						}
						claimed[r.ID] = node
						if r.LeaseOwner != node || r.MessageID != j.Message.ID || j.Message.ID == "later" {
							t.Errorf("job %s recipient %+v", j.Message.ID, r)
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != 80 {
		t.Fatalf("%d recipients claimed, want 80", len(claimed))
	}
}

// testCompleteConcurrent: recipients of one message completed at the same
// time by different nodes; exactly one completion reports the message done.
func testCompleteConcurrent(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	var addrs []string
	for i := range 8 {
		addrs = append(addrs, fmt.Sprintf("r%d@x.test", i))
	}
	for round := range 5 {
		id := fmt.Sprintf("m%d", round)
		enqueue(t, st, 1, id, now, addrs...)
		jobs, err := st.ClaimDue(ctx, "node", now, now.Add(time.Hour), 100)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("claim %v %v", jobs, err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		dones := 0
		for _, r := range jobs[0].Recipients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := st.Complete(ctx, store.Completion{TenantID: 1, MessageID: id,
					Updates: []store.RecipientUpdate{{ID: r.ID, LeaseToken: r.LeaseToken, State: store.Delivered, CountAttempt: true}},
					Events:  []store.Event{{MessageID: id, TenantID: 1, At: now, Kind: "delivered", Rcpt: r.Addr}}})
				if err != nil || len(res.Stale) != 0 {
					t.Error(err, res.Stale)
				}
				if res.Done {
					mu.Lock()
					dones++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if dones != 1 {
			t.Fatalf("%s: %d completions reported the message done", id, dones)
		}
		m, rs, err := st.Message(ctx, 1, id)
		if err != nil || !m.Done {
			t.Fatalf("message not done: %+v %v", m, err)
		}
		for _, r := range rs {
			if r.State != store.Delivered || r.Attempts != 1 || r.LeaseOwner != "" || !r.LeaseUntil.IsZero() {
				t.Fatalf("recipient %+v", r)
			}
		}
	}
	if p, _ := st.PendingBlobs(ctx); len(p) != 0 {
		t.Fatalf("done messages still pending: %v", p)
	}
}

// testQueueAdmin: listing, holding, releasing and deleting queued
// recipients, leases taken at enqueue, recovery's pending blobs and
// corrupt messages.
func testQueueAdmin(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	// Inserted already leased to the accepting node.
	out, err := st.Enqueue(ctx, store.Message{ID: "m1", TenantID: 1, Direction: store.Inbound, BlobKey: "blob-m1", ReceivedAt: now, Size: 11,
		MailFrom: "s@y.test", EnvID: "env", RetFull: true, ClientIP: "192.0.2.1", Helo: "h", TLS: true, AuthUser: "u", MessageID: "<1@y>",
		Subject: "s", Prefix: "X-A: 1\r\n", SMTPUTF8: true, Body8Bit: true},
		[]store.Recipient{{Addr: "a@x.test", NextAttempt: now, LeaseOwner: "node-a", LeaseUntil: now.Add(time.Minute), ORcpt: "rfc822;a@x.test", Notify: "never"},
			{Addr: "b@x.test", NextAttempt: now, LeaseOwner: "node-a", LeaseUntil: now.Add(time.Minute)}},
		[]store.Event{{MessageID: "m1", TenantID: 1, At: now, Kind: "received"}})
	if err != nil || len(out) != 2 || out[0].ID == 0 || out[0].State != store.Queued || out[0].MessageID != "m1" || out[0].TenantID != 1 {
		t.Fatalf("enqueue: %+v %v", out, err)
	}
	enqueue(t, st, 2, "m2", now, "c@z.test")
	if jobs, _ := st.ClaimDue(ctx, "node-b", now, now.Add(time.Hour), 10); len(jobs) != 1 || jobs[0].Message.ID != "m2" {
		t.Fatalf("leased at enqueue, yet claimed: %+v", jobs)
	}
	m, rs, err := st.Message(ctx, 0, "m1") // operator view
	if err != nil || len(rs) != 2 {
		t.Fatal(err)
	}
	want := store.Message{ID: "m1", TenantID: 1, Direction: store.Inbound, BlobKey: "blob-m1", ReceivedAt: now.UTC(), Size: 11,
		MailFrom: "s@y.test", EnvID: "env", RetFull: true, ClientIP: "192.0.2.1", Helo: "h", TLS: true, AuthUser: "u", MessageID: "<1@y>",
		Subject: "s", Prefix: "X-A: 1\r\n", SMTPUTF8: true, Body8Bit: true}
	if m != want {
		t.Fatalf("message read back\n got %+v\nwant %+v", m, want)
	}
	if r := rs[0]; r.Addr != "a@x.test" || r.ORcpt != "rfc822;a@x.test" || r.Notify != "never" || r.LeaseOwner != "node-a" ||
		!r.LeaseUntil.Equal(now.Add(time.Minute)) || !r.NextAttempt.Equal(now) || !r.Updated.Equal(now) {
		t.Fatalf("recipient read back %+v", r)
	}

	q, err := st.ListQueue(ctx, store.QueueFilter{})
	if err != nil || names(q, func(e store.QueueEntry) string { return fmt.Sprintf("%s:%d", e.Message.ID, len(e.Recipients)) }) != "[m1:2 m2:1]" {
		t.Fatalf("queue %+v %v", q, err)
	}
	if q, _ := st.ListQueue(ctx, store.QueueFilter{TenantID: 2}); len(q) != 1 || q[0].Message.ID != "m2" {
		t.Fatalf("tenant 2 queue %+v", q)
	}
	if q, _ := st.ListQueue(ctx, store.QueueFilter{Limit: 1}); len(q) != 1 || len(q[0].Recipients) != 1 {
		t.Fatalf("limit 1 %+v", q)
	}

	// Hold one recipient, then the rest; another tenant cannot.
	if n, err := st.SetState(ctx, 2, "m1", []store.RcptState{store.Queued}, store.Held, time.Time{}, store.Event{Kind: "held", At: now}); err != nil || n != 0 {
		t.Fatalf("cross-tenant hold: %d %v", n, err)
	}
	if n, err := st.SetState(ctx, 1, "m1", []store.RcptState{store.Queued}, store.Held, time.Time{}, store.Event{Kind: "held", Rcpt: "a@x.test", At: now.Add(time.Second)}); err != nil || n != 1 {
		t.Fatalf("hold one: %d %v", n, err)
	}
	if n, _ := st.SetState(ctx, 0, "m1", []store.RcptState{store.Queued}, store.Held, time.Time{}, store.Event{Kind: "held", At: now.Add(2 * time.Second)}); n != 1 {
		t.Fatalf("hold the rest: %d", n)
	}
	if q, _ := st.ListQueue(ctx, store.QueueFilter{State: store.Held}); len(q) != 1 || len(q[0].Recipients) != 2 {
		t.Fatalf("held listing %+v", q)
	}
	// Holding keeps the lease; a release with a time frees it and sets the next attempt.
	_, rs, _ = st.Message(ctx, 1, "m1")
	if rs[0].State != store.Held || rs[0].LeaseOwner != "node-a" {
		t.Fatalf("held %+v", rs[0])
	}
	later := now.Add(5 * time.Minute)
	if n, _ := st.SetState(ctx, 1, "m1", []store.RcptState{store.Held}, store.Queued, later, store.Event{Kind: "released", At: now.Add(3 * time.Second)}); n != 2 {
		t.Fatalf("release: %d", n)
	}
	_, rs, _ = st.Message(ctx, 1, "m1")
	for _, r := range rs {
		if r.State != store.Queued || r.LeaseOwner != "" || !r.LeaseUntil.IsZero() || !r.NextAttempt.Equal(later) {
			t.Fatalf("released %+v", r)
		}
	}
	if n, _ := st.SetState(ctx, 1, "m1", []store.RcptState{store.Queued, store.Held}, store.Deleted, time.Time{}, store.Event{Kind: "deleted", Rcpt: "b@x.test", At: now.Add(4 * time.Second)}); n != 1 {
		t.Fatalf("delete one: %d", n)
	}
	evs, _ := st.Events(ctx, 1, "m1")
	if names(evs, func(e store.Event) string { return e.Kind + ":" + e.Rcpt }) != "[received: held:a@x.test held: released: deleted:b@x.test]" {
		t.Fatalf("events %+v", evs)
	}
	for _, e := range evs[1:] {
		if e.MessageID != "m1" || e.TenantID != 1 || e.At.IsZero() {
			t.Fatalf("event %+v", e)
		}
	}

	// Recovery: pending blobs of messages not done.
	p, err := st.PendingBlobs(ctx)
	if err != nil || len(p) != 2 || p["blob-m1"] != (store.PendingBlob{MessageID: "m1", Size: 11}) || p["m2"].MessageID != "m2" {
		t.Fatalf("pending %v %v", p, err)
	}
	if err := st.MarkCorrupt(ctx, "m2", "blob missing"); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkCorrupt(ctx, "nope", "blob missing"); err == nil {
		t.Fatal("unknown message marked corrupt")
	}
	if p, _ := st.PendingBlobs(ctx); len(p) != 1 {
		t.Fatalf("corrupt message still pending: %v", p)
	}
	_, rs, _ = st.Message(ctx, 2, "m2")
	evs, _ = st.Events(ctx, 2, "m2")
	if rs[0].State != store.Held || len(evs) != 1 || evs[0].Kind != "corrupt" || evs[0].Detail != "blob missing" {
		t.Fatalf("corrupt: %+v %+v", rs, evs)
	}
	if jobs, _ := st.ClaimDue(ctx, "node-b", now.Add(time.Hour), now.Add(2*time.Hour), 10); len(jobs) != 1 || jobs[0].Message.ID != "m1" {
		t.Fatalf("claim after corrupt: %+v", jobs)
	}
	// Deleting the last recipient makes the message done.
	if n, _ := st.SetState(ctx, 1, "m1", []store.RcptState{store.Queued, store.Held}, store.Deleted, time.Time{}, store.Event{Kind: "deleted"}); n != 1 {
		t.Fatalf("delete rest: %d", n)
	}
	if m, _, _ := st.Message(ctx, 1, "m1"); !m.Done {
		t.Fatal("message with only final recipients not done")
	}
	if q, _ := st.ListQueue(ctx, store.QueueFilter{TenantID: 1}); len(q) != 0 {
		t.Fatalf("done message listed %+v", q)
	}
	// A message whose recipients were all settled at enqueue is done at once.
	if _, err := st.Enqueue(ctx, store.Message{ID: "m3", TenantID: 1, Direction: store.Inbound, BlobKey: "m3", ReceivedAt: now},
		[]store.Recipient{{Addr: "a@x.test", State: store.Rejected}}, nil); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := st.Message(ctx, 1, "m3"); !m.Done {
		t.Fatal("settled message not done")
	}
	if _, _, err := st.Message(ctx, 1, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown message: %v", err)
	}
}

// testEventsAndFind: the tracking log's order and the quick search.
func testEventsAndFind(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_600_000_000, 0) // in the past: an event without a time is logged now, after these

	for i, s := range []string{"Invoice 50% off", "invoice 500", "Quarterly report"} {
		id := fmt.Sprintf("m%d", i)
		if _, err := st.Enqueue(ctx, store.Message{ID: id, TenantID: 1, Direction: store.Inbound, BlobKey: id, ReceivedAt: now.Add(time.Duration(i) * time.Minute),
			MailFrom: fmt.Sprintf("Sender%d@Example.NET", i), MessageID: fmt.Sprintf("<id%d@example.net>", i), Subject: s},
			[]store.Recipient{{Addr: fmt.Sprintf("user%d@x.test", i), NextAttempt: now}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(t, st, 2, "other", now, "user0@x.test")
	find := func(tid int64, q string) string {
		t.Helper()
		ms, err := st.FindMessages(ctx, tid, q, 0)
		if err != nil {
			t.Fatal(err)
		}
		return names(ms, func(m store.Message) string { return m.ID })
	}
	for q, want := range map[string]string{
		"invoice": "[m1 m0]", "50%": "[m0]", "sender2@example.net": "[m2]", "ID1@": "[m1]", "m2": "[m2]",
		"user0@": "[m0]", "_": "[]", "nothing": "[]",
	} {
		if got := find(1, q); got != want {
			t.Errorf("find %q: %s, want %s", q, got, want)
		}
	}
	if got := find(0, "user0@"); got != "[m0 other]" && got != "[other m0]" {
		t.Errorf("operator find: %s", got)
	}
	if ms, _ := st.FindMessages(ctx, 1, "invoice", 1); len(ms) != 1 || ms[0].ID != "m1" {
		t.Errorf("limit 1: %v", ms)
	}

	// Events in time order (then insertion order), per tenant.
	if err := st.AddEvents(ctx, []store.Event{
		{MessageID: "m0", TenantID: 1, At: now.Add(2 * time.Minute), Kind: "delivered", Rcpt: "user0@x.test", Detail: "250 ok", Remote: "mx.x.test"},
		{MessageID: "m0", TenantID: 1, At: now.Add(time.Minute), Kind: "deferred", Rcpt: "user0@x.test"},
		{MessageID: "m0", TenantID: 1, At: now.Add(time.Minute), Kind: "retry"},
		{MessageID: "m0", TenantID: 1, Kind: "note"}, // no time: now
	}); err != nil {
		t.Fatal(err)
	}
	evs, err := st.Events(ctx, 1, "m0")
	if err != nil || names(evs, func(e store.Event) string { return e.Kind }) != "[deferred retry delivered note]" {
		t.Fatalf("events %+v %v", evs, err)
	}
	if e := evs[2]; e.Detail != "250 ok" || e.Remote != "mx.x.test" || e.Rcpt != "user0@x.test" || e.ID == 0 || !e.At.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("event read back %+v", e)
	}
	if evs[3].At.Before(now.Add(2 * time.Minute)) {
		t.Fatalf("event without time got %v", evs[3].At)
	}
	if evs, _ := st.Events(ctx, 2, "m0"); len(evs) != 0 {
		t.Fatalf("tenant 2 sees %v", evs)
	}
	if evs, _ := st.Events(ctx, 0, "m0"); len(evs) != 4 {
		t.Fatalf("operator sees %d events", len(evs))
	}
}

// testOddBytes: envelope fields, headers and event details with invalid
// UTF-8 and NUL bytes (a HELO, an undeclared 8-bit Subject) are accepted
// and read back without error, and searching for them fails nothing.
func testOddBytes(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	odd := "caf\xe9 \x00 \xff\xfe"
	m := store.Message{ID: "m1", TenantID: 1, Direction: store.Inbound, BlobKey: "m1", ReceivedAt: now, MailFrom: "s\xff@x.test",
		Helo: odd, MessageID: "<" + odd + "@x>", Subject: odd, ClientIP: "192.0.2.1", AuthUser: odd, EnvID: odd, Prefix: "X-A: " + odd + "\r\n"}
	out, err := st.Accept(ctx, store.Acceptance{
		Queue: []store.QueuedMessage{{Message: m,
			Recipients: []store.Recipient{{Addr: "a\xff@x.test", ORcpt: odd, NextAttempt: now, State: store.Quarantined}, {Addr: "b@x.test", NextAttempt: now}},
			Events:     []store.Event{{MessageID: "m1", TenantID: 1, At: now, Kind: "verdict", Rcpt: "a\xff@x.test", Detail: odd + " [SPAM]", Remote: odd}}}},
		Quarantine: []store.QuarantinedCopy{{
			Item: store.QuarantineItem{ID: "q1", TenantID: 1, Rcpt: "a\xff@x.test", MessageID: "m1", BlobKey: "q1", MailFrom: odd, FromHdr: odd,
				Subject: odd, Reasons: odd, Size: 5, Created: now, Expires: now.Add(time.Hour), State: store.QHeld},
			Event: store.Event{MessageID: "m1", TenantID: 1, At: now, Kind: "quarantined", Rcpt: "a\xff@x.test", Detail: odd}, QuotaBytes: 100}},
	})
	if err != nil || len(out) != 1 || len(out[0]) != 2 {
		t.Fatalf("accept: %v %v", out, err)
	}
	got, rs, err := st.Message(ctx, 1, "m1")
	if err != nil || got.ClientIP != "192.0.2.1" || len(rs) != 2 || rs[1].Addr != "b@x.test" || got.Subject == "" {
		t.Fatalf("read back: %+v %+v %v", got, rs, err)
	}
	if evs, err := st.Events(ctx, 1, "m1"); err != nil || len(evs) != 2 {
		t.Fatalf("events %v %v", evs, err)
	}
	if _, err := st.QuarantineItem(ctx, 1, "q1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Complete(ctx, store.Completion{TenantID: 1, MessageID: "m1", Updates: []store.RecipientUpdate{{ID: rs[1].ID, State: store.Queued, LastReply: "451 " + odd, RemoteMTA: odd,
		NextAttempt: now.Add(time.Minute), CountAttempt: true}}, Events: []store.Event{{MessageID: "m1", TenantID: 1, At: now, Kind: "deferred", Detail: odd}}}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	for _, term := range []string{odd, "\xff", "caf\xe9", "\x00"} {
		if _, err := st.FindMessages(ctx, 1, term, 10); err != nil {
			t.Fatalf("find %q: %v", term, err)
		}
		if _, err := st.SearchMessages(ctx, store.TrackFilter{TenantID: 1, Subject: term, Recipient: term}); err != nil {
			t.Fatalf("search %q: %v", term, err)
		}
		if _, _, err := st.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: 1, Query: term}); err != nil {
			t.Fatalf("quarantine search %q: %v", term, err)
		}
	}
	if err := st.AddAudit(ctx, store.AuditEntry{TenantID: 1, Actor: odd, Action: "x." + odd, Target: odd, After: odd}); err != nil {
		t.Fatalf("audit: %v", err)
	}
	if _, err := st.SpamApply(ctx, 1, store.SpamChange{Deltas: map[string]store.TokenCount{odd: {Spam: 1}}, Total: store.TokenCount{Spam: 1},
		Labels: map[string]string{odd: "spam"}, At: now}); err != nil {
		t.Fatalf("spam apply: %v", err)
	}
	if _, err := st.SpamLoad(ctx, 1, func(string, store.TokenCount) {}, func(string, string) {}); err != nil {
		t.Fatalf("spam load: %v", err)
	}
	if _, err := st.SpamLabels(ctx, 1, []string{odd, "ok"}); err != nil {
		t.Fatalf("spam labels: %v", err)
	}
	if err := st.RecordSender(ctx, 1, odd, now); err != nil {
		t.Fatalf("record sender: %v", err)
	}
	if _, err := st.SeenSender(ctx, 1, odd); err != nil {
		t.Fatalf("seen sender: %v", err)
	}
}

// A message whose recipients were all settled when it was accepted is
// done at once (its blob is no longer pending); one with a queued or held
// recipient is not.
func testAcceptSettledIsDone(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for id, states := range map[string][]store.RcptState{
		"settled": {store.Rejected, store.Discarded, store.Quarantined},
		"held":    {store.Rejected, store.Held},
		"queued":  {store.Discarded, store.Queued},
	} {
		var rs []store.Recipient
		for i, s := range states {
			rs = append(rs, store.Recipient{Addr: fmt.Sprintf("r%d@x.test", i), State: s, NextAttempt: at})
		}
		if _, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{
			Message: store.Message{ID: id, TenantID: 1, Direction: store.Inbound, BlobKey: "blob-" + id, Size: 5, ReceivedAt: at}, Recipients: rs}}}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := st.PendingBlobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p["blob-settled"]; ok {
		t.Errorf("a message accepted with every recipient settled is still pending")
	}
	if p["blob-held"].MessageID != "held" || p["blob-queued"].MessageID != "queued" {
		t.Errorf("pending %v: want the held and the queued message", p)
	}
}
