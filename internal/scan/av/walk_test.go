package av

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// mailtextLeaves returns the leaf parts mailtext reports (containers it
// lists, message/rfc822 and unopened multiparts, are left out).
func mailtextLeaves(t testing.TB, raw []byte, lim mailtext.Limits) ([]leafInfo, *mailtext.Message) {
	t.Helper()
	m, err := mailtext.Parse(context.Background(), bytes.NewReader(raw), lim)
	if err != nil {
		t.Fatalf("mailtext.Parse: %v", err)
	}
	var out []leafInfo
	for _, p := range m.Parts {
		if strings.HasPrefix(p.ContentType, "multipart/") || p.ContentType == "message/rfc822" || p.ContentType == "message/global" {
			continue
		}
		out = append(out, leafInfo{p.Path, p.ContentType, p.Size})
	}
	return out, m
}

func fixtureFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"testdata", filepath.Join("..", "..", "mailtext", "testdata")} {
		f, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	if len(files) == 0 {
		t.Fatal("no .eml fixtures found")
	}
	return files
}

// TestWalkMatchesMailtext checks that the walker numbers and sizes leaves
// exactly as mailtext does, on the fixtures of both packages.
func TestWalkMatchesMailtext(t *testing.T) {
	t.Parallel()
	for _, name := range fixtureFiles(t) {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got, res := walkLeaves(t, raw, limitsFrom(mailtext.Limits{}))
		want, m := mailtextLeaves(t, raw, mailtext.Limits{})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: walker leaves\n %+v\nmailtext leaves\n %+v", name, got, want)
		}
		if res.Incomplete != "" || m.Unscannable {
			t.Errorf("%s: incomplete walk %q, mailtext unscannable %v", name, res.Incomplete, m.Unscannable)
		}
	}
}

func TestWalkPaths(t *testing.T) {
	t.Parallel()
	inner := message("inner", multipart("mixed", "in",
		textPart("inner body"),
		attachment("a.bin", "application/octet-stream", []byte("abc")),
	))
	raw := message("paths", multipart("mixed", "out",
		multipart("alternative", "alt", textPart("plain"), part{header: []string{"Content-Type: text/html"}, body: "<p>html</p>"}),
		attachment("b.bin", "application/octet-stream", []byte("hello")),
		rfc822(inner),
	))
	got, res := walkLeaves(t, raw, limitsFrom(mailtext.Limits{}))
	want := []leafInfo{
		{"1.1", "text/plain", 5},
		{"1.2", "text/html", 11},
		{"2", "application/octet-stream", 5},
		{"3.1", "text/plain", 10},
		{"3.2", "application/octet-stream", 3},
	}
	if !reflect.DeepEqual(got, want) || res.Incomplete != "" {
		t.Fatalf("leaves %+v (incomplete %q), want %+v", got, res.Incomplete, want)
	}
	mt, _ := mailtextLeaves(t, raw, mailtext.Limits{})
	if !reflect.DeepEqual(got, mt) {
		t.Fatalf("mailtext disagrees: %+v", mt)
	}

	// A single-part message is section 1, and so is an attached
	// single-part message's body (RFC 3501 6.4.5).
	single := message("single", textPart("just text"))
	got, _ = walkLeaves(t, single, limitsFrom(mailtext.Limits{}))
	if len(got) != 1 || got[0].Path != "1" || got[0].Size != 11 { // the final CRLF is content: no delimiter follows
		t.Fatalf("single part: %+v", got)
	}
	fwd := message("fwd", multipart("mixed", "f", textPart("see below"), rfc822(single)))
	got, _ = walkLeaves(t, fwd, limitsFrom(mailtext.Limits{}))
	if len(got) != 2 || got[1].Path != "2.1" {
		t.Fatalf("forwarded single part: %+v", got)
	}
}

