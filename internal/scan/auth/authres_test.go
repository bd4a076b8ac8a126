package auth

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailgate/mailgate/internal/policy"
)

func TestHeaderValueDropsHostileFragments(t *testing.T) {
	t.Parallel()
	good := []string{
		"spf=pass smtp.mailfrom=example.com",
		"dkim=pass header.d=example.com header.s=sel header.b=\"ab/cd+ef\"",
		"dmarc=fail (p=reject) header.from=example.com",
		"arc=pass header.oldest-pass=2",
		"iprev=pass policy.iprev=192.0.2.1",
	}
	bad := []string{
		"spf=pass smtp.mailfrom=a.example; dkim=pass header.d=bank.example",
		"spf=pass smtp.mailfrom=a.example\r\nX-Injected: 1",
		"spf=pass smtp.mailfrom=a(b).example",
		"spf=pass smtp.mailfrom=\"a b\"",
		"spf=pass  smtp.mailfrom=a.example",
		"dmarc=pass (policy override) header.from=a.example",
		"arc=pass header.oldest-pass=0",
		"none",
		"=pass",
		"spf=pass smtp.mailfrom=a.example\x00",
		"spf=pässt",
	}
	var fs []policy.Finding
	for i := range max(len(good), len(bad)) {
		if i < len(bad) {
			fs = append(fs, policy.Finding{AuthResult: bad[i]})
		}
		if i < len(good) {
			fs = append(fs, policy.Finding{AuthResult: good[i]})
		}
	}
	v := HeaderValue("mx.gate.example", fs)
	id, res, err := authres.Parse(v)
	if err != nil || id != "mx.gate.example" || len(res) != len(good) {
		t.Fatalf("Parse(%q) = %q, %d results, %v; want %d results", v, id, len(res), err, len(good))
	}
	if !strings.Contains(v, good[1]) || strings.Contains(v, "bank.example") || strings.Contains(v, "Injected") {
		t.Fatalf("value %q", v)
	}
	if d := res[1].(*authres.DKIMResult); d.Value != authres.ResultPass || d.Domain != "example.com" {
		t.Fatalf("dkim parsed as %+v", d)
	}
	if a := res[3].(*authres.ARCResult); a.OldestPass != 2 {
		t.Fatalf("arc parsed as %+v", a)
	}
}

func TestHeaderValueEdges(t *testing.T) {
	t.Parallel()
	if v := HeaderValue("mx.gate.example", nil); v != "mx.gate.example; none" {
		t.Errorf("empty: %q", v)
	}
	if v := HeaderValue("evil; spf=pass", nil); v != "localhost; none" {
		t.Errorf("hostile authserv-id: %q", v)
	}
}

// TestBuildersEscapeIdentities: results built from hostile identities
// parse back to exactly the results evaluated, with the hostile part
// dropped.
func TestBuildersEscapeIdentities(t *testing.T) {
	t.Parallel()
	hostile := []string{"a.example; dkim=pass", "a.example\r\n\tdkim=pass", "a(b).example", "\"a\".example", "a .example", "a\x00.example"}
	for _, h := range hostile {
		d, ok := cleanDomain(h)
		if ok {
			t.Errorf("cleanDomain(%q) accepted %q", h, d)
		}
		fs := []policy.Finding{
			{AuthResult: spfResinfo("fail", d, "mailfrom")},
			{AuthResult: dkimResinfo(dkimResult{Result: "fail", Domain: d})},
			{AuthResult: dmarcResinfo(dmarcOutcome{Result: "fail", From: d, Published: "reject", Applied: "reject"})},
			// pvalue refuses what it cannot write, even if a caller forgot
			// to clean it.
			{AuthResult: (&resinfoWith{resinfo{method: "spf", result: "pass"}, "smtp.mailfrom", h}).String()},
		}
		assertHeaderParses(t, fs)
		v := HeaderValue("mx", fs)
		_, res, _ := authres.Parse(v)
		for _, r := range res {
			switch r := r.(type) {
			case *authres.SPFResult:
				if r.From != "" {
					t.Errorf("%q: spf From %q", h, r.From)
				}
			case *authres.DKIMResult:
				if r.Value != "fail" || r.Domain != "" {
					t.Errorf("%q: dkim %+v", h, r)
				}
			case *authres.DMARCResult:
				if r.Value != "fail" || r.From != "" {
					t.Errorf("%q: dmarc %+v", h, r)
				}
			}
		}
	}
}

