// Package mailboxtest builds what tests of the emergency mailboxes need: a
// mailbox service over a fresh store with a tenant and its users, and
// messages in the Japanese charsets mail really uses.
package mailboxtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// Env is a mailbox service over a fresh store (SQLite, or PostgreSQL under
// mgtest.OnPostgres) with tenant "acme" serving example.test, users alice
// and bob.
type Env struct {
	Svc    *mailbox.Service
	Store  store.Store
	Blobs  blob.Store
	Tenant store.Tenant
	Clock  *clock.Fake
	Queue  *Submitted
	Dir    string
}

// New makes an Env.
func New(t testing.TB) *Env {
	t.Helper()
	dir := t.TempDir()
	st := mgtest.OpenStore(t, dir)
	ctx := context.Background()
	tn, err := st.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDomain(ctx, tn.ID, "example.test"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice@example.test", "bob@example.test"} {
		if _, err := st.CreateUser(ctx, tn.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	blobs, err := local.Open(filepath.Join(dir, "mailbox"), "test-node", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	e := &Env{Store: st, Blobs: blobs, Tenant: tn, Clock: clock.NewFake(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)), Queue: &Submitted{}, Dir: dir}
	e.Svc = &mailbox.Service{Store: st, Blobs: blobs, Queue: e.Queue, Clock: e.Clock, Log: slog.New(slog.DiscardHandler),
		Hostname: "mx.mailgate.test", Bus: mailbox.NewBus()}
	return e
}

// Submitted records what the service queued (quota notices).
type Submitted struct {
	mu   sync.Mutex
	Msgs []SubmittedMsg
}

// SubmittedMsg is one queued message.
type SubmittedMsg struct {
	Rcpts []string
	Body  []byte
	Why   string
}

// Submit records a message.
func (s *Submitted) Submit(_ context.Context, _ store.Message, rcpts []string, body io.Reader, why string) (string, error) {
	b, _ := io.ReadAll(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Msgs = append(s.Msgs, SubmittedMsg{Rcpts: rcpts, Body: b, Why: why})
	return fmt.Sprintf("notice%d", len(s.Msgs)), nil
}

// Len is how many messages were queued.
func (s *Submitted) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.Msgs)
}

// Charsets are the charsets JapaneseMessage writes.
var Charsets = []string{"ISO-2022-JP", "Shift_JIS", "EUC-JP", "UTF-8"}

func encoder(charset string) *encoding.Encoder {
	switch strings.ToUpper(charset) {
	case "ISO-2022-JP":
		return japanese.ISO2022JP.NewEncoder()
	case "SHIFT_JIS":
		return japanese.ShiftJIS.NewEncoder()
	case "EUC-JP":
		return japanese.EUCJP.NewEncoder()
	}
	return encoding.Nop.NewEncoder()
}

// JapaneseMessage writes a message whose Subject (an RFC 2047 encoded
// word) and text body are in charset, as Japanese mail programs write
// them: ISO-2022-JP as 7bit, Shift_JIS and EUC-JP as 8bit, UTF-8 in
// base64.
func JapaneseMessage(charset, from, to, subject, body string) []byte {
	enc := encoder(charset)
	subj, err := enc.String(subject)
	if err != nil {
		panic(err)
	}
	text, err := enc.String(strings.ReplaceAll(body, "\n", "\r\n"))
	if err != nil {
		panic(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\n", from, to)
	fmt.Fprintf(&b, "Subject: =?%s?B?%s?=\r\n", charset, base64.StdEncoding.EncodeToString([]byte(subj)))
	fmt.Fprintf(&b, "Date: Tue, 01 Dec 2026 09:00:00 +0900\r\nMessage-ID: <%s.%d@example.jp>\r\nMIME-Version: 1.0\r\n", strings.ToLower(charset), len(body))
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=%s\r\n", charset)
	switch strings.ToUpper(charset) {
	case "ISO-2022-JP":
		b.WriteString("Content-Transfer-Encoding: 7bit\r\n\r\n")
		b.WriteString(text)
	case "UTF-8":
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
		s := base64.StdEncoding.EncodeToString([]byte(text))
		for len(s) > 76 {
			b.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		b.WriteString(s)
	default:
		b.WriteString("Content-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(text)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// EnglishMessage writes a plain ASCII message.
func EnglishMessage(from, to, subject, body string) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Tue, 01 Dec 2026 09:00:00 +0000\r\nMessage-ID: <%d.en@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s\r\n",
		from, to, mime.QEncoding.Encode("utf-8", subject), len(body), strings.ReplaceAll(body, "\n", "\r\n")))
}
