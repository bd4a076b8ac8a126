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

// TestTrackingIndexedInBatches: acceptances write no tracking-search
// document of their own; the tracking indexer adds the documents of many
// acceptances as one FTS5 index segment. Before it has, the search finds
// the messages all the same (by every plan), and an acceptance that failed
// leaves nothing to find.
func TestTrackingIndexedInBatches(t *testing.T) {
	db, tn := openWithTenant(t)
	ctx := context.Background()
	dup := testMessage(tn, store.Outbound, "first of its id")
	if _, err := db.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: dup}}}); err != nil {
		t.Fatal(err)
	}
	waitTracked(t, db)
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
	count := func(match string) int {
		t.Helper()
		var c int
		if err := db.r.QueryRow(`SELECT count(*) FROM track_fts WHERE track_fts MATCH ?`, match).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	found := func(capN, probeN int) int {
		t.Helper()
		rows, err := db.search(ctx, store.TrackFilter{TenantID: tn.ID, Subject: "quarterly figures", Limit: 500}, capN, probeN)
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	before := segments()
	db.trackPaused.Store(true)
	const n = 40
	var wg sync.WaitGroup
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
	wg.Wait()
	if c := count(`subject:"quarterly figures"`); c != 0 {
		t.Errorf("%d documents written by the acceptances themselves", c)
	}
	for _, plan := range [][2]int{{candidateCap, 0}, {candidateCap, probeRows}, {0, 0}} {
		if got := found(plan[0], plan[1]); got != n-1 {
			t.Errorf("before indexing, plan %v: found %d of the %d accepted messages", plan, got, n-1)
		}
	}
	db.trackPaused.Store(false)
	db.trackKick <- struct{}{}
	waitTracked(t, db)
	var added []int64
	for id := range segments() {
		if !before[id] {
			added = append(added, id)
		}
	}
	if len(added) != 1 {
		t.Errorf("%d acceptances indexed as %d new FTS5 segments, want 1", n-1, len(added))
	}
	if c := count(`subject:"quarterly figures"`); c != n-1 {
		t.Errorf("%d search documents for the %d accepted messages", c, n-1)
	}
	if c := count(`subject:"refusedduplicate"`); c != 0 {
		t.Errorf("the refused acceptance left %d search documents", c)
	}
	if got := found(candidateCap, 0); got != n-1 {
		t.Errorf("after indexing: found %d of the %d accepted messages", got, n-1)
	}
}

// waitTracked waits until the tracking indexer has reached every listed
// message.
func waitTracked(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var mark, top int64
		if err := db.r.QueryRow(`SELECT (SELECT seq FROM track_indexed), (SELECT coalesce(max(seq), 0) FROM track_ids)`).Scan(&mark, &top); err != nil {
			t.Fatal(err)
		}
		if mark == top {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracking index at %d of %d after 10s", mark, top)
		}
		time.Sleep(10 * time.Millisecond)
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
