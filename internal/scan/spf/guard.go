package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
)

// guard sits between the SPF library and the configured Resolver for one
// check. It exists because the library relies on details a Resolver may not
// provide:
//
//   - The library classifies failures by asserting *net.DNSError; any other
//     error type (a wrapped error, context.DeadlineExceeded) would turn into
//     permerror. The guard normalises every error to *net.DNSError, and a
//     done context to a temporary one, so a timeout always gives temperror
//     (RFC 7208 2.6.6).
//   - RFC 7208 4.6 requires that a syntax error anywhere in a record gives
//     permerror before the record is evaluated, while the library parses
//     term by term and stops at the first match. The guard checks the whole
//     record when it is fetched and, if it is invalid, answers the query with
//     a permanent failure, which the library reports as permerror for the
//     domain itself and for include/redirect targets alike.
//
// A guard is used by one check but may be called from a goroutine that
// outlives it, so its state is locked.
type guard struct {
	r Resolver

	mu     sync.Mutex
	synErr error // first record syntax error seen
}

func newGuard(r Resolver) *guard { return &guard{r: r} }

func (g *guard) syntaxError() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.synErr
}

// LookupTXT implements libspf.DNSResolver.
func (g *guard) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if err := ctxErr(ctx, name); err != nil {
		return nil, err
	}
	txts, err := g.r.LookupTXT(ctx, name)
	if err != nil {
		return txts, normalize(ctx, name, err)
	}
	// Validate only when exactly one record is an SPF record; zero or
	// several are the library's to report (RFC 7208 4.5).
	var rec string
	n := 0
	for _, t := range txts {
		if isSPFRecord(t) {
			rec = t
			n++
		}
	}
	if n == 1 {
		if err := validateRecord(rec); err != nil {
			g.mu.Lock()
			if g.synErr == nil {
				g.synErr = fmt.Errorf("invalid SPF record at %s: %w", sanitizeForLog(name), err)
			}
			g.mu.Unlock()
			// Neither IsNotFound nor temporary: the library maps it to
			// permerror.
			return nil, &net.DNSError{Err: "invalid SPF record: " + err.Error(), Name: name}
		}
	}
	return txts, nil
}

// LookupMX implements libspf.DNSResolver.
func (g *guard) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	if err := ctxErr(ctx, name); err != nil {
		return nil, err
	}
	mxs, err := g.r.LookupMX(ctx, name)
	return mxs, normalize(ctx, name, err)
}

// LookupIPAddr implements libspf.DNSResolver.
func (g *guard) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if err := ctxErr(ctx, host); err != nil {
		return nil, err
	}
	ips, err := g.r.LookupIPAddr(ctx, host)
	return ips, normalize(ctx, host, err)
}

// LookupAddr implements libspf.DNSResolver.
func (g *guard) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	if err := ctxErr(ctx, addr); err != nil {
		return nil, err
	}
	names, err := g.r.LookupAddr(ctx, addr)
	return names, normalize(ctx, addr, err)
}

// ctxErr stops a check that is out of time before it issues another query.
func ctxErr(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return timeoutError(name, err)
	}
	return nil
}

func timeoutError(name string, err error) *net.DNSError {
	return &net.DNSError{Err: err.Error(), Name: name, IsTimeout: true, IsTemporary: true}
}

// normalize returns err as an unwrapped *net.DNSError, keeping its
// not-found/temporary classification; anything unclassifiable is treated as
// temporary, since retrying later is the safe reading of an unknown failure.
func normalize(ctx context.Context, name string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return timeoutError(name, ctx.Err())
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return timeoutError(name, err)
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}

// isSPFRecord selects SPF records among TXT strings like the library does
// (RFC 7208 4.5): "v=spf1" alone or followed by a space, case-insensitively.
func isSPFRecord(t string) bool {
	return strings.EqualFold(t, "v=spf1") ||
		len(t) > 6 && strings.EqualFold(t[:7], "v=spf1 ")
}

// sanitizeForLog keeps a DNS name printable for error messages.
func sanitizeForLog(s string) string {
	const max = 255
	if len(s) > max {
		s = s[:max]
	}
	return fmt.Sprintf("%q", s)
}
