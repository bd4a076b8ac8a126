// Package spf evaluates the Sender Policy Framework (RFC 7208) for an SMTP
// session: the MAIL FROM identity (with the RFC 7208 2.4 substitution for the
// null reverse-path) and the HELO identity (RFC 7208 2.3).
//
// Record evaluation, macros and the DNS lookup limits of RFC 7208 4.6.4 are
// delegated to blitiri.com.ar/go/spf. This package adds what an SMTP server
// needs around it: identity selection, input validation (RFC 7208 4.3), a
// per-check deadline, a syntax check of the whole record before evaluation
// (RFC 7208 4.6) and results whose domain is safe to place in an
// Authentication-Results header (RFC 8601).
package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	libspf "blitiri.com.ar/go/spf"
)

// Result values, as named by RFC 7208 2.6 and used in Authentication-Results.
const (
	None      = "none"
	Neutral   = "neutral"
	Pass      = "pass"
	Fail      = "fail"
	SoftFail  = "softfail"
	TempError = "temperror"
	PermError = "permerror"
)

// Identity values: which SMTP identity a Result is about (RFC 7208 2.3, 2.4).
const (
	IdentityMailFrom = "mailfrom"
	IdentityHELO     = "helo"
)

// DefaultTimeout bounds one check when Checker.Timeout is zero. RFC 7208
// 4.6.4 advises at least 20 seconds for the whole evaluation.
const DefaultTimeout = 20 * time.Second

// Result is the outcome of one SPF evaluation.
//
// Result, Domain and Identity are safe to copy into an Authentication-Results
// header: Result is one of the constants above, Domain is empty or a
// lowercase hostname made only of letters, digits, '-', '_' and '.', and
// Identity is IdentityMailFrom or IdentityHELO. Explanation and Err are for
// logs only.
type Result struct {
	// Result is one of none, neutral, pass, fail, softfail, temperror,
	// permerror (RFC 7208 2.6).
	Result string
	// Domain is the domain that was checked: the MAIL FROM domain, or the
	// HELO domain when MAIL FROM is null or for a HELO check. It is empty
	// when the input was not a usable domain name (RFC 7208 4.3); the
	// rejected input is then only described in Err.
	Domain string
	// Identity is IdentityMailFrom or IdentityHELO. A null reverse-path is
	// still the "mailfrom" identity, as postmaster@<HELO> (RFC 7208 2.4).
	Identity string
	// Explanation is a local, fixed description of the outcome (never text
	// published by the checked domain: the exp= modifier is not evaluated,
	// which RFC 7208 6.2 allows). Not for use in SMTP replies as is.
	Explanation string
	// Err is the underlying reason, for logs; it may be set for any Result,
	// including pass. Never send it to the SMTP peer.
	Err error
}

// Resolver is the DNS interface the check needs. It has the method set of
// blitiri.com.ar/go/spf's DNSResolver and is satisfied by *net.Resolver.
// Implementations must return *net.DNSError values (not wrapped) so that
// "not found" (IsNotFound) and temporary failures (Temporary()) can be told
// apart; names may carry a trailing dot.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

var _ Resolver = (*net.Resolver)(nil)
var _ libspf.DNSResolver = Resolver(nil)

// Checker evaluates SPF. The zero value is not usable: Resolver must be set.
// A Checker is safe for concurrent use once its fields are no longer being
// changed; it holds no per-check state.
type Checker struct {
	// Resolver answers every DNS query of a check. Required.
	Resolver Resolver
	// Timeout bounds each check, including all of its DNS queries; zero
	// means DefaultTimeout. The context passed to Check may impose an
	// earlier deadline.
	Timeout time.Duration
}

