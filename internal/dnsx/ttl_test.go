package dnsx_test

import (
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
)

// TTL is the smallest TTL of the answer, through CNAMEs; a missing record
// is an error like a lookup's.
func TestTTL(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("example.com. 3600 IN MX 10 a.example.com.")
	srv.Add("example.com. 1800 IN MX 20 b.example.com.")
	srv.Add("alias.example.com. 120 IN CNAME example.com.")
	r := newClient(t, srv)
	for name, want := range map[string]time.Duration{"example.com": 1800 * time.Second, "alias.example.com": 1800 * time.Second} {
		if got, err := r.TTL(t.Context(), name, dns.TypeMX); err != nil || got != want {
			t.Errorf("TTL(%s) = %v %v, want %v", name, got, err, want)
		}
	}
	if _, err := r.TTL(t.Context(), "missing.example.com", dns.TypeMX); !errors.Is(err, dnsx.ErrNXDomain) {
		t.Errorf("missing name: %v", err)
	}
}
