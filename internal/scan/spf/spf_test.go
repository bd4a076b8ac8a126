package spf

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// zoneFromYAML builds a fake zone from a zonedata mapping written like the
// RFC 7208 suite's.
func zoneFromYAML(t *testing.T, src string) *fakeZone {
	t.Helper()
	docs, err := parseYAMLDocuments(src)
	if err != nil || len(docs) != 1 {
		t.Fatalf("zone yaml: %v (%d documents)", err, len(docs))
	}
	z, err := newFakeZone(docs[0])
	if err != nil {
		t.Fatalf("zone: %v", err)
	}
	return z
}

// countingResolver counts queries, to prove that rejected input causes none.
type countingResolver struct {
	Resolver
	n atomic.Int64
}

func (c *countingResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	c.n.Add(1)
	return c.Resolver.LookupTXT(ctx, name)
}

func (c *countingResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	c.n.Add(1)
	return c.Resolver.LookupMX(ctx, name)
}

func (c *countingResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	c.n.Add(1)
	return c.Resolver.LookupIPAddr(ctx, host)
}

func (c *countingResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	c.n.Add(1)
	return c.Resolver.LookupAddr(ctx, addr)
}

const testZone = `
mail.example.org:
  - TXT: "v=spf1 a -all"
  - A: 192.0.2.10
example.org:
  - TXT: "v=spf1 exists:%{l}.allow.example.org -all"
postmaster.allow.example.org:
  - A: 127.0.0.2
alice.allow.example.org:
  - A: 127.0.0.2
soft.example.net:
  - TXT: "v=spf1 ip4:198.51.100.0/24 ~all"
xn--bcher-kva.example:
  - TXT: "v=spf1 ip4:192.0.2.10 -all"
`

var safeDomain = regexp.MustCompile(`^[a-z0-9._-]*$`)

func checkSafe(t *testing.T, r Result) {
	t.Helper()
	switch r.Result {
	case None, Neutral, Pass, Fail, SoftFail, TempError, PermError:
	default:
		t.Errorf("result %q is not an RFC 7208 result", r.Result)
	}
	if !safeDomain.MatchString(r.Domain) || len(r.Domain) > 253 {
		t.Errorf("domain %q is not header-safe", r.Domain)
	}
	if r.Identity != IdentityMailFrom && r.Identity != IdentityHELO {
		t.Errorf("identity %q", r.Identity)
	}
}

func TestCheckHELO(t *testing.T) {
	t.Parallel()
	c := &Checker{Resolver: zoneFromYAML(t, testZone)}
	ctx := context.Background()

	r := c.CheckHELO(ctx, net.ParseIP("192.0.2.10"), "Mail.Example.ORG.")
	checkSafe(t, r)
	if r.Result != Pass || r.Identity != IdentityHELO || r.Domain != "mail.example.org" {
		t.Errorf("HELO from its own address: got %+v, want pass helo mail.example.org", r)
	}
	r = c.CheckHELO(ctx, net.ParseIP("192.0.2.11"), "mail.example.org")
	if r.Result != Fail || r.Identity != IdentityHELO {
		t.Errorf("HELO from another address: got %+v, want fail", r)
	}
	// RFC 7208 2.3: an address literal or a bare name is not checked.
	for _, helo := range []string{"[192.0.2.10]", "mailhost", "192.0.2.10", ""} {
		r = c.CheckHELO(ctx, net.ParseIP("192.0.2.10"), helo)
		checkSafe(t, r)
		if r.Result != None || r.Domain != "" || r.Err == nil {
			t.Errorf("HELO %q: got %+v, want none with no domain", helo, r)
		}
	}
	// The HELO identity is independent of any MAIL FROM: a HELO without a
	// record is none even when the sender's domain would pass.
	r = c.CheckHELO(ctx, net.ParseIP("192.0.2.10"), "example.net")
	if r.Result != None {
		t.Errorf("HELO without a record: got %s, want none", r.Result)
	}
}

