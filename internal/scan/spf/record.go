package spf

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// ErrRecordSyntax is wrapped by every record syntax error.
var ErrRecordSyntax = errors.New("SPF record syntax error")

// validateRecord checks a whole SPF record against the RFC 7208 section 12
// grammar, without evaluating it. RFC 7208 4.6: "If there are any syntax
// errors anywhere in the record, check_host() returns immediately with the
// result permerror, without further interpretation or evaluation."
//
// It checks only syntax; limits, DNS results and macro expansion results are
// left to evaluation.
func validateRecord(rec string) error {
	if !isSPFRecord(rec) {
		return fmt.Errorf("%w: missing v=spf1", ErrRecordSyntax)
	}
	var redirects, exps int
	// RFC 7208 4.6.1: terms are separated by one or more SP (0x20) only.
	for _, term := range strings.Split(rec[len("v=spf1"):], " ") {
		if term == "" {
			continue
		}
		if err := validateTerm(term, &redirects, &exps); err != nil {
			return fmt.Errorf("%w: term %q: %w", ErrRecordSyntax, clip(term), err)
		}
	}
	// RFC 7208 6: redirect and exp appear at most once each.
	if redirects > 1 || exps > 1 {
		return fmt.Errorf("%w: repeated redirect= or exp=", ErrRecordSyntax)
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

var errBadTerm = errors.New("unknown or malformed term")

func validateTerm(term string, redirects, exps *int) error {
	// modifier = name "=" ..., name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
	// A modifier has no qualifier; the name stops before any ":" or "/".
	if eq := modifierNameEnd(term); eq > 0 {
		name, value := strings.ToLower(term[:eq]), term[eq+1:]
		switch name {
		case "redirect":
			*redirects++
			return validateDomainSpec(value)
		case "exp":
			*exps++
			return validateDomainSpec(value)
		default:
			_, err := scanMacroString(value, true)
			return err
		}
	}

	switch term[0] {
	case '+', '-', '~', '?':
		term = term[1:]
	}
	name, arg, hasArg := strings.Cut(term, ":")
	lname := strings.ToLower(name)
	switch {
	case lname == "all" && !hasArg:
		return nil
	case lname == "include" && hasArg:
		return validateDomainSpec(arg)
	case lname == "exists" && hasArg:
		return validateDomainSpec(arg)
	case lname == "ptr":
		if !hasArg {
			return nil
		}
		return validateDomainSpec(arg)
	case lname == "ip4" && hasArg:
		return validateIP4(arg)
	case lname == "ip6" && hasArg:
		return validateIP6(arg)
	}

	// a and mx: name [ ":" domain-spec ] [ dual-cidr-length ]; the cidr may
	// follow the name directly ("a/24") or the domain-spec.
	lterm := strings.ToLower(term)
	for _, mech := range []string{"a", "mx"} {
		if !strings.HasPrefix(lterm, mech) {
			continue
		}
		rest := term[len(mech):]
		if rest != "" && rest[0] != ':' && rest[0] != '/' {
			continue
		}
		spec, err := stripDualCIDR(rest)
		if err != nil {
			return err
		}
		if spec == "" {
			return nil
		}
		if spec[0] != ':' {
			return errBadTerm
		}
		return validateDomainSpec(spec[1:])
	}
	return errBadTerm
}

// modifierNameEnd returns the index of the "=" ending a modifier name, or -1
// if term does not start with a well-formed modifier name.
func modifierNameEnd(term string) int {
	if term == "" || !isAlpha(term[0]) {
		return -1
	}
	for i := 1; i < len(term); i++ {
		c := term[i]
		switch {
		case c == '=':
			return i
		case isAlpha(c) || isDigit(c) || c == '-' || c == '_' || c == '.':
		default:
			return -1
		}
	}
	return -1
}

// stripDualCIDR removes a trailing dual-cidr-length (RFC 7208 5.6):
// [ "/" ip4-cidr ] [ "//" ip6-cidr ], returning what precedes it.
func stripDualCIDR(s string) (string, error) {
	if i := strings.LastIndex(s, "//"); i >= 0 && allDigits(s[i+2:]) {
		if !validCIDR(s[i+2:], 128) {
			return "", errors.New("invalid ip6-cidr-length")
		}
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '/'); i >= 0 && allDigits(s[i+1:]) {
		if !validCIDR(s[i+1:], 32) {
			return "", errors.New("invalid ip4-cidr-length")
		}
		s = s[:i]
	}
	if strings.HasSuffix(s, "/") {
		return "", errors.New("empty cidr-length")
	}
	return s, nil
}

// validCIDR: "0" / %x31-39 *DIGIT, no leading zeros, at most max.
func validCIDR(s string, max int) bool {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= max
}

func validateIP4(s string) error {
	addr, cidr, hasCIDR := strings.Cut(s, "/")
	if hasCIDR && !validCIDR(cidr, 32) {
		return errors.New("invalid ip4-cidr-length")
	}
	// ip4-network = qnum "." qnum "." qnum "." qnum; qnum has no leading
	// zeros and is at most 255.
	parts := strings.Split(addr, ".")
	if len(parts) != 4 {
		return errors.New("invalid ip4-network")
	}
	for _, p := range parts {
		if !validCIDR(p, 255) {
			return errors.New("invalid ip4-network")
		}
	}
	return nil
}

func validateIP6(s string) error {
	addr, cidr, hasCIDR := strings.Cut(s, "/")
	if hasCIDR && !validCIDR(cidr, 128) {
		return errors.New("invalid ip6-cidr-length")
	}
	if !strings.Contains(addr, ":") || net.ParseIP(addr) == nil {
		return errors.New("invalid ip6-network")
	}
	return nil
}

// validateDomainSpec: domain-spec = macro-string domain-end, domain-end =
// ( "." toplabel [ "." ] ) / macro-expand (RFC 7208 7.1). The letters c, r
// and t are allowed only in explanation text, never in a domain-spec.
func validateDomainSpec(s string) error {
	if s == "" {
		return errors.New("empty domain-spec")
	}
	if _, err := scanMacroString(s, false); err != nil {
		return err
	}
	// The optional final dot is accepted after a macro-expand too
	// ("%{d}."): the grammar does not strictly allow it, but it is harmless
	// and not worth failing a whole record over.
	t := strings.TrimSuffix(s, ".")
	if endsInMacro, _ := scanMacroString(t, false); endsInMacro {
		return nil
	}
	i := strings.LastIndexByte(t, '.')
	if i < 0 {
		return errors.New("domain-spec has no top-level label")
	}
	if l := strings.ToLower(t[i+1:]); l == "" || !validTopLabel(l) {
		return errors.New("domain-spec has an invalid top-level label")
	}
	return nil
}

// scanMacroString checks macro-string (RFC 7208 7.1):
// *( macro-expand / macro-literal ), macro-literal = %x21-24 / %x26-7E, and
// reports whether it ends in a macro-expand. explain allows the letters c, r,
// t, which only explanation text may use.
func scanMacroString(s string, explain bool) (endsInMacro bool, err error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if c < 0x21 || c > 0x7e {
				return false, errors.New("character not allowed in macro-string")
			}
			endsInMacro = false
			continue
		}
		endsInMacro = true
		i++
		if i >= len(s) {
			return false, errors.New("unterminated macro")
		}
		switch s[i] {
		case '%', '_', '-':
			continue
		case '{':
		default:
			return false, errors.New("'%' not followed by '{', '%', '_' or '-'")
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return false, errors.New("unterminated macro")
		}
		if err := validateMacroBody(s[i+1:i+end], explain); err != nil {
			return false, err
		}
		i += end
	}
	return endsInMacro, nil
}

// validateMacroBody: macro-letter transformers *delimiter, transformers =
// *DIGIT [ "r" ], delimiter = "." / "-" / "+" / "," / "/" / "_" / "=".
func validateMacroBody(b string, explain bool) error {
	if b == "" {
		return errors.New("empty macro")
	}
	switch strings.ToLower(b[:1]) {
	case "s", "l", "o", "d", "i", "p", "h", "v":
	case "c", "r", "t":
		if !explain {
			return errors.New("macro letter allowed only in explanation")
		}
	default:
		return errors.New("unknown macro letter")
	}
	b = b[1:]
	j := 0
	for j < len(b) && isDigit(b[j]) {
		j++
	}
	if j > 0 {
		// RFC 7208 7.3: zero is not a valid number of parts.
		if strings.TrimLeft(b[:j], "0") == "" {
			return errors.New("macro transformer of zero")
		}
	}
	b = b[j:]
	if b != "" && (b[0] == 'r' || b[0] == 'R') {
		b = b[1:]
	}
	for k := 0; k < len(b); k++ {
		if !strings.ContainsRune(".-+,/_=", rune(b[k])) {
			return errors.New("invalid macro delimiter")
		}
	}
	return nil
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
