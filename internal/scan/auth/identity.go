package auth

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// cleanDomain returns the lower-case A-label form of a host name, or false
// when s is not one: every label 1..63 octets of letters, digits and '-'
// (not at either end), at least two labels, at most 253 octets, and an
// alphabetic or A-label top-level label. A trailing dot is ignored. This is
// the only form in which a domain enters a finding, a DNS query name or an
// Authentication-Results header.
func cleanDomain(s string) (string, bool) {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 1024 {
		return "", false
	}
	if !isASCII(s) {
		if !utf8.ValidString(s) {
			return "", false
		}
		a, err := idna.Lookup.ToASCII(s)
		if err != nil {
			return "", false
		}
		s = a
	}
	s = strings.ToLower(s)
	if len(s) > 253 {
		return "", false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return "", false
	}
	for _, l := range labels {
		if !validLabel(l, false) {
			return "", false
		}
	}
	top := labels[len(labels)-1]
	if !strings.HasPrefix(top, "xn--") {
		for i := 0; i < len(top); i++ {
			if !isAlpha(top[i]) {
				return "", false
			}
		}
	}
	return s, true
}

// validLabel checks one DNS label; underscore is allowed where a name is
// not a host name (DKIM selectors, _domainkey, _dmarc).
func validLabel(l string, underscore bool) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c == '-' || underscore && c == '_') {
			return false
		}
	}
	return true
}

