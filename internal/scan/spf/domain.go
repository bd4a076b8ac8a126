package spf

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// Errors describing why an identity's domain was not checked.
var (
	ErrEmptyDomain   = errors.New("empty domain")
	ErrDomainTooLong = errors.New("domain longer than 253 octets")
	ErrLabelLength   = errors.New("domain label empty or longer than 63 octets")
	ErrDomainChars   = errors.New("domain contains characters not allowed in a host name")
	ErrNotFQDN       = errors.New("domain is not fully qualified")
	ErrBadTopLabel   = errors.New("domain has an invalid top-level label")
)

// sanitizeDomain returns the lowercase ASCII form of a domain taken from
// MAIL FROM or HELO, or an error when RFC 7208 4.3 says the check must not
// go ahead (the result is then "none"): empty or over-long labels, a name
// that is not fully qualified, an address literal, or any character outside
// letters, digits, '-', '_' and '.'. The error never contains the input, so
// it cannot carry hostile bytes into logs or headers.
//
// Internationalised names are converted to their A-label form, which is what
// DNS and Authentication-Results carry.
func sanitizeDomain(s string) (string, error) {
	s = strings.TrimSuffix(s, ".") // RFC 7208 7.3: a trailing dot is ignored
	if s == "" {
		return "", ErrEmptyDomain
	}
	// Cheap bound before any conversion work: an A-label form can only be
	// longer than 253 octets if the input is far beyond any valid name.
	if len(s) > 1024 {
		return "", ErrDomainTooLong
	}
	if !isASCII(s) {
		a, err := idna.Lookup.ToASCII(s)
		if err != nil {
			return "", fmt.Errorf("%w: not a valid internationalised name", ErrDomainChars)
		}
		s = a
	}
	s = strings.ToLower(s)
	if len(s) > 253 {
		return "", ErrDomainTooLong
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", ErrLabelLength
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", ErrDomainChars
			}
		}
	}
	if len(labels) < 2 {
		return "", ErrNotFQDN
	}
	if !validTopLabel(labels[len(labels)-1]) {
		return "", ErrBadTopLabel
	}
	return s, nil
}

// validTopLabel follows RFC 7208 7.1 toplabel: alphanumerics with at least
// one letter, or alphanumerics and inner hyphens. An all-numeric top label
// means an IP address was given where a domain belongs.
func validTopLabel(l string) bool {
	if l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	letter := false
	for i := 0; i < len(l); i++ {
		switch c := l[i]; {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= '0' && c <= '9':
		case c == '-':
			letter = true // the hyphenated form needs no letter
		default:
			return false
		}
	}
	return letter
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
