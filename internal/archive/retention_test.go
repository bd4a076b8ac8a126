package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

const day = 24 * time.Hour

// plainMail is a short message to the given To header with a body that
// does not compress or deduplicate against the others (seeded).
func plainMail(to, cc, subject string, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 7))
	var b strings.Builder
	for i := 0; i < 1500; i++ {
		b.WriteByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[r.IntN(62)])
		if i%70 == 69 {
			b.WriteString("\r\n")
		}
	}
	h := "From: Partner <p@partner.example>\r\nTo: " + to + "\r\n"
	if cc != "" {
		h += "Cc: " + cc + "\r\n"
	}
	return h + "Subject: " + subject + "\r\nMessage-ID: <" + fmt.Sprint(seed) + "@partner.example>\r\n\r\n" + b.String() + "\r\n"
}

// entryByQueue maps queue IDs to their archive entries.
func (h *harness) entryByQueue() map[string]store.ArchiveEntry {
	out := map[string]store.ArchiveEntry{}
	for _, e := range h.entries() {
		if e.QueueID != "" {
			out[e.QueueID] = e
		}
	}
	return out
}

// deletions returns the archive IDs named by each logged deletion, and
// its reason.
func (h *harness) deletions() (ids [][]string, reasons []string) {
	for _, e := range h.entries() {
		if e.Kind != store.ArchiveKindDeletion {
			continue
		}
		var m struct {
			Reason string   `json:"reason"`
			IDs    []string `json:"ids"`
		}
		if err := json.Unmarshal([]byte(e.Meta), &m); err != nil {
			h.t.Fatalf("deletion entry meta %q: %v", e.Meta, err)
		}
		slices.Sort(m.IDs)
		ids, reasons = append(ids, m.IDs), append(reasons, m.Reason)
	}
	return ids, reasons
}

func (h *harness) hold(kind, value string) store.ArchiveHold {
	h.t.Helper()
	hd, err := h.st.AddArchiveHold(context.Background(), store.ArchiveHold{TenantID: h.tenant, Kind: kind, Value: value, Reason: "case 7", By: "auditor", Created: h.clock.Now()})
	if err != nil {
		h.t.Fatal(err)
	}
	return hd
}

