package dnsx

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/miekg/dns"
)

// Resolver answers the DNS questions mailgate asks. Its method set matches
// *net.Resolver, so it satisfies blitiri.com.ar/go/spf's DNSResolver and a
// *net.Resolver with a custom Dial can stand in for it.
//
// Implementations are safe for concurrent use. Every failure is a
// *net.DNSError, never wrapped, because callers (including the spf library)
// type-assert it:
//
//   - NXDOMAIN and NODATA: IsNotFound is true ("no such host"); errors.Is
//     tells them apart with [ErrNXDomain] and [ErrNoData].
//   - SERVFAIL and other resolver trouble: IsTemporary is true.
//   - Timeouts: IsTimeout and IsTemporary are true.
//   - Cancellation of ctx: errors.Is(err, context.Canceled) is true.
type Resolver interface {
	// LookupTXT returns the TXT records of name, each record's strings
	// concatenated without separators (RFC 7208 3.3, RFC 6376 3.6.2.2), in
	// the order the server sent them.
	LookupTXT(ctx context.Context, name string) ([]string, error)

	// LookupMX returns the MX records of name sorted by preference; records
	// with equal preference keep the server's order. Host names are fully
	// qualified with a trailing dot; a null MX (RFC 7505) has Host ".".
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)

	// LookupIPAddr returns the IPv4 (A) addresses of host followed by its IPv6
	// (AAAA) addresses. An IP literal is returned as is without a query.
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)

	// LookupAddr returns the names (PTR records) for the IP address addr,
	// fully qualified with a trailing dot.
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// The standard resolver has the same shape; this keeps the promise above.
var _ Resolver = (*net.Resolver)(nil)

// Causes reachable with errors.Is from the *net.DNSError values this package
// returns (through DNSError.UnwrapErr).
var (
	// ErrNXDomain: the name does not exist (RCODE 3, RFC 1035 4.1.1).
	ErrNXDomain = errors.New("dnsx: name does not exist")
	// ErrNoData: the name exists but has no records of the asked type
	// (RFC 2308 2.2).
	ErrNoData = errors.New("dnsx: no records of the requested type")
	// ErrNotConfigured: the resolver came from [Unconfigured].
	ErrNotConfigured = errors.New("dnsx: no DNS resolver configured")
)

// RcodeError is the cause of a temporary *net.DNSError produced by a
// response code other than NOERROR and NXDOMAIN (SERVFAIL, REFUSED, ...).
type RcodeError struct {
	Rcode int
}

func (e *RcodeError) Error() string {
	s, ok := dns.RcodeToString[e.Rcode]
	if !ok {
		s = fmt.Sprintf("RCODE%d", e.Rcode)
	}
	return "dnsx: resolver answered " + s
}

// Texts match the standard library's so logs and callers that compare
// DNSError.Err strings see the same values.
const (
	textNotFound    = "no such host"
	textMisbehaving = "server misbehaving"
	textTimeout     = "i/o timeout"
	textCanceled    = "operation was canceled"
)

func notFoundError(name, server string, cause error) *net.DNSError {
	return &net.DNSError{Err: textNotFound, Name: name, Server: server, IsNotFound: true, UnwrapErr: cause}
}

func temporaryError(text, name, server string, cause error) *net.DNSError {
	return &net.DNSError{Err: text, Name: name, Server: server, IsTemporary: true, UnwrapErr: cause}
}

// Unconfigured returns a Resolver that answers every query with a temporary
// *net.DNSError ("no DNS resolver configured", wrapping [ErrNotConfigured]);
// only LookupIPAddr of an IP literal succeeds, as it needs no query.
// mailgate uses it when the operator has set no resolver: mail that needs DNS
// is deferred, and nothing is ever sent to the system resolver.
func Unconfigured() Resolver { return unconfigured{} }

type unconfigured struct{}

func (unconfigured) fail(name string) *net.DNSError {
	return temporaryError("no DNS resolver configured", name, "", ErrNotConfigured)
}

func (u unconfigured) LookupTXT(_ context.Context, name string) ([]string, error) {
	return nil, u.fail(name)
}

func (u unconfigured) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	return nil, u.fail(name)
}

func (u unconfigured) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	if ip, ok := ipLiteral(host); ok {
		return []net.IPAddr{ip}, nil
	}
	return nil, u.fail(host)
}

func (u unconfigured) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return nil, u.fail(addr)
}
