package compose_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/web/compose"
)

var tokyo = time.FixedZone("JST", 9*3600)

func build(t *testing.T, m compose.Message) []byte {
	t.Helper()
	raw, err := m.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range bytes.Split(raw, []byte("\r\n")) {
		if len(l) > 998 {
			t.Fatalf("line %d is %d octets", i, len(l))
		}
		if bytes.IndexByte(l, '\n') >= 0 || bytes.IndexByte(l, '\r') >= 0 {
			t.Fatalf("line %d has a bare CR or LF", i)
		}
	}
	return raw
}

// headerLines checks every header line fits 76 characters (RFC 2047 2).
func headerLines(t *testing.T, raw []byte) {
	t.Helper()
	for _, l := range strings.Split(string(raw), "\r\n") {
		if strings.HasPrefix(l, "%PDF") || strings.HasPrefix(l, "This is a multi-part") {
			continue
		}
		if len(l) > 76 {
			t.Errorf("header line of %d characters: %q", len(l), l)
		}
	}
}

func parse(t *testing.T, raw []byte) *mailtext.Message {
	t.Helper()
	m, err := mailtext.Parse(context.Background(), bytes.NewReader(raw), mailtext.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A Japanese reply in ISO-2022-JP: every part decodes back to what was
// written, the subject's encoded words are whole ISO-2022-JP sequences,
// the Date is in the tenant's zone, the reply headers are there.
func TestISO2022JPReply(t *testing.T) {
	subject := "Re: 来週の会議について（ご確認のお願い）長い件名が続きますので折り返しが必要です"
	text := "佐藤様\n\nお世話になっております。ｶﾀｶﾅも送れます。\n会議は3階です。\n"
	m := compose.Message{
		From:    compose.Address{Name: "山田 太郎", Addr: "yamada@example.test"},
		To:      []compose.Address{{Name: "佐藤", Addr: "sato@example.jp"}, {Name: "Bob, Jr.", Addr: "bob@example.net"}},
		Cc:      []compose.Address{{Addr: "team@example.test"}},
		Bcc:     []compose.Address{{Addr: "secret@example.test"}},
		Subject: subject, Text: text, Charset: compose.ISO2022JP,
		InReplyTo: "<orig@example.jp>", References: []string{"<root@example.jp>", "<orig@example.jp>"},
		Date:        time.Date(2026, 12, 1, 9, 30, 0, 0, tokyo),
		Attachments: []compose.Attachment{{Name: "議事録（最終版）2026年12月1日の打ち合わせ資料.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4 test")}},
	}
	raw := build(t, m)
	headerLines(t, raw)
	s := string(raw)
	for _, want := range []string{"Date: Tue, 01 Dec 2026 09:30:00 +0900\r\n", "In-Reply-To: <orig@example.jp>\r\n",
		"References: <root@example.jp> <orig@example.jp>\r\n", "MIME-Version: 1.0\r\n", "charset=ISO-2022-JP", "=?ISO-2022-JP?B?"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	if strings.Contains(s, "secret@example.test") {
		t.Error("Bcc written into a message to send")
	}
	// Every encoded word decodes on its own (a whole ISO-2022-JP sequence).
	for _, w := range strings.Fields(strings.ReplaceAll(s, "\"", " ")) {
		if strings.HasPrefix(w, "=?ISO-2022-JP?B?") {
			if len(w) > 75-9 {
				t.Errorf("encoded word of %d characters", len(w))
			}
			if d := mailtext.DecodeHeader(strings.TrimRight(w, ",;")); strings.Contains(d, "\x1b") || strings.ContainsRune(d, '\uFFFD') {
				t.Errorf("encoded word %q decodes to %q", w, d)
			}
		}
	}
	p := parse(t, raw)
	if p.Subject != subject {
		t.Errorf("subject %q", p.Subject)
	}
	if len(p.From) != 1 || p.From[0].Name != "山田 太郎" || p.From[0].Addr != "yamada@example.test" {
		t.Errorf("from %+v", p.From)
	}
	if len(p.To) != 2 || p.To[0].Name != "佐藤" || p.To[1].Name != "Bob, Jr." || len(p.Cc) != 1 {
		t.Errorf("to %+v cc %+v", p.To, p.Cc)
	}
	if !strings.Contains(p.Text, "カタカナも送れます") || !strings.Contains(p.Text, "会議は3階です") {
		t.Errorf("text %q", p.Text)
	}
	var att *mailtext.Part
	for i := range p.Parts {
		if p.Parts[i].IsAttachment {
			att = &p.Parts[i]
		}
	}
	if att == nil || att.Filename != "議事録（最終版）2026年12月1日の打ち合わせ資料.pdf" || att.Size != int64(len("%PDF-1.4 test")) {
		t.Fatalf("attachment %+v", att)
	}
	// Go's own MIME reader (RFC 2231 only) gets the name too.
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var names []string
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, part.FileName())
	}
	if len(names) != 2 || names[1] != "議事録（最終版）2026年12月1日の打ち合わせ資料.pdf" {
		t.Errorf("RFC 2231 names %q", names)
	}
	// And the encoded-word form, for Outlook.
	if !strings.Contains(s, "filename=\"=?ISO-2022-JP?B?") || !strings.Contains(s, "name=\"=?ISO-2022-JP?B?") {
		t.Error("no encoded-word file name")
	}
}

