package mailtext

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func parseString(t *testing.T, s string) *Message {
	t.Helper()
	return mustParse(t, strings.NewReader(strings.ReplaceAll(s, "\n", "\r\n")), DefaultLimits())
}

func TestFixtureFacts(t *testing.T) {
	t.Parallel()
	m := parseFile(t, filepath.Join("testdata", "iso2022jp.eml"))
	if m.Subject != "会議のお知らせ①②ﾃｽﾄ" {
		t.Errorf("Subject = %q", m.Subject)
	}
	if !strings.Contains(m.Text, "①②番目の議題") || !strings.Contains(m.Text, "ﾃｽﾄ ｶﾀｶﾅ") {
		t.Errorf("Text = %q", m.Text)
	}
	if len(m.From) != 1 || m.From[0].Name != "山田太郎" || m.From[0].Addr != "taro@example.jp" {
		t.Errorf("From = %+v", m.From)
	}

	m = parseFile(t, filepath.Join("testdata", "nested_attachment.eml"))
	names := map[string]string{}
	for _, p := range m.Parts {
		names[p.Path] = p.Filename
	}
	if names["2"] != "見積書.pdf" || names["3"] != "請求書.xlsx" {
		t.Errorf("filenames = %v", names)
	}
	// The HTML alternative is a Part but not in Text; its link is kept.
	if strings.Contains(m.Text, "HTML版") || len(m.HTMLLinks) != 1 {
		t.Errorf("Text = %q links = %+v", m.Text, m.HTMLLinks)
	}

	m = parseFile(t, filepath.Join("testdata", "duplicate_from.eml"))
	dups := map[string]bool{}
	for _, p := range m.Problems {
		if p.Kind == ProblemDuplicateHeader {
			dups[p.Detail] = true
		}
	}
	for _, f := range []string{"From", "Subject", "Date", "Content-Type"} {
		if !dups[f] {
			t.Errorf("duplicate %s not reported: %+v", f, m.Problems)
		}
	}
	if got := m.HeaderValues("from"); len(got) != 2 || got[1] != "attacker@evil.example" {
		t.Errorf("HeaderValues(from) = %q", got)
	}
	if m.Unscannable {
		t.Error("duplicates alone must not make a message unscannable")
	}

	m = parseFile(t, filepath.Join("testdata", "raw8bit_sjis.eml"))
	if m.Subject != "【激安】今だけ半額！①" || m.From[0].Name != "激安ショップ" {
		t.Errorf("raw Shift_JIS header: Subject=%q From=%+v", m.Subject, m.From)
	}
}

func TestBoundaryLineBreakBelongsToDelimiter(t *testing.T) {
	t.Parallel()
	m := parseString(t, `Content-Type: multipart/mixed; boundary=x

--x

abc
--x

line

--x--
`)
	if len(m.Parts) != 2 || m.Parts[0].Text != "abc" || m.Parts[1].Text != "line\n" {
		t.Fatalf("parts = %+v", m.Parts)
	}
	if m.Parts[0].Size != 3 {
		t.Errorf("Size = %d, want 3", m.Parts[0].Size)
	}
}

func TestUnterminatedInnerMultipart(t *testing.T) {
	t.Parallel()
	m := parseString(t, `Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain

inner text
--outer
Content-Type: text/plain

second outer
--outer--
`)
	if !strings.Contains(m.Text, "inner text") || !strings.Contains(m.Text, "second outer") {
		t.Errorf("Text = %q", m.Text)
	}
	if !m.HasProblem(ProblemMalformedMIME) || m.Unscannable {
		t.Errorf("problems = %+v unscannable=%v", m.Problems, m.Unscannable)
	}
	if m.Parts[1].Path != "2" {
		t.Errorf("paths: %+v", m.Parts)
	}
}

func TestAlternativeBlankPlainUsesHTML(t *testing.T) {
	t.Parallel()
	m := parseString(t, `Content-Type: multipart/alternative; boundary=a

--a
Content-Type: text/plain

   
--a
Content-Type: text/html

<p>buy now</p>
--a--
`)
	if m.Text != "buy now" {
		t.Errorf("Text = %q", m.Text)
	}
}

