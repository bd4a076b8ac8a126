package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/archive/tlog"
	"github.com/mailgate/mailgate/internal/store"
)

func archiveTenant(t *testing.T, st store.Store, name string, s store.ArchiveSettings) int64 {
	t.Helper()
	ctx := context.Background()
	tn, err := st.CreateTenant(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	s.TenantID = tn.ID
	if err := st.SetArchiveSettings(ctx, s); err != nil {
		t.Fatal(err)
	}
	return tn.ID
}

func archiveMsg(tid int64, id string, dir store.Direction) store.QueuedMessage {
	return store.QueuedMessage{
		Message: store.Message{ID: id, TenantID: tid, Direction: dir, MailFrom: "s@example.net", BlobKey: "n1/" + id,
			ReceivedAt: t0, Size: 100 + int64(len(id)), ClientIP: "192.0.2.1"},
		Recipients: []store.Recipient{{Addr: "alice@example.test", State: store.Queued, NextAttempt: t0}},
	}
}

func pendingIDs(t *testing.T, st store.Store) map[string]store.ArchivePending {
	t.Helper()
	ps, err := st.ClaimArchivePending(context.Background(), "peek", t0.Add(time.Hour), t0.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.ArchivePending{}
	for _, p := range ps {
		out[p.MessageID] = p
	}
	return out
}

// Accept queues a message for archiving in its own transaction exactly
// when the tenant archives its direction: the original only (not its
// rewritten copies, nor mailgate's own re-submissions), and recovery keeps
// the blob of a message waiting to be archived.
func testArchiveAcceptQueues(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	all := archiveTenant(t, st, "all", store.ArchiveSettings{Enabled: true, Mode: store.ArchiveAll})
	in := archiveTenant(t, st, "in", store.ArchiveSettings{Enabled: true, Mode: store.ArchiveInbound})
	off := archiveTenant(t, st, "off", store.ArchiveSettings{Enabled: false})
	none, err := st.CreateTenant(ctx, "none")
	if err != nil {
		t.Fatal(err)
	}
	accept := func(qs ...store.QueuedMessage) {
		t.Helper()
		if _, err := st.Accept(ctx, store.Acceptance{Queue: qs}); err != nil {
			t.Fatal(err)
		}
	}
	copyMsg := archiveMsg(all, "a1-1", store.Inbound)
	accept(archiveMsg(all, "a1", store.Inbound), copyMsg)
	accept(archiveMsg(all, "a2", store.Outbound))
	accept(archiveMsg(in, "i1", store.Inbound))
	accept(archiveMsg(in, "i2", store.Outbound))
	accept(archiveMsg(off, "o1", store.Inbound))
	accept(archiveMsg(none.ID, "n1", store.Inbound))
	local := archiveMsg(all, "l1", store.Inbound)
	local.Message.ClientIP = "local"
	accept(local)
	dsn := archiveMsg(all, "d1", store.DSN)
	accept(dsn)

	got := pendingIDs(t, st)
	want := []string{"a1", "a2", "i1"}
	if len(got) != len(want) {
		t.Fatalf("pending %v, want %v", got, want)
	}
	for _, id := range want {
		p, ok := got[id]
		if !ok || p.BlobKey != "n1/"+id || p.Size != 100+int64(len(id)) {
			t.Fatalf("pending %s: %+v", id, p)
		}
	}
	pb, err := st.PendingBlobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pb["n1/a1"]; !ok {
		t.Fatal("a pending archive blob is not kept by recovery")
	}
	if ok, _ := st.ArchivePendingBlob(ctx, "n1/a1"); !ok {
		t.Fatal("ArchivePendingBlob(a1) = false")
	}
	if ok, _ := st.ArchivePendingBlob(ctx, "n1/o1"); ok {
		t.Fatal("ArchivePendingBlob(o1) = true")
	}
	// Completing a message reports whether the archive still needs its
	// blob, read in the same transaction.
	for _, c := range []struct {
		tid   int64
		id    string
		holds bool
	}{{all, "c1", true}, {off, "c2", false}} {
		out, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{archiveMsg(c.tid, c.id, store.Inbound)}})
		if err != nil {
			t.Fatal(err)
		}
		r := out[0][0]
		res, err := st.Complete(ctx, store.Completion{TenantID: c.tid, MessageID: c.id, Updates: []store.RecipientUpdate{{ID: r.ID,
			LeaseToken: r.LeaseToken, State: store.Delivered, LastReply: "250 ok"}}})
		if err != nil || !res.Done || res.ArchiveHolds != c.holds {
			t.Fatalf("complete %s: %+v %v, want done with ArchiveHolds %v", c.id, res, err, c.holds)
		}
	}
	// A failed accept queues nothing.
	dup := archiveMsg(all, "a2", store.Inbound)
	if _, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{dup}}); err == nil {
		t.Fatal("duplicate accept succeeded")
	}
}

