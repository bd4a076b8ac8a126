package bec

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSkeletonDistance checks the properties the look-alike comparison
// relies on: distance is a metric (identity, symmetry, triangle
// inequality) bounded by the lengths, and skeleton is idempotent and
// yields valid UTF-8, for any input.
func FuzzSkeletonDistance(f *testing.F) {
	for _, s := range [][3]string{
		{"paypal.com", "paypa1.com", "rnicrosoft.com"},
		{"example.co.jp", "exarnple.co.jp", "exmaple.co.jp"},
		{"аpple.com", "apple.com", "аррӏе.com"},
		{"山田 太郎", "山田太郎様", "Yamada Taro"},
		{"ca", "abc", ""},
		{"\xff\xfe", "vvv", "rnrn"},
		{"ｅｘａｍｐｌｅ", "ﬁle", "ばば"},
		{strings.Repeat("\x04", maxCompareRunes+1) + "ca", "abc", ""}, // equal inputs over the bound
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, s := range []string{a, b, c} {
			sk := skeleton(s)
			if !utf8.ValidString(sk) {
				t.Fatalf("skeleton(%q) = %q is not UTF-8", s, sk)
			}
			if again := skeleton(sk); again != sk {
				t.Fatalf("skeleton not idempotent: %q → %q → %q", s, sk, again)
			}
		}
		if !utf8.ValidString(a) || !utf8.ValidString(b) || !utf8.ValidString(c) {
			return // distance counts runes; invalid bytes all read as U+FFFD
		}
		ab, ba := distance(a, b), distance(b, a)
		if ab != ba {
			t.Fatalf("distance(%q,%q)=%d but reverse %d", a, b, ab, ba)
		}
		if distance(a, a) != 0 {
			t.Fatalf("distance(%q,%q) != 0", a, a)
		}
		na, nb := utf8.RuneCountInString(a), utf8.RuneCountInString(b)
		if na > maxCompareRunes || nb > maxCompareRunes {
			return
		}
		if (ab == 0) != (a == b) {
			t.Fatalf("distance(%q,%q)=%d", a, b, ab)
		}
		if ab < abs(na-nb) || ab > max(na, nb) {
			t.Fatalf("distance(%q,%q)=%d outside [%d,%d]", a, b, ab, abs(na-nb), max(na, nb))
		}
		if utf8.RuneCountInString(c) <= maxCompareRunes {
			if ac, cb := distance(a, c), distance(c, b); ab > ac+cb {
				t.Fatalf("triangle: d(%q,%q)=%d > %d+%d via %q", a, b, ab, ac, cb, c)
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// FuzzNamesAndDomains feeds arbitrary display names and domains through
// the normalisation and comparison code: no panic, and matching a name
// against itself always succeeds when it yields keys at all.
func FuzzNamesAndDomains(f *testing.F) {
	f.Add("山田 太郎様", "exarnple.co.jp")
	f.Add("Suzuki, Hanako (経理)", "xn--pple-43d.com")
	f.Add("((((", "a..b")
	f.Add("\x00\u202e", "xn--zzzz-zzzz.com")
	f.Fuzz(func(t *testing.T, name, domain string) {
		idx := buildIndex([]Person{{Name: name, Addr: "x@example.co.jp"}}, []string{"example.co.jp", domain})
		if len(nameKeys(nameTokens(name))) > 0 {
			if _, ok := idx.lookupName(nameTokens(name)); !ok {
				t.Fatalf("name %q does not match itself", name)
			}
		}
		if d, ok := parseDomain(domain); ok {
			if !validHost(d.ascii) || !strings.HasSuffix(d.ascii, d.reg) {
				t.Fatalf("parseDomain(%q) = %+v", domain, d)
			}
			findLookalike(d, idx.domains)
			idnProblem(d)
		}
		_ = safeText(name, 10)
	})
}