// cleanSelector returns a DKIM selector (RFC 6376 3.1: one or more
// dot-separated sub-domains) in lower case, or false.
func cleanSelector(s string) (string, bool) {
	if s == "" || len(s) > 253 {
		return "", false
	}
	for _, l := range strings.Split(s, ".") {
		if !validLabel(l, true) {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// validQueryName reports whether name may be sent to DNS: labels of
// letters, digits, '-' and '_', at most 253 octets. It keeps hostile
// d=/s= values (NUL, spaces, parentheses) from ever reaching the resolver.
func validQueryName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, l := range strings.Split(name, ".") {
		if !validLabel(l, true) {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// orgDomain is the organisational domain of a clean domain (RFC 7489 3.2):
// the public suffix plus one label, using the Public Suffix List compiled
// into golang.org/x/net/publicsuffix (ICANN and private sections, as most
// DMARC implementations do). A domain that is itself a public suffix is its
// own organisational domain.
func orgDomain(d string) string {
	o, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return o
}

// aligned reports whether the authenticated domain id is aligned with the
// From domain (RFC 7489 3.1): equal in strict mode, with the same
// organisational domain in relaxed mode. Both must be clean domains.
func aligned(id, from string, strict bool) bool {
	if id == "" || from == "" {
		return false
	}
	if id == from {
		return true
	}
	return !strict && orgDomain(id) == orgDomain(from)
}

// fromIdentity is what the From header field yields for DMARC.
type fromIdentity struct {
	// Domain is the clean domain of the single author address; "" unless
	// the From header is unambiguous (exactly one field with exactly one
	// well-formed address).
	Domain string
	// Problem says why Domain is empty ("" when it is set).
	Problem string
	// Candidates are the clean domains that appear in the From fields of an
	// ambiguous header, for applying the strictest policy among them
	// (RFC 7489 6.6.1). At most maxCandidates.
	Candidates []string
}

const maxCandidates = 5

// authorIdentity extracts the RFC5322.From domain for DMARC (RFC 7489 6.6.1)
// from the parsed message, cross-checked against the raw header so that a
// difference between parsers cannot turn into a pass.
func authorIdentity(pm *mailtext.Message, raw *rawHeader) fromIdentity {
	rawFrom := raw.all("From")
	var id fromIdentity
	for _, f := range rawFrom {
		id.Candidates = appendCandidates(id.Candidates, f.value())
	}
	switch n := len(pm.HeaderValues("From")); {
	case n == 0 || len(rawFrom) == 0:
		id.Problem = "no From header field"
		return id
	case n > 1 || len(rawFrom) > 1 || hasDuplicate(pm, "From"):
		id.Problem = "several From header fields"
		return id
	}
	if raw.truncated {
		id.Problem = "header section too large to check From"
		return id
	}
	switch {
	case len(pm.From) == 0:
		id.Problem = "From header field without an address"
		return id
	case len(pm.From) > 1:
		id.Problem = "From header field with several addresses"
		return id
	}
	d, ok := authorDomain(pm.From[0].Addr)
	if !ok {
		id.Problem = "From address is not a valid addr-spec"
		return id
	}
	// The raw field must name the same domain and no other: a parser
	// differential (comments, groups, encoded-words) is treated as spoofing.
	if len(id.Candidates) != 1 || id.Candidates[0] != d {
		id.Problem = "From header field names several domains"
		return id
	}
	id.Domain, id.Candidates = d, nil
	return id
}

func hasDuplicate(pm *mailtext.Message, name string) bool {
	for _, p := range pm.Problems {
		if p.Kind == mailtext.ProblemDuplicateHeader && p.Part == "" && strings.EqualFold(p.Detail, name) {
			return true
		}
	}
	return false
}

// authorDomain checks an addr-spec strictly (RFC 5322 3.4.1, with RFC 6532
// UTF-8 local parts) and returns its clean domain. Encoded-words, control
// characters, domain literals and quoted local parts with controls are
// refused.
func authorDomain(addr string) (string, bool) {
	if strings.Contains(addr, "=?") || !utf8.ValidString(addr) {
		return "", false
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "", false
	}
	local, domain := addr[:at], addr[at+1:]
	if !validLocalPart(local) {
		return "", false
	}
	return cleanDomain(domain)
}

func validLocalPart(s string) bool {
	if len(s) > 256 {
		return false
	}
	if strings.HasPrefix(s, `"`) {
		if len(s) < 2 || !strings.HasSuffix(s, `"`) {
			return false
		}
		q := s[1 : len(s)-1]
		for i := 0; i < len(q); i++ {
			c := q[i]
			switch {
			case c == '\\':
				i++
				if i >= len(q) || q[i] < 0x20 || q[i] == 0x7f {
					return false
				}
			case c == '"' || c < 0x20 || c == 0x7f:
				return false
			}
		}
		return true
	}
	// dot-atom-text
	for _, atom := range strings.Split(s, ".") {
		if atom == "" {
			return false
		}
		for _, r := range atom {
			if r < 0x80 && !isAtext(byte(r)) {
				return false
			}
		}
	}
	return true
}

func isAtext(c byte) bool {
	return isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// appendCandidates adds the clean domains found after each '@' of a raw
// From value, outside quoted strings, comments and encoded-words (display
// names). Within the address part it over-collects on purpose: every domain
// an address parser or a mail reader might take as the author is a
// candidate.
func appendCandidates(out []string, v string) []string {
	v = stripDisplay(v)
	for i := 0; i < len(v) && len(out) < maxCandidates; i++ {
		if v[i] != '@' {
			continue
		}
		j := i + 1
		for j < len(v) && (isAlpha(v[j]) || isDigit(v[j]) || v[j] == '-' || v[j] == '.' || v[j] >= 0x80) {
			j++
		}
		d, ok := cleanDomain(v[i+1 : j])
		if !ok {
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o == d
		}
		if !dup {
			out = append(out, d)
		}
	}
	return out
}

// hasControl reports whether s contains a C0 control, DEL or NUL.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// stripDisplay blanks quoted strings, comments and encoded-words of a raw
// address header value, which may contain '@' without naming an author.
func stripDisplay(v string) string {
	b := []byte(v)
	inQuote, depth := false, 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inQuote:
			if c == '\\' && i+1 < len(b) {
				b[i] = ' '
				i++
			} else if c == '"' {
				inQuote = false
			}
			b[i] = ' '
		case depth > 0:
			if c == '\\' && i+1 < len(b) {
				b[i] = ' '
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
			b[i] = ' '
		case c == '"':
			inQuote = true
			b[i] = ' '
		case c == '(':
			depth = 1
			b[i] = ' '
		case c == '=' && i+1 < len(b) && b[i+1] == '?':
			// "=?" charset "?" encoding "?" text "?=" (RFC 2047 2); no part
			// holds '?' or white space.
			j, q := i+2, 0
			for j < len(b) && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' && b[j] != '\n' {
				if b[j] == '?' {
					if q++; q == 3 {
						break
					}
				}
				j++
			}
			if q == 3 && j+1 < len(b) && b[j+1] == '=' {
				for k := i; k <= j+1; k++ {
					b[k] = ' '
				}
				i = j + 1
			}
		}
	}
	return string(b)
}
