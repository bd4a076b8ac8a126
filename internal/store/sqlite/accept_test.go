package sqlite

import (
	"context"
	"database/sql"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// TestAcceptanceGoesBeforeWaitingWrites: an acceptance (the answer an SMTP
// client waits for) is committed before the other writes already waiting
// for the writer, and a batch of those writes that is running stops
// taking more once an acceptance waits.
func TestAcceptanceGoesBeforeWaitingWrites(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	tn, err := db.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// The writer is busy with a write that waits for release.
	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		db.write(ctx, func(*sql.Tx) error { close(started); <-release; return nil })
	}()
	<-started
	// Deliveries' writes queue up behind it; each looks whether the
	// acceptance is already in.
	const waiting = 5
	saw := make([]int, waiting)
	m := store.Message{ID: store.NewMessageID(time.Now()), TenantID: tn.ID, Direction: store.Inbound, MailFrom: "a@example.net",
		BlobKey: "k", ReceivedAt: time.Now(), ClientIP: "127.0.0.1"}
	for i := range waiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.write(ctx, func(tx *sql.Tx) error {
				return tx.QueryRow(`SELECT count(*) FROM messages WHERE id = ?`, m.ID).Scan(&saw[i])
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	for len(db.ops) < waiting {
		runtime.Gosched()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := db.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m,
			Recipients: []store.Recipient{{Addr: "b@example.test", State: store.Queued, NextAttempt: time.Now()}}}}}); err != nil {
			t.Error(err)
		}
	}()
	for len(db.accepts) < 1 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	for i, n := range saw {
		if n != 1 {
			t.Errorf("write %d waiting before the acceptance ran before it", i)
		}
	}
}
