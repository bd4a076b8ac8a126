package dnsx_test

import (
	"context"
	"net"
	"testing"

	"blitiri.com.ar/go/spf"
	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
)

// Our Resolver must be accepted wherever the spf library wants one.
var _ spf.DNSResolver = dnsx.Resolver(nil)

func TestSPFThroughResolver(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add(soa)
	srv.Add(`example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 mx include:_spf.example.net" " -all"`)
	srv.Add("example.com. 300 IN MX 10 mx.example.com.")
	srv.Add("mx.example.com. 300 IN A 198.51.100.7")
	srv.Add(`_spf.example.net. 300 IN TXT "v=spf1 ip6:2001:db8:1::/48 -all"`)
	srv.Add(`ptr.example.org. 300 IN TXT "v=spf1 ptr:example.org -all"`)
	srv.Add("9.113.0.203.in-addr.arpa. 300 IN PTR mail.example.org.")
	srv.Add("mail.example.org. 300 IN A 203.0.113.9")
	srv.Add(`broken.example.com. 300 IN TXT "v=spf1 include:servfail.example.com -all"`)
	srv.Add(`servfail.example.com. 300 IN TXT "v=spf1 +all"`)
	srv.SetRcode("servfail.example.com", dns.TypeTXT, dns.RcodeServerFailure)
	r := newClient(t, srv, dnsx.WithCache(100))

	tests := []struct {
		ip     string
		sender string
		want   spf.Result
	}{
		{"192.0.2.10", "user@example.com", spf.Pass},       // ip4
		{"198.51.100.7", "user@example.com", spf.Pass},     // mx → A
		{"2001:db8:1::25", "user@example.com", spf.Pass},   // include → ip6
		{"203.0.113.5", "user@example.com", spf.Fail},      // -all
		{"203.0.113.9", "user@ptr.example.org", spf.Pass},  // ptr, validated forward
		{"203.0.113.5", "user@ptr.example.org", spf.Fail},  // PTR NXDOMAIN: no match
		{"192.0.2.10", "user@nospf.example.com", spf.None}, // NXDOMAIN
		{"192.0.2.10", "user@broken.example.com", spf.TempError},
	}
	for _, tc := range tests {
		got, err := spf.CheckHostWithSender(net.ParseIP(tc.ip), "helo.example", tc.sender,
			spf.WithResolver(r), spf.WithContext(t.Context()))
		if got != tc.want {
			t.Errorf("CheckHostWithSender(%s, %s) = %v (%v), want %v", tc.ip, tc.sender, got, err, tc.want)
		}
	}
}

func TestSPFUnconfiguredIsTempError(t *testing.T) {
	t.Parallel()
	got, err := spf.CheckHostWithSender(net.ParseIP("192.0.2.10"), "helo.example", "user@example.com",
		spf.WithResolver(dnsx.Unconfigured()), spf.WithContext(context.Background()))
	if got != spf.TempError {
		t.Errorf("result %v (%v), want temperror: a missing resolver must defer, not decide", got, err)
	}
}