// Retention deletes the bodies of messages older than the tenant's
// retention, logs the deletion naming each message, and spares what a
// legal hold protects: an address hold matches an envelope or header
// address exactly (any case), never an address that merely contains it;
// a query hold matches like a search. Lifting the hold lets retention
// delete them. The archive still verifies, and deleted messages leave
// the index.
func TestArchiveRetentionAndHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	settings := store.ArchiveSettings{Enabled: true, RetentionDays: 30}
	h := newHarness(t, settings)
	settings.TenantID = h.tenant

	envelope := h.accept(store.Inbound, plainMail("Team <team@example.co.jp>", "", "envelope only", 1), "keep@example.co.jp")
	header := h.accept(store.Inbound, plainMail("other@example.co.jp", `"Keep, Legal" <KEEP@Example.co.jp>`, "cc header", 2), "other@example.co.jp")
	lookalike := h.accept(store.Inbound, plainMail("mkeep@example.co.jp", "", "lookalike", 3), "mkeep@example.co.jp")
	longer := h.accept(store.Inbound, plainMail("keep@example.co.jp.evil.example", "", "longer domain", 4), "x@example.co.jp")
	contract := h.accept(store.Inbound, japaneseMail("契約書の件", "ご確認ください"), "yamada@example.co.jp")
	plain := h.accept(store.Inbound, plainMail("x@example.co.jp", "", "ordinary", 5), "x@example.co.jp")
	if n := h.run(); n != 6 {
		t.Fatalf("archived %d", n)
	}
	h.clock.Advance(20 * day)
	recent := h.accept(store.Inbound, plainMail("x@example.co.jp", "", "recent", 6), "x@example.co.jp")
	h.run()
	addrHold := h.hold("address", "Keep@Example.co.jp")
	h.hold("query", "subject:契約")

	// Nothing is 30 days old yet.
	if n, err := h.svc.Retain(ctx, settings); err != nil || n != 0 {
		t.Fatalf("retain at day 20: %d, %v", n, err)
	}
	h.clock.Advance(11 * day)
	n, err := h.svc.Retain(ctx, settings)
	if err != nil || n != 3 {
		t.Fatalf("retain at day 31: deleted %d, %v; want lookalike, longer and ordinary", n, err)
	}
	byQ := h.entryByQueue()
	for name, q := range map[string]string{"envelope": envelope, "cc header": header, "query": contract, "recent": recent} {
		if e := byQ[q]; !e.Deleted.IsZero() {
			t.Errorf("%s: deleted", name)
		} else if _, err := h.svc.ReadMessage(ctx, e); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	want := []string{byQ[lookalike].ID, byQ[longer].ID, byQ[plain].ID}
	slices.Sort(want)
	for _, q := range []string{lookalike, longer, plain} {
		if byQ[q].Deleted.IsZero() {
			t.Errorf("%s kept", byQ[q].Subject)
		}
	}
	ids, reasons := h.deletions()
	if len(ids) != 1 || !slices.Equal(ids[0], want) || reasons[0] != "retention: 30 days" {
		t.Fatalf("logged deletions %v %q, want %v", ids, reasons, want)
	}
	if r := h.verify(); len(r.Problems) != 0 {
		t.Fatalf("verify after retention: %+v", r.Problems)
	}
	if hits, err := h.svc.Search(ctx, h.tenant, mustQuery(t, "subject:ordinary"), Page{}); err != nil || hits.Total != 0 {
		t.Fatalf("deleted message still found: %+v, %v", hits, err)
	}

	// Lifting the address hold frees the two messages it protected.
	if err := h.st.DeleteArchiveHold(ctx, h.tenant, addrHold.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := h.svc.Retain(ctx, settings); err != nil || n != 2 {
		t.Fatalf("retain after lifting the hold: %d, %v", n, err)
	}
	byQ = h.entryByQueue()
	if byQ[envelope].Deleted.IsZero() || byQ[header].Deleted.IsZero() || !byQ[contract].Deleted.IsZero() || !byQ[recent].Deleted.IsZero() {
		t.Fatal("wrong messages deleted after lifting the address hold")
	}
	if r := h.verify(); len(r.Problems) != 0 {
		t.Fatalf("verify: %+v", r.Problems)
	}
}

func mustQuery(t *testing.T, s string) Query {
	t.Helper()
	q, err := ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// notices records the capacity notices sent.
type notices struct {
	mu   sync.Mutex
	subj []string
}

func (n *notices) notify(_ context.Context, _ int64, subject, _ string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.subj = append(n.subj, subject)
	return nil
}

func (n *notices) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subj)
}

// With "stop" at 100 %: administrators get the 70 % notice once a day
// from the first message that brings the archive to 70 %, a message that
// does not fit is not archived but logged as a gap (its spool copy is
// released: mail flows on), and the archive verifies.
func TestArchiveCapacityStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	var sent notices
	h.svc.Notify = sent.notify

	// The stored size of one message sets the capacity: about five and
	// a half messages.
	first := plainMail("x@example.co.jp", "", "m0", 100)
	h.accept(store.Inbound, first, "x@example.co.jp")
	h.run()
	u, err := h.st.ArchiveUsage(ctx, h.tenant)
	if err != nil || u.Bytes == 0 {
		t.Fatalf("usage %+v, %v", u, err)
	}
	size := int64(len(first))
	capacity := 5*u.Bytes + u.Bytes/2
	if err := h.st.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: h.tenant, Enabled: true, CapacityBytes: capacity, OnFull: store.ArchiveFullStop}); err != nil {
		t.Fatal(err)
	}
	noticed, gaps := false, 0
	for i := 1; i <= 8; i++ {
		// Past the usage cache's refresh, so the check sees what is stored.
		h.clock.Advance(usageRefresh + time.Second)
		before, err := h.st.ArchiveUsage(ctx, h.tenant)
		if err != nil {
			t.Fatal(err)
		}
		q := h.accept(store.Inbound, plainMail("x@example.co.jp", "", fmt.Sprint("m", i), uint64(100+i)), "x@example.co.jp")
		h.run()
		fits := before.Bytes+size <= capacity
		_, archived := h.entryByQueue()[q]
		if archived != fits {
			t.Fatalf("message %d (stored %d + %d of %d): archived %v", i, before.Bytes, size, capacity, archived)
		}
		if !fits {
			gaps++
		}
		reached := (before.Bytes+size)*100 >= capacity*NoticePercent
		if want := 0; reached {
			want = 1
			if got := sent.count(); got != want {
				t.Fatalf("message %d at %d%%: %d notices, want %d", i, (before.Bytes+size)*100/capacity, got, want)
			}
			noticed = true
		} else if sent.count() != 0 {
			t.Fatalf("message %d under 70%%: notice sent", i)
		}
	}
	if !noticed || gaps == 0 {
		t.Fatalf("the run never reached 70 %% (%v) or 100 %% (%d gaps)", noticed, gaps)
	}
	var logged int
	for _, e := range h.entries() {
		if e.Kind == store.ArchiveKindGap {
			logged++
			if !strings.Contains(e.Meta, "archive capacity full") {
				t.Fatalf("gap %q", e.Meta)
			}
		}
	}
	if logged != gaps {
		t.Fatalf("%d gaps logged, %d messages refused", logged, gaps)
	}
	if pu, _ := h.st.ArchiveUsage(ctx, h.tenant); pu.Pending != 0 {
		t.Fatalf("%d messages left pending", pu.Pending)
	}
	// A day later the notice is sent again, once.
	h.clock.Advance(day)
	h.accept(store.Inbound, plainMail("x@example.co.jp", "", "next day", 200), "x@example.co.jp")
	h.run()
	h.accept(store.Inbound, plainMail("x@example.co.jp", "", "next day 2", 201), "x@example.co.jp")
	h.run()
	if sent.count() != 2 {
		t.Fatalf("%d notices after a day, want 2", sent.count())
	}
	if r := h.verify(); len(r.Problems) != 0 {
		t.Fatalf("verify: %+v", r.Problems)
	}
}