func TestNullSender(t *testing.T) {
	t.Parallel()
	c := &Checker{Resolver: zoneFromYAML(t, testZone)}
	ctx := context.Background()
	ip := net.ParseIP("192.0.2.10")

	// RFC 7208 2.4: MAIL FROM:<> is checked as postmaster@<HELO>.
	for _, mf := range []string{"", "<>", " <> "} {
		r := c.Check(ctx, ip, "MAIL.example.org", mf)
		checkSafe(t, r)
		if r.Result != Pass || r.Domain != "mail.example.org" || r.Identity != IdentityMailFrom {
			t.Errorf("null sender %q: got %+v, want pass on mail.example.org", mf, r)
		}
	}
	r := c.Check(ctx, net.ParseIP("192.0.2.99"), "mail.example.org", "<>")
	if r.Result != Fail {
		t.Errorf("null sender from an unlisted address: got %s, want fail", r.Result)
	}
	// The substituted local part is "postmaster": example.org's record
	// passes only local parts listed under allow.example.org.
	r = c.Check(ctx, ip, "example.org", "")
	if r.Result != Pass {
		t.Errorf("null sender with HELO example.org: got %s (%v), want pass via postmaster", r.Result, r.Err)
	}
	// RFC 7208 4.3: a missing local part also becomes "postmaster".
	r = c.Check(ctx, ip, "mail.example.org", "@example.org")
	if r.Result != Pass || r.Domain != "example.org" {
		t.Errorf("empty local part: got %+v, want pass", r)
	}
	r = c.Check(ctx, ip, "mail.example.org", "<alice@example.org>")
	if r.Result != Pass {
		t.Errorf("alice: got %s, want pass", r.Result)
	}
	r = c.Check(ctx, ip, "mail.example.org", "bob@example.org")
	if r.Result != Fail || r.Domain != "example.org" {
		t.Errorf("bob: got %+v, want fail", r)
	}
	// A null sender with an unusable HELO cannot be checked.
	r = c.Check(ctx, ip, "[192.0.2.10]", "<>")
	if r.Result != None || r.Domain != "" {
		t.Errorf("null sender, literal HELO: got %+v, want none", r)
	}
}

func TestResultsAndSoftFail(t *testing.T) {
	t.Parallel()
	c := &Checker{Resolver: zoneFromYAML(t, testZone)}
	ctx := context.Background()
	r := c.Check(ctx, net.ParseIP("192.0.2.1"), "mail.example.org", "x@SOFT.example.net")
	if r.Result != SoftFail || r.Domain != "soft.example.net" || r.Explanation == "" {
		t.Errorf("got %+v, want softfail with an explanation", r)
	}
	r = c.Check(ctx, net.ParseIP("198.51.100.7"), "mail.example.org", "x@soft.example.net")
	if r.Result != Pass {
		t.Errorf("got %s, want pass", r.Result)
	}
	// Internationalised domains are checked, and reported, as A-labels.
	r = c.Check(ctx, net.ParseIP("192.0.2.10"), "mail.example.org", "x@bücher.example")
	checkSafe(t, r)
	if r.Result != Pass || r.Domain != "xn--bcher-kva.example" {
		t.Errorf("IDN: got %+v, want pass on xn--bcher-kva.example", r)
	}
	// Invalid client address and missing resolver.
	r = c.Check(ctx, nil, "mail.example.org", "x@soft.example.net")
	if r.Result != PermError {
		t.Errorf("nil IP: got %s, want permerror", r.Result)
	}
	r = (&Checker{}).Check(ctx, net.ParseIP("192.0.2.1"), "mail.example.org", "x@soft.example.net")
	if r.Result != TempError || r.Err == nil {
		t.Errorf("no resolver: got %+v, want temperror", r)
	}
}

