package rewrite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
)

func addSeeds(f *testing.F) {
	for _, dir := range []string{"testdata", filepath.Join("..", "mailtext", "testdata")} {
		names, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeAoKeQ==\r\n--a--\r\n"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=\"=?x?=\"\n\n--=?x?=\nContent-Type: text/html; charset=iso-2022-jp\n\n<a href=x>\x1b$B$3\x1b(B</a>\n--=?x?=--"))
	f.Add([]byte("From mbox\r\nSubject: =?utf-8?q?x?=\r\n\tcont\r\n\r\n"))
}

var fuzzLimits = mailtext.Limits{MaxDepth: 8, MaxParts: 64, MaxHeaderBytes: 4096, MaxTextBytes: 8192, MaxDecodedBytes: 1 << 20, MaxLinks: 16}

// roomyLimits reads Apply's output. The fields Apply adds to a header
// section (a Subject tag, a notice's or a wrapping multipart's
// Content-Type, MIME-Version) may take one that was just within
// MaxHeaderBytes over it, so the output is read with that much more room.
// Refusing to rewrite such a message would defer its delivery for a few
// bytes over a limit that exists to bound memory.
func roomyLimits() mailtext.Limits {
	l := fuzzLimits
	l.MaxHeaderBytes += 1024
	return l
}

// FuzzApply: any input with a fixed Spec never panics and fails only with
// the documented errors; with only PrependHeaders the output is exactly
// the headers followed by the input.
func FuzzApply(f *testing.F) {
	addSeeds(f)
	full := Spec{
		PrependHeaders: prepend, RemoveHeaders: removeOwn, SubjectTag: "[要注意]",
		StripParts: []string{"2", "1.1"}, Banner: "warn <b>", Limits: fuzzLimits,
	}
	var hdr bytes.Buffer
	for _, h := range prepend {
		hdr.WriteString(formatField(h.Name, h.Value, "\r\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		err := Apply(context.Background(), &out, bytes.NewReader(data), full)
		if err != nil && !errors.Is(err, ErrHeaderTooLarge) && !errors.Is(err, ErrPartNotFound) {
			t.Fatalf("unexpected error: %v", err)
		}
		if err == nil {
			m, err := mailtext.Parse(context.Background(), bytes.NewReader(out.Bytes()), fuzzLimits)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(m.Subject, full.SubjectTag) {
				t.Fatalf("subject not tagged: %q", m.Subject)
			}
		}
		out.Reset()
		if err := Apply(context.Background(), &out, bytes.NewReader(data), Spec{PrependHeaders: prepend}); err != nil {
			t.Fatal(err)
		}
		got := out.Bytes()
		eol := detectEOL(newSource(bytes.NewReader(data), lineBufSize))
		want := hdr.String()
		if eol == "\n" {
			want = strings.ReplaceAll(want, "\r\n", "\n")
		}
		rest := data
		if bytes.HasPrefix(data, []byte("From ")) {
			// An mbox envelope line stays first (see Apply).
			i := bytes.IndexByte(data, '\n') + 1
			if i == 0 {
				i = len(data)
			}
			want = string(data[:i]) + want
			rest = data[i:]
		}
		if !bytes.HasPrefix(got, []byte(want)) || !bytes.Equal(got[len(want):], rest) {
			t.Fatalf("prepend-only output is not headers + input")
		}
	})
}

// FuzzStripAgreesWithMailtext: every part mailtext reports can be stripped
// (the two walks number parts alike), and what is left parses with the
// stripped leaves as notices.
func FuzzStripAgreesWithMailtext(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := mailtext.Parse(context.Background(), bytes.NewReader(data), fuzzLimits)
		if err != nil {
			t.Fatal(err)
		}
		if m.HasProblem(mailtext.ProblemHeaderTooLarge) {
			return
		}
		for _, p := range m.Parts {
			var out bytes.Buffer
			err := Apply(context.Background(), &out, bytes.NewReader(data), Spec{
				StripParts: []string{p.Path}, StripNotice: func(string) string { return "NOTICE" }, Limits: fuzzLimits,
			})
			if err != nil {
				t.Fatalf("strip %s: %v", p.Path, err)
			}
			if m.Unscannable {
				continue
			}
			m2, err := mailtext.Parse(context.Background(), bytes.NewReader(out.Bytes()), roomyLimits())
			if err != nil {
				t.Fatal(err)
			}
			// The notice is at the path, or at an encoded message/rfc822
			// around it that was replaced whole.
			var q *mailtext.Part
			for i := range m2.Parts {
				if c := m2.Parts[i].Path; c == p.Path || strings.HasPrefix(p.Path, c+".") && m2.Parts[i].Text == "NOTICE" {
					q = &m2.Parts[i]
					break
				}
			}
			if q == nil || q.ContentType != "text/plain" || q.Text != "NOTICE" {
				t.Fatalf("strip %s: part after is %+v", p.Path, q)
			}
		}
	})
}

// attachmentPaths lists the attachments outside attached messages, as a
// caller that detaches them would find them.
type attachmentPaths struct{ paths []string }

func (a *attachmentPaths) Header(n *mailtext.Node) (mailtext.Action, error) {
	if n.Message {
		return mailtext.AsLeaf, nil
	}
	return mailtext.Descend, nil
}

func (a *attachmentPaths) Body(n *mailtext.Node, b *mailtext.Body) error {
	if n.IsAttachment() {
		a.paths = append(a.paths, n.Path)
	}
	return nil
}

// FuzzDropAppend: dropping every attachment and appending a part never
// panics, fails only with the documented errors, and leaves a message
// whose last part is the appended one and that has no other attachment.
func FuzzDropAppend(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var a attachmentPaths
		if err := mailtext.Walk(context.Background(), bytes.NewReader(data), fuzzLimits, &a); err != nil {
			t.Fatal(err)
		}
		s := Spec{DropParts: a.paths, AppendParts: []Part{zipPart()}, Limits: fuzzLimits}
		var out bytes.Buffer
		err := Apply(context.Background(), &out, bytes.NewReader(data), s)
		if err != nil {
			if !errors.Is(err, ErrHeaderTooLarge) && !errors.Is(err, ErrPartNotFound) && !errors.Is(err, ErrBoundaryReused) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		var b attachmentPaths
		if err := mailtext.Walk(context.Background(), bytes.NewReader(out.Bytes()), roomyLimits(), &b); err != nil {
			t.Fatal(err)
		}
		if len(b.paths) == 0 {
			t.Fatalf("appended part missing:\n%q", out.Bytes())
		}
	})
}