// Pending messages are leased to one archiver at a time; an expired lease
// is taken over and the old owner's append is refused; the message is
// logged once, and the spool blob is free only when the queue is done
// with it.
func testArchiveClaimAndAppend(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	tid := archiveTenant(t, st, "t", store.ArchiveSettings{Enabled: true})
	for _, id := range []string{"m1", "m2"} {
		if _, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{archiveMsg(tid, id, store.Inbound)}}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := st.ClaimArchivePending(ctx, "node-a", t0, t0.Add(time.Minute), 10)
	if err != nil || len(a) != 2 {
		t.Fatalf("claim a: %v %v", a, err)
	}
	if b, _ := st.ClaimArchivePending(ctx, "node-b", t0.Add(30*time.Second), t0.Add(2*time.Minute), 10); len(b) != 0 {
		t.Fatalf("claimed leased rows: %v", b)
	}
	b, err := st.ClaimArchivePending(ctx, "node-b", t0.Add(2*time.Minute), t0.Add(3*time.Minute), 1)
	if err != nil || len(b) != 1 {
		t.Fatalf("claim b after expiry: %v %v", b, err)
	}
	taken := b[0]
	entry := func(p store.ArchivePending) store.ArchiveEntry {
		return store.ArchiveEntry{ID: "A" + p.MessageID, Kind: store.ArchiveKindMessage, QueueID: p.MessageID, Direction: p.Direction,
			At: t0, Received: t0, Size: p.Size, SHA256: fmt.Sprintf("%064x", p.ID), Segments: []string{fmt.Sprintf("%064x", p.ID)}, Meta: `{"m":1}`}
	}
	blobOf := func(p store.ArchivePending, node string) store.ArchiveBlob {
		return store.ArchiveBlob{SHA256: fmt.Sprintf("%064x", p.ID), Key: node + "/seg-" + p.MessageID, Size: p.Size}
	}
	// node-a lost the taken row: its append is refused.
	_, err = st.AppendArchive(ctx, store.ArchiveAppend{TenantID: tid, PendingID: taken.ID, Owner: "node-a",
		Entries: []store.ArchiveEntry{entry(taken)}, Blobs: []store.ArchiveBlob{blobOf(taken, "a")}})
	if !errors.Is(err, store.ErrArchiveLease) {
		t.Fatalf("stale append: %v", err)
	}
	var signed []int64
	cp := func(size int64, root []byte) (store.ArchiveCheckpoint, error) {
		signed = append(signed, size)
		return store.ArchiveCheckpoint{TenantID: tid, Size: size, Root: root, At: t0, Text: fmt.Sprint("cp ", size), Signature: []byte("sig"), KeyID: "k"}, nil
	}
	res, err := st.AppendArchive(ctx, store.ArchiveAppend{TenantID: tid, PendingID: taken.ID, Owner: "node-b",
		Entries: []store.ArchiveEntry{entry(taken)}, Blobs: []store.ArchiveBlob{blobOf(taken, "b")}, Checkpoint: cp})
	if err != nil || res.Duplicate || len(res.Entries) != 1 || res.Entries[0].Seq != 0 || res.Size != 1 {
		t.Fatalf("append: %+v %v", res, err)
	}
	if res.SpoolFree {
		t.Fatal("spool blob free while its message is still queued")
	}
	var other store.ArchivePending
	for _, p := range a {
		if p.ID != taken.ID {
			other = p
		}
	}
	// The same segment written again under another key keeps the first.
	e2 := entry(other)
	e2.Segments = []string{fmt.Sprintf("%064x", taken.ID)}
	b2 := blobOf(taken, "a")
	res2, err := st.AppendArchive(ctx, store.ArchiveAppend{TenantID: tid, PendingID: other.ID, Owner: "node-a",
		Entries: []store.ArchiveEntry{e2}, Blobs: []store.ArchiveBlob{b2}, Checkpoint: cp})
	if err != nil || res2.Entries[0].Seq != 1 || len(res2.Unused) != 1 || res2.Unused[0] != "a/seg-"+taken.MessageID {
		t.Fatalf("second append: %+v %v", res2, err)
	}
	bl, err := st.ArchiveBlobBySHA(ctx, tid, b2.SHA256)
	if err != nil || bl.Key != "b/seg-"+taken.MessageID {
		t.Fatalf("blob: %+v %v", bl, err)
	}
	// Leaves and roots agree with the tree computed from the entries.
	es, err := st.ArchiveEntries(ctx, tid, 0, 10)
	if err != nil || len(es) != 2 {
		t.Fatalf("entries %v %v", es, err)
	}
	var leaves [][]byte
	for _, e := range es {
		if !bytes.Equal(e.Leaf, tlog.EntryLeaf(tid, e.Seq, e.ID, e.Kind, e.SHA256, e.Meta)) {
			t.Fatalf("leaf of %s", e.ID)
		}
		leaves = append(leaves, e.Leaf)
	}
	if !bytes.Equal(res2.Root, tlog.Root(leaves)) {
		t.Fatal("root differs from the tree of the stored leaves")
	}
	size, fr, err := st.ArchiveTree(ctx, tid)
	if err != nil || size != 2 || !bytes.Equal(tlog.RootOf(fr), res2.Root) {
		t.Fatalf("tree %d %v", size, err)
	}
	ls, err := st.ArchiveLeaves(ctx, tid, 2)
	if err != nil || len(ls) != 2 || !bytes.Equal(ls[1], leaves[1]) {
		t.Fatalf("leaves %v", err)
	}
	cps, err := st.ArchiveCheckpoints(ctx, tid, 10)
	if err != nil || len(cps) != 2 || cps[0].Size != 2 || !bytes.Equal(cps[0].Root, res2.Root) || cps[0].Text != "cp 2" {
		t.Fatalf("checkpoints %+v %v", cps, err)
	}
	// Nothing is pending now; recovery no longer keeps the blobs for the archive.
	if ok, _ := st.ArchivePendingBlob(ctx, "n1/m1"); ok {
		t.Fatal("pending row left")
	}
	// An entry for an already archived queue message is not logged twice.
	if _, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{archiveMsg(tid, "m3", store.Inbound)}}); err != nil {
		t.Fatal(err)
	}
	p3, _ := st.ClaimArchivePending(ctx, "node-a", t0.Add(time.Hour), t0.Add(2*time.Hour), 10)
	if len(p3) != 1 {
		t.Fatalf("claim m3: %v", p3)
	}
	// Another node logged m3 already (its lease had run out).
	e3 := entry(p3[0])
	e3.ID = "other-node"
	if _, err := st.AppendArchive(ctx, store.ArchiveAppend{TenantID: tid, Entries: []store.ArchiveEntry{e3},
		Blobs: []store.ArchiveBlob{{SHA256: e3.SHA256, Key: "b/m3", Size: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetState(ctx, tid, "m3", []store.RcptState{store.Queued}, store.Deleted, time.Time{}, store.Event{MessageID: "m3", TenantID: tid, At: t0, Kind: "deleted"}); err != nil {
		t.Fatal(err)
	}
	e3b := entry(p3[0])
	res3, err := st.AppendArchive(ctx, store.ArchiveAppend{TenantID: tid, PendingID: p3[0].ID, Owner: "node-a",
		Entries: []store.ArchiveEntry{e3b}, Blobs: []store.ArchiveBlob{{SHA256: e3b.SHA256, Key: "a/dup", Size: 1}}})
	if err != nil || !res3.Duplicate || !res3.SpoolFree || len(res3.Unused) != 1 || len(res3.Entries) != 0 {
		t.Fatalf("duplicate append: %+v %v", res3, err)
	}
	if size, _, _ := st.ArchiveTree(ctx, tid); size != 3 {
		t.Fatalf("log size %d after a duplicate", size)
	}
	// A message not selected after all is dropped; its blob stays with the queue.
	if _, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{archiveMsg(tid, "m4", store.Inbound)}}); err != nil {
		t.Fatal(err)
	}
	p4, _ := st.ClaimArchivePending(ctx, "node-a", t0.Add(3*time.Hour), t0.Add(4*time.Hour), 10)
	if len(p4) != 1 {
		t.Fatalf("claim m4: %v", p4)
	}
	free, err := st.DropArchivePending(ctx, p4[0].ID, "node-a")
	if err != nil || free {
		t.Fatalf("drop: free=%v %v", free, err)
	}
	if err := st.FailArchivePending(ctx, p4[0].ID, "node-a", "x", t0); err != nil {
		t.Fatal(err)
	}
	e3 = store.ArchiveEntry{ID: "other-node"}
	if _, err := st.ArchiveEntry(ctx, tid, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing entry: %v", err)
	}
	got, err := st.ArchiveEntriesByID(ctx, tid, []string{e3.ID, "A" + taken.MessageID, "zz"})
	if err != nil || len(got) != 2 || got[0].ID != e3.ID {
		t.Fatalf("by id %v %v", got, err)
	}
}

// Appends from many goroutines (nodes) give one contiguous log whose
// frontier root is the tree of its leaves.
func testArchiveAppendConcurrent(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	tid := archiveTenant(t, st, "t", store.ArchiveSettings{Enabled: true})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				_, err := st.AppendArchive(ctx, store.ArchiveAppend{TenantID: tid, Entries: []store.ArchiveEntry{{
					ID: fmt.Sprintf("w%d-%d", w, i), Kind: store.ArchiveKindGap, At: t0, Received: t0, Meta: "{}"}}})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ls, err := st.ArchiveLeaves(ctx, tid, 40)
	if err != nil || len(ls) != 40 {
		t.Fatalf("leaves: %d %v", len(ls), err)
	}
	size, fr, _ := st.ArchiveTree(ctx, tid)
	if size != 40 || !bytes.Equal(tlog.RootOf(fr), tlog.Root(ls)) {
		t.Fatal("frontier disagrees with the leaves")
	}
}

// Deleting bodies logs the deletion in the same transaction and frees a
// segment when its last entry goes; holds, grants, settings and usage
// round-trip.
func testArchiveRetentionAndGrants(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	tid := archiveTenant(t, st, "t", store.ArchiveSettings{Enabled: true, Mode: store.ArchiveRule, Rule: "subject:x", RetentionDays: 30,
		CapacityBytes: 5 << 30, OnFull: store.ArchiveFullDeleteOldest, UserSearch: true, Updated: t0})
	s, err := st.ArchiveSettings(ctx, tid)
	if err != nil || !s.Enabled || s.Mode != store.ArchiveRule || s.Rule != "subject:x" || s.RetentionDays != 30 || s.CapacityBytes != 5<<30 ||
		s.OnFull != store.ArchiveFullDeleteOldest || !s.UserSearch || !s.Updated.Equal(t0) {
		t.Fatalf("settings %+v %v", s, err)
	}
	shared := fmt.Sprintf("%064x", 1)
	var blobs []store.ArchiveBlob
	var entries []store.ArchiveEntry
	for i := 0; i < 3; i++ {
		own := fmt.Sprintf("%064x", 10+i)
		blobs = append(blobs, store.ArchiveBlob{SHA256: own, Key: fmt.Sprint("n/own", i), Size: 10})
		entries = append(entries, store.ArchiveEntry{ID: fmt.Sprint("e", i), Kind: store.ArchiveKindMessage, At: t0,
			Received: t0.Add(time.Duration(i) * 24 * time.Hour), Size: 110, SHA256: own, Segments: []string{shared, own}, Meta: "{}",
			FromHdr: "a@example.net", Direction: store.Inbound, HasAttachment: i == 0, Verdict: "clean"})
	}
	blobs = append(blobs, store.ArchiveBlob{SHA256: shared, Key: "n/shared", Size: 100})
	if _, err := st.AppendArchive(ctx, store.ArchiveAppend{TenantID: tid, Entries: entries, Blobs: blobs}); err != nil {
		t.Fatal(err)
	}
	u, err := st.ArchiveUsage(ctx, tid)
	if err != nil || u.Messages != 3 || u.Bytes != 130 || u.LogicalBytes != 330 || u.Entries != 3 {
		t.Fatalf("usage %+v %v", u, err)
	}
	old, err := st.ArchiveDeletable(ctx, tid, t0.Add(36*time.Hour), 10)
	if err != nil || len(old) != 2 || old[0].ID != "e0" {
		t.Fatalf("deletable %v %v", old, err)
	}
	ev := store.ArchiveAppend{Entries: []store.ArchiveEntry{{ID: "del1", Kind: store.ArchiveKindDeletion, At: t0.Add(40 * time.Hour), Meta: `{"ids":["e0","e1"]}`}}}
	free, app, err := st.DeleteArchiveBodies(ctx, tid, []string{"e0", "e1"}, ev)
	if err != nil || len(free) != 2 || app.Size != 4 || app.Entries[0].Seq != 3 {
		t.Fatalf("delete: %v %+v %v", free, app, err)
	}
	e0, _ := st.ArchiveEntry(ctx, tid, "e0")
	if e0.Deleted.IsZero() || !bytes.Equal(e0.Leaf, entries[0].Leaf) && e0.Leaf == nil {
		t.Fatalf("e0 %+v", e0)
	}
	free, _, err = st.DeleteArchiveBodies(ctx, tid, []string{"e2"}, store.ArchiveAppend{Entries: []store.ArchiveEntry{{ID: "del2", Kind: store.ArchiveKindDeletion, At: t0, Meta: "{}"}}})
	if err != nil || len(free) != 2 {
		t.Fatalf("last delete frees the shared segment too: %v %v", free, err)
	}
	stats, err := st.ArchiveStats(ctx, tid, t0.Add(48*time.Hour))
	if err != nil || stats.Inbound != 3 || stats.Attachments != 1 || stats.Deleted != 3 || stats.ByVerdict["clean"] != 3 || len(stats.TopSenders) != 1 {
		t.Fatalf("stats %+v %v", stats, err)
	}

	h, err := st.AddArchiveHold(ctx, store.ArchiveHold{TenantID: tid, Kind: "address", Value: "ceo@example.test", Reason: "case 12", By: "admin", Created: t0})
	if err != nil || h.ID == 0 {
		t.Fatal(err)
	}
	hs, _ := st.ArchiveHolds(ctx, tid)
	if len(hs) != 1 || hs[0].Value != "ceo@example.test" {
		t.Fatalf("holds %v", hs)
	}
	if err := st.DeleteArchiveHold(ctx, tid+1, h.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's hold: %v", err)
	}
	if err := st.DeleteArchiveHold(ctx, tid, h.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.SetArchiveAccess(ctx, tid, "officer@example.test", true); err != nil {
		t.Fatal(err)
	}
	st.SetArchiveAccess(ctx, tid, "officer@example.test", true)
	if ok, _ := st.ArchiveAccess(ctx, tid, "officer@example.test"); !ok {
		t.Fatal("grant not kept")
	}
	if ok, _ := st.ArchiveAccess(ctx, tid+1, "officer@example.test"); ok {
		t.Fatal("grant crosses tenants")
	}
	l, _ := st.ArchiveAccessList(ctx, tid)
	if len(l) != 1 {
		t.Fatalf("grants %v", l)
	}
	st.SetArchiveAccess(ctx, tid, "officer@example.test", false)
	if ok, _ := st.ArchiveAccess(ctx, tid, "officer@example.test"); ok {
		t.Fatal("grant not removed")
	}
	ts, err := st.ArchiveTenants(ctx)
	if err != nil || len(ts) != 1 || ts[0].TenantID != tid {
		t.Fatalf("tenants %v %v", ts, err)
	}
	un, err := st.UnindexedArchive(ctx, 10)
	if err != nil || len(un) != 5 {
		t.Fatalf("unindexed %d %v", len(un), err)
	}
	if err := st.MarkArchiveIndexed(ctx, tid, []string{"e0", "e1", "e2", "del1", "del2"}); err != nil {
		t.Fatal(err)
	}
	if un, _ := st.UnindexedArchive(ctx, 10); len(un) != 0 {
		t.Fatalf("still unindexed %v", un)
	}
}

// A batch of appends is one transaction: a failure in the middle of it
// leaves nothing appended and every pending row still there; a row whose
// lease was lost is skipped; the rest are logged in order, each once.
func testArchiveAppendBatch(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	tid := archiveTenant(t, st, "t", store.ArchiveSettings{Enabled: true})
	for _, id := range []string{"b1", "b2", "b3", "b4"} {
		if _, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{archiveMsg(tid, id, store.Inbound)}}); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := st.ClaimArchivePending(ctx, "node-a", t0, t0.Add(time.Minute), 10)
	if err != nil || len(ps) != 4 {
		t.Fatalf("claim: %v %v", ps, err)
	}
	sum := func(p store.ArchivePending) string { return fmt.Sprintf("%064x", 1000+p.ID) }
	app := func(p store.ArchivePending) store.ArchiveAppend {
		return store.ArchiveAppend{TenantID: tid, PendingID: p.ID, Owner: "node-a",
			Entries: []store.ArchiveEntry{{ID: "A" + p.MessageID, Kind: store.ArchiveKindMessage, QueueID: p.MessageID, Direction: p.Direction,
				At: t0, Received: t0, Size: p.Size, SHA256: sum(p), Segments: []string{sum(p)}, Meta: `{"m":1}`}},
			Blobs: []store.ArchiveBlob{{SHA256: sum(p), Key: "a/" + p.MessageID, Size: p.Size}}}
	}
	// The third append refers to a segment nobody stored: the batch fails
	// as a whole.
	bad := app(ps[2])
	bad.Blobs = nil
	if _, err := st.AppendArchiveBatch(ctx, []store.ArchiveAppend{app(ps[0]), app(ps[1]), bad, app(ps[3])}); err == nil {
		t.Fatal("a batch with a broken append succeeded")
	}
	if size, _, _ := st.ArchiveTree(ctx, tid); size != 0 {
		t.Fatalf("log size %d after a failed batch", size)
	}
	for _, p := range ps {
		if ok, err := st.ArchivePendingBlob(ctx, p.BlobKey); err != nil || !ok {
			t.Fatalf("pending row of %s gone after a failed batch: %v", p.MessageID, err)
		}
	}
	// Another node takes the first row over once node-a's lease has run
	// out: node-a's append of it is skipped, the others are logged.
	if b, err := st.ClaimArchivePending(ctx, "node-b", t0.Add(2*time.Minute), t0.Add(3*time.Minute), 1); err != nil || len(b) != 1 || b[0].ID != ps[0].ID {
		t.Fatalf("claim by node-b: %v %v", b, err)
	}
	res, err := st.AppendArchiveBatch(ctx, []store.ArchiveAppend{app(ps[0]), app(ps[1]), app(ps[2]), app(ps[3])})
	if err != nil || len(res) != 4 {
		t.Fatalf("batch: %+v %v", res, err)
	}
	if !res[0].Lost || len(res[0].Entries) != 0 {
		t.Fatalf("stale append in a batch: %+v", res[0])
	}
	for i, r := range res[1:] {
		if r.Lost || r.Duplicate || len(r.Entries) != 1 || r.Entries[0].Seq != int64(i) || r.Size != int64(i+1) {
			t.Fatalf("append %d: %+v", i+1, r)
		}
	}
	es, err := st.ArchiveEntries(ctx, tid, 0, 10)
	if err != nil || len(es) != 3 {
		t.Fatalf("entries %v %v", es, err)
	}
	var leaves [][]byte
	for i, e := range es {
		if e.QueueID != ps[i+1].MessageID {
			t.Fatalf("entry %d is %s", i, e.QueueID)
		}
		leaves = append(leaves, e.Leaf)
	}
	if !bytes.Equal(res[3].Root, tlog.Root(leaves)) {
		t.Fatal("root differs from the tree of the stored leaves")
	}
	if ok, _ := st.ArchivePendingBlob(ctx, ps[0].BlobKey); !ok {
		t.Fatal("node-b's pending row was dropped by node-a's batch")
	}
	if ok, _ := st.ArchivePendingBlob(ctx, ps[1].BlobKey); ok {
		t.Fatal("archived pending row left")
	}
	// Appended again (a retry after a crash that committed): duplicates.
	again, err := st.AppendArchiveBatch(ctx, []store.ArchiveAppend{app(ps[1])})
	if err != nil || !again[0].Lost {
		t.Fatalf("append of a dropped row: %+v %v", again, err)
	}
}

// A batch settles each append as if it ran alone, in order: a queue
// message archived before is a duplicate; a spool blob two pending rows
// share is free after the last of them only; a segment two appends of one
// tenant stored keeps the first key (the second is unused), while another
// tenant's copy is its own.
func testArchiveAppendBatchSettles(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	t1 := archiveTenant(t, st, "t1", store.ArchiveSettings{Enabled: true})
	t2 := archiveTenant(t, st, "t2", store.ArchiveSettings{Enabled: true})
	for _, m := range []struct {
		tid     int64
		id, key string
	}{{t1, "m1", "n1/shared"}, {t1, "m2", "n1/shared"}, {t2, "m3", "n1/m3"}, {t1, "m4", "n1/m4"}} {
		q := archiveMsg(m.tid, m.id, store.Inbound)
		q.Message.BlobKey = m.key
		q.Recipients[0].State = store.Delivered
		if _, err := st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{q}}); err != nil {
			t.Fatal(err)
		}
	}
	ps := pendingIDs(t, st)
	seg := fmt.Sprintf("%064x", 7)
	entry := func(id, qid, seg string) store.ArchiveEntry {
		return store.ArchiveEntry{ID: id, Kind: store.ArchiveKindMessage, QueueID: qid, Direction: store.Inbound,
			At: t0, Received: t0, Size: 10, SHA256: seg, Segments: []string{seg}, Meta: `{"m":1}`}
	}
	// m4 was archived by an earlier attempt.
	seg0 := fmt.Sprintf("%064x", 6)
	if _, err := st.AppendArchive(ctx, store.ArchiveAppend{TenantID: t1, Entries: []store.ArchiveEntry{entry("A0", "m4", seg0)},
		Blobs: []store.ArchiveBlob{{SHA256: seg0, Key: "a/0", Size: 10}}}); err != nil {
		t.Fatal(err)
	}
	app := func(tid int64, qid, key string) store.ArchiveAppend {
		return store.ArchiveAppend{TenantID: tid, PendingID: ps[qid].ID, Owner: "peek", Entries: []store.ArchiveEntry{entry("A"+qid, qid, seg)},
			Blobs: []store.ArchiveBlob{{SHA256: seg, Key: key, Size: 10}}}
	}
	res, err := st.AppendArchiveBatch(ctx, []store.ArchiveAppend{app(t1, "m4", "a/4"), app(t1, "m1", "a/1"), app(t1, "m2", "a/2"), app(t2, "m3", "a/3")})
	if err != nil || len(res) != 4 {
		t.Fatalf("batch: %+v %v", res, err)
	}
	if r := res[0]; !r.Duplicate || !r.SpoolFree || len(r.Entries) != 0 || !slices.Equal(r.Unused, []string{"a/4"}) {
		t.Fatalf("the message archived before: %+v", r)
	}
	if r := res[1]; r.Duplicate || r.SpoolFree || len(r.Unused) != 0 || r.Size != 2 || r.Entries[0].Seq != 1 {
		t.Fatalf("the first of two on one spool blob: %+v", r)
	}
	if r := res[2]; r.Duplicate || !r.SpoolFree || !slices.Equal(r.Unused, []string{"a/2"}) || r.Size != 3 || r.Entries[0].Seq != 2 {
		t.Fatalf("the last of two on one spool blob: %+v", r)
	}
	if r := res[3]; r.Duplicate || !r.SpoolFree || len(r.Unused) != 0 || r.Size != 1 || r.Entries[0].Seq != 0 {
		t.Fatalf("the other tenant's: %+v", r)
	}
	if b, err := st.ArchiveBlobBySHA(ctx, t1, seg); err != nil || b.Key != "a/1" {
		t.Fatalf("tenant 1's segment: %+v %v", b, err)
	}
	if b, err := st.ArchiveBlobBySHA(ctx, t2, seg); err != nil || b.Key != "a/3" {
		t.Fatalf("tenant 2's segment: %+v %v", b, err)
	}
	for tid, want := range map[int64]int{t1: 3, t2: 1} {
		if es, err := st.ArchiveEntries(ctx, tid, 0, 10); err != nil || len(es) != want {
			t.Fatalf("tenant %d: entries %v %v", tid, es, err)
		}
	}
}
