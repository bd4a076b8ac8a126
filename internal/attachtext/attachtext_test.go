package attachtext_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"

	"github.com/mailgate/mailgate/internal/attachtext"
	"github.com/mailgate/mailgate/internal/mailtext"
)

// member is one file of a test archive.
type member struct {
	name    string // stored as is: CP932 bytes stay CP932
	data    []byte
	encrypt bool // flagged as encrypted (its data is not really)
}

func archive(t testing.TB, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range ms {
		fh := &zip.FileHeader{Name: m.name, Method: zip.Deflate, NonUTF8: !utf8.ValidString(m.name)}
		if m.encrypt {
			fh.Flags |= 0x1
		}
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sjis(t *testing.T, s string) []byte {
	t.Helper()
	b, err := japanese.ShiftJIS.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wordDoc is a Word document whose one paragraph is written in runs.
func wordDoc(t testing.TB, runs ...string) []byte {
	body := `<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p>`
	for _, r := range runs {
		body += "<w:r><w:t>" + r + "</w:t></w:r>"
	}
	return archive(t,
		member{name: "[Content_Types].xml", data: []byte(`<?xml version="1.0"?><Types/>`)},
		member{name: "word/document.xml", data: []byte(body + "</w:p></w:body></w:document>")})
}

// file is one attachment of a test message.
type file struct {
	name, ctype string
	data        []byte
}

// read builds a message with the files attached and reads them.
func read(t *testing.T, lim attachtext.Limits, files ...file) []attachtext.Attachment {
	t.Helper()
	var msg bytes.Buffer
	msg.WriteString("From: a@example.test\r\nTo: b@example.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"sep\"\r\n\r\n")
	mw := multipart.NewWriter(&msg)
	if err := mw.SetBoundary("sep"); err != nil {
		t.Fatal(err)
	}
	w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain"}})
	io.WriteString(w, "body\r\n")
	for _, f := range files {
		w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {f.ctype}, "Content-Transfer-Encoding": {"base64"},
			"Content-Disposition": {mime.FormatMediaType("attachment", map[string]string{"filename": f.name})}})
		for rest := f.data; len(rest) > 0; rest = rest[min(57, len(rest)):] {
			io.WriteString(w, base64.StdEncoding.EncodeToString(rest[:min(57, len(rest))])+"\r\n")
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := msg.String()
	ctx := context.Background()
	m, err := mailtext.Parse(ctx, strings.NewReader(raw), mailtext.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	as, err := attachtext.Read(ctx, strings.NewReader(raw), mailtext.Limits{}, m.Parts, lim, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != len(files) {
		t.Fatalf("%d attachments read of %d", len(as), len(files))
	}
	return as
}

// Types come from content and text from every supported format: text in
// an undeclared Japanese charset, HTML, a Word document whose word is
// split into runs, and the same inside a ZIP with a CP932 member name.
func TestTypesNamesAndText(t *testing.T) {
	inner := archive(t, member{name: string(sjis(t, "名簿.txt")), data: sjis(t, "顧客リスト 2026")},
		member{name: "report.docx", data: wordDoc(t, "営業部の", "顧", "客", "台帳")})
	as := read(t, attachtext.DefaultLimits(),
		file{"memo.txt", "application/octet-stream", sjis(t, "社外秘の資料です")},
		file{"page.html", "text/html", []byte("<html><body><p>Quarterly <b>forecast</b></p></body></html>")},
		file{"report.bin", "application/octet-stream", wordDoc(t, "Confid", "ential")},
		file{"data.zip", "application/zip", archive(t, member{name: "nested.zip", data: inner})})
	for i, c := range []struct {
		types []string
		text  string
		names []string
	}{
		{[]string{"text"}, "社外秘の資料です", nil},
		{[]string{"html"}, "Quarterly forecast", nil},
		{[]string{"zip", "office", "docx"}, "Confidential", nil},
		{[]string{"zip", "archive", "office", "docx"}, "営業部の顧客台帳", []string{"nested.zip", "名簿.txt", "report.docx"}},
	} {
		a := as[i]
		for _, ty := range c.types {
			if !a.HasType(ty) {
				t.Errorf("%s: types %v lack %s", a.Name, a.Types, ty)
			}
		}
		if !strings.Contains(a.Text, c.text) || a.Unread != "" {
			t.Errorf("%s: text %q (unread %q), want %q", a.Name, a.Text, a.Unread, c.text)
		}
		if strings.Join(a.Names, "|") != strings.Join(c.names, "|") {
			t.Errorf("%s: members %q, want %q", a.Name, a.Names, c.names)
		}
	}
	if !strings.Contains(as[3].Text, "顧客リスト 2026") {
		t.Errorf("CP932 text inside a nested ZIP not read: %q", as[3].Text)
	}
}

// Hostile attachments are read as far as the bounds allow and say what
// was left unread; none fails the read, and the text is valid UTF-8.
func TestHostileAttachments(t *testing.T) {
	lim := attachtext.DefaultLimits()
	lim.MaxPartBytes, lim.MaxTotalBytes, lim.MaxEntries, lim.MaxDepth = 4<<20, 8<<20, 50, 3
	// 42.zip in small: each level holds four copies of the one below, the
	// bottom is 2 MB of zeros compressed to a few KB.
	bomb := archive(t, member{name: "zeros.txt", data: make([]byte, 2<<20)})
	for i := 0; i < 2; i++ {
		var ms []member
		for j := 0; j < 4; j++ {
			ms = append(ms, member{name: strings.Repeat("n", i+1) + string(rune('a'+j)) + ".zip", data: bomb})
		}
		bomb = archive(t, ms...)
	}
	deep := archive(t, member{name: "secret.txt", data: []byte("deepest")})
	for i := 0; i < 6; i++ {
		deep = archive(t, member{name: "level.zip", data: deep})
	}
	many := make([]member, 80)
	for i := range many {
		many[i] = member{name: strings.Repeat("f", i+1) + ".txt", data: []byte("x")}
	}
	cases := []struct {
		f      file
		unread string
		types  []string
	}{
		{file{"bomb.zip", "application/zip", archive(t, member{name: "zeros.txt", data: make([]byte, 16<<20)})}, "expands", []string{"zip"}},
		{file{"nested-bomb.zip", "application/zip", bomb}, "zeros.txt expands", []string{"zip"}},
		{file{"deep.zip", "application/zip", deep}, "nested deeper than 3", []string{"zip"}},
		{file{"many.zip", "application/zip", archive(t, many...)}, "more than 50 archive members", []string{"zip"}},
		{file{"locked.zip", "application/zip", archive(t, member{name: "a.txt", data: []byte("x"), encrypt: true})}, "encrypted", []string{"encrypted"}},
		{file{"torn.zip", "application/zip", []byte("PK\x03\x04 not really a zip")}, "damaged ZIP", []string{"zip"}},
		{file{"x.pdf", "application/pdf", []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R /Size 99999 >>\n%%EOF garbage")},
			"PDF text not readable", []string{"pdf"}},
		{file{"big.bin", "application/octet-stream", make([]byte, 5<<20)}, "larger than", []string{"other"}},
	}
	for _, c := range cases {
		as := read(t, lim, c.f)
		a := as[0]
		if !strings.Contains(a.Unread, c.unread) {
			t.Errorf("%s: unread %q, want %q", c.f.name, a.Unread, c.unread)
		}
		for _, ty := range c.types {
			if !a.HasType(ty) {
				t.Errorf("%s: types %v lack %s", c.f.name, a.Types, ty)
			}
		}
		if !utf8.ValidString(a.Text) {
			t.Errorf("%s: text not UTF-8", c.f.name)
		}
	}
	// Incompressible members count against the budget of the whole
	// message: the second archive is not read.
	noise := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	two := archive(t, member{name: "a.bin", data: noise[:3<<19]}, member{name: "b.bin", data: noise[3<<19:]})
	as := read(t, lim, file{"one.zip", "application/zip", two}, file{"two.zip", "application/zip", two})
	if as[0].Unread != "" || !strings.Contains(as[1].Unread, "reading budget") {
		t.Errorf("budget: %q, %q", as[0].Unread, as[1].Unread)
	}
}

// A text attachment in a charset nobody knows, or bytes that break the
// declared one, is still read: valid UTF-8 with the readable words kept.
func TestBrokenCharset(t *testing.T) {
	as := read(t, attachtext.DefaultLimits(),
		file{"a.txt", "text/plain; charset=x-no-such-charset", []byte("readable words \xff\xfe\x80 end")},
		file{"b.txt", "text/plain; charset=iso-2022-jp", []byte("\x1b$B\x7f\x7f broken \x1b(B tail")},
		file{"c.txt", "text/plain; charset=shift_jis", []byte("\x81\x20half \x82")})
	for i, want := range []string{"readable words", "tail", "half"} {
		a := as[i]
		if !utf8.ValidString(a.Text) || !strings.Contains(a.Text, want) || !a.HasType(attachtext.TypeText) {
			t.Errorf("%s: %q %v, want %q in valid UTF-8", a.Name, a.Text, a.Types, want)
		}
	}
}

// A context that ends stops the reading of an archive's members: the
// attachment is marked unread, never reported as read.
func TestContextStopsReading(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	raw := "Content-Type: application/zip\r\nContent-Disposition: attachment; filename=\"a.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(archive(t, member{name: "a.txt", data: []byte("x")})) + "\r\n"
	parts := []mailtext.Part{{Path: "1", IsAttachment: true, Filename: "a.zip", ContentType: "application/zip"}}
	as, err := attachtext.Read(ctx, strings.NewReader(raw), mailtext.Limits{}, parts, attachtext.DefaultLimits(), true)
	if err == nil && (len(as) != 1 || as[0].Unread == "") {
		t.Fatalf("read after the context ended: %+v", as)
	}
	if len(as) != 1 {
		t.Fatalf("attachments %+v", as)
	}
}
