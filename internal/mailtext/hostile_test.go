package mailtext

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// patternReader yields n bytes repeating pat, line-broken every lineLen
// bytes (0: never), without holding them in memory.
type patternReader struct {
	pat     []byte
	n       int64
	lineLen int
	col     int
	i       int
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.n > 0 {
		if r.lineLen > 0 && r.col == r.lineLen {
			p[k] = '\n'
			r.col = 0
		} else {
			p[k] = r.pat[r.i%len(r.pat)]
			r.i++
			r.col++
		}
		k++
		r.n--
	}
	return k, nil
}

// allocsDuring returns the bytes allocated while f runs. TotalAlloc is
// cumulative, so it bounds the peak heap use of f from above.
func allocsDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func mustParse(t *testing.T, r io.Reader, lim Limits) *Message {
	t.Helper()
	m, err := Parse(context.Background(), r, lim)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestDeepMultipartNesting(t *testing.T) {
	const depth = 1000
	var b bytes.Buffer
	b.WriteString("Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i, i+1)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\ndeepest secret\r\n--b%d--\r\n", depth, depth)
	for i := depth - 1; i >= 1; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	// A sibling after the deep branch must still be found.
	b.WriteString("--b0\r\nContent-Type: text/plain\r\n\r\nafter the nest\r\n--b0--\r\n")

	m := mustParse(t, &b, DefaultLimits())
	if !m.Unscannable || !m.HasProblem(ProblemDepthExceeded) {
		t.Fatalf("want Unscannable with DepthExceeded, got %v %+v", m.Unscannable, m.Problems)
	}
	if strings.Contains(m.Text, "deepest secret") {
		t.Error("text beyond MaxDepth was decoded")
	}
	if !strings.Contains(m.Text, "after the nest") {
		t.Errorf("sibling after the deep branch lost; Text = %q", m.Text)
	}
	last := m.Parts[len(m.Parts)-1]
	if last.Path != "2" {
		t.Errorf("last part path = %q, want 2", last.Path)
	}
}

func TestDeepMessageNesting(t *testing.T) {
	const depth = 1000
	var b bytes.Buffer
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n", i)
	}
	b.WriteString("Subject: bottom\r\n\r\nbottom text\r\n")
	m := mustParse(t, &b, DefaultLimits())
	if !m.Unscannable || !m.HasProblem(ProblemDepthExceeded) {
		t.Fatalf("want DepthExceeded, got %+v", m.Problems)
	}
	if got := len(m.Parts); got > DefaultLimits().MaxDepth+1 {
		t.Errorf("%d parts listed, more than MaxDepth+1", got)
	}
	if m.Subject != "level 0" {
		t.Errorf("Subject = %q", m.Subject)
	}
}

func TestTooManyParts(t *testing.T) {
	const parts = 20000
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
	for i := 0; i < parts; i++ {
		fmt.Fprintf(&b, "--x\r\nContent-Type: text/plain\r\n\r\np%d\r\n", i)
	}
	b.WriteString("--x--\r\n")
	lim := DefaultLimits()
	m := mustParse(t, &b, lim)
	if !m.Unscannable || !m.HasProblem(ProblemTooManyParts) {
		t.Fatalf("want TooManyParts, got %+v", m.Problems)
	}
	// The root multipart counts as an entity too.
	if len(m.Parts) >= lim.MaxParts {
		t.Errorf("%d parts kept, limit %d", len(m.Parts), lim.MaxParts)
	}
	if strings.Contains(m.Text, fmt.Sprintf("p%d", parts-1)) {
		t.Error("parts past the limit were decoded")
	}
}

func TestHugeHeaderLine(t *testing.T) {
	const size = 10 << 20
	lim := DefaultLimits()
	var m *Message
	alloc := allocsDuring(func() {
		r := io.MultiReader(
			strings.NewReader("From: a@example.com\r\nSubject: "),
			&patternReader{pat: []byte("spam "), n: size},
			strings.NewReader("\r\nTo: b@example.com\r\n\r\nbody after huge header\r\n"),
		)
		m = mustParse(t, r, lim)
	})
	if !m.Unscannable || !m.HasProblem(ProblemHeaderTooLarge) {
		t.Fatalf("want HeaderTooLarge, got %+v", m.Problems)
	}
	if len(m.Subject) > lim.MaxHeaderBytes {
		t.Errorf("Subject kept %d bytes, more than MaxHeaderBytes", len(m.Subject))
	}
	if !strings.Contains(m.Text, "body after huge header") {
		t.Errorf("body lost after oversized header: %q", m.Text)
	}
	if len(m.From) != 1 || m.From[0].Addr != "a@example.com" {
		t.Errorf("From = %+v", m.From)
	}
	t.Logf("alloc=%d", alloc)
	if alloc > size {
		t.Errorf("allocated %d bytes for a %d-byte header line: not bounded", alloc, size)
	}
}