// Check evaluates the MAIL FROM identity of a session (RFC 7208 2.4): the
// domain of mailFrom, or postmaster@helo when mailFrom is null ("" or "<>").
// A mailFrom without a local part ("@example.com") is checked as
// postmaster@example.com (RFC 7208 4.3).
//
// Check never returns early with an error: every failure is described by the
// Result. When ctx is done or the Checker's deadline passes, Check returns
// TempError promptly even if the Resolver ignores its context; a query still
// running in the Resolver then finishes in the background and is discarded.
func (c *Checker) Check(ctx context.Context, ip net.IP, helo, mailFrom string) Result {
	mailFrom = strings.TrimSpace(mailFrom)
	if strings.HasPrefix(mailFrom, "<") && strings.HasSuffix(mailFrom, ">") {
		mailFrom = mailFrom[1 : len(mailFrom)-1]
	}
	if mailFrom == "" {
		// RFC 7208 2.4: the null reverse-path is checked as postmaster@HELO.
		return c.checkSender(ctx, ip, helo, "postmaster", helo, IdentityMailFrom)
	}
	at := strings.LastIndexByte(mailFrom, '@')
	if at < 0 {
		// RFC 5321 requires a domain in a non-null reverse-path.
		return Result{Result: None, Identity: IdentityMailFrom,
			Err: errors.New("spf: MAIL FROM address has no domain")}
	}
	local, domain := mailFrom[:at], mailFrom[at+1:]
	if local == "" {
		local = "postmaster" // RFC 7208 4.3
	}
	return c.checkSender(ctx, ip, helo, local, domain, IdentityMailFrom)
}

// CheckHELO evaluates the HELO identity (RFC 7208 2.3), as
// postmaster@helo. An address literal or a name that is not a fully
// qualified domain gives None. Concurrency and deadline behaviour are those
// of Check.
func (c *Checker) CheckHELO(ctx context.Context, ip net.IP, helo string) Result {
	return c.checkSender(ctx, ip, helo, "postmaster", helo, IdentityHELO)
}

func (c *Checker) checkSender(ctx context.Context, ip net.IP, helo, local, rawDomain, identity string) Result {
	res := Result{Identity: identity}
	domain, err := sanitizeDomain(rawDomain)
	if err != nil {
		// RFC 7208 4.3: a malformed domain yields "none" without any query.
		res.Result = None
		res.Err = fmt.Errorf("spf: %s domain not checked: %w", identity, err)
		res.Explanation = "domain is not a valid host name"
		return res
	}
	res.Domain = domain
	if ip.To16() == nil {
		res.Result = PermError
		res.Err = errors.New("spf: invalid client IP address")
		res.Explanation = "invalid client address"
		return res
	}
	if c.Resolver == nil {
		res.Result = TempError
		res.Err = errors.New("spf: checker has no resolver")
		res.Explanation = "no DNS resolver configured"
		return res
	}

	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	g := newGuard(c.Resolver)
	type outcome struct {
		r   libspf.Result
		err error
	}
	// Buffered so that the evaluation goroutine never blocks on send if we
	// have already given up on it.
	done := make(chan outcome, 1)
	sender := local + "@" + domain
	go func() {
		r, err := libspf.CheckHostWithSender(ip, helo, sender,
			libspf.WithContext(ctx), libspf.WithResolver(g))
		done <- outcome{r, err}
	}()

	select {
	case o := <-done:
		res.Result = string(o.r)
		err := o.err
		if serr := g.syntaxError(); serr != nil && o.r == libspf.PermError {
			err = serr
		}
		if o.r == libspf.TempError && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil && !isMatchErr(err) {
			err = fmt.Errorf("spf: %s check of %s: %w", identity, domain, err)
		}
		res.Err = err
	case <-ctx.Done():
		res.Result = TempError
		res.Err = fmt.Errorf("spf: %s check of %s abandoned: %w", identity, domain, ctx.Err())
	}
	res.Explanation = explain(res.Result)
	return res
}

// explain gives a fixed, locally written text per result, so nothing
// published by the checked domain reaches a reply or header.
func explain(result string) string {
	switch result {
	case Pass:
		return "sender is authorized"
	case Fail:
		return "sender is not authorized"
	case SoftFail:
		return "sender is probably not authorized"
	case Neutral:
		return "domain makes no assertion"
	case None:
		return "no SPF record"
	case TempError:
		return "temporary error during SPF check"
	case PermError:
		return "SPF record is invalid"
	}
	return ""
}

// isMatchErr reports the library's "matched X" sentinels, which describe a
// successful match rather than a failure; they are kept unwrapped.
func isMatchErr(err error) bool {
	for _, m := range []error{libspf.ErrMatchedAll, libspf.ErrMatchedA,
		libspf.ErrMatchedIP, libspf.ErrMatchedMX, libspf.ErrMatchedPTR,
		libspf.ErrMatchedExists} {
		if errors.Is(err, m) {
			return true
		}
	}
	return false
}
