package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// testDomainModes: a domain is primary until switched; a switch is a
// compare-and-set, so of several concurrent switches exactly one wins; a
// switch belongs to its tenant and goes with the domain.
func testDomainModes(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	d, err := db.CreateDomain(ctx, a.ID, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := db.CreateDomain(ctx, b.ID, "b.test")
	m, err := db.DomainMode(ctx, a.ID, d.ID)
	if err != nil || m.Mode != store.ModePrimary || !m.Changed.IsZero() || m.Domain != "a.test" {
		t.Fatalf("fresh domain: %+v %v", m, err)
	}
	if _, err := db.DomainMode(ctx, b.ID, d.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's domain: %v", err)
	}
	if ok, err := db.SetDomainMode(ctx, store.DomainMode{TenantID: b.ID, DomainID: d.ID, Mode: store.ModeEmergency}, store.ModePrimary); !errors.Is(err, store.ErrNotFound) || ok {
		t.Fatalf("switch of another tenant's domain: %v %v", ok, err)
	}
	at := time.UnixMicro(1_700_000_000_123_456).UTC()
	// Concurrent switches from primary: exactly one wins.
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ok, err := db.SetDomainMode(ctx, store.DomainMode{TenantID: a.ID, DomainID: d.ID, Mode: store.ModeEmergency,
				Changed: at, ChangedBy: "admin@a.test", Reason: "outage"}, store.ModePrimary)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d switches won, want 1", wins)
	}
	m, _ = db.DomainMode(ctx, a.ID, d.ID)
	if m.Mode != store.ModeEmergency || !m.Changed.Equal(at) || m.ChangedBy != "admin@a.test" || m.Reason != "outage" {
		t.Fatalf("after switch: %+v", m)
	}
	// A switch from the wrong mode changes nothing.
	if ok, _ := db.SetDomainMode(ctx, store.DomainMode{TenantID: a.ID, DomainID: d.ID, Mode: store.ModePrimary}, store.ModePrimary); ok {
		t.Fatal("switch from a mode the domain is not in")
	}
	if _, err := db.SetDomainMode(ctx, store.DomainMode{TenantID: b.ID, DomainID: d2.ID, Mode: store.ModeEmergency, Changed: at}, store.ModePrimary); err != nil {
		t.Fatal(err)
	}
	ms, err := db.DomainModes(ctx, a.ID)
	if err != nil || len(ms) != 1 || ms[0].Domain != "a.test" || ms[0].Mode != store.ModeEmergency {
		t.Fatalf("modes of a: %+v %v", ms, err)
	}
	if all, _ := db.DomainModes(ctx, 0); len(all) != 2 {
		t.Fatalf("modes of every tenant: %+v", all)
	}
	if ok, err := db.SetDomainMode(ctx, store.DomainMode{TenantID: a.ID, DomainID: d.ID, Mode: store.ModePrimary, Changed: at.Add(time.Hour)}, store.ModeEmergency); !ok || err != nil {
		t.Fatalf("switch back: %v %v", ok, err)
	}
	if m, _ := db.DomainMode(ctx, a.ID, d.ID); m.Mode != store.ModePrimary || !m.Changed.Equal(at.Add(time.Hour)) {
		t.Fatalf("after switching back: %+v", m)
	}
	// The mode goes with the domain.
	if err := db.DeleteDomain(ctx, a.ID, "a.test"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := db.DomainModes(ctx, a.ID); len(ms) != 0 {
		t.Fatalf("mode of a deleted domain: %+v", ms)
	}
}

// testWakeDomain: waking a domain makes its tenant's queued recipients in
// that domain due, and nothing else.
func testWakeDomain(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	now := time.Now().UTC().Truncate(time.Microsecond)
	later := now.Add(time.Hour)
	enq := func(tid int64, id string, rcpts ...store.Recipient) {
		t.Helper()
		m := store.Message{ID: id, TenantID: tid, Direction: store.Inbound, MailFrom: "s@x.test", BlobKey: id, ReceivedAt: now}
		if _, err := db.Enqueue(ctx, m, rcpts, nil); err != nil {
			t.Fatal(err)
		}
	}
	enq(a.ID, "m1", store.Recipient{Addr: "u1@Wake.test", State: store.Queued, NextAttempt: later},
		store.Recipient{Addr: "u2@other.test", State: store.Queued, NextAttempt: later},
		store.Recipient{Addr: "u3@wake.test", State: store.Held, NextAttempt: later},
		store.Recipient{Addr: "u4@subwake.test", State: store.Queued, NextAttempt: later})
	enq(b.ID, "m2", store.Recipient{Addr: "u5@wake.test", State: store.Queued, NextAttempt: later})
	n, err := db.WakeDomain(ctx, a.ID, "wake.test", now)
	if err != nil || n != 1 {
		t.Fatalf("woke %d %v, want 1", n, err)
	}
	_, rs, _ := db.Message(ctx, a.ID, "m1")
	for _, r := range rs {
		due := !r.NextAttempt.After(now)
		if due != (r.Addr == "u1@Wake.test") {
			t.Errorf("%s due=%v", r.Addr, due)
		}
	}
	_, rs, _ = db.Message(ctx, b.ID, "m2")
	if rs[0].NextAttempt.Before(later) {
		t.Errorf("another tenant's recipient woken")
	}
	jobs, err := db.ClaimDue(ctx, "n1", now, now.Add(time.Minute), 10)
	if err != nil || len(jobs) != 1 || len(jobs[0].Recipients) != 1 || jobs[0].Recipients[0].Addr != "u1@Wake.test" {
		t.Fatalf("claim after wake: %+v %v", jobs, err)
	}
}

// testContinuityEvents: events per tenant and domain, newest first, paged,
// purged by age.
func testContinuityEvents(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	t0 := time.UnixMicro(1_700_000_000_000_001).UTC()
	for i, e := range []store.ContinuityEvent{
		{TenantID: a.ID, Domain: "a.test", At: t0, Kind: "probe_failed", Detail: "connect refused"},
		{TenantID: a.ID, Domain: "a.test", At: t0.Add(time.Minute), Kind: "switch", Actor: "failover", Detail: "primary → emergency"},
		{TenantID: a.ID, Domain: "a2.test", At: t0.Add(2 * time.Minute), Kind: "switch", Actor: "it@a.test"},
		{TenantID: b.ID, Domain: "b.test", At: t0.Add(3 * time.Minute), Kind: "switch"},
	} {
		if err := db.AddContinuityEvent(ctx, e); err != nil {
			t.Fatal(i, err)
		}
	}
	es, err := db.ContinuityEvents(ctx, store.ContinuityEventFilter{TenantID: a.ID})
	if err != nil || len(es) != 3 || es[0].Domain != "a2.test" || es[2].Kind != "probe_failed" || !es[2].At.Equal(t0) || es[2].Detail != "connect refused" {
		t.Fatalf("events of a: %+v %v", es, err)
	}
	es, _ = db.ContinuityEvents(ctx, store.ContinuityEventFilter{TenantID: a.ID, Domain: "a.test", Limit: 1})
	if len(es) != 1 || es[0].Kind != "switch" || es[0].Actor != "failover" {
		t.Fatalf("newest of a.test: %+v", es)
	}
	es, _ = db.ContinuityEvents(ctx, store.ContinuityEventFilter{TenantID: a.ID, Domain: "a.test", BeforeID: es[0].ID})
	if len(es) != 1 || es[0].Kind != "probe_failed" {
		t.Fatalf("next page: %+v", es)
	}
	n, err := db.PurgeContinuityEvents(ctx, t0.Add(90*time.Second))
	if err != nil || n != 2 {
		t.Fatalf("purged %d %v, want 2", n, err)
	}
	if es, _ := db.ContinuityEvents(ctx, store.ContinuityEventFilter{TenantID: b.ID}); len(es) != 1 {
		t.Fatalf("b's events: %+v", es)
	}
}

// testHandback: the hand-back state machine. Items are recorded once,
// claimed with a lease by one node at a time, fenced by their attempt
// count, retried after a lost lease, and a job finishes only when its
// search is complete and no item is pending.
func testHandback(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	now := time.UnixMicro(1_700_000_000_000_000).UTC()
	j, err := db.CreateHandbackJob(ctx, store.HandbackJob{TenantID: a.ID, Domain: "a.test", Path: "smtp", Created: now, CreatedBy: "it@a.test"})
	if err != nil || j.ID == 0 || j.State != store.HandbackRunning {
		t.Fatalf("job: %+v %v", j, err)
	}
	jb, _ := db.CreateHandbackJob(ctx, store.HandbackJob{TenantID: b.ID, Domain: "b.test", Path: "gmail", Created: now})
	var items []store.HandbackItem
	for i := int64(1); i <= 5; i++ {
		items = append(items, store.HandbackItem{TenantID: a.ID, ItemID: i, JobID: j.ID, Domain: "a.test", User: "u@a.test", Sent: i == 5, NextTry: now, Updated: now})
	}
	if done, err := db.AddHandbackItems(ctx, items); err != nil || len(done) != 0 {
		t.Fatalf("add: %v %v", done, err)
	}
	// Adding again changes nothing.
	if done, err := db.AddHandbackItems(ctx, items[:2]); err != nil || len(done) != 0 {
		t.Fatalf("add again: %v %v", done, err)
	}
	if _, err := db.AddHandbackItems(ctx, []store.HandbackItem{{TenantID: b.ID, ItemID: 1, JobID: jb.ID, Domain: "b.test", User: "x@b.test", NextTry: now, Updated: now}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AdvanceHandbackJob(ctx, a.ID, j.ID, 5, false); err != nil {
		t.Fatal(err)
	}
	if err := db.AdvanceHandbackJob(ctx, b.ID, j.ID, 5, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("advance another tenant's job: %v", err)
	}
	// Two nodes claim at once: every item goes to exactly one.
	var wg sync.WaitGroup
	claimed := make([][]store.HandbackItem, 2)
	for n := range claimed {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			c, err := db.ClaimHandbackItems(ctx, []string{"n1", "n2"}[n], now, now.Add(time.Minute), 4)
			if err != nil {
				t.Error(err)
			}
			claimed[n] = c
		}(n)
	}
	wg.Wait()
	seen := map[[2]int64]string{}
	for n, c := range claimed {
		for _, it := range c {
			k := [2]int64{it.TenantID, it.ItemID}
			if seen[k] != "" {
				t.Fatalf("item %v claimed twice", k)
			}
			seen[k] = []string{"n1", "n2"}[n]
			if it.Attempts != 1 || it.LeaseOwner != seen[k] {
				t.Fatalf("claimed item: %+v", it)
			}
		}
	}
	if len(seen) != 6 {
		t.Fatalf("%d items claimed, want 6", len(seen))
	}
	if more, _ := db.ClaimHandbackItems(ctx, "n3", now, now.Add(time.Minute), 10); len(more) != 0 {
		t.Fatalf("leased items claimed again: %+v", more)
	}
	var mine []store.HandbackItem
	for _, c := range claimed {
		for _, it := range c {
			if it.TenantID == a.ID {
				mine = append(mine, it)
			}
		}
	}
	finish := func(it store.HandbackItem, state, how string, next time.Time) bool {
		t.Helper()
		it.State, it.How, it.NextTry, it.Updated = state, how, next, now
		if state == store.HandbackPending {
			it.LastError = "451 try later"
		}
		ok, err := db.FinishHandbackItem(ctx, it, it.LeaseOwner)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	byID := map[int64]store.HandbackItem{}
	for _, it := range mine {
		byID[it.ItemID] = it
	}
	// A stale fence is refused.
	stale := byID[1]
	stale.Attempts = 0
	if finish(stale, store.HandbackDone, "x", now) {
		t.Fatal("finish with a stale attempt count")
	}
	wrongOwner := byID[1]
	wrongOwner.LeaseOwner = "n9"
	if finish(wrongOwner, store.HandbackDone, "x", now) {
		t.Fatal("finish by a node without the lease")
	}
	if !finish(byID[1], store.HandbackDone, "smtp 250 ok", now) || !finish(byID[2], store.HandbackFailed, "smtp 550", now) ||
		!finish(byID[3], store.HandbackPending, "", now.Add(time.Hour)) || !finish(byID[5], store.HandbackSkipped, "", now) {
		t.Fatal("finish refused")
	}
	if finish(byID[1], store.HandbackDone, "again", now) {
		t.Fatal("an item finished twice")
	}
	// Item 4's lease is lost (its node died): after expiry another node
	// claims it, with the next attempt count; the first node's late
	// outcome is refused.
	later := now.Add(2 * time.Minute)
	again, err := db.ClaimHandbackItems(ctx, "n3", later, later.Add(time.Minute), 10)
	if err != nil || len(again) != 2 { // item 4 of a, item 1 of b
		t.Fatalf("reclaim: %+v %v", again, err)
	}
	var it4 store.HandbackItem
	for _, it := range again {
		if it.TenantID == a.ID {
			it4 = it
		} else if !finish(it, store.HandbackDone, "gmail 200", later) {
			t.Fatal("finish of b's item refused")
		}
	}
	if it4.ItemID != 4 || it4.Attempts != 2 || it4.LeaseOwner != "n3" {
		t.Fatalf("reclaimed item: %+v", it4)
	}
	if finish(byID[4], store.HandbackDone, "late", now) {
		t.Fatal("the first claim's late outcome was recorded")
	}
	if !finish(it4, store.HandbackDone, "graph 201", later) {
		t.Fatal("finish of the reclaimed item refused")
	}
	p, err := db.HandbackProgress(ctx, a.ID, j.ID)
	if err != nil || p != (store.HandbackCounts{Pending: 1, Tried: 1, Done: 2, Failed: 1, Skipped: 1}) || p.Total() != 5 {
		t.Fatalf("progress: %+v %v", p, err)
	}
	// The job is not finished while its search has not reached the end,
	// nor while an item is pending.
	if ok, _ := db.FinishHandbackJob(ctx, a.ID, j.ID, later); ok {
		t.Fatal("job finished before its search ended")
	}
	if err := db.AdvanceHandbackJob(ctx, a.ID, j.ID, 3, true); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.FinishHandbackJob(ctx, a.ID, j.ID, later); ok {
		t.Fatal("job finished with a pending item")
	}
	it3 := byID[3]
	got, _ := db.ClaimHandbackItems(ctx, "n1", now.Add(2*time.Hour), now.Add(3*time.Hour), 10)
	if len(got) != 1 || got[0].ItemID != 3 || got[0].Attempts != 2 {
		t.Fatalf("deferred item: %+v (was %+v)", got, it3)
	}
	if !finish(got[0], store.HandbackDone, "smtp 250", now) {
		t.Fatal("finish refused")
	}
	if ok, err := db.FinishHandbackJob(ctx, a.ID, j.ID, later); !ok || err != nil {
		t.Fatalf("finish job: %v %v", ok, err)
	}
	jobs, _ := db.HandbackJobs(ctx, a.ID, false)
	if len(jobs) != 1 || jobs[0].State != store.HandbackDone || jobs[0].Cursor != 5 || !jobs[0].Scanned || !jobs[0].Finished.Equal(later) || jobs[0].CreatedBy != "it@a.test" {
		t.Fatalf("jobs: %+v", jobs)
	}
	if running, _ := db.HandbackJobs(ctx, 0, true); len(running) != 1 || running[0].ID != jb.ID {
		t.Fatalf("running jobs: %+v", running)
	}
	// Items of a done job are not claimed; recording them again reports
	// those already handed back.
	if done, _ := db.AddHandbackItems(ctx, items); len(done) != 3 {
		t.Fatalf("already done: %v", done)
	}
	// Retry makes failed and skipped items pending and the job running.
	n, err := db.RetryHandbackItems(ctx, a.ID, "a.test", later)
	if err != nil || n != 2 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if running, _ := db.HandbackJobs(ctx, a.ID, true); len(running) != 1 {
		t.Fatalf("job not running again: %+v", running)
	}
	list, _ := db.HandbackItems(ctx, a.ID, j.ID, store.HandbackPending, 0)
	if len(list) != 2 || list[0].ItemID != 2 || list[1].ItemID != 5 || !list[1].Sent || list[0].User != "u@a.test" {
		t.Fatalf("pending items: %+v", list)
	}
	// A node's leases are released at its start.
	if c, _ := db.ClaimHandbackItems(ctx, "n1", later, later.Add(time.Hour), 10); len(c) != 2 {
		t.Fatalf("claim: %+v", c)
	}
	if n, err := db.ReleaseHandbackLeases(ctx, "n1"); err != nil || n != 2 {
		t.Fatalf("release: %d %v", n, err)
	}
	if c, _ := db.ClaimHandbackItems(ctx, "n2", later, later.Add(time.Hour), 10); len(c) != 2 || c[0].Attempts != 3 {
		t.Fatalf("claim after release: %+v", c)
	}
	// Deleting the tenant deletes its jobs and items.
	if err := db.DeleteTenant(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if jobs, _ := db.HandbackJobs(ctx, a.ID, false); len(jobs) != 0 {
		t.Fatalf("jobs of a deleted tenant: %+v", jobs)
	}
}

// testContinuitySecrets: sealed credentials per tenant and provider.
func testContinuitySecrets(t *testing.T, open Opener) {
	db := open(t)
	ctx := context.Background()
	a, _ := db.CreateTenant(ctx, "a")
	b, _ := db.CreateTenant(ctx, "b")
	at := time.UnixMicro(1_700_000_000_000_000).UTC()
	if _, _, err := db.ContinuitySecret(ctx, a.ID, "graph"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("none yet: %v", err)
	}
	blob := []byte{0, 1, 2, 0xff, 0}
	if err := db.SetContinuitySecret(ctx, a.ID, "graph", blob, at); err != nil {
		t.Fatal(err)
	}
	if err := db.SetContinuitySecret(ctx, a.ID, "graph", append(blob, 7), at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	v, when, err := db.ContinuitySecret(ctx, a.ID, "graph")
	if err != nil || string(v) != string(append(blob, 7)) || !when.Equal(at.Add(time.Second)) {
		t.Fatalf("secret: %x %v %v", v, when, err)
	}
	if _, _, err := db.ContinuitySecret(ctx, b.ID, "graph"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's secret: %v", err)
	}
	if err := db.SetContinuitySecret(ctx, a.ID, "graph", nil, at); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.ContinuitySecret(ctx, a.ID, "graph"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted secret: %v", err)
	}
}
