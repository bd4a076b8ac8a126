package addr

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	ok := map[string]string{
		"alice@example.test":      "alice@example.test",
		"Alice@EXAMPLE.Test":      "Alice@example.test",
		"a.b+tag@sub.example.com": "a.b+tag@sub.example.com",
		"user@bücher.example":     "user@xn--bcher-kva.example",
		"ユーザー@example.jp":         "ユーザー@example.jp",
	}
	for in, want := range ok {
		a, err := Parse(in)
		if err != nil || a.String() != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, a.String(), err, want)
		}
	}
	bad := map[string]error{
		"alice%other.test@example.test":           ErrRouting,
		"other.test!alice@example.test":           ErrRouting,
		`"alice@other.test"@example.test`:         ErrRouting,
		"alice@other.test@example.test":           ErrRouting,
		"alice@[127.0.0.1]":                       ErrLiteral,
		"alice@[IPv6:::1]":                        ErrLiteral,
		"alice@example.test.":                     ErrTrailerDot,
		"alice":                                   ErrSyntax,
		"@example.test":                           ErrSyntax,
		"alice@":                                  ErrSyntax,
		"al ice@example.test":                     ErrSyntax,
		"alice@localhost":                         ErrSyntax,
		".alice@example.test":                     ErrSyntax,
		"al..ice@example.test":                    ErrSyntax,
		"alice@exa_mple.test":                     ErrSyntax,
		"alice@example.test\x00":                  ErrSyntax,
		strings.Repeat("a", 65) + "@example.test": ErrTooLong,
	}
	for in, want := range bad {
		if _, err := Parse(in); !errors.Is(err, want) {
			t.Errorf("Parse(%q) error %v, want %v", in, err, want)
		}
	}
	a, _ := Parse("Alice@Example.test")
	if a.Key() != "alice@example.test" {
		t.Errorf("Key %q", a.Key())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"alice@example.test", "a%b@c.test", `"x"@y.test`, "u@[1.2.3.4]", "u@xn--bcher-kva.example", "ü@ü.example", "a@b.c."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		out := a.String()
		if strings.Count(out, "@") != 1 || strings.ContainsAny(a.Local, "%!:\"\\") || strings.ContainsAny(out, " \r\n\x00[]") {
			t.Fatalf("unsafe address accepted: %q -> %q", s, out)
		}
		if a.Domain != strings.ToLower(a.Domain) || strings.HasSuffix(a.Domain, ".") {
			t.Fatalf("domain not normalised: %q", a.Domain)
		}
		for _, r := range a.Domain {
			if r >= 0x80 {
				t.Fatalf("domain not an A-label: %q", a.Domain)
			}
		}
		b, err := Parse(out)
		if err != nil || b != a {
			t.Fatalf("round trip %q -> %q -> %q (%v)", s, out, b.String(), err)
		}
	})
}
