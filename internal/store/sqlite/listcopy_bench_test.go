package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// BenchmarkListCopy is the store's share of a 1,000-member list post: the
// members' copy queued with its recipients, then their outcomes recorded.
func BenchmarkListCopy(b *testing.B) {
	ctx := context.Background()
	db, ten := openBench(b)
	var acc, comp time.Duration
	for i := 0; b.Loop(); i++ {
		now := time.Now()
		m := store.Message{ID: store.NewMessageID(now), TenantID: ten.ID, Direction: store.Outbound, MailFrom: "all-bounces@example.test",
			Size: 3000, BlobKey: fmt.Sprintf("k%d", i), ReceivedAt: now, ClientIP: "local", Subject: "post"}
		rs := make([]store.Recipient, 1000)
		for j := range rs {
			a := fmt.Sprintf("m%05d@d%02d.example.net", j, j%20)
			rs[j] = store.Recipient{Addr: a, ORcpt: "rfc822;" + a, Notify: "FAILURE", State: store.Queued, NextAttempt: now}
		}
		t0 := time.Now()
		out, err := db.Enqueue(ctx, m, rs, []store.Event{{MessageID: m.ID, TenantID: ten.ID, At: now, Kind: "received", Detail: "copy"}})
		if err != nil {
			b.Fatal(err)
		}
		acc += time.Since(t0)
		c := store.Completion{TenantID: ten.ID, MessageID: m.ID}
		for _, r := range out {
			c.Updates = append(c.Updates, store.RecipientUpdate{ID: r.ID, LeaseToken: r.LeaseToken, State: store.Delivered, LastCode: 250, LastReply: "250 ok"})
			c.Events = append(c.Events, store.Event{MessageID: m.ID, TenantID: ten.ID, At: now, Kind: "delivered", Rcpt: r.Addr, Detail: "250 ok"})
		}
		t0 = time.Now()
		if _, err := db.Complete(ctx, c); err != nil {
			b.Fatal(err)
		}
		comp += time.Since(t0)
	}
	b.ReportMetric(float64(acc.Milliseconds())/float64(b.N), "enqueue-ms/op")
	b.ReportMetric(float64(comp.Milliseconds())/float64(b.N), "complete-ms/op")
}
