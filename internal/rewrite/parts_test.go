package rewrite

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// shape lists a parsed message's parts as "path type name" lines.
func shape(m *mailtext.Message) string {
	var b strings.Builder
	for _, p := range m.Parts {
		b.WriteString(p.Path + " " + p.ContentType)
		if p.Filename != "" {
			b.WriteString(" " + p.Filename)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func zipPart() Part {
	return Part{ContentType: `application/zip; name="a.zip"`, Disposition: `attachment; filename="a.zip"`,
		Body: strings.NewReader("PK-not-really")}
}

const mixedTwo = "From: a@example.test\r\nTo: b@example.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=b1\r\n\r\npreamble\r\n" +
	"--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n" +
	"--b1\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n" +
	"--b1\r\nContent-Type: text/csv; name=list.csv\r\nContent-Disposition: attachment; filename=list.csv\r\n\r\na,b\r\n" +
	"--b1--\r\nepilogue\r\n"

func TestDropAndAppendInMixed(t *testing.T) {
	out := apply(t, []byte(mixedTwo), Spec{DropParts: []string{"2", "3"}, AppendParts: []Part{zipPart()}})
	m := parse(t, out)
	if got, want := shape(m), "1 text/plain\n2 application/zip a.zip\n"; got != want {
		t.Fatalf("parts:\n%s\nwant:\n%s\n%s", got, want, out)
	}
	if len(m.Problems) != 0 {
		t.Errorf("problems: %+v", m.Problems)
	}
	for _, gone := range []string{"x.pdf", "list.csv", "JVBERi0"} {
		if bytes.Contains(out, []byte(gone)) {
			t.Errorf("%q still in output:\n%s", gone, out)
		}
	}
	// Untouched bytes stay as they were: the header, preamble, first part
	// and epilogue.
	head := mixedTwo[:strings.Index(mixedTwo, "--b1\r\nContent-Type: application/pdf")]
	if !bytes.HasPrefix(out, []byte(head)) {
		t.Errorf("prefix changed:\n%s", out)
	}
	if !bytes.HasSuffix(out, []byte("--b1--\r\nepilogue\r\n")) {
		t.Errorf("end changed:\n%s", out)
	}
}

func TestDropLeavesNoEmptyMultipart(t *testing.T) {
	in := "Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n" +
		"--o\r\nContent-Type: text/plain\r\n\r\nbody\r\n" +
		"--o\r\nContent-Type: multipart/mixed; boundary=i\r\n\r\n" +
		"--i\r\nContent-Type: image/png; name=a.png\r\n\r\nAAAA\r\n" +
		"--i\r\nContent-Type: image/png; name=b.png\r\n\r\nBBBB\r\n" +
		"--i--\r\n" +
		"--o--\r\n"
	out := apply(t, []byte(in), Spec{DropParts: []string{"2.1", "2.2"}, DropNotice: "moved into the ZIP\r\n"})
	m := parse(t, out)
	if got, want := shape(m), "1 text/plain\n2.1 text/plain\n"; got != want {
		t.Fatalf("parts:\n%s\nwant:\n%s\n%s", got, want, out)
	}
	if p := partByPath(m, "2.1"); p == nil || strings.TrimSpace(p.Text) != "moved into the ZIP" {
		t.Errorf("stand-in part: %+v", p)
	}
	if bytes.Contains(out, []byte("AAAA")) || bytes.Contains(out, []byte("BBBB")) {
		t.Errorf("dropped bodies still there:\n%s", out)
	}
}

func TestAppendWrapsSinglePart(t *testing.T) {
	for name, in := range map[string]string{
		"plain": "From: a@example.test\r\nSubject: hi\r\n\r\nJust text.\r\n",
		"alternative": "From: a@example.test\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n" +
			"--a\r\nContent-Type: text/plain\r\n\r\nJust text.\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>Just text.</p>\r\n--a--\r\n",
		"lf": "From: a@example.test\nSubject: hi\nContent-Type: text/plain; charset=utf-8\n\nJust text.\n",
	} {
		t.Run(name, func(t *testing.T) {
			out := apply(t, []byte(in), Spec{AppendParts: []Part{zipPart()}, SubjectTag: "[zip]"})
			m := parse(t, out)
			if m.Subject != "[zip] hi" {
				t.Errorf("subject %q", m.Subject)
			}
			if len(m.From) != 1 || m.From[0].Addr != "a@example.test" {
				t.Errorf("from %+v", m.From)
			}
			if !strings.Contains(m.Text, "Just text.") {
				t.Errorf("text %q\n%s", m.Text, out)
			}
			last := m.Parts[len(m.Parts)-1]
			if last.ContentType != "application/zip" || last.Filename != "a.zip" {
				t.Errorf("last part %+v\n%s", last, out)
			}
			if got := m.HeaderValues("Content-Type"); len(got) != 1 || !strings.HasPrefix(got[0], "multipart/mixed") {
				t.Errorf("top Content-Type %q", got)
			}
			if len(m.Problems) != 0 {
				t.Errorf("problems %+v\n%s", m.Problems, out)
			}
			if name == "lf" && bytes.Contains(out, []byte("\r\n")) {
				t.Errorf("CRLF written into an LF message:\n%q", out)
			}
		})
	}
}

func TestDropRootAttachment(t *testing.T) {
	in := "From: a@example.test\r\nSubject: only a file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: application/pdf; name=q.pdf\r\nContent-Disposition: attachment; filename=q.pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
	out := apply(t, []byte(in), Spec{DropParts: []string{"1"}, DropNotice: "see the ZIP\r\n", AppendParts: []Part{zipPart()}})
	m := parse(t, out)
	if got, want := shape(m), "1 text/plain\n2 application/zip a.zip\n"; got != want {
		t.Fatalf("parts:\n%s\nwant:\n%s\n%s", got, want, out)
	}
	if bytes.Contains(out, []byte("q.pdf")) || bytes.Contains(out, []byte("JVBERi0")) {
		t.Errorf("attachment left:\n%s", out)
	}
	if !strings.Contains(m.Text, "see the ZIP") {
		t.Errorf("text %q", m.Text)
	}
}

func TestAppendUnterminatedMixed(t *testing.T) {
	in := "Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=x.bin\r\n\r\nxx\r\n"
	out := apply(t, []byte(in), Spec{DropParts: []string{"2"}, AppendParts: []Part{zipPart()}})
	m := parse(t, out)
	if got, want := shape(m), "1 text/plain\n2 application/zip a.zip\n"; got != want {
		t.Fatalf("parts:\n%s\nwant:\n%s\n%s", got, want, out)
	}
	if !bytes.HasSuffix(out, []byte("--b--\r\n")) {
		t.Errorf("not closed:\n%s", out)
	}
}

func TestDropMissingPath(t *testing.T) {
	err := Apply(context.Background(), &bytes.Buffer{}, strings.NewReader(mixedTwo), Spec{DropParts: []string{"9"}})
	if !errors.Is(err, ErrPartNotFound) {
		t.Fatalf("err = %v, want ErrPartNotFound", err)
	}
}