func TestHostileDomains(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 63) + "."
	hostile := []string{
		"evil.example\r\nAuthentication-Results: x; spf=pass",
		"evil.example\nX: y",
		"evil.example;spf=pass",
		"evil.example; dkim=pass",
		"evil(comment).example",
		"evil).example",
		"evil\x00.example",
		"evil .example",
		"evil\".example",
		"evil\\.example",
		"ev\til.example",
		strings.Repeat(long, 5) + "example",      // > 253 octets
		strings.Repeat("b", 64) + ".example",     // label > 63
		strings.Repeat("x.", 100000) + "example", // very long input
		"a..example",                             // empty label
		".example",
		"[192.0.2.1]",
		"192.0.2.1",
		"example.123",
		"example.-com",
		"localhost",
		"xn--.example\xff",
		"\xe2\x80\xae" + "evil.example", // RTL override
	}
	zr := &countingResolver{Resolver: zoneFromYAML(t, testZone)}
	c := &Checker{Resolver: zr}
	ctx := context.Background()
	ip := net.ParseIP("192.0.2.10")
	for _, d := range hostile {
		for _, r := range []Result{
			c.Check(ctx, ip, "mail.example.org", "user@"+d),
			c.CheckHELO(ctx, ip, d),
			c.Check(ctx, ip, d, "<>"),
		} {
			checkSafe(t, r)
			if r.Result != None || r.Domain != "" {
				t.Errorf("domain %q: got result %q domain %q, want none and no domain", clip(d), r.Result, r.Domain)
			}
			if r.Err == nil {
				t.Errorf("domain %q: no error describing the rejection", clip(d))
				continue
			}
			// The private error must not carry the hostile input either.
			if msg := r.Err.Error(); strings.ContainsAny(msg, "\r\n\x00;()") || strings.Contains(msg, "evil") {
				t.Errorf("domain %q: error echoes input: %q", clip(d), msg)
			}
		}
	}
	// RFC 7208 4.3: no DNS query for a malformed domain.
	if n := zr.n.Load(); n != 0 {
		t.Errorf("%d DNS queries for malformed domains, want 0", n)
	}
	// A MAIL FROM without any domain.
	if r := c.Check(ctx, ip, "mail.example.org", "user"); r.Result != None || r.Domain != "" {
		t.Errorf("MAIL FROM without domain: got %+v", r)
	}
}

// blockingResolver never answers on its own: it waits for release, and
// honours ctx only when honour is set.
type blockingResolver struct {
	honour  bool
	release chan struct{}
	started chan struct{}
	once    atomic.Bool
}

func newBlockingResolver(t *testing.T, honour bool) *blockingResolver {
	b := &blockingResolver{honour: honour, release: make(chan struct{}), started: make(chan struct{})}
	// Let abandoned lookups finish when the test ends.
	t.Cleanup(func() { close(b.release) })
	return b
}

func (b *blockingResolver) wait(ctx context.Context) error {
	if b.once.CompareAndSwap(false, true) {
		close(b.started)
	}
	if b.honour {
		select {
		case <-ctx.Done():
			// Returned raw, as many resolvers do: the guard must still
			// turn it into temperror rather than permerror.
			return ctx.Err()
		case <-b.release:
		}
	} else {
		<-b.release
	}
	return errors.New("released")
}

func (b *blockingResolver) LookupTXT(ctx context.Context, _ string) ([]string, error) {
	return nil, b.wait(ctx)
}

func (b *blockingResolver) LookupMX(ctx context.Context, _ string) ([]*net.MX, error) {
	return nil, b.wait(ctx)
}

func (b *blockingResolver) LookupIPAddr(ctx context.Context, _ string) ([]net.IPAddr, error) {
	return nil, b.wait(ctx)
}

func (b *blockingResolver) LookupAddr(ctx context.Context, _ string) ([]string, error) {
	return nil, b.wait(ctx)
}

