package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/transform"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

type harness struct {
	t      *testing.T
	dir    string
	st     *sqlite.DB
	spool  blob.Store
	blobs  blob.Store
	clock  *clock.Fake
	svc    *Service
	tenant int64
	n      int
}

func newHarness(t *testing.T, settings store.ArchiveSettings) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	spool, err := local.Open(filepath.Join(dir, "spool"), "n1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := local.Open(filepath.Join(dir, "archive"), "n1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	idx := &memIndex{docs: map[string]Doc{}}
	tn, err := st.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	settings.TenantID = tn.ID
	if err := st.SetArchiveSettings(ctx, settings); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, st: st, spool: spool, blobs: blobs, clock: clock.NewFake(t0), tenant: tn.ID}
	h.svc = h.service("n1")
	h.svc.Index = idx
	return h
}

// service is another node's archiver over the same store and blobs.
func (h *harness) service(node string) *Service {
	key, err := LoadKey(context.Background(), h.st)
	if err != nil {
		h.t.Fatal(err)
	}
	return &Service{Store: h.st, Blobs: h.blobs, Spool: Guard{Store: h.spool, Pending: h.st}, Key: key, Clock: h.clock, Node: node}
}

// accept queues a message as the SMTP paths do: spool blob, then one
// accept transaction.
func (h *harness) accept(dir store.Direction, raw string, rcpts ...string) string {
	h.t.Helper()
	ctx := context.Background()
	h.n++
	id := store.NewMessageID(h.clock.Now())
	key, size, err := blob.Put(ctx, h.spool, id, strings.NewReader(raw))
	if err != nil {
		h.t.Fatal(err)
	}
	var rs []store.Recipient
	for _, r := range rcpts {
		rs = append(rs, store.Recipient{Addr: r, State: store.Queued, NextAttempt: h.clock.Now()})
	}
	m := store.Message{ID: id, TenantID: h.tenant, Direction: dir, MailFrom: "sender@example.net", BlobKey: key, Size: size,
		ReceivedAt: h.clock.Now(), ClientIP: "192.0.2.7", Helo: "mx.example.net"}
	evs := []store.Event{{MessageID: id, TenantID: h.tenant, At: h.clock.Now(), Kind: "verdict", Rcpt: rcpts[0], Detail: "deliver [SPF_PASS]"}}
	if _, err := h.st.Accept(ctx, store.Acceptance{Queue: []store.QueuedMessage{{Message: m, Recipients: rs, Events: evs}}}); err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) run() int {
	h.t.Helper()
	n, err := h.svc.RunOnce(context.Background(), 2)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) entries() []store.ArchiveEntry {
	h.t.Helper()
	es, err := h.st.ArchiveEntries(context.Background(), h.tenant, 0, 10000)
	if err != nil {
		h.t.Fatal(err)
	}
	return es
}

func (h *harness) entryFor(queueID string) store.ArchiveEntry {
	h.t.Helper()
	for _, e := range h.entries() {
		if e.QueueID == queueID {
			return e
		}
	}
	h.t.Fatalf("queue message %s not archived", queueID)
	return store.ArchiveEntry{}
}

// sql runs a statement on the database behind the store's back (tampering).
func (h *harness) sql(q string, args ...any) {
	h.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dir, "db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) verify() Report {
	h.t.Helper()
	r, err := h.svc.Verify(context.Background(), h.tenant)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func iso2022jp(s string) string {
	b, _, err := transform.String(japanese.ISO2022JP.NewEncoder(), s)
	if err != nil {
		panic(err)
	}
	return b
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// japaneseMail is a message in ISO-2022-JP with a subject in an encoded word.
func japaneseMail(subject, body string) string {
	return "From: =?UTF-8?B?" + b64("山田太郎") + "?= <yamada@example.co.jp>\r\n" +
		"To: sato@customer.example\r\nCc: boss@example.co.jp\r\n" +
		"Subject: =?ISO-2022-JP?B?" + b64(iso2022jp(subject)) + "?=\r\n" +
		"Date: Mon, 2 Nov 2026 10:00:00 +0900\r\nMessage-ID: <" + fmt.Sprint(len(body)) + "@example.co.jp>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
		iso2022jp(body) + "\r\n"
}

// docx makes a minimal Word document with the given text.
func docx(text string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("[Content_Types].xml")
	w.Write([]byte(`<?xml version="1.0"?><Types/>`))
	w, _ = zw.Create("word/document.xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>%s</w:t></w:r></w:p></w:body></w:document>`, text)
	zw.Close()
	return buf.Bytes()
}

func withAttachment(subject, body, name string, data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var lines []string
	for len(enc) > 76 {
		lines = append(lines, enc[:76])
		enc = enc[76:]
	}
	lines = append(lines, enc)
	return "From: alice@partner.example\r\nTo: yamada@example.co.jp\r\nSubject: " + subject + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"" + name + "\"\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + strings.Join(lines, "\r\n") + "\r\n--b1--\r\n"
}

// deflatedZip is a zip with one entry of n zero bytes (a compression bomb).
func deflatedZip(t *testing.T, name string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for i := 0; i < n>>20; i++ {
		w.Write(zero)
	}
	zw.Close()
	return buf.Bytes()
}

// memIndex is an in-memory Index on Match (the real indexes, which import
// this package, have their own conformance suite held to Match).
type memIndex struct {
	mu   sync.Mutex
	docs map[string]Doc
}

func (m *memIndex) Add(_ context.Context, docs []Doc) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range docs {
		m.docs[fmt.Sprint(d.TenantID, "/", d.ID)] = d
	}
	return nil
}

func (m *memIndex) Delete(_ context.Context, tid int64, ids []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.docs, fmt.Sprint(tid, "/", id))
	}
	return nil
}

func (m *memIndex) Search(_ context.Context, tid int64, q Query, p Page) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r Result
	for _, d := range m.docs {
		if d.TenantID == tid && Match(q, d) {
			r.IDs = append(r.IDs, d.ID)
		}
	}
	sort.Strings(r.IDs)
	r.Total = int64(len(r.IDs))
	return r, nil
}

func (m *memIndex) Size(context.Context) (int64, error) { return 0, nil }
func (m *memIndex) Close() error                        { return nil }