type resinfoWith struct {
	r           resinfo
	name, value string
}

func (w *resinfoWith) String() string {
	w.r.prop(w.name, w.value)
	return w.r.String()
}

// TestCanonMatchesGoMsgauth checks our canonicalisation and signature
// verification (used for ARC) against DKIM signatures made by go-msgauth,
// in both canonicalisations, over awkward white space and blank lines.
func TestCanonMatchesGoMsgauth(t *testing.T) {
	t.Parallel()
	d := newTestDNS(t)
	k := edKey(t)
	d.publish("sender.example", "sel", k)
	bodies := []string{
		"",
		"\r\n",
		"one line without end",
		"trailing  \t \r\nspaces\t\r\n\r\n\r\n",
		"  leading\r\n\r\n  \r\nblank-ish lines\r\n \r\n\t\r\n",
		"bare\nLF\n\n",
		"a\rlone CR\r\n",
	}
	for _, c := range []dkim.Canonicalization{dkim.CanonicalizationSimple, dkim.CanonicalizationRelaxed} {
		for _, body := range bodies {
			msg := "From: a@sender.example\r\nSubject:   lots \t of   space  \r\n   folded\r\nTo:b@x.example\r\n\r\n" + body
			var out bytes.Buffer
			err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{
				Domain: "sender.example", Selector: "sel", Identifier: "@sender.example", Signer: k.signer,
				HeaderCanonicalization: c, BodyCanonicalization: c,
				HeaderKeys: []string{"From", "Subject", "To"},
			})
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(bytes.NewReader(out.Bytes()))
			h, err := readRawHeader(br)
			if err != nil {
				t.Fatal(err)
			}
			v := &arcVerifier{ctx: context.Background(), res: d.res, keys: map[string]keyResult{}, h: h}
			if err := v.readBody(br); err != nil {
				t.Fatal(err)
			}
			sig := h.all("DKIM-Signature")[0]
			if err := v.verifyAMS(&sig); err != nil {
				t.Errorf("%s body %q: %v", c, body, err)
			}
		}
	}
}

func TestParseTagList(t *testing.T) {
	t.Parallel()
	ok := map[string]map[string]string{
		"a=1":                     {"a": "1"},
		" a = 1 ; b=2;":           {"a": "1", "b": "2"},
		"b=ab\r\n cd; bh=x":       {"b": "ab\r\n cd", "bh": "x"},
		"v=1; h=from : to;\r\n\t": {"v": "1", "h": "from : to"},
		"e=":                      {"e": ""},
	}
	for in, want := range ok {
		l, err := parseTagList(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		for k, v := range want {
			if got, _ := l.get(k); got != v {
				t.Errorf("%q: %s=%q, want %q", in, k, got, v)
			}
		}
	}
	for _, in := range []string{"", ";", "a=1;;b=2", "a", "1a=2", "a=1; a=2", "a=\x00", "a=é", "a b=1"} {
		if _, err := parseTagList(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	raw := "ARC-Seal: i=1; b=abc\r\n def ; cv=none"
	l, err := parseTagList(raw[len("ARC-Seal:"):])
	if err != nil {
		t.Fatal(err)
	}
	if got := withoutB(raw, len("ARC-Seal:"), l); got != "ARC-Seal: i=1; b=; cv=none" {
		t.Errorf("withoutB: %q", got)
	}
}
