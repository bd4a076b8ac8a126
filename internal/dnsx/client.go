package dnsx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// Defaults for [New].
const (
	// DefaultTimeout bounds one attempt of one question, UDP and the TCP
	// fallback together.
	DefaultTimeout = 5 * time.Second
	// DefaultRetries is the number of extra attempts after a timeout or a
	// transport failure.
	DefaultRetries = 1
	// DefaultMaxTTL caps how long a positive answer stays cached, however
	// long its TTL.
	DefaultMaxTTL = time.Hour
	// DefaultMaxNegativeTTL caps how long NXDOMAIN and NODATA stay cached,
	// short enough that a newly published SPF or DMARC record is seen soon
	// (RFC 2308 5 suggests a cap of one to three hours).
	DefaultMaxNegativeTTL = 15 * time.Minute
)

// ednsSize is the UDP payload size we advertise (RFC 6891 6.2.5).
const ednsSize = 4096

// maxCNAMEChain bounds how many CNAMEs of one answer are followed.
const maxCNAMEChain = 8

// Option configures a [Client].
type Option func(*Client)

// WithTimeout sets the time one attempt may take (default [DefaultTimeout]).
// The deadline of the ctx passed to a lookup applies as well.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithRetries sets how many times a question is re-sent after a timeout or a
// transport failure (default [DefaultRetries]). Answers, including SERVFAIL,
// are never re-asked: the recursive resolver has already retried upstream.
func WithRetries(n int) Option {
	return func(c *Client) {
		if n >= 0 {
			c.retries = n
		}
	}
}

// WithCache keeps up to maxEntries answers (one per name and type), each for
// its TTL: the smallest TTL of the records used, capped by [WithCacheLimits].
// Negative answers are kept for the SOA minimum of the authority section
// (RFC 2308 5); answers without SOA, SERVFAIL and timeouts are not cached.
// The least recently used entry is dropped when the cache is full.
func WithCache(maxEntries int) Option {
	return func(c *Client) { c.cacheSize = maxEntries }
}

// WithCacheLimits caps how long positive and negative answers are cached
// (defaults [DefaultMaxTTL] and [DefaultMaxNegativeTTL]).
func WithCacheLimits(maxTTL, maxNegativeTTL time.Duration) Option {
	return func(c *Client) {
		c.maxTTL, c.maxNegTTL = maxTTL, maxNegativeTTL
	}
}

// WithClock sets the clock the cache uses for expiry (default time.Now).
// Network timeouts always use the real clock.
func WithClock(now func() time.Time) Option {
	return func(c *Client) {
		if now != nil {
			c.now = now
		}
	}
}

// Client is the [Resolver] returned by [New]. It sends every question to one
// recursive resolver and nowhere else. It is safe for concurrent use.
type Client struct {
	server    string
	timeout   time.Duration
	retries   int
	cacheSize int
	maxTTL    time.Duration
	maxNegTTL time.Duration
	now       func() time.Time

	idna   *idna.Profile
	dialer net.Dialer
	cache  *cache // nil when caching is off
}

var _ Resolver = (*Client)(nil)

// New returns a resolver that asks only server, a recursive resolver given
// as "ip:port" (or a bare IP, meaning port 53). The server must be an IP
// address: resolving a host name to find it would need the system resolver.
//
// Questions go over UDP with EDNS0 (payload 4096) and the RD bit, and are
// repeated over TCP when the answer is truncated (RFC 7766 5). The resolver
// never reads /etc/resolv.conf or /etc/hosts.
func New(server string, opts ...Option) (*Client, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		host, port = server, "53"
	}
	if _, ok := ipLiteral(host); !ok {
		return nil, fmt.Errorf("dnsx: resolver %q: not an IP address (host names are not resolved, to keep away from the system resolver)", server)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return nil, fmt.Errorf("dnsx: resolver %q: invalid port %q", server, port)
	}
	c := &Client{
		server:    net.JoinHostPort(host, port),
		timeout:   DefaultTimeout,
		retries:   DefaultRetries,
		maxTTL:    DefaultMaxTTL,
		maxNegTTL: DefaultMaxNegativeTTL,
		now:       time.Now,
		idna:      newIDNAProfile(),
	}
	for _, o := range opts {
		o(c)
	}
	if c.cacheSize > 0 {
		c.cache = newCache(c.cacheSize, c.now)
	}
	return c, nil
}

// Server returns the "ip:port" questions are sent to.
func (c *Client) Server() string { return c.server }

