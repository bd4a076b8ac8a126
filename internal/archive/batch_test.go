package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/store"
)

var errInjected = errors.New("injected failure")

// faultyStore fails the archiver's appends as a node that dies in the
// middle of a batch would: after its bodies are stored, before (or
// instead of) the commit, without recording anything.
type faultyStore struct {
	store.Store
	failBatch atomic.Int32 // AppendArchiveBatch calls left to fail
	dead      bool         // every append and retry record fails
}

func (f *faultyStore) AppendArchiveBatch(ctx context.Context, as []store.ArchiveAppend) ([]store.ArchiveAppended, error) {
	if f.dead || f.failBatch.Add(-1) >= 0 {
		return nil, errInjected
	}
	return f.Store.AppendArchiveBatch(ctx, as)
}

func (f *faultyStore) AppendArchive(ctx context.Context, a store.ArchiveAppend) (store.ArchiveAppended, error) {
	if f.dead && a.PendingID != 0 {
		return store.ArchiveAppended{}, errInjected
	}
	return f.Store.AppendArchive(ctx, a)
}

func (f *faultyStore) FailArchivePending(ctx context.Context, id int64, owner, reason string, retryAt time.Time) error {
	if f.dead {
		return errInjected
	}
	return f.Store.FailArchivePending(ctx, id, owner, reason, retryAt)
}

// faultyBlobs fails the body write of one chosen message.
type faultyBlobs struct {
	blob.Store
	mu   sync.Mutex
	fail string // a content hash whose blob write fails once
}

func (f *faultyBlobs) Create(ctx context.Context, name string) (blob.Writer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != "" && strings.HasSuffix(name, f.fail) {
		f.fail = ""
		return nil, errInjected
	}
	return f.Store.Create(ctx, name)
}

func (h *harness) archiveBlobs() int {
	h.t.Helper()
	n := 0
	for _, err := range h.blobs.List(context.Background(), "") {
		if err != nil {
			h.t.Fatal(err)
		}
		n++
	}
	return n
}

func (h *harness) checkOnce(ids []string) {
	h.t.Helper()
	seen := map[string]int{}
	for _, e := range h.entries() {
		seen[e.QueueID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			h.t.Fatalf("%s archived %d times", id, seen[id])
		}
	}
	if r := h.verify(); !r.OK() {
		h.t.Fatalf("%+v", r.Problems)
	}
}

// A node that dies in the middle of a batch, after storing the bodies and
// before its commit, leaves the messages pending under its lease; after
// the lease another node archives every one of them once, reusing the
// bodies already stored.
func TestArchiveBatchCrashBeforeCommit(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	var ids []string
	for i := 0; i < 20; i++ {
		ids = append(ids, h.accept(store.Inbound, "Subject: batch\r\n\r\nbody "+strings.Repeat("y", i)+"\r\n", "u@example.test"))
	}
	dead := h.service("dead")
	dead.Store = &faultyStore{Store: h.st, dead: true}
	if n, err := dead.RunOnce(ctx, 3); err != nil || n != 0 {
		t.Fatalf("dying node archived %d: %v", n, err)
	}
	if got := len(h.entries()); got != 0 {
		t.Fatalf("%d entries logged by a batch that never committed", got)
	}
	if got := h.archiveBlobs(); got != 20 {
		t.Fatalf("%d bodies stored before the commit, want 20", got)
	}
	// The lease holds: nobody else takes the rows meanwhile.
	if n := h.run(); n != 0 {
		t.Fatalf("archived %d under another node's lease", n)
	}
	h.clock.Advance(leaseFor + time.Second)
	if n := h.run(); n != 20 {
		t.Fatalf("caught up %d of 20", n)
	}
	h.checkOnce(ids)
	if got := h.archiveBlobs(); got != 20 {
		t.Fatalf("%d archive blobs after the catch-up, want 20 (one per body)", got)
	}
	hits, err := h.svc.Search(ctx, h.tenant, Query{Subject: "batch"}, Page{Limit: 100})
	if err != nil || hits.Total != 20 {
		t.Fatalf("search after the catch-up: %d %v", hits.Total, err)
	}
	if n := h.run(); n != 0 {
		t.Fatalf("archived %d more on a second run", n)
	}
}

