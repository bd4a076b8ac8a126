// Package addr parses and checks SMTP envelope addresses. It is deliberately
// stricter than RFC 5321 where leniency has been used to relay through
// gateways: routing characters in the local part (% ! @ :), address
// literals, trailing dots and over-long parts are refused outright.
package addr

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Errors returned by Parse; the SMTP layer maps them to reply codes.
var (
	ErrSyntax     = errors.New("bad address syntax")
	ErrRouting    = errors.New("address uses routing characters")
	ErrLiteral    = errors.New("address literal domains are not served")
	ErrTooLong    = errors.New("address too long")
	ErrTrailerDot = errors.New("domain ends with a dot")
)

// Address is a parsed envelope address.
type Address struct {
	Local  string // as received (case kept: delivery must not change it)
	Domain string // lower-case A-label (IDNA), no trailing dot
}

// String returns local@domain.
func (a Address) String() string { return a.Local + "@" + a.Domain }

// Key is the lower-cased form used to look users up.
func (a Address) Key() string { return strings.ToLower(a.Local) + "@" + a.Domain }

var lookup = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.StrictDomainName(true))

// Parse checks an envelope address as go-smtp hands it over (angle brackets
// and any source route already removed).
func Parse(s string) (Address, error) {
	if len(s) > 320 {
		return Address{}, ErrTooLong
	}
	if !utf8.ValidString(s) {
		return Address{}, fmt.Errorf("%w: not UTF-8", ErrSyntax)
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return Address{}, fmt.Errorf("%w: control or space character", ErrSyntax)
		}
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return Address{}, fmt.Errorf("%w: need local@domain", ErrSyntax)
	}
	local, domain := s[:at], s[at+1:]
	if strings.HasPrefix(local, `"`) {
		// A quoted local part is legal, but quoting is how "@", "%" and "!"
		// reach a gateway's routing code; nothing real needs it.
		return Address{}, fmt.Errorf("%w: quoted local part", ErrRouting)
	}
	if strings.ContainsAny(local, `@%!:"\,;<>[]()`) {
		return Address{}, fmt.Errorf("%w in %q", ErrRouting, local)
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return Address{}, fmt.Errorf("%w: dots in local part", ErrSyntax)
	}
	if len(local) > 64 {
		return Address{}, ErrTooLong
	}
	if strings.HasPrefix(domain, "[") {
		return Address{}, ErrLiteral
	}
	if strings.HasSuffix(domain, ".") {
		return Address{}, ErrTrailerDot
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return Address{}, err
	}
	return Address{Local: local, Domain: d}, nil
}

// NormalizeDomain returns the lower-case A-label form of a domain name.
func NormalizeDomain(domain string) (string, error) {
	if domain == "" || len(domain) > 255 {
		return "", fmt.Errorf("%w: domain length", ErrSyntax)
	}
	if strings.ContainsAny(domain, "[]@%!:\\\"") {
		return "", fmt.Errorf("%w: domain characters", ErrSyntax)
	}
	a, err := lookup.ToASCII(domain)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	a = strings.ToLower(a)
	// IDNA mapping can remove characters (soft hyphens, ...), so the
	// result is checked again: LDH labels, no empty ones, at least two.
	labels := strings.Split(a, ".")
	if len(labels) < 2 || len(a) > 253 {
		return "", fmt.Errorf("%w: domain needs a dot", ErrSyntax)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w: bad domain label", ErrSyntax)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("%w: bad domain character", ErrSyntax)
			}
		}
	}
	return a, nil
}
