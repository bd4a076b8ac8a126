package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dnsx"
)

// TLSDANE is the TLS mode of an MX host with usable DNSSEC-secure TLSA
// records (RFC 7672): STARTTLS is required and the server's certificate
// must match one of them; there is no fallback to plaintext.
const TLSDANE = "dane"

// TLSA is one usable TLSA record of an MX host: DANE-TA(2) or DANE-EE(3)
// (RFC 7672 3.1: PKIX-TA and PKIX-EE are not used for SMTP).
type TLSA struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// SecureResolver answers with the security of the answer, from a
// validating resolver the operator trusts (dnsx.Client).
type SecureResolver interface {
	LookupMXSecure(ctx context.Context, name string) ([]*net.MX, bool, error)
	LookupTLSA(ctx context.Context, name string) ([]*dns.TLSA, bool, error)
}

// applyDANE applies RFC 7672 to a domain's MX targets. DANE applies only
// when the MX records are DNSSEC-secure; then each MX host whose TLSA
// records at _25._tcp.<host> are secure and usable must be reached over
// TLS matching them. A host whose TLSA lookup fails (not a secure "none")
// is skipped, as its policy cannot be known; a host with no usable
// records keeps the mode it had. It reports whether any host uses DANE.
func (r *Router) applyDANE(ctx context.Context, domain string, ts []Target) ([]Target, bool, error) {
	if r.DANE == nil || len(ts) == 0 {
		return ts, false, nil
	}
	log := r.Client.log
	_, secure, err := r.DANE.LookupMXSecure(ctx, domain)
	if err != nil && !dnsx.IsNotFound(err) {
		return nil, false, &TempError{fmt.Sprintf("DNSSEC status of the MX of %s: %v", domain, err)}
	}
	if !secure {
		return ts, false, nil
	}
	var out []Target
	used := false
	var lastErr error
	for _, t := range ts {
		recs, sec, err := r.DANE.LookupTLSA(ctx, "_25._tcp."+t.Host)
		switch {
		case err != nil && !dnsx.IsNotFound(err):
			// RFC 7672 2.2.1: the TLSA lookup failed, the host is unusable.
			log.Warn("dane: TLSA lookup failed; host skipped", "domain", domain, "host", t.Host, "err", err)
			lastErr = err
			continue
		case err != nil || !sec:
			out = append(out, t) // no TLSA, or not secure: no DANE for this host
			continue
		}
		usable := usableTLSA(recs)
		if len(usable) == 0 {
			// RFC 7672 2.2: only unusable records still mean encryption is
			// expected, without authentication.
			t.TLS = TLSRequired
			out = append(out, t)
			continue
		}
		t.TLS, t.TLSA = TLSDANE, formatTLSA(usable)
		used = true
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, false, &TempError{fmt.Sprintf("DANE: no usable MX host for %s: %v", domain, lastErr)}
	}
	return out, used, nil
}

// usableTLSA keeps the DANE-TA(2) and DANE-EE(3) records with known
// selectors and matching types.
func usableTLSA(recs []*dns.TLSA) []TLSA {
	var out []TLSA
	for _, r := range recs {
		if (r.Usage != 2 && r.Usage != 3) || r.Selector > 1 || r.MatchingType > 2 {
			continue
		}
		data, err := hex.DecodeString(r.Certificate)
		if err != nil {
			continue
		}
		out = append(out, TLSA{Usage: r.Usage, Selector: r.Selector, MatchingType: r.MatchingType, Data: data})
	}
	return out
}

// formatTLSA writes records as Target.TLSA holds them.
func formatTLSA(rs []TLSA) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%d %d %d %x", r.Usage, r.Selector, r.MatchingType, r.Data)
	}
	return strings.Join(parts, ";")
}

// parseTLSA reads Target.TLSA; malformed parts are dropped (they were
// written by formatTLSA).
func parseTLSA(s string) []TLSA {
	var out []TLSA
	for _, p := range strings.Split(s, ";") {
		var r TLSA
		var h string
		if _, err := fmt.Sscanf(p, "%d %d %d %s", &r.Usage, &r.Selector, &r.MatchingType, &h); err != nil {
			continue
		}
		var err error
		if r.Data, err = hex.DecodeString(h); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// matches reports whether the TLSA record matches cert.
func (r TLSA) matches(cert *x509.Certificate) bool {
	content := cert.Raw
	if r.Selector == 1 {
		content = cert.RawSubjectPublicKeyInfo
	}
	switch r.MatchingType {
	case 1:
		h := sha256.Sum256(content)
		content = h[:]
	case 2:
		h := sha512.Sum512(content)
		content = h[:]
	}
	return bytes.Equal(content, r.Data)
}

var errDANE = errors.New("DANE: the server's certificate matches none of its TLSA records")

// daneVerify checks a handshake against the host's TLSA records: a
// DANE-EE(3) record matches the server's own certificate, whatever its
// names and dates say (RFC 7672 3.1.1); a DANE-TA(2) record matches a
// certificate of the chain the server sent, which must then issue the
// server's certificate for the MX host name (RFC 7672 3.1.2, 3.2.2).
func daneVerify(host string, recs []TLSA, now func() time.Time) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errDANE
		}
		leaf := cs.PeerCertificates[0]
		for _, r := range recs {
			if r.Usage == 3 && r.matches(leaf) {
				return nil
			}
		}
		for _, r := range recs {
			if r.Usage != 2 {
				continue
			}
			for _, ta := range cs.PeerCertificates {
				if !r.matches(ta) {
					continue
				}
				roots, inter := x509.NewCertPool(), x509.NewCertPool()
				roots.AddCert(ta)
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				if _, err := leaf.Verify(x509.VerifyOptions{DNSName: strings.TrimSuffix(host, "."), Roots: roots,
					Intermediates: inter, CurrentTime: now()}); err == nil {
					return nil
				}
			}
		}
		return errDANE
	}
}