// Text ISO-2022-JP cannot hold (an emoji, a circled number) makes the
// message UTF-8; nothing is lost.
func TestFallbackToUTF8(t *testing.T) {
	m := compose.Message{From: compose.Address{Addr: "a@example.test"}, To: []compose.Address{{Addr: "b@example.net"}},
		Subject: "お知らせ 🎉 ①", Text: "絵文字 🎉 と ① を含みます", Charset: compose.ISO2022JP, Date: time.Now()}
	raw := build(t, m)
	if strings.Contains(string(raw), "ISO-2022-JP") || !strings.Contains(string(raw), "charset=UTF-8") {
		t.Fatalf("not UTF-8:\n%s", raw)
	}
	p := parse(t, raw)
	if p.Subject != "お知らせ 🎉 ①" || !strings.Contains(p.Text, "🎉 と ①") {
		t.Fatalf("decoded %q %q", p.Subject, p.Text)
	}
}

// UTF-8 as the tenant's choice; a plain English message stays 7bit; a
// forwarded message is attached whole.
func TestUTF8AndForward(t *testing.T) {
	orig := []byte("From: x@example.jp\r\nSubject: =?UTF-8?B?5Lya6K2w?=\r\n\r\n本文\r\n")
	m := compose.Message{From: compose.Address{Name: "Alice", Addr: "alice@example.test"}, To: []compose.Address{{Addr: "b@example.net"}},
		Subject: "Fwd: 会議", Text: "see attached", Charset: compose.UTF8, Forward: orig, ForwardName: "会議.eml", Date: time.Now()}
	raw := build(t, m)
	s := string(raw)
	if !strings.Contains(s, "Content-Type: message/rfc822") || !strings.Contains(s, "Content-Transfer-Encoding: 8bit") || !bytes.Contains(raw, orig) {
		t.Fatalf("forward:\n%s", s)
	}
	if !strings.Contains(s, "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 7bit") {
		t.Fatalf("ASCII text not 7bit:\n%s", s)
	}
	if !strings.Contains(s, "=?UTF-8?B?") || !strings.Contains(s, "Message-ID: <") || !strings.Contains(s, "@example.test>") {
		t.Fatalf("headers:\n%s", s)
	}
	p := parse(t, raw)
	if p.Subject != "Fwd: 会議" {
		t.Fatalf("subject %q", p.Subject)
	}
}

// Header injection through any field is refused; a draft keeps Bcc; a
// line longer than 998 octets goes in base64.
func TestHostileInput(t *testing.T) {
	for _, m := range []compose.Message{
		{From: compose.Address{Addr: "a@example.test"}, Subject: "x\r\nBcc: victim@example.net"},
		{From: compose.Address{Addr: "a@example.test"}, To: []compose.Address{{Name: "x\nBcc: v@x", Addr: "b@example.net"}}},
		{From: compose.Address{Addr: "a@example.test"}, Attachments: []compose.Attachment{{Name: "a\r\n.pdf"}}},
		{From: compose.Address{Addr: "a@example.test"}, InReplyTo: "<x>\r\nBcc: v@x"},
	} {
		if _, err := m.Bytes(); err == nil {
			t.Errorf("accepted %+v", m)
		}
	}
	m := compose.Message{From: compose.Address{Addr: "a@example.test"}, Bcc: []compose.Address{{Addr: "hidden@example.net"}}, KeepBcc: true,
		Text: strings.Repeat("長", 2000), Charset: compose.ISO2022JP, Date: time.Now()}
	raw := build(t, m)
	if !strings.Contains(string(raw), "Bcc: hidden@example.net") || !strings.Contains(string(raw), "base64") {
		t.Fatalf("draft:\n%.600s", raw)
	}
	if p := parse(t, raw); !strings.HasPrefix(p.Text, strings.Repeat("長", 2000)) {
		t.Fatal("long line lost")
	}
}
