package extauth

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/addr"
)

func TestMatchAddress(t *testing.T) {
	t.Parallel()
	domains := []string{"Example.com", "bücher.example.", "bad domain!"}
	good := map[string]string{
		"alice@example.com":           "alice@example.com",
		" Alice.Smith@EXAMPLE.COM ":   "alice.smith@example.com",
		"bob@BÜCHER.example":          "bob@xn--bcher-kva.example",
		"carol@xn--bcher-kva.example": "carol@xn--bcher-kva.example",
	}
	for in, want := range good {
		got, err := MatchAddress(in, domains)
		if err != nil || got != want {
			t.Errorf("MatchAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	notAllowed := []string{"alice@sub.example.com", "alice@example.org", "alice@example.com.evil.test", "alice@evilexample.com"}
	for _, in := range notAllowed {
		if got, err := MatchAddress(in, domains); !errors.Is(err, ErrAddressNotAllowed) {
			t.Errorf("MatchAddress(%q) = %q, %v; want ErrAddressNotAllowed", in, got, err)
		}
	}
	malformed := []string{"", "alice", "@example.com", "alice@", "alice@@example.com", "a%b@example.com", "alice@[127.0.0.1]", "\"a b\"@example.com\r\n"}
	for _, in := range malformed {
		got, err := MatchAddress(in, domains)
		if err == nil {
			t.Errorf("MatchAddress(%q) = %q, want error", in, got)
		}
	}
	if _, err := MatchAddress("alice@example.com", nil); !errors.Is(err, ErrAddressNotAllowed) {
		t.Errorf("no domains: %v", err)
	}
}

func FuzzMatchAddress(f *testing.F) {
	for _, s := range []string{"alice@example.com", "Bob@BÜCHER.example", "x@sub.example.com", "@", "a@b@example.com"} {
		f.Add(s)
	}
	domains := []string{"example.com", "bücher.example"}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := MatchAddress(s, domains)
		if err != nil {
			return
		}
		// The result is a lower-case address in one of the domains, and
		// stable when matched again.
		if got != strings.ToLower(got) {
			t.Fatalf("MatchAddress(%q) = %q, not lower-case", s, got)
		}
		a, err := addr.Parse(got)
		if err != nil || (a.Domain != "example.com" && a.Domain != "xn--bcher-kva.example") {
			t.Fatalf("MatchAddress(%q) = %q outside the domains (%v)", s, got, err)
		}
		if again, err := MatchAddress(got, domains); err != nil || again != got {
			t.Fatalf("MatchAddress not idempotent: %q -> %q, %v", got, again, err)
		}
	})
}
