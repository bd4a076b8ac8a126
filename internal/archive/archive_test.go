package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/archive/tlog"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/store"
)

// Inbound and outbound messages are archived with their original bytes,
// envelope and verdicts, found by search (Japanese two-character words,
// attachment text), and the spool keeps each blob until it is archived.
func TestArchiveInboundAndOutbound(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	jp := japaneseMail("来週の会議について", "東京本社で打ち合わせをします。")
	att := withAttachment("Contract draft", "See the attached draft.", "draft.docx", docx("Confidential merger terms 予算"))
	in := h.accept(store.Inbound, jp, "sato@customer.example")
	out := h.accept(store.Outbound, att, "partner@other.example")

	// Until archived, the queue's deletion of the blob leaves it in place.
	g := Guard{Store: h.spool, Pending: h.st}
	inKey := blob.Key("n1", in)
	if err := g.Delete(ctx, inKey); err != nil {
		t.Fatal(err)
	}
	if _, err := h.spool.Open(ctx, inKey); err != nil {
		t.Fatalf("spool blob deleted while waiting for the archive: %v", err)
	}
	if n := h.run(); n != 2 {
		t.Fatalf("archived %d", n)
	}
	e := h.entryFor(in)
	raw, err := h.svc.ReadMessage(ctx, e)
	if err != nil || string(raw) != jp {
		t.Fatalf("stored bytes differ: %v", err)
	}
	var meta Meta
	if err := json.Unmarshal([]byte(e.Meta), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Direction != "in" || meta.MailFrom != "sender@example.net" || len(meta.Rcpts) != 1 || meta.Rcpts[0].Addr != "sato@customer.example" ||
		meta.ClientIP != "192.0.2.7" || len(meta.Verdicts) != 1 {
		t.Fatalf("meta %+v", meta)
	}
	if e.Subject != "来週の会議について" || !strings.Contains(e.FromHdr, "山田太郎") {
		t.Fatalf("summary %q %q", e.Subject, e.FromHdr)
	}
	// The archived blob was the only reason to keep this spool blob: the
	// queue was done with it (the message row is not done here, so it stays).
	if _, err := h.spool.Open(ctx, inKey); err != nil {
		t.Fatalf("spool blob of a queued message deleted: %v", err)
	}
	for _, c := range []struct {
		q    Query
		want string
	}{
		{Query{Text: "会議"}, in}, {Query{Body: "東京"}, in}, {Query{From: "山田"}, in},
		{Query{Attachment: "merger"}, out}, {Query{Attachment: "予算"}, out}, {Query{Direction: "out"}, out},
	} {
		hits, err := h.svc.Search(ctx, h.tenant, c.q, Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits.Entries) != 1 || hits.Entries[0].QueueID != c.want {
			t.Fatalf("%+v: %v", c.q, hits.Entries)
		}
	}
	if r := h.verify(); !r.OK() || r.Messages != 2 {
		t.Fatalf("untouched archive does not verify: %+v", r)
	}
}

// The text of files inside a ZIP attachment is searchable: a Word document
// in a ZIP is found by a word of its text, and the ZIP's member names by
// attachment name.
func TestArchiveSearchesInsideZip(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("見積/quotation.docx")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(docx("Kickoff budget for 社外秘 project Hyacinth"))
	zw.Close()
	zipped := h.accept(store.Inbound, withAttachment("documents", "see the zip", "docs.zip", buf.Bytes()), "x@example.test")
	h.accept(store.Inbound, withAttachment("other", "see the doc", "other.docx", docx("Lunch menu")), "x@example.test")
	if n := h.run(); n != 2 {
		t.Fatalf("archived %d of 2", n)
	}
	for _, q := range []Query{{Attachment: "Hyacinth"}, {Attachment: "社外秘"}, {Text: "hyacinth"}, {Attachment: "quotation"}} {
		hits, err := h.svc.Search(ctx, h.tenant, q, Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits.Entries) != 1 || hits.Entries[0].QueueID != zipped {
			t.Fatalf("%+v: %v", q, hits.Entries)
		}
	}
}

// A message whose queue life is over is removed from the spool by the
// archiver, once archived; the archive keeps one copy per content.
func TestArchiveFreesSpoolAndDeduplicates(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	raw := "From: a@example.net\r\nTo: b@example.test\r\nSubject: same\r\n\r\nsame bytes\r\n"
	a := h.accept(store.Inbound, raw, "b@example.test")
	b := h.accept(store.Inbound, raw, "b@example.test")
	for _, id := range []string{a, b} {
		if _, err := h.st.SetState(ctx, h.tenant, id, []store.RcptState{store.Queued}, store.Delivered, time.Time{},
			store.Event{MessageID: id, TenantID: h.tenant, At: t0, Kind: "delivered"}); err != nil {
			t.Fatal(err)
		}
		// The queue deletes the blob when done: the guard defers to the archiver.
		if err := h.svc.Spool.Delete(ctx, blob.Key("n1", id)); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.run(); n != 2 {
		t.Fatalf("archived %d", n)
	}
	for _, id := range []string{a, b} {
		if _, err := h.spool.Open(ctx, blob.Key("n1", id)); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("spool blob %s left after archiving: %v", id, err)
		}
	}
	u, err := h.st.ArchiveUsage(ctx, h.tenant)
	if err != nil || u.Messages != 2 || u.Bytes != int64(len(raw)) || u.LogicalBytes != 2*int64(len(raw)) {
		t.Fatalf("usage %+v %v", u, err)
	}
}

// Several nodes drain the pending messages at once; each message is
// logged exactly once, and a node that died holding leases is caught up
// after them.
func TestArchiveSeveralNodesAndCrash(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	var ids []string
	for i := 0; i < 40; i++ {
		ids = append(ids, h.accept(store.Inbound, "Subject: m\r\n\r\nbody "+strings.Repeat("x", i)+"\r\n", "u@example.test"))
	}
	// A node claims ten and dies.
	if ps, err := h.st.ClaimArchivePending(ctx, "dead", t0, t0.Add(leaseFor), 10); err != nil || len(ps) != 10 {
		t.Fatalf("%v %v", ps, err)
	}
	nodes := []*Service{h.service("a"), h.service("b"), h.service("c")}
	var wg sync.WaitGroup
	for _, s := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.RunOnce(ctx, 2); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := len(h.entries()); got != 30 {
		t.Fatalf("%d archived before the dead node's leases expired", got)
	}
	h.clock.Advance(leaseFor + time.Second)
	if _, err := nodes[0].RunOnce(ctx, 1); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range h.entries() {
		seen[e.QueueID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("%s archived %d times", id, seen[id])
		}
	}
	if r := h.verify(); !r.OK() {
		t.Fatalf("%+v", r.Problems)
	}
}

// A tenant archiving by rule keeps only the messages its query selects;
// a tenant archiving inbound only never queues outbound mail.
func TestArchiveRuleAndDirection(t *testing.T) {
	h := newHarness(t, store.ArchiveSettings{Enabled: true, Mode: store.ArchiveRule, Rule: "社外秘"})
	keep := h.accept(store.Outbound, "Subject: =?UTF-8?B?"+b64("【社外秘】顧客リスト")+"?=\r\n\r\nlist\r\n", "x@example.net")
	h.accept(store.Outbound, "Subject: lunch\r\n\r\nsandwich\r\n", "x@example.net")
	h.run()
	es := h.entries()
	if len(es) != 1 || es[0].QueueID != keep {
		t.Fatalf("rule archived %v", es)
	}

	h2 := newHarness(t, store.ArchiveSettings{Enabled: true, Mode: store.ArchiveInbound})
	in := h2.accept(store.Inbound, "Subject: in\r\n\r\nx\r\n", "x@example.test")
	h2.accept(store.Outbound, "Subject: out\r\n\r\nx\r\n", "x@example.net")
	h2.run()
	if es := h2.entries(); len(es) != 1 || es[0].QueueID != in {
		t.Fatalf("inbound-only archived %v", es)
	}
}

// Bad input is archived whole and indexed as far as it goes: a malformed
// PDF, a ZIP bomb posing as a Word file, a broken charset.
func TestArchiveBadInput(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, store.ArchiveSettings{Enabled: true})
	bomb := zipBomb(t)
	msgs := []string{
		withAttachment("broken pdf", "see pdf", "x.pdf", []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R /Size 99999 >>\n%%EOF garbage")),
		withAttachment("bomb", "see doc", "bomb.docx", bomb),
		"Subject: broken\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xff\xfe\x80 bytes \x1b$B broken\r\n",
	}
	var ids []string
	for _, m := range msgs {
		ids = append(ids, h.accept(store.Inbound, m, "x@example.test"))
	}
	if n := h.run(); n != 3 {
		t.Fatalf("archived %d of 3", n)
	}
	for i, id := range ids {
		raw, err := h.svc.ReadMessage(ctx, h.entryFor(id))
		if err != nil || string(raw) != msgs[i] {
			t.Fatalf("message %d not kept whole: %v", i, err)
		}
	}
	hits, err := h.svc.Search(ctx, h.tenant, Query{Subject: "bomb"}, Page{})
	if err != nil || len(hits.Entries) != 1 {
		t.Fatalf("bomb not indexed: %v %v", hits, err)
	}
}

func zipBomb(t *testing.T) []byte {
	t.Helper()
	// 64 MB of zeros compressed to a few tens of KB, as word/document.xml.
	return deflatedZip(t, "word/document.xml", 64<<20)
}

// Tampering: one changed byte, one deleted message, a reordered log are
// each reported exactly, and the auditor's proof check fails for them;
// an untouched archive verifies and its proofs check.
func TestArchiveTamperEvidence(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*harness, []string) {
		h := newHarness(t, store.ArchiveSettings{Enabled: true})
		var ids []string
		for i := 0; i < 7; i++ {
			ids = append(ids, h.accept(store.Inbound, japaneseMail("会議 "+strings.Repeat("再", i), strings.Repeat("本文です。", 2000+i)), "sato@customer.example"))
		}
		h.run()
		return h, ids
	}
	t.Run("untouched", func(t *testing.T) {
		h, ids := setup(t)
		if r := h.verify(); !r.OK() || r.Entries != 7 {
			t.Fatalf("%+v", r)
		}
		e := h.entryFor(ids[3])
		p, err := h.svc.Proof(ctx, h.tenant, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := h.svc.ReadMessage(ctx, e)
		if err := CheckProof(p, raw, tlog.EncodeKey(h.svc.PublicKey())); err != nil {
			t.Fatal(err)
		}
		if out, ok := pythonCheck(t, p, raw, tlog.EncodeKey(h.svc.PublicKey())); !ok {
			t.Fatalf("python checker refused a good proof: %s", out)
		}
		// A checkpoint altered after signing is refused by both checkers.
		forged := p
		forged.Checkpoint = strings.Replace(p.Checkpoint, "time: 2026", "time: 2025", 1)
		if err := CheckProof(forged, raw, tlog.EncodeKey(h.svc.PublicKey())); err == nil {
			t.Fatal("forged checkpoint checked")
		}
		if out, ok := pythonCheck(t, forged, raw, tlog.EncodeKey(h.svc.PublicKey())); ok || !strings.Contains(out, "signature") {
			t.Fatalf("python checker accepted a forged checkpoint: %s", out)
		}
		// The same proof with another message fails.
		if err := CheckProof(p, append(raw, 'x'), tlog.EncodeKey(h.svc.PublicKey())); err == nil {
			t.Fatal("proof checked for a changed message")
		}
	})
	t.Run("changed byte", func(t *testing.T) {
		h, ids := setup(t)
		e := h.entryFor(ids[2])
		p, err := h.svc.Proof(ctx, h.tenant, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		// One byte of the stored body, 10000 bytes into the message.
		bl, err := h.st.ArchiveBlobBySHA(ctx, h.tenant, e.Segments[0])
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(h.dir, "archive", filepath.FromSlash(bl.Key))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		off := st.Size() - e.Size + 10000
		one := make([]byte, 1)
		f.ReadAt(one, off)
		one[0] ^= 0x20
		f.WriteAt(one, off)
		f.Close()
		r := h.verify()
		if len(r.Problems) != 1 || r.Problems[0].Kind != ProblemBodyChanged || r.Problems[0].Seq != e.Seq || r.Problems[0].ID != e.ID ||
			!strings.Contains(r.Problems[0].Detail, "bytes 8192-12287") {
			t.Fatalf("report: %+v", r.Problems)
		}
		changed, _ := h.svc.readSegments(ctx, e)
		if err := CheckProof(p, changed, tlog.EncodeKey(h.svc.PublicKey())); err == nil {
			t.Fatal("proof checked for the changed message")
		}
		if out, ok := pythonCheck(t, p, changed, tlog.EncodeKey(h.svc.PublicKey())); ok || !strings.Contains(out, "SHA-256 mismatch") {
			t.Fatalf("python checker: %s", out)
		}
	})
	t.Run("deleted message", func(t *testing.T) {
		h, ids := setup(t)
		e := h.entryFor(ids[4])
		p, err := h.svc.Proof(ctx, h.tenant, h.entryFor(ids[1]).ID)
		if err != nil {
			t.Fatal(err)
		}
		raw1, _ := h.svc.ReadMessage(ctx, h.entryFor(ids[1]))
		h.sql(`DELETE FROM archive_entries WHERE tenant_id = ? AND seq = ?`, h.tenant, e.Seq)
		r := h.verify()
		kinds := problemKinds(r)
		if !slices.Contains(kinds, ProblemMissing) || r.Problems[0].Seq != e.Seq || !slices.Contains(kinds, ProblemCheckpoint) {
			t.Fatalf("report: %+v", r.Problems)
		}
		for _, p := range r.Problems {
			if p.Kind == ProblemMissing && p.Seq != e.Seq {
				t.Fatalf("wrong position reported: %+v", p)
			}
		}
		// A proof made before the deletion still checks (the entry it
		// proves is there), but a new proof is refused: the tree has a hole.
		if err := CheckProof(p, raw1, tlog.EncodeKey(h.svc.PublicKey())); err != nil {
			t.Fatal(err)
		}
		if _, err := h.svc.Proof(ctx, h.tenant, h.entryFor(ids[5]).ID); err == nil {
			t.Fatal("proof made over a log with a hole")
		}
	})
	t.Run("reordered log", func(t *testing.T) {
		h, ids := setup(t)
		a, b := h.entryFor(ids[1]), h.entryFor(ids[5])
		p, err := h.svc.Proof(ctx, h.tenant, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		h.sql(`UPDATE archive_entries SET seq = -1 WHERE tenant_id = ? AND seq = ?`, h.tenant, a.Seq)
		h.sql(`UPDATE archive_entries SET seq = ? WHERE tenant_id = ? AND seq = ?`, a.Seq, h.tenant, b.Seq)
		h.sql(`UPDATE archive_entries SET seq = ? WHERE tenant_id = ? AND seq = -1`, b.Seq, h.tenant)
		r := h.verify()
		var moved []Problem
		for _, p := range r.Problems {
			if p.Kind == ProblemMoved {
				moved = append(moved, p)
			}
		}
		if len(moved) != 2 || !strings.Contains(moved[0].Detail, "reordered") {
			t.Fatalf("report: %+v", r.Problems)
		}
		for _, m := range moved {
			if !(m.ID == a.ID && m.Seq == b.Seq || m.ID == b.ID && m.Seq == a.Seq) {
				t.Fatalf("wrong move: %+v", m)
			}
		}
		if !slices.Contains(problemKinds(r), ProblemCheckpoint) {
			t.Fatalf("checkpoint mismatch not reported: %+v", r.Problems)
		}
		// The entry's proof, made again now, no longer checks against the
		// signed tree: its leaf names its old position.
		raw, _ := h.svc.ReadMessage(ctx, a)
		p2, err := h.svc.Proof(ctx, h.tenant, a.ID)
		if err == nil {
			if err := CheckProof(p2, raw, tlog.EncodeKey(h.svc.PublicKey())); err == nil {
				t.Fatal("proof of a moved entry checked")
			}
		}
		_ = p
	})
}

func problemKinds(r Report) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Kind)
	}
	return out
}

// pythonCheck runs the documented reference checker.
func pythonCheck(t *testing.T, p Proof, msg []byte, key string) (string, bool) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("MAILGATE_REQUIRE_PEERS") == "1" {
			t.Fatal("python3 not installed")
		}
		t.Skip("python3 not installed")
	}
	dir := t.TempDir()
	pj, _ := json.Marshal(p)
	os.WriteFile(filepath.Join(dir, "proof.json"), pj, 0o600)
	os.WriteFile(filepath.Join(dir, "msg.eml"), msg, 0o600)
	os.WriteFile(filepath.Join(dir, "key"), []byte(key), 0o600)
	out, err := exec.Command(py, filepath.Join("..", "..", "docs", "archive-check.py"),
		filepath.Join(dir, "proof.json"), filepath.Join(dir, "msg.eml"), filepath.Join(dir, "key")).CombinedOutput()
	return string(out), err == nil
}