// LookupTXT implements [Resolver].
func (c *Client) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := c.query(ctx, name, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	txts := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		var b strings.Builder
		for _, s := range rr.(*dns.TXT).Txt {
			b.WriteString(unescapeTXT(s))
		}
		txts = append(txts, b.String())
	}
	return txts, nil
}

// LookupMX implements [Resolver]. As in the standard library, records whose
// host is not a valid host name are dropped, and if any were the remaining
// ones come back together with an error.
func (c *Client) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := c.query(ctx, name, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	mxs := make([]*net.MX, 0, len(rrs))
	bad := false
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		if mx.Mx != "." && !isDomainName(mx.Mx) {
			bad = true
			continue
		}
		mxs = append(mxs, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	// RFC 5321 5.1: lower preference first. Stable, so equal preferences
	// keep the resolver's order and results are reproducible.
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	if bad {
		return mxs, c.invalidNamesError(name)
	}
	return mxs, nil
}

// LookupIPAddr implements [Resolver]. A and AAAA are asked concurrently. If
// either family has addresses they are returned and an error of the other is
// dropped, as the standard library does; otherwise a temporary error wins
// over "not found", so a failing family never reads as a missing name.
func (c *Client) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if ip, ok := ipLiteral(host); ok {
		return []net.IPAddr{ip}, nil
	}
	type result struct {
		rrs []dns.RR
		err *net.DNSError
	}
	var v4, v6 result
	var wg sync.WaitGroup
	wg.Go(func() { v4.rrs, v4.err = c.query(ctx, host, host, dns.TypeA) })
	wg.Go(func() { v6.rrs, v6.err = c.query(ctx, host, host, dns.TypeAAAA) })
	wg.Wait()

	var addrs []net.IPAddr
	for _, rr := range v4.rrs {
		addrs = append(addrs, net.IPAddr{IP: slices.Clone(rr.(*dns.A).A)})
	}
	for _, rr := range v6.rrs {
		addrs = append(addrs, net.IPAddr{IP: slices.Clone(rr.(*dns.AAAA).AAAA)})
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	switch {
	case v4.err != nil && !v4.err.IsNotFound:
		return nil, v4.err
	case v6.err != nil && !v6.err.IsNotFound:
		return nil, v6.err
	case v6.err != nil && errors.Is(v6.err, ErrNXDomain):
		return nil, v6.err
	case v4.err != nil:
		return nil, v4.err
	case v6.err != nil:
		return nil, v6.err
	}
	// Unreachable: query returns records or an error.
	return nil, notFoundError(host, c.server, ErrNoData)
}

// LookupAddr implements [Resolver] with a PTR question for the reverse name
// of addr (RFC 1035 3.5, RFC 3596 2.5). Invalid names are dropped as in
// LookupMX.
func (c *Client) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, ok := ipLiteral(addr)
	if !ok {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	arpa, err := dns.ReverseAddr(ip.IP.String())
	if err != nil {
		return nil, &net.DNSError{Err: "unrecognized address", Name: addr}
	}
	rrs, derr := c.query(ctx, addr, arpa, dns.TypePTR)
	if derr != nil {
		return nil, derr
	}
	names := make([]string, 0, len(rrs))
	bad := false
	for _, rr := range rrs {
		n := rr.(*dns.PTR).Ptr
		if !isDomainName(n) {
			bad = true
			continue
		}
		names = append(names, n)
	}
	if bad {
		return names, c.invalidNamesError(addr)
	}
	return names, nil
}

func (c *Client) invalidNamesError(name string) *net.DNSError {
	return &net.DNSError{Err: "DNS response contained records which contain invalid names", Name: name, Server: c.server}
}

// query asks for the qtype records of name and returns those that answer
// it, following CNAMEs. display is the name reported in errors (what the
// caller passed). Every error is a *net.DNSError as described on [Resolver].
func (c *Client) query(ctx context.Context, display, name string, qtype uint16) ([]dns.RR, *net.DNSError) {
	fqdn, ok := queryName(c.idna, name)
	if !ok {
		// Like the standard library: a name that cannot exist is not found,
		// without asking anyone.
		return nil, notFoundError(display, "", ErrNXDomain)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.contextError(display, err)
	}
	key := cacheKey{name: strings.ToLower(fqdn), qtype: qtype}
	if c.cache != nil {
		if v, ok := c.cache.get(key); ok {
			if v.neg != nil {
				return nil, notFoundError(display, c.server, v.neg)
			}
			return v.rrs, nil
		}
	}

	resp, err := c.exchange(ctx, fqdn, qtype)
	if err != nil {
		return nil, c.transportError(ctx, display, err)
	}

	switch resp.Rcode {
	case dns.RcodeSuccess:
		if rrs, ttl := answerRecords(resp, fqdn, qtype); len(rrs) > 0 {
			c.store(key, cacheValue{rrs: rrs}, min(ttl, c.maxTTL))
			return rrs, nil
		}
		if isReferral(resp) {
			// A non-recursive server handed us a delegation: the configured
			// server is not a recursive resolver. Not "no data".
			return nil, temporaryError("lame referral", display, c.server, errors.New("dnsx: resolver does not offer recursion"))
		}
		c.store(key, cacheValue{neg: ErrNoData}, negativeTTL(resp, c.maxNegTTL))
		return nil, notFoundError(display, c.server, ErrNoData)
	case dns.RcodeNameError:
		c.store(key, cacheValue{neg: ErrNXDomain}, negativeTTL(resp, c.maxNegTTL))
		return nil, notFoundError(display, c.server, ErrNXDomain)
	default:
		// SERVFAIL is temporary in the standard library too. Other codes
		// (REFUSED, NOTIMP, FORMERR) are treated the same: with a single
		// configured recursive resolver they describe the resolver, not the
		// domain asked about, so mail must be deferred, never bounced.
		return nil, temporaryError(textMisbehaving, display, c.server, &RcodeError{Rcode: resp.Rcode})
	}
}

func (c *Client) store(k cacheKey, v cacheValue, ttl time.Duration) {
	if c.cache != nil {
		c.cache.put(k, v, ttl)
	}
}

// contextError reports the end of ctx the way the standard library does.
func (c *Client) contextError(name string, err error) *net.DNSError {
	if errors.Is(err, context.DeadlineExceeded) {
		return &net.DNSError{Err: textTimeout, Name: name, Server: c.server, IsTimeout: true, IsTemporary: true, UnwrapErr: err}
	}
	return &net.DNSError{Err: textCanceled, Name: name, Server: c.server, UnwrapErr: err}
}

// transportError classifies a failed exchange: the caller's context ending,
// a timeout, or some other network or protocol failure (temporary).
func (c *Client) transportError(ctx context.Context, name string, err error) *net.DNSError {
	if cerr := ctx.Err(); cerr != nil {
		return c.contextError(name, cerr)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &net.DNSError{Err: textTimeout, Name: name, Server: c.server, IsTimeout: true, IsTemporary: true, UnwrapErr: err}
	}
	return temporaryError(err.Error(), name, c.server, err)
}

// answerRecords returns the records of type qtype owned by qname or by the
// end of its CNAME chain (RFC 1034 3.6.2), and the smallest TTL among them
// and the CNAMEs followed.
func answerRecords(resp *dns.Msg, qname string, qtype uint16) ([]dns.RR, time.Duration) {
	target := qname
	minTTL := ^uint32(0)
	for range maxCNAMEChain + 1 {
		var rrs []dns.RR
		next := ""
		for _, rr := range resp.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, target) {
				continue
			}
			switch {
			case h.Rrtype == qtype:
				rrs = append(rrs, rr)
				minTTL = min(minTTL, h.Ttl)
			case h.Rrtype == dns.TypeCNAME && next == "":
				next = rr.(*dns.CNAME).Target
				minTTL = min(minTTL, h.Ttl)
			}
		}
		if len(rrs) > 0 {
			return rrs, time.Duration(minTTL) * time.Second
		}
		if next == "" {
			break
		}
		target = next
	}
	return nil, 0
}

// negativeTTL is how long a negative answer may be cached: the smaller of
// the SOA record's TTL and its MINIMUM field (RFC 2308 5), capped. Without
// an SOA the answer must not be cached.
func negativeTTL(resp *dns.Msg, limit time.Duration) time.Duration {
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(time.Duration(min(soa.Hdr.Ttl, soa.Minttl))*time.Second, limit)
		}
	}
	return 0
}

// isReferral reports a delegation from a server that neither is
// authoritative nor offers recursion (the standard library's "lame
// referral"): NS records in the authority section and no answer.
func isReferral(resp *dns.Msg) bool {
	if resp.Authoritative || resp.RecursionAvailable || len(resp.Answer) > 0 {
		return false
	}
	hasNS := false
	for _, rr := range resp.Ns {
		switch rr.Header().Rrtype {
		case dns.TypeSOA:
			return false
		case dns.TypeNS:
			hasNS = true
		}
	}
	return hasNS
}
