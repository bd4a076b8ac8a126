package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	db, tn := openWithTenant(t)
	ctx := context.Background()
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
	m := testMessage(tn, store.Inbound, "")
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

// TestGroupCommitWritesTrackingIndexOnce: the acceptances sharing a group
// commit write their tracking-search rows as one FTS5 index segment, not
// one per acceptance (each op's savepoint would otherwise flush FTS5's
// pending rows), and an acceptance that fails inside the batch leaves no
// search row behind, while the others are found.
func TestGroupCommitWritesTrackingIndexOnce(t *testing.T) {
	db, tn := openWithTenant(t)
	ctx := context.Background()
	dup := testMessage(tn, store.Outbound, "first of its id")
	if _, err := db.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: dup}}}); err != nil {
		t.Fatal(err)
	}
	// The FTS5 data rows of index segments have rowids with the segment
	// number above bit 37 (rowid 1 and 10 are the averages and the
	// structure record).
	segments := func() map[int64]bool {
		t.Helper()
		rows, err := db.r.Query(`SELECT id >> 37 FROM track_fts_data WHERE id >> 37 > 0`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[int64]bool{}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out[id] = true
		}
		return out
	}
	before := segments()
	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		db.write(ctx, func(*sql.Tx) error { close(started); <-release; return nil })
	}()
	<-started
	const n = 40
	for i := range n {
		m := testMessage(tn, store.Outbound, fmt.Sprintf("quarterly figures %03d", i))
		want := error(nil)
		if i == n/2 {
			// Same ID as a committed message: this acceptance fails.
			m.ID, m.Subject = dup.ID, "refusedduplicate"
			want = errors.New("unique")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m,
				Recipients: []store.Recipient{{Addr: "b@example.test", State: store.Queued, NextAttempt: time.Now()}}}}})
			if (err == nil) != (want == nil) {
				t.Errorf("acceptance %d: err %v", i, err)
			}
		}()
	}
	for len(db.accepts) < n {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	var added []int64
	for id := range segments() {
		if !before[id] {
			added = append(added, id)
		}
	}
	if len(added) != 1 {
		t.Errorf("%d acceptances in one commit left %d new FTS5 index segments, want 1", n, len(added))
	}
	count := func(match string) int {
		t.Helper()
		var c int
		if err := db.r.QueryRow(`SELECT count(*) FROM track_fts WHERE track_fts MATCH ?`, match).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := count(`subject:"quarterly figures"`); c != n-1 {
		t.Errorf("%d search rows for the %d accepted messages", c, n-1)
	}
	if c := count(`subject:"refusedduplicate"`); c != 0 {
		t.Errorf("the refused acceptance left %d search rows", c)
	}
}

// TestSmallCompletionSharesAcceptanceCommit: the outcome of an attempt
// for a few recipients waits with the acceptances and commits with them
// (one fsync for both); a large one waits with the other writes.
func TestSmallCompletionSharesAcceptanceCommit(t *testing.T) {
	db, tn := openWithTenant(t)
	ctx := context.Background()
	m := testMessage(tn, store.Outbound, "")
	var rcpts []store.Recipient
	for i := range smallCompletion + 2 {
		rcpts = append(rcpts, store.Recipient{Addr: fmt.Sprintf("r%d@example.test", i), State: store.Queued, NextAttempt: time.Now()})
	}
	out, err := db.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m, Recipients: rcpts}}})
	if err != nil {
		t.Fatal(err)
	}
	rs := out[0]
	update := func(r store.Recipient) store.RecipientUpdate {
		return store.RecipientUpdate{ID: r.ID, LeaseToken: r.LeaseToken, State: store.Delivered, LastCode: 250, CountAttempt: true}
	}
	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		db.write(ctx, func(*sql.Tx) error { close(started); <-release; return nil })
	}()
	<-started
	complete := func(us []store.RecipientUpdate) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.Complete(ctx, store.Completion{TenantID: tn.ID, MessageID: m.ID, Updates: us}); err != nil {
				t.Error(err)
			}
		}()
	}
	waiting := func(n int) {
		for len(db.accepts)+len(db.ops) < n {
			runtime.Gosched()
		}
	}
	complete([]store.RecipientUpdate{update(rs[0])})
	waiting(1)
	var large []store.RecipientUpdate
	for _, r := range rs[1:] {
		large = append(large, update(r))
	}
	complete(large)
	waiting(2)
	if len(db.accepts) != 1 || len(db.ops) != 1 {
		t.Errorf("waiting: %d with the acceptances, %d with the other writes; want the small completion with the acceptances", len(db.accepts), len(db.ops))
	}
	close(release)
	wg.Wait()
	_, got, err := db.Message(ctx, tn.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.State != store.Delivered {
			t.Errorf("%s: %s after both completions", r.Addr, r.State)
		}
	}
}

// openWithTenant opens a store with the tenant acme.
func openWithTenant(t *testing.T) (*DB, store.Tenant) {
	t.Helper()
	db := open(t)
	tn, err := db.CreateTenant(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	return db, tn
}

// testMessage is a message of tn received now, with a fresh ID.
func testMessage(tn store.Tenant, dir store.Direction, subject string) store.Message {
	return store.Message{ID: store.NewMessageID(time.Now()), TenantID: tn.ID, Direction: dir, MailFrom: "a@example.net",
		BlobKey: "k", ReceivedAt: time.Now(), ClientIP: "127.0.0.1", Subject: subject}
}