// A body that cannot be stored fails only its own message (retried
// later); a failed batch commit falls back to one transaction per message.
func TestArchiveBatchPartialFailure(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	var ids []string
	var raws []string
	for i := 0; i < 12; i++ {
		raw := "Subject: part\r\n\r\nbody " + strings.Repeat("z", i) + "\r\n"
		raws = append(raws, raw)
		ids = append(ids, h.accept(store.Inbound, raw, "u@example.test"))
	}
	fb := &faultyBlobs{Store: h.blobs, fail: sha([]byte(raws[5]))}
	fs := &faultyStore{Store: h.st}
	fs.failBatch.Store(1)
	h.svc.Blobs, h.svc.Store = fb, fs
	if n := h.run(); n != 11 {
		t.Fatalf("archived %d of 11", n)
	}
	if ps, _ := h.st.ClaimArchivePending(ctx, "peek", t0.Add(time.Hour), t0.Add(time.Hour), 10); len(ps) != 1 || ps[0].MessageID != ids[5] || ps[0].Attempts != 1 {
		t.Fatalf("pending after the failure: %+v", ps)
	}
	h.svc.Store = h.st
	h.clock.Advance(2 * time.Hour)
	if n := h.run(); n != 1 {
		t.Fatalf("retry archived %d", n)
	}
	h.checkOnce(ids)
}

// The archiver indexes what it archives under the message's tenant, once:
// nothing is left for the catch-up indexer, and the index holds no
// document outside the tenant.
func TestArchiveIndexesOnceUnderTheTenant(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	for i := 0; i < 5; i++ {
		h.accept(store.Inbound, "Subject: once\r\n\r\nbody "+strings.Repeat("w", i)+"\r\n", "u@example.test")
	}
	ps, err := h.st.ClaimArchivePending(ctx, "n1", t0, t0.Add(leaseFor), 10)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := h.svc.archiveBatch(ctx, ps, 2); err != nil || n != 5 {
		t.Fatalf("archived %d: %v", n, err)
	}
	if es, err := h.st.UnindexedArchive(ctx, 10); err != nil || len(es) != 0 {
		t.Fatalf("%d entries left unindexed after the archiver indexed them: %v", len(es), err)
	}
	idx := h.svc.Index.(*memIndex)
	if len(idx.docs) != 5 {
		t.Fatalf("%d documents indexed for 5 messages", len(idx.docs))
	}
	for k, d := range idx.docs {
		if d.TenantID != h.tenant {
			t.Fatalf("document %s indexed under tenant %d", k, d.TenantID)
		}
	}
}

// Reindex rebuilds an index lost (not in a backup) from the stored
// messages, and forgets messages whose body was deleted.
func TestArchiveReindex(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	for i := 0; i < 300; i++ {
		h.accept(store.Inbound, "Subject: rebuilt\r\n\r\nbody "+strings.Repeat("v", i)+"\r\n", "u@example.test")
	}
	if n := h.run(); n != 300 {
		t.Fatalf("archived %d", n)
	}
	es := h.entries()
	if _, _, err := h.st.DeleteArchiveBodies(ctx, h.tenant, []string{es[7].ID}, store.ArchiveAppend{}); err != nil {
		t.Fatal(err)
	}
	// The restored node starts with an empty index, holding a stale document.
	idx := &memIndex{docs: map[string]Doc{}}
	idx.Add(ctx, []Doc{{TenantID: h.tenant, ID: es[7].ID, Subject: "rebuilt"}})
	h.svc.Index = idx
	n, err := h.svc.Reindex(ctx, 0)
	if err != nil || n != 299 {
		t.Fatalf("reindexed %d: %v", n, err)
	}
	hits, err := h.svc.Search(ctx, h.tenant, Query{Subject: "rebuilt"}, Page{Limit: 500})
	if err != nil || hits.Total != 299 {
		t.Fatalf("search after the reindex: %d %v", hits.Total, err)
	}
	for _, e := range hits.Entries {
		if e.ID == es[7].ID {
			t.Fatal("a message whose body was deleted is still found")
		}
	}
	if d := idx.docs[fmt.Sprint(h.tenant, "/", es[8].ID)]; !strings.Contains(d.Body, "body") {
		t.Fatalf("document rebuilt without its body: %+v", d)
	}
}

