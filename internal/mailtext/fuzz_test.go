package mailtext

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func addFixtureSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParse checks that any input parses without panic into valid UTF-8
// within the limits.
func FuzzParse(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeAoKeQ==\r\n--a--\r\n"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=\"=?x?=\"\n\n--=?x?=\nContent-Type: text/html; charset=iso-2022-jp\n\n<a href=x>\x1b$B$3\x1b(B</a>\n--=?x?=--"))
	lim := Limits{MaxDepth: 8, MaxParts: 64, MaxHeaderBytes: 4096, MaxTextBytes: 8192, MaxDecodedBytes: 1 << 20, MaxLinks: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(context.Background(), bytes.NewReader(data), lim)
		if err != nil {
			t.Fatalf("Parse failed on in-memory input: %v", err)
		}
		if int64(len(m.Text)) > lim.MaxTextBytes || len(m.Parts) > lim.MaxParts || len(m.HTMLLinks) > lim.MaxLinks {
			t.Fatalf("limits exceeded: text %d parts %d links %d", len(m.Text), len(m.Parts), len(m.HTMLLinks))
		}
		check := func(what, s string) {
			if !utf8.ValidString(s) {
				t.Fatalf("%s is not valid UTF-8: %q", what, s)
			}
		}
		check("Subject", m.Subject)
		check("Text", m.Text)
		for _, h := range m.Header {
			check("header name", h.Name)
			check("header value", h.Value)
		}
		for _, list := range [][]Address{m.From, m.ReplyTo, m.To, m.Cc} {
			for _, a := range list {
				check("Name", a.Name)
				check("Addr", a.Addr)
				check("Raw", a.Raw)
			}
		}
		for _, p := range m.Parts {
			check("Part.Text", p.Text)
			check("Filename", p.Filename)
			check("ContentType", p.ContentType)
		}
		for _, l := range m.HTMLLinks {
			check("URL", l.URL)
			check("link text", l.Text)
		}
		for _, p := range m.Problems {
			check("problem detail", p.Detail)
			if p.Kind.Unscannable() && !m.Unscannable {
				t.Fatalf("%s recorded but Unscannable is false", p.Kind)
			}
		}
	})
}

func FuzzDecodeHeader(f *testing.F) {
	for _, s := range []string{
		"=?UTF-8?B?44E=?= =?UTF-8?B?guOBhA==?=",
		"=?ISO-2022-JP?B?GyRCLSEbKEIbKEkxGyhC?=",
		"=?utf-8?q?=e3=81=82_x?= tail",
		"\x1b$B$3$s\x1b(B \x8c\x8f",
		"=?x?Q?=?= =?",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := DecodeHeader(s)
		if !utf8.ValidString(out) {
			t.Fatalf("DecodeHeader(%q) = %q: invalid UTF-8", s, out)
		}
		if strings.ContainsAny(out, "\r\n") {
			t.Fatalf("DecodeHeader(%q) kept a line break: %q", s, out)
		}
	})
}

func FuzzHTMLToText(f *testing.F) {
	f.Add("<p>a&amp;b</p><a href='x'>y</a>", int64(100))
	f.Add("<script>x</script><noscript><b>z</b></noscript>日本", int64(4))
	f.Add("<a href=\"\xff\">\xfe</a", int64(1))
	f.Fuzz(func(t *testing.T, s string, max int64) {
		if max > 1<<16 {
			max = 1 << 16
		}
		text, links := HTMLToText(strings.NewReader(s), max)
		if !utf8.ValidString(text) {
			t.Fatalf("invalid UTF-8 text %q", text)
		}
		if max > 0 && int64(len(text)) > max {
			t.Fatalf("text %d bytes, max %d", len(text), max)
		}
		for _, l := range links {
			if !utf8.ValidString(l.URL) || !utf8.ValidString(l.Text) {
				t.Fatalf("invalid UTF-8 link %+v", l)
			}
		}
	})
}

func FuzzDecodeCharset(f *testing.F) {
	for _, cs := range []string{"iso-2022-jp", "shift_jis", "euc-jp", "", "utf-8", "x-bogus", "utf-16"} {
		f.Add(cs, []byte("\x1b$B\x2d\x21\x1b(B\x0e1\x0f\x87\x40\xad\xa1"))
	}
	f.Fuzz(func(t *testing.T, cs string, b []byte) {
		out, _ := DecodeCharset(cs, b)
		if !utf8.ValidString(out) {
			t.Fatalf("DecodeCharset(%q, %q) = %q: invalid UTF-8", cs, b, out)
		}
	})
}
