package dnsx_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
)

const soa = "example.com. 3600 IN SOA ns.example.com. admin.example.com. 1 3600 600 86400 60"

func newClient(t *testing.T, srv *dnstest.Server, opts ...dnsx.Option) *dnsx.Client {
	t.Helper()
	c, err := dnsx.New(srv.Addr(), opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", srv.Addr(), err)
	}
	return c
}

// dnsError asserts err is a bare *net.DNSError, as the spf library and the
// standard library's callers expect (a type assertion, not errors.As).
func dnsError(t *testing.T, err error) *net.DNSError {
	t.Helper()
	derr, ok := err.(*net.DNSError)
	if !ok {
		t.Fatalf("error %v (%T) is not a *net.DNSError", err, err)
	}
	return derr
}

func TestLookupMX(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("example.com. 300 IN MX 20 backup.example.com.")
	srv.Add("example.com. 300 IN MX 10 b.example.com.")
	srv.Add("example.com. 300 IN MX 10 a.example.com.")
	r := newClient(t, srv)

	mxs, err := r.LookupMX(t.Context(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mx := range mxs {
		got = append(got, mx.Host+"/"+string(rune('0'+mx.Pref/10)))
	}
	// Sorted by preference; equal preferences keep the server's order.
	want := []string{"b.example.com./1", "a.example.com./1", "backup.example.com./2"}
	if !slices.Equal(got, want) {
		t.Errorf("LookupMX = %v, want %v", got, want)
	}
}

func TestLookupMXDropsInvalidNames(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add(`example.com. 300 IN MX 10 bad\032name.example.com.`)
	srv.Add("example.com. 300 IN MX 20 good.example.com.")
	srv.Add("null.example.com. 300 IN MX 0 .")
	r := newClient(t, srv)

	mxs, err := r.LookupMX(t.Context(), "example.com")
	if err == nil {
		t.Error("no error for an MX with an invalid host name")
	}
	if len(mxs) != 1 || mxs[0].Host != "good.example.com." {
		t.Errorf("LookupMX = %v, want only good.example.com.", mxs)
	}
	// RFC 7505 null MX is valid and reported as ".".
	mxs, err = r.LookupMX(t.Context(), "null.example.com")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "." || mxs[0].Pref != 0 {
		t.Errorf("null MX: %v, %v; want one record with host \".\"", mxs, err)
	}
}

func TestLookupTXT(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	// RFC 7208 3.3: the strings of one record are joined with nothing between.
	srv.Add(`example.com. 300 IN TXT "v=spf1 ip4:192.0.2.0/24" " include:_spf.example.net" " -all"`)
	srv.Add(`example.com. 300 IN TXT "second record"`)
	// Octets that miekg/dns escapes when unpacking come back raw.
	srv.Add(`escaped.example.com. 300 IN TXT "say \"hi\"" " back\\slash " "日本語" "\009tab"`)
	r := newClient(t, srv)

	txts, err := r.LookupTXT(t.Context(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all", "second record"}
	if !slices.Equal(txts, want) {
		t.Errorf("LookupTXT = %q, want %q", txts, want)
	}

	txts, err = r.LookupTXT(t.Context(), "escaped.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if want := "say \"hi\" back\\slash 日本語\ttab"; len(txts) != 1 || txts[0] != want {
		t.Errorf("LookupTXT = %q, want [%q]", txts, want)
	}
}

func TestLookupIPAddr(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("dual.example.com. 300 IN AAAA 2001:db8::1")
	srv.Add("dual.example.com. 300 IN A 192.0.2.1")
	srv.Add("dual.example.com. 300 IN A 192.0.2.2")
	srv.Add("v4.example.com. 300 IN A 192.0.2.3")
	srv.Add("v6fail.example.com. 300 IN A 192.0.2.4")
	srv.SetRcode("v6fail.example.com", dns.TypeAAAA, dns.RcodeServerFailure)
	srv.Add("alias.example.com. 300 IN CNAME v4.example.com.")
	r := newClient(t, srv)

	tests := []struct {
		host string
		want []string
	}{
		{"dual.example.com", []string{"192.0.2.1", "192.0.2.2", "2001:db8::1"}},
		{"v4.example.com.", []string{"192.0.2.3"}},    // AAAA is NODATA
		{"v6fail.example.com", []string{"192.0.2.4"}}, // AAAA SERVFAIL is dropped
		{"alias.example.com", []string{"192.0.2.3"}},  // CNAME followed
		{"192.0.2.99", []string{"192.0.2.99"}},        // literal, no query
		{"fe80::1%eth0", []string{"fe80::1%eth0"}},    // literal with zone
	}
	for _, tc := range tests {
		addrs, err := r.LookupIPAddr(t.Context(), tc.host)
		if err != nil {
			t.Errorf("LookupIPAddr(%q): %v", tc.host, err)
			continue
		}
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("LookupIPAddr(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	if n := srv.Queries("192.0.2.99", dns.TypeA) + srv.Queries("99.2.0.192.in-addr.arpa", dns.TypePTR); n != 0 {
		t.Errorf("an IP literal caused %d queries", n)
	}
}

func TestLookupIPAddrErrors(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("txtonly.example.com. 300 IN TXT \"x\"")
	srv.Add("v6broken.example.com. 300 IN TXT \"x\"")
	srv.SetRcode("v6broken.example.com", dns.TypeAAAA, dns.RcodeServerFailure)
	r := newClient(t, srv)

	_, err := r.LookupIPAddr(t.Context(), "nonexistent.example.com")
	if d := dnsError(t, err); !d.IsNotFound || !errors.Is(err, dnsx.ErrNXDomain) {
		t.Errorf("nonexistent: %+v, want not found (NXDOMAIN)", d)
	}
	_, err = r.LookupIPAddr(t.Context(), "txtonly.example.com")
	if d := dnsError(t, err); !d.IsNotFound || !errors.Is(err, dnsx.ErrNoData) {
		t.Errorf("txtonly: %+v, want not found (NODATA)", d)
	}
	// No A, AAAA failing: we cannot say the host has no address.
	_, err = r.LookupIPAddr(t.Context(), "v6broken.example.com")
	if d := dnsError(t, err); d.IsNotFound || !d.Temporary() {
		t.Errorf("v6broken: %+v, want a temporary error, not not-found", d)
	}
}

func TestLookupIPAddrReturnsCopies(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("v4.example.com. 300 IN A 192.0.2.3")
	r := newClient(t, srv, dnsx.WithCache(10))

	addrs, err := r.LookupIPAddr(t.Context(), "v4.example.com")
	if err != nil {
		t.Fatal(err)
	}
	addrs[0].IP[len(addrs[0].IP)-1] = 99 // a caller scribbling on its result
	addrs, err = r.LookupIPAddr(t.Context(), "v4.example.com")
	if err != nil || len(addrs) != 1 || addrs[0].IP.String() != "192.0.2.3" {
		t.Errorf("second lookup = %v, %v; want the cached 192.0.2.3 unchanged", addrs, err)
	}
}

func TestLookupAddr(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.com.")
	srv.Add("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR v6.example.com.")
	srv.Add(`2.2.0.192.in-addr.arpa. 300 IN PTR evil\"name.example.com.`)
	srv.Add("2.2.0.192.in-addr.arpa. 300 IN PTR fine.example.com.")
	r := newClient(t, srv)

	for addr, want := range map[string]string{"192.0.2.1": "mail.example.com.", "2001:db8::1": "v6.example.com."} {
		names, err := r.LookupAddr(t.Context(), addr)
		if err != nil || len(names) != 1 || names[0] != want {
			t.Errorf("LookupAddr(%q) = %v, %v; want [%s]", addr, names, err, want)
		}
	}
	names, err := r.LookupAddr(t.Context(), "192.0.2.2")
	if err == nil || !slices.Equal(names, []string{"fine.example.com."}) {
		t.Errorf("LookupAddr with an invalid PTR name = %v, %v; want [fine.example.com.] and an error", names, err)
	}
	_, err = r.LookupAddr(t.Context(), "192.0.2.3")
	if d := dnsError(t, err); !d.IsNotFound || d.Name != "192.0.2.3" {
		t.Errorf("missing PTR: %+v, want not found for the address", d)
	}
	_, err = r.LookupAddr(t.Context(), "not-an-ip")
	if d := dnsError(t, err); d.Err != "unrecognized address" {
		t.Errorf("bad address: %+v, want \"unrecognized address\"", d)
	}
}

// TestErrorsMatchStandardLibrary asks the same server with our resolver and
// with the standard library's pure-Go resolver (dialling only the fake
// server) and compares how the failures are classified.
func TestErrorsMatchStandardLibrary(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add(soa)
	srv.Add("example.com. 300 IN TXT \"v=spf1 -all\"")
	srv.Add("example.com. 300 IN A 192.0.2.1")
	srv.Add("broken.example.com. 300 IN TXT \"x\"")
	srv.SetRcode("broken.example.com", dns.TypeANY, dns.RcodeServerFailure)

	ours := newClient(t, srv)
	std := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Addr())
	}}

	type lookup func(dnsx.Resolver, string) error
	kinds := map[string]lookup{
		"TXT": func(r dnsx.Resolver, n string) error { _, err := r.LookupTXT(t.Context(), n); return err },
		"MX":  func(r dnsx.Resolver, n string) error { _, err := r.LookupMX(t.Context(), n); return err },
		"IP":  func(r dnsx.Resolver, n string) error { _, err := r.LookupIPAddr(t.Context(), n); return err },
	}
	cases := []struct {
		name     string
		kind     string
		notFound bool
		temp     bool
	}{
		{"nonexistent.example.com.", "TXT", true, false}, // NXDOMAIN
		{"nonexistent.example.com.", "MX", true, false},  // NXDOMAIN
		{"nonexistent.example.com.", "IP", true, false},  // NXDOMAIN
		{"example.com.", "MX", true, false},              // NODATA
		{"broken.example.com.", "TXT", false, true},      // SERVFAIL
		{"broken.example.com.", "MX", false, true},       // SERVFAIL
		{"broken.example.com.", "IP", false, true},       // SERVFAIL
		{"bad..name.example.com.", "TXT", true, false},   // cannot exist
	}
	for _, tc := range cases {
		f := kinds[tc.kind]
		o := dnsError(t, f(ours, tc.name))
		s := dnsError(t, f(std, tc.name))
		for _, d := range []struct {
			who string
			e   *net.DNSError
		}{{"dnsx", o}, {"net", s}} {
			if d.e.IsNotFound != tc.notFound || d.e.Temporary() != tc.temp || d.e.Timeout() {
				t.Errorf("%s %s %s: IsNotFound=%v Temporary=%v Timeout=%v, want %v %v false",
					d.who, tc.kind, tc.name, d.e.IsNotFound, d.e.Temporary(), d.e.Timeout(), tc.notFound, tc.temp)
			}
		}
		if o.Err != s.Err || o.Name != s.Name {
			t.Errorf("%s %s: dnsx says %q for %q, net says %q for %q", tc.kind, tc.name, o.Err, o.Name, s.Err, s.Name)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add(soa)
	srv.Add("example.com. 300 IN A 192.0.2.1")
	srv.Add("host.sub.example.com. 300 IN A 192.0.2.1")
	srv.Add("servfail.example.com. 300 IN TXT \"x\"")
	srv.SetRcode("servfail.example.com", dns.TypeTXT, dns.RcodeServerFailure)
	srv.Add("refused.example.com. 300 IN TXT \"x\"")
	srv.SetRcode("refused.example.com", dns.TypeTXT, dns.RcodeRefused)
	r := newClient(t, srv)

	tests := []struct {
		name     string
		notFound bool
		temp     bool
		is       error
		rcode    int // wrapped RcodeError, -1 for none
	}{
		{"nonexistent.example.com", true, false, dnsx.ErrNXDomain, -1},
		{"example.com", true, false, dnsx.ErrNoData, -1},
		{"sub.example.com", true, false, dnsx.ErrNoData, -1}, // empty non-terminal exists
		{"servfail.example.com", false, true, nil, dns.RcodeServerFailure},
		{"refused.example.com", false, true, nil, dns.RcodeRefused},
	}
	for _, tc := range tests {
		_, err := r.LookupTXT(t.Context(), tc.name)
		d := dnsError(t, err)
		if d.IsNotFound != tc.notFound || d.Temporary() != tc.temp || d.Timeout() {
			t.Errorf("%s: %+v, want IsNotFound=%v Temporary=%v", tc.name, d, tc.notFound, tc.temp)
		}
		if d.Name != tc.name || d.Server != srv.Addr() {
			t.Errorf("%s: Name=%q Server=%q, want the caller's name and %s", tc.name, d.Name, d.Server, srv.Addr())
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: errors.Is(%v, %v) is false", tc.name, err, tc.is)
		}
		var re *dnsx.RcodeError
		if got := errors.As(err, &re); got != (tc.rcode >= 0) || got && re.Rcode != tc.rcode {
			t.Errorf("%s: RcodeError %v, want rcode %d", tc.name, re, tc.rcode)
		}
	}
	// SERVFAIL is an answer, not a transport failure: it is not re-asked.
	if n := srv.Queries("servfail.example.com", dns.TypeTXT); n != 1 {
		t.Errorf("SERVFAIL asked %d times, want 1", n)
	}
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	// One record of 24 strings of 250 octets: over the 4096 we advertise.
	var parts []string
	var want strings.Builder
	for i := range 24 {
		s := strings.Repeat(string(rune('a'+i)), 250)
		parts = append(parts, `"`+s+`"`)
		want.WriteString(s)
	}
	srv.Add("big.example.com. 300 IN TXT " + strings.Join(parts, " "))
	r := newClient(t, srv)

	txts, err := r.LookupTXT(t.Context(), "big.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(txts) != 1 || txts[0] != want.String() {
		t.Fatalf("LookupTXT returned %d records (lengths %v), want the whole %d-octet record", len(txts), lengths(txts), want.Len())
	}
	if n := srv.Queries("big.example.com", dns.TypeTXT); n != 2 {
		t.Errorf("server saw %d queries, want 2 (UDP truncated, then TCP)", n)
	}
}

func lengths(ss []string) []int {
	var n []int
	for _, s := range ss {
		n = append(n, len(s))
	}
	return n
}

// waitQueries waits (bounded) until the server has seen at least n queries.
func waitQueries(t *testing.T, srv *dnstest.Server, name string, qtype uint16, n int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := srv.Queries(name, qtype)
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTimeoutAndRetry(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("slow.example.com. 300 IN TXT \"x\"")
	srv.Delay("slow.example.com", time.Hour)
	r := newClient(t, srv, dnsx.WithTimeout(100*time.Millisecond), dnsx.WithRetries(1))

	_, err := r.LookupTXT(t.Context(), "slow.example.com")
	d := dnsError(t, err)
	if !d.IsTimeout || !d.Temporary() || d.IsNotFound {
		t.Errorf("%+v, want a temporary timeout", d)
	}
	if n := waitQueries(t, srv, "slow.example.com", dns.TypeTXT, 2); n != 2 {
		t.Errorf("server saw %d queries, want 2 (one retry)", n)
	}
}

func TestContextDeadline(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("slow.example.com. 300 IN TXT \"x\"")
	srv.Delay("slow.example.com", time.Hour)
	// The per-attempt timeout is far away: only ctx can end the lookup.
	r := newClient(t, srv, dnsx.WithTimeout(time.Hour))

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := r.LookupTXT(ctx, "slow.example.com")
	d := dnsError(t, err)
	if !d.IsTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%+v, want a timeout wrapping context.DeadlineExceeded", d)
	}
	if n := srv.Queries("slow.example.com", dns.TypeTXT); n != 1 {
		t.Errorf("server saw %d queries, want 1: no retry once ctx has ended", n)
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("slow.example.com. 300 IN MX 10 mx.example.com.")
	srv.Delay("slow.example.com", time.Hour)
	r := newClient(t, srv, dnsx.WithTimeout(time.Hour))

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := r.LookupMX(ctx, "slow.example.com")
		done <- err
	}()
	if n := waitQueries(t, srv, "slow.example.com", dns.TypeMX, 1); n != 1 {
		t.Fatalf("server saw %d queries before cancel, want 1", n)
	}
	cancel()
	err := <-done
	if d := dnsError(t, err); !errors.Is(err, context.Canceled) || d.IsNotFound || d.IsTimeout {
		t.Errorf("%+v, want a cancellation", d)
	}

	// An already-ended ctx sends nothing.
	if _, err := r.LookupMX(ctx, "slow.example.com"); !errors.Is(err, context.Canceled) {
		t.Errorf("lookup with cancelled ctx: %v", err)
	}
	if n := srv.Queries("slow.example.com", dns.TypeMX); n != 1 {
		t.Errorf("server saw %d queries, want 1", n)
	}
}

func TestNamesNormalised(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("xn--r8jz45g.jp. 300 IN MX 10 mx.xn--r8jz45g.jp.")
	srv.Add(`_dmarc.xn--r8jz45g.jp. 300 IN TXT "v=DMARC1; p=reject"`)
	srv.Add("example.com. 300 IN MX 10 mx.example.com.")
	r := newClient(t, srv, dnsx.WithCache(10))

	for _, name := range []string{"例え.jp", "例え.JP.", "例え。jp"} {
		mxs, err := r.LookupMX(t.Context(), name)
		if err != nil || len(mxs) != 1 || mxs[0].Host != "mx.xn--r8jz45g.jp." {
			t.Errorf("LookupMX(%q) = %v, %v; want mx.xn--r8jz45g.jp.", name, mxs, err)
		}
	}
	if txts, err := r.LookupTXT(t.Context(), "_dmarc.例え.jp"); err != nil || len(txts) != 1 {
		t.Errorf("LookupTXT(_dmarc.例え.jp) = %v, %v", txts, err)
	}
	// With and without the trailing dot, any case: the same question, so
	// one cache entry.
	for _, name := range []string{"example.com", "example.com.", "EXAMPLE.com"} {
		if _, err := r.LookupMX(t.Context(), name); err != nil {
			t.Errorf("LookupMX(%q): %v", name, err)
		}
	}
	if n := srv.Queries("example.com", dns.TypeMX); n != 1 {
		t.Errorf("server saw %d queries for example.com MX, want 1", n)
	}
	if n := srv.Queries("xn--r8jz45g.jp", dns.TypeMX); n != 1 {
		t.Errorf("server saw %d queries for xn--r8jz45g.jp MX, want 1", n)
	}

	// Names that cannot exist are not found without a query.
	for _, name := range []string{"", "a..example.com", "-bad.example.com", "sp ace.example.com", strings.Repeat("a", 64) + ".com", "例え..jp", "\u202eevil.example.com"} {
		_, err := r.LookupTXT(t.Context(), name)
		if d := dnsError(t, err); !d.IsNotFound || d.Name != name {
			t.Errorf("LookupTXT(%q): %+v, want not found", name, d)
		}
		if n := srv.Queries(name, dns.TypeTXT); n != 0 {
			t.Errorf("LookupTXT(%q) sent %d queries, want none", name, n)
		}
	}
}

// fakeClock is a settable clock for cache expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCache(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add(soa) // negative answers cacheable for min(3600, 60) s
	srv.Add("example.com. 300 IN MX 10 mx.example.com.")
	srv.Add("alias.example.com. 30 IN CNAME target.example.com.")
	srv.Add("target.example.com. 300 IN TXT \"t\"")
	srv.Add("zero.example.com. 0 IN TXT \"z\"")
	srv.Add("servfail.example.com. 300 IN TXT \"x\"")
	srv.SetRcode("servfail.example.com", dns.TypeTXT, dns.RcodeServerFailure)
	srv.Add("nosoa.test. 300 IN TXT \"x\"")
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := newClient(t, srv, dnsx.WithCache(100), dnsx.WithClock(clock.now))
	ctx := t.Context()

	mx := func() {
		t.Helper()
		mxs, err := r.LookupMX(ctx, "example.com")
		if err != nil || len(mxs) != 1 || mxs[0].Host != "mx.example.com." {
			t.Fatalf("LookupMX = %v, %v", mxs, err)
		}
	}
	expect := func(name string, qtype uint16, want int) {
		t.Helper()
		if n := srv.Queries(name, qtype); n != want {
			t.Errorf("%s %s: server saw %d queries, want %d", name, dns.TypeToString[qtype], n, want)
		}
	}

	// Positive: kept for the record's TTL.
	mx()
	mx()
	expect("example.com", dns.TypeMX, 1)
	clock.advance(299 * time.Second)
	mx()
	expect("example.com", dns.TypeMX, 1)
	clock.advance(time.Second)
	mx()
	expect("example.com", dns.TypeMX, 2)

	// NXDOMAIN: kept for the SOA minimum, reported for the caller's name.
	for _, name := range []string{"gone.example.com", "GONE.example.com."} {
		_, err := r.LookupTXT(ctx, name)
		if d := dnsError(t, err); !d.IsNotFound || !errors.Is(err, dnsx.ErrNXDomain) || d.Name != name {
			t.Errorf("LookupTXT(%q): %+v, want NXDOMAIN for that name", name, d)
		}
	}
	expect("gone.example.com", dns.TypeTXT, 1)
	clock.advance(59 * time.Second)
	_, _ = r.LookupTXT(ctx, "gone.example.com")
	expect("gone.example.com", dns.TypeTXT, 1)
	clock.advance(time.Second)
	_, _ = r.LookupTXT(ctx, "gone.example.com")
	expect("gone.example.com", dns.TypeTXT, 2)

	// NODATA is cached as NODATA.
	for range 2 {
		if _, err := r.LookupTXT(ctx, "example.com"); !errors.Is(err, dnsx.ErrNoData) {
			t.Errorf("LookupTXT(example.com): %v, want NODATA", err)
		}
	}
	expect("example.com", dns.TypeTXT, 1)

	// A CNAME chain lives as long as its shortest TTL.
	for range 2 {
		if txts, err := r.LookupTXT(ctx, "alias.example.com"); err != nil || !slices.Equal(txts, []string{"t"}) {
			t.Errorf("LookupTXT(alias) = %v, %v", txts, err)
		}
	}
	expect("alias.example.com", dns.TypeTXT, 1)
	clock.advance(30 * time.Second)
	_, _ = r.LookupTXT(ctx, "alias.example.com")
	expect("alias.example.com", dns.TypeTXT, 2)

	// Not cached: TTL 0, SERVFAIL, negative answers without SOA.
	for range 2 {
		_, _ = r.LookupTXT(ctx, "zero.example.com")
		_, _ = r.LookupTXT(ctx, "servfail.example.com")
		_, _ = r.LookupMX(ctx, "nosoa.test")
	}
	expect("zero.example.com", dns.TypeTXT, 2)
	expect("servfail.example.com", dns.TypeTXT, 2)
	expect("nosoa.test", dns.TypeMX, 2)
}

func TestCacheLimits(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("example.com. 86400 IN SOA ns.example.com. admin.example.com. 1 3600 600 86400 86400")
	srv.Add("example.com. 86400 IN TXT \"long\"")
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := newClient(t, srv, dnsx.WithCache(100), dnsx.WithClock(clock.now), dnsx.WithCacheLimits(10*time.Second, 5*time.Second))
	ctx := t.Context()

	_, _ = r.LookupTXT(ctx, "example.com")
	_, _ = r.LookupTXT(ctx, "gone.example.com")
	clock.advance(5 * time.Second)
	_, _ = r.LookupTXT(ctx, "example.com")      // still cached (cap 10 s)
	_, _ = r.LookupTXT(ctx, "gone.example.com") // expired (cap 5 s)
	clock.advance(5 * time.Second)
	_, _ = r.LookupTXT(ctx, "example.com") // expired
	if n := srv.Queries("example.com", dns.TypeTXT); n != 2 {
		t.Errorf("positive: %d queries, want 2 (capped at 10 s)", n)
	}
	if n := srv.Queries("gone.example.com", dns.TypeTXT); n != 2 {
		t.Errorf("negative: %d queries, want 2 (capped at 5 s)", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	for _, n := range []string{"a", "b", "c"} {
		srv.Add(n + ".example.com. 300 IN TXT \"" + n + "\"")
	}
	r := newClient(t, srv, dnsx.WithCache(2))
	ctx := t.Context()

	for _, n := range []string{"a", "b", "a", "c", "a", "b"} {
		txts, err := r.LookupTXT(ctx, n+".example.com")
		if err != nil || !slices.Equal(txts, []string{n}) {
			t.Fatalf("LookupTXT(%s) = %v, %v", n, txts, err)
		}
	}
	// a stays (recently used), b is evicted by c and asked again.
	for n, want := range map[string]int{"a": 1, "b": 2, "c": 1} {
		if got := srv.Queries(n+".example.com", dns.TypeTXT); got != want {
			t.Errorf("%s: %d queries, want %d", n, got, want)
		}
	}
}

func TestConcurrentLookups(t *testing.T) {
	t.Parallel()
	srv := dnstest.Start(t)
	srv.Add("example.com. 300 IN MX 10 mx.example.com.")
	srv.Add("mx.example.com. 300 IN A 192.0.2.1")
	r := newClient(t, srv, dnsx.WithCache(4))

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 20 {
		wg.Go(func() {
			mxs, err := r.LookupMX(t.Context(), "example.com")
			if err == nil && (len(mxs) != 1 || mxs[0].Host != "mx.example.com.") {
				err = errors.New("wrong MX answer")
			}
			errs <- err
		})
		wg.Go(func() {
			addrs, err := r.LookupIPAddr(t.Context(), "mx.example.com")
			if err == nil && (len(addrs) != 1 || addrs[0].IP.String() != "192.0.2.1") {
				err = errors.New("wrong address answer")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"127.0.0.1:5353": "127.0.0.1:5353",
		"127.0.0.1":      "127.0.0.1:53",
		"[::1]:53":       "[::1]:53",
		"::1":            "[::1]:53",
	}
	for in, want := range good {
		c, err := dnsx.New(in)
		if err != nil || c.Server() != want {
			t.Errorf("New(%q) = %v, %v; want server %s", in, c, err, want)
		}
	}
	for _, in := range []string{"", "localhost:53", "dns.example.com", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:dns"} {
		if _, err := dnsx.New(in); err == nil {
			t.Errorf("New(%q) succeeded", in)
		}
	}
}

func TestUnconfigured(t *testing.T) {
	t.Parallel()
	r := dnsx.Unconfigured()
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		d := dnsError(t, err)
		if !d.Temporary() || d.IsNotFound || d.Err != "no DNS resolver configured" || !errors.Is(err, dnsx.ErrNotConfigured) {
			t.Errorf("%s: %+v, want a temporary \"no DNS resolver configured\"", what, d)
		}
	}
	_, err := r.LookupTXT(ctx, "example.com")
	check("TXT", err)
	_, err = r.LookupMX(ctx, "example.com")
	check("MX", err)
	_, err = r.LookupIPAddr(ctx, "example.com")
	check("IPAddr", err)
	_, err = r.LookupAddr(ctx, "192.0.2.1")
	check("Addr", err)

	addrs, err := r.LookupIPAddr(ctx, "2001:db8::5")
	if err != nil || len(addrs) != 1 || addrs[0].String() != "2001:db8::5" {
		t.Errorf("LookupIPAddr of a literal = %v, %v", addrs, err)
	}
}

func TestUnreachableServerIsTemporary(t *testing.T) {
	t.Parallel()
	// A loopback port with nothing listening: UDP gets "connection refused".
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	r, err := dnsx.New(addr, dnsx.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.LookupMX(t.Context(), "example.com")
	if d := dnsError(t, err); !d.Temporary() || d.IsNotFound || d.Server != addr {
		t.Errorf("%+v, want a temporary error naming %s", d, addr)
	}
}