// An attachment sent in several messages is stored once: each message
// keeps its own bytes around it, reads back whole, verifies, and outlives
// the deletion of the others.
func TestArchiveDeduplicatesAttachments(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	att := []byte(strings.Repeat("見積書の内容をご確認ください。quarterly figures\n", 300))
	var raws []string
	for i := 0; i < 3; i++ {
		raws = append(raws, withAttachment(fmt.Sprintf("quote %d", i), fmt.Sprintf("body %d", i), "quote.txt", att))
		h.accept(store.Inbound, raws[i], "u@example.test")
	}
	if n := h.run(); n != 3 {
		t.Fatalf("archived %d", n)
	}
	u, err := h.st.ArchiveUsage(ctx, h.tenant)
	if err != nil {
		t.Fatal(err)
	}
	enc := int64(len(raws[0])) - 400 // the attachment's encoded body is most of each message
	if u.LogicalBytes != int64(len(raws[0])+len(raws[1])+len(raws[2])) || u.Bytes > u.LogicalBytes-2*enc {
		t.Fatalf("stored %d bytes for %d of messages sharing one attachment", u.Bytes, u.LogicalBytes)
	}
	es := h.entries()
	for i, e := range es {
		if len(e.Segments) < 2 || e.Segments[1] != es[0].Segments[1] {
			t.Fatalf("message %d segments %v", i, e.Segments)
		}
		got, err := h.svc.ReadMessage(ctx, e)
		if err != nil || string(got) != raws[i] {
			t.Fatalf("message %d read back: %v", i, err)
		}
	}
	if r := h.verify(); !r.OK() {
		t.Fatalf("%+v", r.Problems)
	}
	// Deleting two of them keeps the shared attachment for the third.
	free, _, err := h.st.DeleteArchiveBodies(ctx, h.tenant, []string{es[0].ID, es[1].ID}, store.ArchiveAppend{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range free {
		if err := h.blobs.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := h.svc.ReadMessage(ctx, es[2]); err != nil || string(got) != raws[2] {
		t.Fatalf("the remaining message after the others' deletion: %v", err)
	}
}

// segmentsOf cuts a message only where its concatenated segments are the
// message again, and leaves a message it cannot account for whole.
func TestSegmentsOf(t *testing.T) {
	ctx := context.Background()
	att := []byte(strings.Repeat("x", 9000))
	for _, raw := range []string{
		withAttachment("s", "body", "a.bin", att),
		strings.ReplaceAll(withAttachment("s", "body", "a.bin", att), "\r\n", "\n"),
		"Subject: plain\r\n\r\n" + strings.Repeat("text\r\n", 3000),
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Disposition: attachment\r\n\r\n" + strings.Repeat("y", 9000), // unterminated
	} {
		segs := segmentsOf(ctx, []byte(raw))
		var b []byte
		for _, s := range segs {
			if len(s) == 0 {
				t.Fatal("empty segment")
			}
			b = append(b, s...)
		}
		if string(b) != raw {
			t.Fatalf("segments do not make the message again (%d segments)", len(segs))
		}
	}
	if n := len(segmentsOf(ctx, []byte(withAttachment("s", "body", "a.bin", att)))); n != 3 {
		t.Fatalf("%d segments for a message with one attachment", n)
	}
}

// countingUsage counts the store's usage reads.
type countingUsage struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (c *countingUsage) ArchiveUsage(ctx context.Context, tid int64) (store.ArchiveUsage, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Store.ArchiveUsage(ctx, tid)
}

// The workers of a batch that all find the tenant's usage out of date
// read it from the store once between them: the read counts the whole
// archive, and a large archive makes it slow.
func TestArchiveUsageReadOncePerRefresh(t *testing.T) {
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	for i := 0; i < 32; i++ {
		h.accept(store.Inbound, fmt.Sprintf("From: a@example.net\r\nSubject: m%d\r\n\r\nbody %d\r\n", i, i), "u@example.test")
	}
	c := &countingUsage{Store: h.st}
	h.svc.Store = c
	n, err := h.svc.RunOnce(context.Background(), 8)
	if err != nil || n != 32 {
		t.Fatalf("archived %d: %v", n, err)
	}
	if c.n != 1 {
		t.Fatalf("usage read %d times within one refresh interval", c.n)
	}
}
