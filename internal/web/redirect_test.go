package web

import (
	"strings"
	"testing"
)

func TestSafeNext(t *testing.T) {
	for _, next := range []string{
		"/", "/quarantine", "/quarantine?offset=50&q=%E8%AB%8B%E6%B1%82", "/tracking/abc#top",
		"/users/太郎@example.test", "/a%20b", "/login/totp?next=%2Fdashboard",
	} {
		if got := safeNext(next); got != next {
			t.Errorf("safeNext(%q) = %q, want it kept", next, got)
		}
	}
	for _, next := range []string{
		"", "quarantine", "https://evil.test/", "//evil.test", "///evil.test", "/\\evil.test", "\\\\evil.test",
		"/\t/evil.test/x", "/%09/evil.test/x", "/%0a/evil.test", "/\n/evil.test", "/%0D%0A/evil.test",
		"/%2F%2Fevil.test", "/%2f/evil.test", "/%5Cevil.test", "/%5c%5cevil.test", "/ /evil.test",
		" //evil.test", "/\x00", "/%00", "/\u3000/evil.test", "/\u2028", "/x\xff", "/%zz",
		"/\x7f/evil.test", "javascript:alert(1)", "/" + strings.Repeat("a", 2100),
	} {
		if got := safeNext(next); got != "/" {
			t.Errorf("safeNext(%q) = %q, want /", next, got)
		}
	}
}
