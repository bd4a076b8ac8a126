package sqlite

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// BenchmarkAcceptAndComplete is the store's share of relaying one message,
// as the SMTP sessions and delivery workers of a busy relay make it: the
// acceptance (message, recipient, events) and the delivery's outcome, from
// 16 goroutines at once, so group commits hold a few of each. cpu-us/op is
// the process's CPU time per message, whatever the group commits' sizes.
func BenchmarkAcceptAndComplete(b *testing.B) {
	ctx := context.Background()
	db, ten := openBench(b)
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.SetParallelism(8) // 16 goroutines on 2 cores
	start := cpu()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			m := store.Message{ID: store.NewMessageID(now), TenantID: ten.ID, Direction: store.Outbound, MailFrom: "sender@example.test",
				Size: 12000, BlobKey: "node/" + store.NewMessageID(now), ReceivedAt: now, ClientIP: "192.0.2.1", Helo: "client.example.test",
				MessageID: "<abc@example.test>", Subject: "quarterly figures"}
			rs := []store.Recipient{{Addr: "someone@example.net", State: store.Queued, NextAttempt: now, LeaseOwner: "node", LeaseUntil: now.Add(time.Minute)}}
			evs := []store.Event{{MessageID: m.ID, TenantID: ten.ID, At: now, Kind: "received", Remote: "192.0.2.1"},
				{MessageID: m.ID, TenantID: ten.ID, At: now, Kind: "verdict", Detail: "clean"}}
			out, err := db.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m, Recipients: rs, Events: evs}}})
			if err != nil {
				b.Error(err)
				return
			}
			r := out[0][0]
			if _, err := db.Complete(ctx, store.Completion{TenantID: ten.ID, MessageID: m.ID,
				Updates: []store.RecipientUpdate{{ID: r.ID, LeaseToken: r.LeaseToken, State: store.Delivered, LastCode: 250, LastReply: "250 ok", CountAttempt: true}},
				Events:  []store.Event{{MessageID: m.ID, TenantID: ten.ID, At: now, Kind: "delivered", Rcpt: r.Addr, Detail: "250 ok"}}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpu()-start).Microseconds())/float64(b.N), "cpu-us/op")
}

// openBench opens a fresh store with one tenant for a benchmark.
func openBench(b *testing.B) (*DB, store.Tenant) {
	b.Helper()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "b.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ten, err := db.CreateTenant(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return db, ten
}