// runBounded runs f and fails the test if it has not returned after a
// generous bound, so a broken deadline shows up as a failure, not a hang.
func runBounded(t *testing.T, f func() Result) Result {
	t.Helper()
	ch := make(chan Result, 1)
	go func() { ch <- f() }()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("check did not return: deadline not enforced")
		return Result{}
	}
}

func TestTimeoutBounding(t *testing.T) {
	t.Parallel()
	ip := net.ParseIP("192.0.2.1")
	for _, honour := range []bool{false, true} {
		br := newBlockingResolver(t, honour)
		c := &Checker{Resolver: br, Timeout: 50 * time.Millisecond}
		r := runBounded(t, func() Result {
			return c.Check(context.Background(), ip, "mail.example.org", "a@example.org")
		})
		checkSafe(t, r)
		if r.Result != TempError || !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Errorf("honour=%v: got %s (%v), want temperror from the deadline", honour, r.Result, r.Err)
		}
		if r.Domain != "example.org" {
			t.Errorf("honour=%v: domain %q", honour, r.Domain)
		}
	}
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	ip := net.ParseIP("192.0.2.1")
	for _, honour := range []bool{false, true} {
		br := newBlockingResolver(t, honour)
		// The Checker's own timeout is the default (20 s): only the caller's
		// cancellation can end this check in time.
		c := &Checker{Resolver: br}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-br.started
			cancel()
		}()
		r := runBounded(t, func() Result { return c.CheckHELO(ctx, ip, "mail.example.org") })
		cancel()
		if r.Result != TempError || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("honour=%v: got %s (%v), want temperror from cancellation", honour, r.Result, r.Err)
		}
	}
	// An already expired context makes no query at all.
	zr := &countingResolver{Resolver: zoneFromYAML(t, testZone)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := (&Checker{Resolver: zr}).Check(ctx, ip, "mail.example.org", "a@example.org")
	if r.Result != TempError || zr.n.Load() != 0 {
		t.Errorf("cancelled context: got %s after %d queries, want temperror and none", r.Result, zr.n.Load())
	}
}

// errResolver fails every query with err.
type errResolver struct{ err error }

func (e errResolver) LookupTXT(context.Context, string) ([]string, error) { return nil, e.err }
func (e errResolver) LookupMX(context.Context, string) ([]*net.MX, error) { return nil, e.err }
func (e errResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	return nil, e.err
}
func (e errResolver) LookupAddr(context.Context, string) ([]string, error) { return nil, e.err }

// Resolver errors that are not a bare *net.DNSError must still be told
// apart: unknown or wrapped temporary failures are temperror, a wrapped
// NXDOMAIN is none.
func TestResolverErrorMapping(t *testing.T) {
	t.Parallel()
	ip := net.ParseIP("192.0.2.1")
	cases := []struct {
		err  error
		want string
	}{
		{errors.New("connection refused"), TempError},
		{context.DeadlineExceeded, TempError},
		{&net.DNSError{Err: "timeout", IsTimeout: true, IsTemporary: true}, TempError},
		{wrapErr{&net.DNSError{Err: "no such host", IsNotFound: true}}, None},
		{wrapErr{&net.DNSError{Err: "servfail", IsTemporary: true}}, TempError},
	}
	for _, tc := range cases {
		r := (&Checker{Resolver: errResolver{tc.err}}).Check(context.Background(), ip, "h.example", "a@example.org")
		if r.Result != tc.want {
			t.Errorf("%v: got %s, want %s", tc.err, r.Result, tc.want)
		}
	}
}

type wrapErr struct{ err error }

func (w wrapErr) Error() string { return "lookup: " + w.err.Error() }
func (w wrapErr) Unwrap() error { return w.err }