// With "delete-oldest" at 100 %: the oldest day's messages are deleted
// (logged) to make room, except those under a legal hold, and the new
// message is archived.
func TestArchiveCapacityDeleteOldest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	first := plainMail("x@example.co.jp", "", "d0 a", 300)
	day0 := []string{h.accept(store.Inbound, first, "x@example.co.jp"),
		h.accept(store.Inbound, plainMail("keep@example.co.jp", "", "d0 held", 301), "keep@example.co.jp"),
		h.accept(store.Inbound, plainMail("x@example.co.jp", "", "d0 b", 302), "x@example.co.jp")}
	h.run()
	u, err := h.st.ArchiveUsage(ctx, h.tenant)
	if err != nil {
		t.Fatal(err)
	}
	per := u.Bytes / 3
	if err := h.st.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: h.tenant, Enabled: true, CapacityBytes: 5*per + per/2, OnFull: store.ArchiveFullDeleteOldest}); err != nil {
		t.Fatal(err)
	}
	h.hold("address", "keep@example.co.jp")
	h.clock.Advance(day)
	day1 := []string{h.accept(store.Inbound, plainMail("x@example.co.jp", "", "d1 a", 310), "x@example.co.jp"),
		h.accept(store.Inbound, plainMail("x@example.co.jp", "", "d1 b", 311), "x@example.co.jp")}
	h.run()
	if ids, _ := h.deletions(); len(ids) != 0 {
		t.Fatalf("deleted before full: %v", ids)
	}
	// The sixth message does not fit: day 0 goes, but for the held one.
	h.clock.Advance(day)
	last := h.accept(store.Inbound, plainMail("x@example.co.jp", "", "d2", 320), "x@example.co.jp")
	h.run()
	byQ := h.entryByQueue()
	if e, ok := byQ[last]; !ok || !e.Deleted.IsZero() {
		t.Fatalf("the new message was not archived: %+v", e)
	}
	if byQ[day0[0]].Deleted.IsZero() || byQ[day0[2]].Deleted.IsZero() {
		t.Fatal("the oldest day was not deleted")
	}
	if !byQ[day0[1]].Deleted.IsZero() {
		t.Fatal("the held message of the oldest day was deleted")
	}
	for _, q := range day1 {
		if !byQ[q].Deleted.IsZero() {
			t.Fatal("a newer day was deleted")
		}
	}
	ids, reasons := h.deletions()
	if len(ids) != 1 || len(ids[0]) != 2 || reasons[0] != "capacity: oldest day "+t0.Format("2006-01-02")+" deleted" {
		t.Fatalf("logged deletions %v %q", ids, reasons)
	}
	for _, e := range h.entries() {
		if e.Kind == store.ArchiveKindGap {
			t.Fatalf("gap logged with delete-oldest: %q", e.Meta)
		}
	}
	if r := h.verify(); len(r.Problems) != 0 {
		t.Fatalf("verify: %+v", r.Problems)
	}
}
