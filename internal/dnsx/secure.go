package dnsx

import (
	"context"
	"errors"
	"net"

	"github.com/miekg/dns"
)

// Secure lookups ask the configured resolver whether it validated the
// answer with DNSSEC (its AD bit). The bit is only worth trusting when the
// resolver validates and the path to it cannot be tampered with (a
// resolver on the same host or network); the operator says so in the
// configuration. They are never cached, so a record's security is always
// the resolver's current view.

// LookupSecure asks for the qtype records of name and reports whether the
// answer, or the denial that there are any, is DNSSEC-secure. A negative
// answer comes back with a not-found *net.DNSError, as for every lookup.
func (c *Client) LookupSecure(ctx context.Context, name string, qtype uint16) ([]dns.RR, bool, error) {
	fqdn, ok := queryName(c.idna, name)
	if !ok {
		return nil, false, notFoundError(name, "", ErrNXDomain)
	}
	if err := ctx.Err(); err != nil {
		return nil, false, c.contextError(name, err)
	}
	resp, err := c.exchangeAD(ctx, fqdn, qtype, true)
	if err != nil {
		return nil, false, c.transportError(ctx, name, err)
	}
	secure := resp.AuthenticatedData
	switch resp.Rcode {
	case dns.RcodeSuccess:
		if rrs, _ := answerRecords(resp, fqdn, qtype); len(rrs) > 0 {
			return rrs, secure, nil
		}
		return nil, secure, notFoundError(name, c.server, ErrNoData)
	case dns.RcodeNameError:
		return nil, secure, notFoundError(name, c.server, ErrNXDomain)
	}
	return nil, false, temporaryError(textMisbehaving, name, c.server, &RcodeError{Rcode: resp.Rcode})
}

// LookupMXSecure is LookupMX with the security of the answer.
func (c *Client) LookupMXSecure(ctx context.Context, name string) ([]*net.MX, bool, error) {
	rrs, secure, err := c.LookupSecure(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, secure, err
	}
	var mxs []*net.MX
	for _, rr := range rrs {
		if mx, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, &net.MX{Host: mx.Mx, Pref: mx.Preference})
		}
	}
	return mxs, secure, nil
}

// LookupTLSA returns the TLSA records of name (e.g. _25._tcp.mx.example.com)
// and whether they are DNSSEC-secure.
func (c *Client) LookupTLSA(ctx context.Context, name string) ([]*dns.TLSA, bool, error) {
	rrs, secure, err := c.LookupSecure(ctx, name, dns.TypeTLSA)
	if err != nil {
		return nil, secure, err
	}
	var out []*dns.TLSA
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TLSA); ok {
			out = append(out, t)
		}
	}
	return out, secure, nil
}

// IsNotFound reports whether err says the name or the records do not
// exist (as opposed to a failure to find out).
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