func TestSanitizeDomain(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"Example.COM":                        "example.com",
		"example.com.":                       "example.com",
		"_spf.example.com":                   "_spf.example.com",
		"a-b.example":                        "a-b.example",
		"bücher.example":                     "xn--bcher-kva.example",
		"mail.xn--zckzah":                    "mail.xn--zckzah",
		"123.example.com":                    "123.example.com",
		"x.co-m":                             "x.co-m",
		strings.Repeat("a", 63) + ".example": strings.Repeat("a", 63) + ".example",
	}
	for in, want := range good {
		got, err := sanitizeDomain(in)
		if err != nil || got != want {
			t.Errorf("sanitizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]error{
		"":                                ErrEmptyDomain,
		".":                               ErrEmptyDomain,
		"example":                         ErrNotFQDN,
		"a..b":                            ErrLabelLength,
		"a.b\r\nc":                        ErrDomainChars,
		"a;b.com":                         ErrDomainChars,
		"a(b).com":                        ErrDomainChars,
		"a\x00.com":                       ErrDomainChars,
		"1.2.3.4":                         ErrBadTopLabel,
		"a.-com":                          ErrBadTopLabel,
		"a.com-":                          ErrBadTopLabel,
		strings.Repeat("a.", 127) + "com": ErrDomainTooLong,
	}
	for in, want := range bad {
		if got, err := sanitizeDomain(in); !errors.Is(err, want) {
			t.Errorf("sanitizeDomain(%q) = %q, %v; want %v", clip(in), got, err, want)
		}
	}
}

func TestValidateRecord(t *testing.T) {
	t.Parallel()
	valid := []string{
		"v=spf1",
		"V=SPF1 -ALL",
		"v=spf1 a mx ptr -all ",
		"v=spf1  ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all",
		"v=spf1 a/24//64 mx:example.com/30 a:example.com//128 ?all",
		"v=spf1 include:_spf.example.com exists:%{i}.%{l1r-}.x.example.com -all",
		"v=spf1 redirect=_spf.example.com",
		"v=spf1 -all exp=explain.%{d}",
		"v=spf1 a:%{d}. -all",
		"v=spf1 foo.bar-baz_1=anything:%{c}/x -all",
		"v=spf1 exists:%%.%_.%-.example.com",
		"v=spf1 a:foo.%{d}",
	}
	for _, rec := range valid {
		if err := validateRecord(rec); err != nil {
			t.Errorf("validateRecord(%q) = %v, want valid", rec, err)
		}
	}
	invalid := []string{
		"v=spf1 -all moo",              // unknown mechanism
		"v=spf1 ip4:1.2.3.4\r\na",      // control characters
		"v=spf1 a:example.com\x00",     // NUL
		"v=spf1 a:ex\xc3\xa9.com",      // non-ASCII
		"v=spf1 redirect:example.com",  // modifier as mechanism
		"v=spf1 -redirect=example.com", // qualified modifier
		"v=spf1 redirect=a.example redirect=b.example",
		"v=spf1 exp=a.example exp=b.example",
		"v=spf1 a:foo-bar",     // no toplabel
		"v=spf1 a:example.123", // numeric toplabel
		"v=spf1 a:",            // empty domain-spec
		"v=spf1 a/33",          // cidr out of range
		"v=spf1 a//129",
		"v=spf1 a/024", // leading zero
		"v=spf1 ip4:1.2.3.4/032",
		"v=spf1 ip4:1.2.3",
		"v=spf1 ip4:01.2.3.4",
		"v=spf1 ip6:1.2.3.4",
		"v=spf1 ip6::/129",
		"v=spf1 exists:%{c}.example.com", // c only in exp text
		"v=spf1 exists:%{z}.example.com",
		"v=spf1 exists:%{d0}.example.com",
		"v=spf1 exists:%{d}%x.example.com",
		"v=spf1 exists:%{d.example.com",
		"v=spf1 a:example.com%",
		"v=spf1 1foo=bar", // modifier name must start with a letter
		"v=spf1 =bar",
		"v=spf1 include:",
		"v=spf1 all:example.com",
		"v=spf1 ptr/24",
	}
	for _, rec := range invalid {
		if err := validateRecord(rec); !errors.Is(err, ErrRecordSyntax) {
			t.Errorf("validateRecord(%q) = %v, want syntax error", rec, err)
		}
	}
}

// A syntax error after an early match must still give permerror (RFC 7208
// 4.6), for the domain itself and through include.
func TestSyntaxErrorAnywhere(t *testing.T) {
	t.Parallel()
	z := zoneFromYAML(t, `
bad.example:
  - TXT: "v=spf1 ip4:192.0.2.1 -all moo"
inc.example:
  - TXT: "v=spf1 include:bad.example ip4:192.0.2.1 -all"
`)
	c := &Checker{Resolver: z}
	ip := net.ParseIP("192.0.2.1")
	for _, dom := range []string{"bad.example", "inc.example"} {
		r := c.Check(context.Background(), ip, "h.example", "a@"+dom)
		if r.Result != PermError || !errors.Is(r.Err, ErrRecordSyntax) {
			t.Errorf("%s: got %s (%v), want permerror from a syntax error", dom, r.Result, r.Err)
		}
	}
}

func FuzzValidateRecord(f *testing.F) {
	for _, s := range []string{
		"v=spf1 -all", "v=spf1 a/24//64 mx:%{d}. include:x.example -all",
		"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d}", "v=spf1 moo.cow=x", "v=spf1 ip6:::1/128",
		"v=spf1 redirect=%{d}.", "v=spf1 %", "v=spf1 a:%{d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		err := validateRecord(rec)
		if err != nil && !errors.Is(err, ErrRecordSyntax) {
			t.Fatalf("error %v does not wrap ErrRecordSyntax", err)
		}
		// RFC 7208 4.6.1 and 7.1: a valid record holds only printable
		// ASCII and spaces.
		if err == nil && strings.IndexFunc(rec, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			t.Fatalf("accepted record with control or non-ASCII characters: %q", rec)
		}
	})
}

