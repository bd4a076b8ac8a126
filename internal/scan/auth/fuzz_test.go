package auth

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailgate/mailgate/internal/policy"
)

// noKeys answers every TXT query with "not found", so fuzzed chains can
// only be none or fail.
type noKeys struct{}

func (noKeys) LookupTXT(_ context.Context, name string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// FuzzARCHeaders feeds arbitrary ARC header fields to the verifier and the
// tag-list parser: no panic, a known result, and b= removal that keeps every
// other tag.
func FuzzARCHeaders(f *testing.F) {
	f.Add("i=1; a=rsa-sha256; cv=none; d=example.com; s=sel; t=1; b=YWJj",
		"i=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; h=from:to; bh=YWJj; b=YWJj",
		"i=1; mx.example.com; spf=pass")
	f.Add("i=2; cv=fail; b=", "i=2; l=5", "i=2")
	f.Add("i=01; b=\r\n x", "i=51", "i = 1 ; a=ed25519-sha256")
	f.Add("i=1;;", "i=1; h=arc-seal", "i=1; x=\x00")
	f.Fuzz(func(t *testing.T, as, ams, aar string) {
		msg := "ARC-Seal: " + as + "\r\nARC-Message-Signature: " + ams +
			"\r\nARC-Authentication-Results: " + aar + "\r\nFrom: a@example.com\r\n\r\nbody\r\n"
		r := VerifyARC(context.Background(), strings.NewReader(msg), noKeys{})
		if r.Result != ARCNone && r.Result != ARCFail {
			t.Fatalf("result %q without any key", r.Result)
		}
		if r.Result == ARCNone && strings.Contains(strings.ToLower(msg), "arc-") && !strings.ContainsAny(as+ams+aar, "\r\n") {
			t.Fatalf("ARC fields present but result none")
		}
		for _, v := range []string{as, ams, aar} {
			l, err := parseTagList(v)
			if err != nil {
				continue
			}
			seen := map[string]bool{}
			for _, tg := range l.tags {
				if !validTagName(tg.name) || seen[tg.name] {
					t.Fatalf("bad tag %q in %q", tg.name, v)
				}
				seen[tg.name] = true
			}
			raw := "X:" + v
			stripped := withoutB(raw, 2, l)
			l2, err := parseTagList(stripped[2:])
			if err != nil {
				t.Fatalf("b= removal broke %q into %q: %v", v, stripped, err)
			}
			for _, tg := range l.tags {
				got, ok := l2.get(tg.name)
				if !ok || tg.name != "b" && got != tg.value || tg.name == "b" && got != "" {
					t.Fatalf("b= removal changed %s in %q -> %q", tg.name, v, stripped)
				}
			}
		}
	})
}

// FuzzHeaderValue: whatever the fragments and identities, the header value
// parses back with authres.Parse into exactly the fragments kept, our own
// builders' output is always kept, and nothing but folding breaks lines.
func FuzzHeaderValue(f *testing.F) {
	f.Add("mx.example.com", "spf=pass smtp.mailfrom=a.example", "example.com", "sel", "abc/defg", "fail")
	f.Add("a;b", "dkim=pass; spf=pass", "a.example;dkim=pass", "s\r\n", "\"", "pass")
	f.Add("", "arc=pass header.oldest-pass=-1", "xn--bcher-kva.example", "_x", "++++++++", "permerror")
	f.Add("h", "dmarc=fail (p=reject) header.from=\"a b\"", "bücher.example", "a.b", "=", "none")
	f.Fuzz(func(t *testing.T, id, frag, domain, selector, bprefix, result string) {
		d, _ := cleanDomain(domain)
		s, _ := cleanSelector(selector)
		// Results are lower-case words (RFC 8601 2.7); the parser folds case.
		result = strings.ToLower(result)
		if !allAlpha(result) {
			result = "neutral"
		}
		if !isBase64Text(bprefix) {
			bprefix = ""
		}
		ours := []string{
			spfResinfo(result, d, "mailfrom"),
			dkimResinfo(dkimResult{Result: result, Domain: d, Selector: s, BPrefix: bprefix}),
			dmarcResinfo(dmarcOutcome{Result: result, From: d, Published: "quarantine", Applied: "none", Pct: 7}),
			arcResinfo(ARCResult{Result: ARCPass, OldestPass: len(domain) % 60}),
		}
		for _, o := range ours {
			if !validResinfo(o) {
				t.Fatalf("own fragment %q rejected", o)
			}
		}
		fs := []policy.Finding{{AuthResult: frag}}
		for _, o := range ours {
			fs = append(fs, policy.Finding{AuthResult: o})
		}
		v := HeaderValue(id, fs)
		if strings.ContainsAny(strings.ReplaceAll(v, "\r\n\t", ""), "\r\n") {
			t.Fatalf("stray line break in %q", v)
		}
		gotID, res, err := authres.Parse(v)
		if err != nil {
			t.Fatalf("Parse(%q): %v", v, err)
		}
		if validAuthservID(id) && gotID != id || !validAuthservID(id) && gotID != "localhost" {
			t.Fatalf("authserv-id %q from %q", gotID, id)
		}
		want := len(ours)
		if frag != "" && validResinfo(frag) {
			want++
		}
		if len(res) != want {
			t.Fatalf("%d results from %q, want %d", len(res), v, want)
		}
		// Our results come last, in order, with their values.
		for i, o := range ours {
			r := res[len(res)-len(ours)+i]
			if got, w := resultMethodValue(r), strings.Fields(o)[0]; got != w {
				t.Fatalf("result %d = %s, want %s", i, got, w)
			}
		}
		if dr, ok := res[len(res)-3].(*authres.DKIMResult); ok && dr.Domain != d {
			t.Fatalf("dkim header.d %q, want %q", dr.Domain, d)
		}
	})
}

// FuzzReadRawHeader: the raw header splitter never panics, keeps every
// field's bytes, and agrees with itself across line-ending styles.
func FuzzReadRawHeader(f *testing.F) {
	f.Add([]byte("From: a\r\n b\r\nTo: c\r\n\r\nbody"))
	f.Add([]byte(" lead\r\nX: y\n\nbody"))
	f.Add([]byte("no colon\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readRawHeader(bufioReader(b))
		if err != nil {
			t.Fatal(err)
		}
		for _, fl := range h.fields {
			if strings.HasSuffix(fl.raw, "\r\n") {
				t.Fatalf("field keeps its final CRLF: %q", fl.raw)
			}
			if !bytes.Contains(b, []byte(strings.SplitN(fl.raw, "\r\n", 2)[0])) {
				t.Fatalf("field %q not from input", fl.raw)
			}
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