func TestHugeHeaderLineInPart(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxHeaderBytes = 4096
	r := io.MultiReader(
		strings.NewReader("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nX-Junk: "),
		&patternReader{pat: []byte("j"), n: 1 << 20},
		strings.NewReader("\r\nContent-Type: text/plain\r\n\r\nhidden?\r\n--x\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--x--\r\n"),
	)
	m := mustParse(t, r, lim)
	if !m.Unscannable || !m.HasProblem(ProblemHeaderTooLarge) {
		t.Fatalf("want HeaderTooLarge, got %+v", m.Problems)
	}
	if !strings.Contains(m.Text, "second") {
		t.Errorf("following part lost: %q", m.Text)
	}
}

func base64Message(ctype string, size int64) io.Reader {
	return io.MultiReader(
		strings.NewReader("Subject: big\r\nContent-Type: "+ctype+"\r\nContent-Transfer-Encoding: base64\r\n\r\n"),
		// "c3BhbSBzcGFt" is base64 for "spam spam".
		&patternReader{pat: []byte("c3BhbSBzcGFt"), n: size, lineLen: 76},
	)
}

func TestHugeBase64Text(t *testing.T) {
	lim := DefaultLimits()
	run := func(size int64) (*Message, uint64) {
		var m *Message
		a := allocsDuring(func() { m = mustParse(t, base64Message("text/plain; charset=utf-8", size), lim) })
		return m, a
	}
	m, a50 := run(50 << 20)
	if !m.Unscannable || !m.HasProblem(ProblemTruncated) {
		t.Fatalf("want Truncated, got %+v", m.Problems)
	}
	if int64(len(m.Text)) > lim.MaxTextBytes {
		t.Errorf("Text is %d bytes, limit %d", len(m.Text), lim.MaxTextBytes)
	}
	if !strings.HasPrefix(m.Text, "spam spam") {
		t.Errorf("Text starts %q", m.Text[:min(20, len(m.Text))])
	}
	if want := int64(50<<20) / 77 * 76 / 4 * 3; m.Parts[0].Size < want-3 {
		t.Errorf("Size = %d, want about %d: the body was not walked to the end", m.Parts[0].Size, want)
	}
	_, a10 := run(10 << 20)
	t.Logf("alloc 10MB=%d 50MB=%d", a10, a50)
	// Memory must not grow with the input once the text bound is reached.
	if a50 > a10+(1<<20) {
		t.Errorf("allocations grow with input: %d bytes for 10 MB, %d for 50 MB", a10, a50)
	}
	if a50 > uint64(12*lim.MaxTextBytes) {
		t.Errorf("allocated %d bytes, not bounded by the text limit", a50)
	}
}

func TestHugeBase64AttachmentDecodedLimit(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxDecodedBytes = 8 << 20
	var m *Message
	alloc := allocsDuring(func() {
		m = mustParse(t, base64Message("application/octet-stream", 50<<20), lim)
	})
	if !m.Unscannable || !m.HasProblem(ProblemDecodedLimit) {
		t.Fatalf("want DecodedLimit, got %+v", m.Problems)
	}
	if alloc > 4<<20 {
		t.Errorf("allocated %d bytes streaming an attachment", alloc)
	}
	// Within the default decoded bound the attachment is fully walked and
	// the message stays scannable.
	m = mustParse(t, base64Message("application/octet-stream", 50<<20), DefaultLimits())
	if m.Unscannable || len(m.Problems) != 0 {
		t.Errorf("clean attachment: Unscannable=%v Problems=%+v", m.Unscannable, m.Problems)
	}
}

func TestHugeHTMLLine(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxTextBytes = 1 << 20
	r := io.MultiReader(
		strings.NewReader("Content-Type: text/html\r\n\r\n<p>"),
		&patternReader{pat: []byte("word <b>x</b> "), n: 20 << 20},
	)
	m := mustParse(t, r, lim)
	if !m.Unscannable || !m.HasProblem(ProblemTruncated) {
		t.Fatalf("want Truncated, got %+v", m.Problems)
	}
	if int64(len(m.Text)) > lim.MaxTextBytes {
		t.Errorf("Text %d bytes over limit", len(m.Text))
	}
}

func TestTooManyLinks(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxLinks = 10
	var b strings.Builder
	b.WriteString("Content-Type: text/html\r\n\r\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "<a href=\"https://x%d.example/\">l%d</a>\r\n", i, i)
	}
	m := mustParse(t, strings.NewReader(b.String()), lim)
	if len(m.HTMLLinks) != 10 || !m.Unscannable || !m.HasProblem(ProblemTooManyLinks) {
		t.Errorf("links=%d unscannable=%v problems=%+v", len(m.HTMLLinks), m.Unscannable, m.Problems)
	}
}