func FuzzSanitizeDomain(f *testing.F) {
	for _, s := range []string{"example.com", "EXAMPLE.com.", "bücher.example", "a..b", "[1.2.3.4]", "x\r\n.com", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := sanitizeDomain(in)
		if err != nil {
			if out != "" {
				t.Fatalf("error with output %q", out)
			}
			return
		}
		if !safeDomain.MatchString(out) || len(out) > 253 || !strings.Contains(out, ".") {
			t.Fatalf("sanitizeDomain(%q) = %q: not a safe FQDN", in, out)
		}
		if again, err := sanitizeDomain(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
	})
}

// FuzzCheck evaluates an arbitrary record end to end: whatever a domain
// publishes, the result must be one of the RFC 7208 results and the reported
// domain must stay header-safe.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"v=spf1 a mx ptr -all", "v=spf1 include:x.example ~all", "v=spf1 redirect=x.example",
		"v=spf1 exists:%{l}.%{d} -all", "v=spf1 ip4:192.0.2.0/24 -all moo",
	} {
		f.Add(s, "user@sender.example", "helo.example")
	}
	f.Fuzz(func(t *testing.T, rec, mailFrom, helo string) {
		z := &fakeZone{names: map[string][]fakeRR{
			"sender.example": {{typ: "TXT", val: []string{rec}}, {typ: "A", val: []string{"192.0.2.1"}}},
			"x.example":      {{typ: "TXT", val: []string{rec}}},
			"helo.example":   {{typ: "TXT", val: []string{rec}}},
		}}
		c := &Checker{Resolver: z, Timeout: 5 * time.Second}
		checkSafe(t, c.Check(context.Background(), net.ParseIP("192.0.2.1"), helo, mailFrom))
		checkSafe(t, c.CheckHELO(context.Background(), net.ParseIP("2001:db8::1"), helo))
	})
}
