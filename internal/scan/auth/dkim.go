package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// DKIM result values (RFC 8601 2.7.1).
const (
	DKIMNone      = "none"
	DKIMPass      = "pass"
	DKIMFail      = "fail"
	DKIMPolicy    = "policy"
	DKIMNeutral   = "neutral"
	DKIMTempError = "temperror"
	DKIMPermError = "permerror"
)

// MaxDKIMSignatures is how many DKIM-Signature fields are verified; later
// ones get the result "policy" without any DNS query, so a message cannot
// make the gateway do unbounded work.
const MaxDKIMSignatures = 10

// dkimResult is the outcome for one DKIM-Signature field, in header order.
type dkimResult struct {
	Result   string
	Domain   string // clean d=, "" when it is not a valid domain
	Selector string // clean s=, "" when invalid
	BPrefix  string // first 8 characters of b= (RFC 6008), base64 alphabet only
	Reason   string // private
}

// dkimSigInfo is what we read ourselves from a DKIM-Signature field: the
// verifier does not report s= or b=.
func dkimSigInfo(f field) dkimResult {
	var r dkimResult
	v := f.value()
	get := func(name string) string {
		if l, err := parseTagList(v); err == nil {
			s, _ := l.get(name)
			return s
		}
		// Lenient fallback, for reporting only.
		for _, part := range strings.Split(v, ";") {
			k, val, ok := strings.Cut(part, "=")
			if ok && trimFWS(k) == name {
				return trimFWS(val)
			}
		}
		return ""
	}
	r.Domain, _ = cleanDomain(stripFWS(get("d")))
	r.Selector, _ = cleanSelector(stripFWS(get("s")))
	b := stripFWS(get("b"))
	if len(b) >= 8 && isBase64Text(b[:8]) {
		r.BPrefix = b[:8]
	}
	return r
}

func isBase64Text(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '/' {
			return false
		}
	}
	return true
}

// verifyDKIM verifies every DKIM-Signature of the message (at most
// MaxDKIMSignatures) with go-msgauth, looking keys up through the check's
// resolver bound to ctx. When ctx ends first, the signatures not yet
// judged are temperror; the verifier goroutine then finishes on its own,
// its DNS queries failing at once on the done context.
func (c *Check) verifyDKIM(ctx context.Context, open func() (io.ReadCloser, error), h *rawHeader) []dkimResult {
	sigs := h.all("DKIM-Signature")
	if len(sigs) == 0 {
		return nil
	}
	out := make([]dkimResult, len(sigs))
	for i, f := range sigs {
		out[i] = dkimSigInfo(f)
	}
	for i := MaxDKIMSignatures; i < len(out); i++ {
		out[i].Result = DKIMPolicy
		out[i].Reason = fmt.Sprintf("not verified: more than %d signatures", MaxDKIMSignatures)
	}
	n := min(len(sigs), MaxDKIMSignatures)

	type outcome struct {
		v   []*dkim.Verification
		err error
	}
	done := make(chan outcome, 1) // buffered: the goroutine never blocks if we gave up
	go func() {
		r, err := open()
		if err != nil {
			done <- outcome{err: fmt.Errorf("open message: %w", err)}
			return
		}
		defer r.Close()
		opts := &dkim.VerifyOptions{
			MaxVerifications: MaxDKIMSignatures,
			LookupTXT: func(name string) ([]string, error) {
				if !validQueryName(name) {
					// Never send a hostile d= or s= to DNS; "not found"
					// makes the signature a permerror.
					return nil, &net.DNSError{Err: "invalid key name", Name: "invalid", IsNotFound: true}
				}
				return c.res.LookupTXT(ctx, name)
			},
		}
		v, err := dkim.VerifyWithOptions(ctxReader{ctx, r}, opts)
		if errors.Is(err, dkim.ErrTooManySignatures) {
			err = nil
		}
		done <- outcome{v, err}
	}()

	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		o.err = ctx.Err()
	}
	for i := 0; i < n; i++ {
		r := &out[i]
		switch {
		case o.err != nil:
			r.Result, r.Reason = DKIMTempError, "dkim: verification incomplete: "+o.err.Error()
		case i >= len(o.v) || o.v[i] == nil:
			r.Result, r.Reason = DKIMTempError, "dkim: no verification for this signature"
		default:
			v := o.v[i]
			if d, ok := cleanDomain(v.Domain); ok {
				r.Domain = d
			} else if v.Domain != "" {
				r.Domain = ""
			}
			r.Result = dkimResultOf(v.Err)
			if v.Err != nil {
				r.Reason = v.Err.Error()
			}
			if r.Result == DKIMPass && !v.Expiration.IsZero() && c.now().After(v.Expiration) {
				r.Result, r.Reason = DKIMPermError, "dkim: signature has expired"
			}
			if r.Result == DKIMPass && r.Domain == "" {
				// A pass for a d= we cannot name is of no use and must not
				// reach alignment or headers.
				r.Result, r.Reason = DKIMPermError, "dkim: d= is not a valid domain"
			}
		}
	}
	return out
}

func dkimResultOf(err error) string {
	switch {
	case err == nil:
		return DKIMPass
	case dkim.IsTempFail(err):
		return DKIMTempError
	case dkim.IsPermFail(err):
		return DKIMPermError
	default:
		return DKIMFail
	}
}