func TestWalkDecodes(t *testing.T) {
	t.Parallel()
	qp := part{header: []string{"Content-Type: application/octet-stream", "Content-Transfer-Encoding: quoted-printable"},
		body: "=41=42=\r\n=43 =3d lower=3f=\r\nbad=ZZ end"}
	b := part{header: []string{"Content-Type: application/octet-stream", "Content-Transfer-Encoding: BASE64"},
		body: "aGVs\r\nbG8=\r\n!!IHdv\r\ncmxk"} // "hello", junk, " world"
	raw := message("decode", multipart("mixed", "d", qp, b))
	var bodies []string
	_, err := walkParts(context.Background(), bytes.NewReader(raw), limitsFrom(mailtext.Limits{}), func(p leafPart, r io.Reader) error {
		data, err := io.ReadAll(r)
		bodies = append(bodies, string(data))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ABC = lower?bad=ZZ end", "hello world"}
	if !reflect.DeepEqual(bodies, want) {
		t.Fatalf("decoded %q, want %q", bodies, want)
	}
}

func TestWalkBounds(t *testing.T) {
	t.Parallel()
	// Deeper than the bound: the walk reports it and goes on.
	deep := textPart("deep")
	for i := 0; i < 6; i++ {
		deep = multipart("mixed", "b"+strings.Repeat("x", i), deep)
	}
	raw := message("deep", multipart("mixed", "top", deep, textPart("after")))
	leaves, res := walkLeaves(t, raw, walkLimits{maxDepth: 4, maxParts: 100, maxHeader: 4096, maxDecoded: 1 << 20})
	if res.Incomplete == "" || !strings.Contains(res.Incomplete, "nesting") {
		t.Fatalf("depth bound not reported: %+v", res)
	}
	if len(leaves) != 1 || leaves[0].Path != "2" {
		t.Fatalf("the part after the deep one was not walked: %+v", leaves)
	}

	// Too many parts: the walk stops.
	var many []part
	for i := 0; i < 50; i++ {
		many = append(many, textPart("x"))
	}
	raw = message("many", multipart("mixed", "m", many...))
	leaves, res = walkLeaves(t, raw, walkLimits{maxDepth: 10, maxParts: 10, maxHeader: 4096, maxDecoded: 1 << 20})
	if !strings.Contains(res.Incomplete, "entities") || len(leaves) >= 10 {
		t.Fatalf("parts bound: %d leaves, %+v", len(leaves), res)
	}

	// Decoded bytes: the walk stops within the bound.
	big := attachment("big.bin", "application/octet-stream", bytes.Repeat([]byte("A"), 100000))
	raw = message("big", multipart("mixed", "g", big, big))
	leaves, res = walkLeaves(t, raw, walkLimits{maxDepth: 10, maxParts: 100, maxHeader: 4096, maxDecoded: 120000})
	var total int64
	for _, l := range leaves {
		total += l.Size
	}
	if !strings.Contains(res.Incomplete, "decoded") || total > 120000+4096 {
		t.Fatalf("decoded bound: total %d, %+v", total, res)
	}
}

func TestWalkVisitorErrorStops(t *testing.T) {
	t.Parallel()
	raw := message("stop", multipart("mixed", "s", textPart("a"), textPart("b")))
	boom := errors.New("boom")
	n := 0
	_, err := walkParts(context.Background(), bytes.NewReader(raw), limitsFrom(mailtext.Limits{}), func(leafPart, io.Reader) error {
		n++
		return boom
	})
	if !errors.Is(err, boom) || n != 1 {
		t.Fatalf("err %v after %d visits", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := walkParts(ctx, bytes.NewReader(raw), limitsFrom(mailtext.Limits{}), func(leafPart, io.Reader) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled walk: %v", err)
	}
}

// FuzzWalkParts feeds arbitrary bytes to the walker: no panic, bounds
// kept, and wherever neither walker hit a bound, the same leaves as
// mailtext (path, type and decoded size).
func FuzzWalkParts(f *testing.F) {
	for _, name := range fixtureFiles(f) {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nQ29udGVudC1UeXBlOiB0ZXh0L3BsYWluCgp4\r\n--a--\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary*0=\"a\"; boundary*1*=%62\n\n--ab\n\n--a\nx\n--ab--\n"))
	f.Add([]byte("From x\nContent-Type: multipart/digest; boundary=(c)\"q\"\n\n--q\n\nbody\n--q\nContent-Type: multipart/mixed; boundary=r\n\n--r\n--q--\n"))
	const maxParts, maxDecoded = 64, 1 << 20
	wl := walkLimits{maxDepth: 8, maxParts: maxParts, maxHeader: 4096, maxDecoded: maxDecoded}
	ml := mailtext.Limits{MaxDepth: 8, MaxParts: maxParts, MaxHeaderBytes: 4096, MaxTextBytes: 1 << 30, MaxDecodedBytes: maxDecoded, MaxLinks: 1 << 30}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, res := walkLeaves(t, data, wl)
		if len(got) > maxParts {
			t.Fatalf("%d leaves over the bound %d", len(got), maxParts)
		}
		var total int64
		for _, l := range got {
			total += l.Size
		}
		if total > maxDecoded+64<<10 {
			t.Fatalf("decoded %d bytes, bound %d", total, maxDecoded)
		}
		want, m := mailtextLeaves(t, data, ml)
		if res.Incomplete == "" && !m.Unscannable && !reflect.DeepEqual(got, want) {
			t.Fatalf("walker leaves\n %+v\nmailtext leaves\n %+v", got, want)
		}
	})
}
