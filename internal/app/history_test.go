package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// historyStore records RecordSender calls; the first fails calls fail.
type historyStore struct {
	store.Store
	mu      sync.Mutex
	fail    int
	written []string
}

func (s *historyStore) RecordSender(_ context.Context, _ int64, sender string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("database is locked")
	}
	s.written = append(s.written, sender)
	return nil
}

func (s *historyStore) SeenSender(context.Context, int64, string) (bool, error) { return false, nil }

func (s *historyStore) got() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := append([]string(nil), s.written...)
	sort.Strings(w)
	return strings.Join(w, ",")
}

func TestSenderHistoryKeepsWhatAFailedWriteLeft(t *testing.T) {
	t.Parallel()
	st := &historyStore{fail: 1}
	h := newAsyncHistory(st, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	ctx := context.Background()
	for _, s := range []string{"a@x.test", "b@x.test", "c@x.test"} {
		h.RecordSender(ctx, 1, s)
	}
	if err := h.flush(ctx); err == nil {
		t.Fatal("a failed write was not reported")
	}
	// Nothing was dropped: every sender not written is still known...
	for _, s := range []string{"a@x.test", "b@x.test", "c@x.test"} {
		if strings.Contains(st.got(), s) {
			continue // written before or beside the failure
		}
		if seen, _ := h.SeenSender(ctx, 1, s); !seen {
			t.Fatalf("%s forgotten after a failed write (written: %s)", s, st.got())
		}
	}
	// ...and written at the next round.
	if err := h.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := st.got(); got != "a@x.test,b@x.test,c@x.test" {
		t.Fatalf("written %s", got)
	}
}

func TestSenderHistoryWrittenAtStop(t *testing.T) {
	t.Parallel()
	st := &historyStore{}
	h := newAsyncHistory(st, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	go h.run(time.Hour) // no tick during the test: only Stop writes
	h.RecordSender(context.Background(), 1, "late@x.test")
	h.Stop()
	if got := st.got(); got != "late@x.test" {
		t.Fatalf("written at stop: %q", got)
	}
	h.Stop() // a second Stop returns at once
}

// overlapStore's RecordSender waits for the others of its round, so it
// sees whether a flush writes its records together (sharing one group
// commit) or one after another.
type overlapStore struct {
	store.Store
	want     int
	mu       sync.Mutex
	inflight int
	all      chan struct{}
	together bool
}

func (s *overlapStore) RecordSender(context.Context, int64, string, time.Time) error {
	s.mu.Lock()
	s.inflight++
	if s.inflight == s.want {
		s.together = true
		close(s.all)
	}
	s.mu.Unlock()
	select {
	case <-s.all:
	case <-time.After(10 * time.Second): // one at a time: the others never come
	}
	s.mu.Lock()
	s.inflight--
	s.mu.Unlock()
	return nil
}

func TestSenderHistoryRoundIsWrittenTogether(t *testing.T) {
	t.Parallel()
	st := &overlapStore{want: 3, all: make(chan struct{})}
	h := newAsyncHistory(st, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	ctx := context.Background()
	for _, s := range []string{"a@x.test", "b@x.test", "c@x.test"} {
		h.RecordSender(ctx, 1, s)
	}
	if err := h.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !st.together {
		t.Fatal("a round's records were written one after another, each its own commit")
	}
}

// seenStore answers SeenSender from a set of tenant 1's senders and counts
// the reads.
type seenStore struct {
	store.Store
	mu    sync.Mutex
	known map[string]bool
	reads int
}

func (s *seenStore) SeenSender(_ context.Context, tenantID int64, sender string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	return tenantID == 1 && s.known[sender], nil
}

// A sender the store confirmed is not read again; one it did not know is
// asked again, as it may have been recorded since (by another node).
func TestSenderHistoryRemembersConfirmedSenders(t *testing.T) {
	t.Parallel()
	st := &seenStore{known: map[string]bool{"old@x.test": true}}
	h := newAsyncHistory(st, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if ok, err := h.SeenSender(ctx, 1, "old@x.test"); !ok || err != nil {
			t.Fatalf("known sender: %v %v", ok, err)
		}
		if ok, _ := h.SeenSender(ctx, 1, "new@x.test"); ok {
			t.Fatal("unknown sender reported seen")
		}
	}
	if st.reads != 4 {
		t.Fatalf("%d store reads, want 4 (1 for the confirmed sender, 3 for the unknown one)", st.reads)
	}
	st.known["new@x.test"] = true // recorded by another node
	if ok, _ := h.SeenSender(ctx, 1, "new@x.test"); !ok {
		t.Fatal("a sender recorded meanwhile is still reported new")
	}
	if ok, _ := h.SeenSender(ctx, 2, "old@x.test"); ok {
		t.Fatal("another tenant's sender reported seen")
	}
}
