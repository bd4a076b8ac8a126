package quarantine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/store"
)

// fakeStore implements the part of store.Store this package uses; any
// other method panics (nil embedded interface), which shows a test that
// the code reached for something unexpected.
type fakeStore struct {
	store.Store
	mu       sync.Mutex
	items    map[string]*store.QuarantineItem
	events   []store.Event
	marks    map[string]time.Time
	audit    []store.AuditEntry
	entries  []store.ListEntry
	settings []store.Setting
	groups   []store.Group
}

func newFakeStore() *fakeStore {
	return &fakeStore{items: map[string]*store.QuarantineItem{}, marks: map[string]time.Time{}}
}

func (f *fakeStore) add(it store.QuarantineItem) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items[it.ID] = &it
}

func (f *fakeStore) QuarantineItem(_ context.Context, tenantID int64, id string) (store.QuarantineItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.items[id]
	if !ok || it.TenantID != tenantID {
		return store.QuarantineItem{}, fmt.Errorf("item %s: %w", id, store.ErrNotFound)
	}
	return *it, nil
}

func (f *fakeStore) SetQuarantineState(_ context.Context, tenantID int64, id string, from, to store.QuarantineState, ev store.Event) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.items[id]
	if !ok || it.TenantID != tenantID || it.State != from {
		return false, nil
	}
	it.State = to
	f.events = append(f.events, ev)
	return true, nil
}

func (f *fakeStore) ExpiredQuarantine(_ context.Context, now time.Time, limit int) ([]store.QuarantineItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.QuarantineItem
	for _, it := range f.sorted() {
		if it.State == store.QHeld && it.Expires.Before(now) && len(out) < limit {
			out = append(out, it)
		}
	}
	return out, nil
}

func (f *fakeStore) sorted() []store.QuarantineItem {
	var out []store.QuarantineItem
	for _, it := range f.items {
		out = append(out, *it)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (f *fakeStore) QuarantineUsage(_ context.Context, tenantID int64, rcpt string) (int64, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	c := 0
	for _, it := range f.items {
		if it.TenantID == tenantID && strings.EqualFold(it.Rcpt, rcpt) && it.State == store.QHeld {
			n += it.Size
			c++
		}
	}
	return n, c, nil
}

func (f *fakeStore) QuarantineRecipients(_ context.Context, since time.Time) ([]store.QuarantineOwner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[store.QuarantineOwner]bool{}
	var out []store.QuarantineOwner
	for _, it := range f.sorted() {
		o := store.QuarantineOwner{TenantID: it.TenantID, Rcpt: it.Rcpt}
		if it.State == store.QHeld && it.Created.After(since) && !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out, nil
}

func (f *fakeStore) SearchQuarantine(_ context.Context, q store.QuarantineFilter) ([]store.QuarantineItem, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.QuarantineItem
	for _, it := range f.sorted() {
		if it.TenantID != q.TenantID || q.Rcpt != "" && !strings.EqualFold(it.Rcpt, q.Rcpt) || q.State != "" && it.State != q.State {
			continue
		}
		if !q.From.IsZero() && it.Created.Before(q.From) || !q.To.IsZero() && !it.Created.Before(q.To) {
			continue
		}
		out = append(out, it)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	total := len(out)
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, total, nil
}

func (f *fakeStore) Mark(_ context.Context, tenantID int64, key string) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.marks[fmt.Sprint(tenantID, key)], nil
}

func (f *fakeStore) SetMark(_ context.Context, tenantID int64, key string, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.marks[fmt.Sprint(tenantID, key)] = at
	return nil
}

func (f *fakeStore) ClaimMark(_ context.Context, tenantID int64, key string, old, at time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fmt.Sprint(tenantID, key)
	if !f.marks[k].Equal(old) {
		return false, nil
	}
	f.marks[k] = at
	return true, nil
}

func (f *fakeStore) AddAudit(_ context.Context, a store.AuditEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit = append(f.audit, a)
	return nil
}

func (f *fakeStore) ListEntries(_ context.Context, tenantID int64) ([]store.ListEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.ListEntry
	for _, e := range f.entries {
		if e.TenantID == tenantID {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *fakeStore) AddListEntry(_ context.Context, e store.ListEntry) (store.ListEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e.ID = int64(len(f.entries) + 1)
	f.entries = append(f.entries, e)
	return e, nil
}

func (f *fakeStore) Settings(_ context.Context, tenantID int64) ([]store.Setting, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Setting
	for _, s := range f.settings {
		if s.TenantID == tenantID {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeStore) Groups(context.Context, int64) ([]store.Group, error) { return f.groups, nil }

// sent is one message given to the fake queue.
type sent struct {
	m     store.Message
	rcpts []string
	body  string
}

type fakeQueue struct {
	mu   sync.Mutex
	msgs []sent
	fail error
}

func (q *fakeQueue) Submit(_ context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail != nil {
		return "", q.fail
	}
	q.msgs = append(q.msgs, sent{m: m, rcpts: rcpts, body: string(b)})
	return fmt.Sprintf("q%d", len(q.msgs)), nil
}

func (q *fakeQueue) all() []sent {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]sent(nil), q.msgs...)
}

type fixture struct {
	st    *fakeStore
	q     *fakeQueue
	clk   *clock.Fake
	blobs blob.Store
	m     *Manager
}

var t0 = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	sp, err := local.Open(t.TempDir(), "node1", 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	f := &fixture{st: newFakeStore(), q: &fakeQueue{}, clk: clock.NewFake(t0), blobs: sp}
	f.m = &Manager{Store: f.st, Blobs: sp, Queue: f.q, Clock: f.clk, Hostname: "mx.mailgate.test",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return f
}

// hold stores a held copy with body raw, created now, kept days.
func (f *fixture) hold(t *testing.T, tenant int64, rcpt, raw string, size int64, days int) store.QuarantineItem {
	t.Helper()
	now := f.clk.Now()
	id := store.NewMessageID(now)
	w, err := f.blobs.Create(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, raw)
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if size == 0 {
		size = w.Size()
	}
	it := store.QuarantineItem{ID: id, TenantID: tenant, Rcpt: rcpt, MessageID: "m-" + id, BlobKey: w.Key(), MailFrom: "bounce@sender.test",
		Subject: "subject " + id, Size: size, Score: 12.5, Reasons: "quarantine [SPAM(12.5)]", Created: now,
		Expires: now.Add(time.Duration(days) * 24 * time.Hour), State: store.QHeld}
	f.st.add(it)
	return it
}
