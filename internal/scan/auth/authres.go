package auth

import (
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/mailgate/mailgate/internal/policy"
)

// resinfo builds one RFC 8601 resinfo from values that are already clean.
type resinfo struct {
	method, result string
	comment        string // without parentheses; only [A-Za-z0-9=._:,+/-]
	props          []string
}

// prop adds "ptype.property=value" when value can be written safely: as is
// when it is made of letters, digits and ".@_+-" (domains, selectors), as a
// quoted-string when it also holds '/' or '=' (base64, RFC 8601 2.2 value),
// and not at all otherwise.
func (r *resinfo) prop(name, value string) {
	if v, ok := pvalue(value); ok {
		r.props = append(r.props, name+"="+v)
	}
}

func pvalue(s string) (string, bool) {
	if s == "" || len(s) > 320 {
		return "", false
	}
	plain := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlpha(c) || isDigit(c) || strings.IndexByte(".@_+-", c) >= 0:
		case c == '/' || c == '=':
			plain = false
		default:
			return "", false
		}
	}
	if plain {
		return s, true
	}
	return `"` + s + `"`, true
}

func (r resinfo) String() string {
	var b strings.Builder
	b.WriteString(r.method)
	b.WriteByte('=')
	b.WriteString(r.result)
	if r.comment != "" {
		b.WriteString(" (")
		b.WriteString(r.comment)
		b.WriteByte(')')
	}
	for _, p := range r.props {
		b.WriteByte(' ')
		b.WriteString(p)
	}
	return b.String()
}

// HeaderValue returns the value of an Authentication-Results header field
// (RFC 8601 2.2): "authserv-id; resinfo; resinfo", one resinfo per finding
// with an AuthResult, in the findings' order, each on its own folded line
// (CRLF TAB before it). With no results it is "authserv-id; none".
//
// authservID should be the gateway's host name; a value that is not a
// plain token of letters, digits, '.', '-' and '_' is replaced by
// "localhost". A finding's AuthResult that is not in the strict form this
// package produces (method=result, an optional comment without blanks,
// ptype.property=value pairs with token or simple quoted values, single
// spaces) is left out, so no check can inject a result, a separator or a
// line break; the output always parses back with go-msgauth's authres.Parse
// into exactly the kept results.
func HeaderValue(authservID string, findings []policy.Finding) string {
	id := authservID
	if !validAuthservID(id) {
		id = "localhost"
	}
	var b strings.Builder
	b.WriteString(id)
	b.WriteByte(';')
	n := 0
	for _, f := range findings {
		if f.AuthResult == "" || !validResinfo(f.AuthResult) {
			continue
		}
		if n > 0 {
			b.WriteByte(';')
		}
		b.WriteString("\r\n\t")
		b.WriteString(f.AuthResult)
		n++
	}
	if n == 0 {
		b.WriteString(" none")
	}
	return b.String()
}

func validAuthservID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '.' && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// validResinfo checks a fragment against the strict grammar HeaderValue
// accepts and then against authres.Parse itself, which rejects some
// property values (arc's header.oldest-pass must be a positive integer).
func validResinfo(s string) bool {
	if len(s) > 1000 {
		return false
	}
	toks := strings.Split(s, " ")
	method, result, ok := strings.Cut(toks[0], "=")
	if !ok || !isKeyword(method) || result == "" || !allAlpha(result) {
		return false
	}
	for i, t := range toks[1:] {
		if strings.HasPrefix(t, "(") {
			if i != 0 || !strings.HasSuffix(t, ")") || len(t) < 3 || !safeComment(t[1:len(t)-1]) {
				return false
			}
			continue
		}
		name, val, ok := strings.Cut(t, "=")
		if !ok {
			return false
		}
		ptype, property, ok := strings.Cut(name, ".")
		if !ok || !allAlpha(ptype) || !isKeyword(property) {
			return false
		}
		if !safeValue(val) {
			return false
		}
	}
	_, res, err := authres.Parse("x; " + s)
	return err == nil && len(res) == 1
}

func isKeyword(s string) bool {
	if s == "" || len(s) > 64 || !isAlpha(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func allAlpha(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlpha(s[i]) {
			return false
		}
	}
	return true
}

func safeComment(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && strings.IndexByte("=._:,+/-", c) < 0 {
			return false
		}
	}
	return true
}

func safeValue(v string) bool {
	if v == "" {
		return false
	}
	if strings.HasPrefix(v, `"`) {
		if len(v) < 3 || !strings.HasSuffix(v, `"`) {
			return false
		}
		v = v[1 : len(v)-1]
		for i := 0; i < len(v); i++ {
			c := v[i]
			if !isAlpha(c) && !isDigit(c) && strings.IndexByte(".@_+-/=", c) < 0 {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isAlpha(c) && !isDigit(c) && strings.IndexByte(".@_+-", c) < 0 {
			return false
		}
	}
	return true
}

// ---- fragments for our results ----

func spfResinfo(result, domain, identity string) string {
	r := resinfo{method: "spf", result: result}
	if identity == "helo" {
		r.prop("smtp.helo", domain)
	} else {
		r.prop("smtp.mailfrom", domain)
	}
	return r.String()
}

func dkimResinfo(d dkimResult) string {
	r := resinfo{method: "dkim", result: d.Result}
	r.prop("header.d", d.Domain)
	r.prop("header.s", d.Selector)
	r.prop("header.b", d.BPrefix)
	return r.String()
}

func dmarcResinfo(o dmarcOutcome) string {
	r := resinfo{method: "dmarc", result: o.Result}
	if o.Published != "" {
		r.comment = "p=" + o.Published
		if o.Result == DMARCFail && o.Applied != o.Published {
			r.comment += ",pct=" + strconv.Itoa(o.Pct)
		}
	}
	r.prop("header.from", o.From)
	return r.String()
}

func arcResinfo(a ARCResult) string {
	r := resinfo{method: "arc", result: a.Result}
	if a.Result == ARCPass && a.OldestPass > 0 {
		r.prop("header.oldest-pass", strconv.Itoa(a.OldestPass))
	}
	return r.String()
}
