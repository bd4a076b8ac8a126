package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

// Three nodes on one PostgreSQL database run the scheduled quarantine
// jobs at the same moments, several times over: each digest is sent
// exactly once, and each expired copy is deleted (and logged) once.
func TestScheduledJobsOnceAcrossNodes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t, migrated)
	clk := clock.NewFake(time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC))
	var nodes []*app.App
	var jobs []*app.Lifecycle
	for i := range 3 {
		cfg := clusterConfig(t, dsn)
		cfg.NodeID, cfg.HTTP.ReportZone = fmt.Sprintf("node-%d", i), "UTC"
		a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		l, err := a.NewLifecycle(ctx, app.LifecycleOptions{BaseURL: "https://mx.example.test", Zone: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		nodes, jobs = append(nodes, a), append(jobs, l)
	}
	st := nodes[0].Store
	tn, err := st.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetSetting(ctx, store.Setting{TenantID: tn.ID, Scope: store.ScopeTenant, Key: quarantine.KeyAdminDigest, Value: "boss@example.test"}); err != nil {
		t.Fatal(err)
	}
	users := []string{"alice@example.test", "bob@example.test", "carol@example.test"}
	seq := 0
	hold := func(rcpt string, expires time.Time) store.QuarantineItem {
		t.Helper()
		seq++
		now := clk.Now()
		it := store.QuarantineItem{ID: fmt.Sprintf("q%02d", seq), TenantID: tn.ID, Rcpt: rcpt, MessageID: fmt.Sprintf("m%02d", seq), BlobKey: fmt.Sprintf("q%02d", seq),
			MailFrom: "spam@sender.test", Subject: "offer", Size: 100, Score: 12, Reasons: "quarantine [SPAM(12)]", Created: now, Expires: expires, State: store.QHeld}
		if err := st.AddQuarantine(ctx, it, store.Event{MessageID: it.MessageID, TenantID: tn.ID, At: now, Kind: "quarantined", Rcpt: rcpt}); err != nil {
			t.Fatal(err)
		}
		return it
	}
	var expiring []store.QuarantineItem
	for _, u := range users {
		hold(u, clk.Now().Add(7*24*time.Hour))
		expiring = append(expiring, hold(u, clk.Now().Add(30*time.Minute)))
	}
	// All three nodes at once, three times over, at each moment.
	runAll := func() {
		for range 3 {
			var wg sync.WaitGroup
			for _, l := range jobs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := l.Tick(ctx); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
		}
	}
	digests := func() map[string]int {
		t.Helper()
		q, err := st.ListQueue(ctx, store.QueueFilter{TenantID: tn.ID, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, e := range q {
			if e.Message.Subject == "quarantine digest" {
				for _, r := range e.Recipients {
					out[r.Addr]++
				}
			}
		}
		return out
	}
	clk.Set(time.Date(2026, 11, 20, 9, 3, 0, 0, time.UTC))
	runAll()
	want := map[string]int{"alice@example.test": 1, "bob@example.test": 1, "carol@example.test": 1, "boss@example.test": 1}
	if got := digests(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("digests at 9:03: %v, want %v", got, want)
	}
	for _, it := range expiring {
		got, err := st.QuarantineItem(ctx, tn.ID, it.ID)
		if err != nil || got.State != store.QDeleted {
			t.Fatalf("expired copy %s: %+v %v", it.ID, got, err)
		}
		evs, _ := st.Events(ctx, tn.ID, it.MessageID)
		n := 0
		for _, e := range evs {
			if e.Kind == "quarantine-expired" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("copy %s: %d expiry events, want 1", it.ID, n)
		}
	}

	// The next slot: new copies, one more digest each.
	clk.Set(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	for _, u := range users {
		hold(u, clk.Now().Add(7*24*time.Hour))
	}
	clk.Set(time.Date(2026, 11, 20, 17, 1, 0, 0, time.UTC))
	runAll()
	for k := range want {
		want[k] = 2
	}
	if got := digests(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("digests at 17:01: %v, want %v", got, want)
	}
}