func TestEncodedMessageRFC822(t *testing.T) {
	t.Parallel()
	inner := "Subject: inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n内側の本文\r\n"
	m := parseString(t, `Content-Type: multipart/mixed; boundary=x

--x
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

`+base64.StdEncoding.EncodeToString([]byte(inner))+`
--x--
`)
	if len(m.Parts) != 2 || m.Parts[1].Path != "1.1" || m.Parts[1].Text != "内側の本文\n" {
		t.Fatalf("parts = %+v", m.Parts)
	}
	if m.Parts[0].Size != int64(len(inner)) {
		t.Errorf("message part Size = %d, want %d", m.Parts[0].Size, len(inner))
	}
}

func TestMalformedStructures(t *testing.T) {
	t.Parallel()
	m := parseString(t, `Subject: x
Content-Type: multipart/mixed
Content-Transfer-Encoding: x-weird

hello
`)
	if m.Text != "hello\n" || !m.HasProblem(ProblemMalformedMIME) || !m.HasProblem(ProblemBadTransferEncoding) {
		t.Errorf("Text=%q problems=%+v", m.Text, m.Problems)
	}
	m = parseString(t, `Subject: x
this line is not a header
more body
`)
	if m.Text != "this line is not a header\nmore body\n" || !m.HasProblem(ProblemMalformedHeader) {
		t.Errorf("Text=%q problems=%+v", m.Text, m.Problems)
	}
	m = parseString(t, "")
	if len(m.Parts) != 1 || m.Text != "" || m.Unscannable {
		t.Errorf("empty input: %+v", m)
	}
}

func TestParseContextAndReadErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Parse(ctx, strings.NewReader("Subject: x\r\n\r\nbody\r\n"), DefaultLimits()); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled ctx: err = %v", err)
	}
	boom := errors.New("boom")
	for _, ctype := range []string{"text/plain", "text/html", "application/octet-stream"} {
		r := io.MultiReader(strings.NewReader("Content-Type: "+ctype+"\r\n\r\n<p>partial"), iotest.ErrReader(boom))
		if _, err := Parse(context.Background(), r, DefaultLimits()); !errors.Is(err, boom) {
			t.Errorf("%s: read error not returned: %v", ctype, err)
		}
	}
}

func TestPartHeadIsTheDecodedStart(t *testing.T) {
	t.Parallel()
	zip := base64.StdEncoding.EncodeToString([]byte("PK\x03\x04rest of an archive"))
	m := parseString(t, `From: a@example.com
Subject: head
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 au lait
--b
Content-Type: text/plain; name=notes.txt
Content-Transfer-Encoding: base64

`+zip+`
--b
Content-Type: application/octet-stream

ab
--b--
`)
	want := map[string]string{"1": "café au", "2": "PK\x03\x04rest", "3": "ab"}
	if len(m.Parts) != len(want) {
		t.Fatalf("parts = %+v", m.Parts)
	}
	for _, p := range m.Parts {
		if p.Head != want[p.Path] {
			t.Errorf("part %s: Head = %q, want %q", p.Path, p.Head, want[p.Path])
		}
	}
	// Reading the head must not take it from the text.
	if !strings.Contains(m.Text, "café au lait") || !strings.Contains(m.Text, "PK\x03\x04rest of an archive") {
		t.Errorf("Text = %q", m.Text)
	}
}

// Text decoding reuses scratch buffers between parses; what one parse
// returned must not change when the next reuses them.
func TestParsedTextSurvivesTheNextParse(t *testing.T) {
	t.Parallel()
	mk := func(charset, body string) string {
		return "From: a@example.com\nSubject: s\nContent-Type: text/plain; charset=" + charset + "\n\n" + body + "\n"
	}
	first := parseString(t, mk("utf-8", "first message, plain UTF-8 text"))
	firstJP := parseString(t, mk("iso-2022-jp", "\x1b$B$3$s$K$A$O\x1b(B first"))
	for i := 0; i < 50; i++ {
		parseString(t, mk("utf-8", strings.Repeat("x", 100+i)))
		parseString(t, mk("iso-2022-jp", "\x1b$B$5$h$&$J$i\x1b(B "+strings.Repeat("y", i)))
	}
	if first.Text != "first message, plain UTF-8 text\n" || first.Parts[0].Text != first.Text {
		t.Errorf("first text changed: %q / %q", first.Text, first.Parts[0].Text)
	}
	if firstJP.Text != "こんにちは first\n" {
		t.Errorf("first Japanese text changed: %q", firstJP.Text)
	}
}
