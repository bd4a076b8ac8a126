package bec

import (
	"strings"
	"testing"
)

func TestSkeleton(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"paypa1.com", "paypal.com"},
		{"rnicrosoft.com", "microsoft.com"},
		{"exarnple.co.jp", "example.co.jp"},
		{"g00gle.com", "google.com"},
		{"vvalmart.com", "walmart.com"},
		{"cloudflare.com", "doudflare.com"}, // cl→d on both sides keeps them comparable
		{"аpple.com", "apple.com"},          // Cyrillic а
		{"аррӏе.com", "apple.com"},          // all Cyrillic
		{"ρaypal.com", "paypal.com"},        // Greek rho
		{"ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"},      // full width through NFKC
		{"exámple.com", "example.com"},      // accents dropped
		{"工藤", "エ藤"},                        // kanji drawn like katakana
		{"ばば", "ばば"},                        // voicing marks kept
	} {
		if got := skeleton(tc.in); got != tc.want {
			t.Errorf("skeleton(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFindLookalike(t *testing.T) {
	set := append(protectedSet([]string{"example.co.jp", "example-group.com", "abc.co.jp"}, false),
		protectedSet([]string{"microsoft.com", "paypal.com", "amazon.co.jp", "apple.com", "mitsubishicorp.com"}, true)...)
	for _, tc := range []struct {
		domain string
		want   string // imitated registrable domain, "" for none
		how    string
	}{
		{"paypa1.com", "paypal.com", "skeleton"},
		{"rnicrosoft.com", "microsoft.com", "skeleton"},
		{"exarnple.co.jp", "example.co.jp", "skeleton"},
		{"mail.exarnple.co.jp", "example.co.jp", "skeleton"}, // subdomain of the look-alike
		{"xn--pple-43d.com", "apple.com", "skeleton"},        // Cyrillic а
		{"exmaple.co.jp", "example.co.jp", "distance 1"},
		{"example-co.jp", "example.co.jp", "distance 1"},
		{"example.co", "", ""},                            // distance 3
		{"micros0ftt.com", "microsoft.com", "distance 1"}, // skeleton then one insertion
		{"mitsubishicrop.com", "mitsubishicorp.com", "distance 1"},
		{"mitsubishlcrop.com", "mitsubishicorp.com", "distance 2"}, // long label: two edits
		{"mitsublshlcrop.com", "", ""},                             // three edits
		{"paypall.com", "paypal.com", "distance 1"},
		{"example.co.jp.secure-login.net", "example.co.jp", "embeds"},
		{"abd.co.jp", "", ""}, // short label: only skeletons count
		{"abc.co.jp", "", ""}, // genuine
		{"www.paypal.com", "", ""},
		{"amazon.com", "", ""}, // the real Amazon: distance 3 from amazon.co.jp
		{"microsoftonline.com", "", ""},
		{"gmail.com", "", ""},
		{"example.com", "", ""}, // distance 3 from example.co.jp
	} {
		d, ok := parseDomain(tc.domain)
		if !ok {
			t.Fatalf("parseDomain(%q) failed", tc.domain)
		}
		l, found := findLookalike(d, set)
		got := ""
		if found {
			got = l.target.d.reg
		}
		if got != tc.want || (found && l.how != tc.how) {
			t.Errorf("findLookalike(%q) = %q (%s), want %q (%s)", tc.domain, got, l.how, tc.want, tc.how)
		}
	}
}

func TestParseDomain(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		ascii   string
		reg     string
		unicode string
	}{
		{"Mail.Example.CO.JP.", true, "mail.example.co.jp", "example.co.jp", "mail.example.co.jp"},
		{"аpple.com", true, "xn--pple-43d.com", "xn--pple-43d.com", "аpple.com"},
		{"xn--pple-43d.com", true, "xn--pple-43d.com", "xn--pple-43d.com", "аpple.com"},
		{"例え.jp", true, "xn--r8jz45g.jp", "xn--r8jz45g.jp", "例え.jp"},
		{"localhost", true, "localhost", "localhost", "localhost"},
		{"[192.0.2.1]", false, "", "", ""},
		{"a..b", false, "", "", ""},
		{"", false, "", "", ""},
		{"bad domain.com", false, "", "", ""},
		{strings.Repeat("a", 64) + ".com", false, "", "", ""},
		{"\xff.com", false, "", "", ""},
	} {
		d, ok := parseDomain(tc.in)
		if ok != tc.ok {
			t.Errorf("parseDomain(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if ok && (d.ascii != tc.ascii || d.reg != tc.reg || d.unicode != tc.unicode) {
			t.Errorf("parseDomain(%q) = %+v, want ascii %q reg %q unicode %q", tc.in, d, tc.ascii, tc.reg, tc.unicode)
		}
	}
}

func TestIDNProblem(t *testing.T) {
	for _, tc := range []struct {
		domain string
		want   string // substring of the problem, "" for none
	}{
		{"xn--pple-43d.com", "Cyrillic+Latin"}, // аpple: Cyrillic а + Latin pple
		{"xn--80ak6aa92e.com", "look Latin"},   // аррӏе: all Cyrillic, looks Latin
		{"xn--r8jz45g.jp", ""},                 // 例え: Han + Hiragana is ordinary
		{"xn--abc-mh4b3hxb.jp", ""},            // Latin mixed with kana/kanji
		{"xn--e1afmkfd.xn--p1ai", ""},          // пример.рф: Cyrillic under a Cyrillic TLD
		{"xn--e1afmkfd.com", ""},               // пример.com: Cyrillic, but not Latin-looking
		{"xn--mxahbxey0c.xn--mxahbxey0c", ""},  // Greek under Greek
		{"example.com", ""},
		{"xn--exmple-cua.com", ""}, // exämple: Latin only
	} {
		d, ok := parseDomain(tc.domain)
		if !ok {
			t.Fatalf("parseDomain(%q) failed", tc.domain)
		}
		got := idnProblem(d)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("idnProblem(%q = %q) = %q, want containing %q", tc.domain, d.unicode, got, tc.want)
		}
	}
}
