package dsn

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on text taken from outside. RFC 5322 2.1.1 caps a line at 998
// octets; the values below leave room for the field name and escapes.
const (
	maxDiagnostic = 1000 // cleaned diagnostic text kept, in bytes
	maxAddress    = 900  // encoded address in a field, in bytes
	maxEnvelopeID = 100  // RFC 3461 4.4: ENVID is at most 100 characters
	maxHostLen    = 253
	softLineLen   = 78  // RFC 5322 2.1.1 SHOULD
	maxWordLen    = 900 // longest unbroken run written on one line
)

// cleanText turns s into one line of valid UTF-8: every control character,
// line or paragraph separator and other white space becomes a single space,
// NUL is dropped, and the result is trimmed. It is what keeps CR and LF from
// remote replies and addresses out of header sections.
func cleanText(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	pendingSpace := false
	for _, r := range s { // invalid UTF-8 arrives here as U+FFFD
		switch {
		case r == 0:
			continue
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029, unicode.IsSpace(r):
			pendingSpace = true
			continue
		}
		if pendingSpace && b.Len() > 0 {
			b.WriteByte(' ')
		}
		pendingSpace = false
		b.WriteRune(r)
	}
	return b.String()
}

// truncate shortens s to at most n bytes on a rune boundary, marking the cut
// with "..." (inside the n bytes).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// asciiOnly escapes every non-ASCII rune as \x{HHHH} (the RFC 6533
// EmbeddedUnicodeChar form) so that message/delivery-status stays 7-bit.
func asciiOnly(s string) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, `\x{%02X}`, r)
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// cleanAddress prepares an address from the envelope: one line, no angle
// brackets around it.
func cleanAddress(s string) string {
	s = cleanText(s)
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// typedAddress renders an address for Final-Recipient or Original-Recipient.
// ASCII addresses keep their type (rfc822 unless given); any non-ASCII
// address becomes "utf-8;" with RFC 6533 utf-8-addr-xtext, whose escapes keep
// the field ASCII and free of spaces. The result never exceeds maxAddress
// bytes; an over-long address is cut at a character boundary.
func typedAddress(typ, addr string) string {
	typ = strings.ToLower(typ)
	if !validAddrType(typ) {
		typ = "rfc822"
	}
	if typ != "utf-8" && isASCII(addr) {
		prefix := typ + ";"
		return prefix + truncateASCII(addr, maxAddress-len(prefix))
	}
	var b strings.Builder
	b.WriteString("utf-8;")
	for _, r := range addr {
		var enc string
		if isQChar(r) {
			enc = string(r)
		} else {
			enc = fmt.Sprintf(`\x{%02X}`, r)
		}
		if b.Len()+len(enc) > maxAddress {
			break
		}
		b.WriteString(enc)
	}
	return b.String()
}

// validAddrType reports whether t is an address-type atom (RFC 3464 2.3.2);
// anything else is replaced rather than written into a field.
func validAddrType(t string) bool {
	if t == "" || len(t) > 32 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !isAlnum(t[i]) && t[i] != '-' {
			return false
		}
	}
	return true
}

func truncateASCII(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// isQChar reports whether r may appear literally in utf-8-addr-xtext:
// RFC 6533 3: QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e.
func isQChar(r rune) bool {
	return r >= 0x21 && r <= 0x7e && r != '+' && r != '=' && r != '\\'
}

// decodeUTF8Xtext reverses the \x{HHHH} escapes of RFC 6533. Malformed or
// out-of-range escapes are kept literally.
func decodeUTF8Xtext(s string) string {
	if !strings.Contains(s, `\x{`) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, `\x{`)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		rest := s[i+3:]
		j := strings.IndexByte(rest, '}')
		if j < 1 || j > 6 {
			b.WriteString(`\x{`)
			s = rest
			continue
		}
		n, err := strconv.ParseUint(rest[:j], 16, 32)
		if err != nil || n > unicode.MaxRune || !utf8.ValidRune(rune(n)) {
			b.WriteString(`\x{`)
			s = rest
			continue
		}
		b.WriteRune(rune(n))
		s = rest[j+1:]
	}
}

// validHost reports whether h is an ASCII host name (or address literal) that
// can be written into headers as it is.
func validHost(h string) bool {
	if h == "" || len(h) > maxHostLen {
		return false
	}
	if h[0] == '[' && h[len(h)-1] == ']' {
		for i := 1; i < len(h)-1; i++ {
			c := h[i]
			if !(isAlnum(c) || c == '.' || c == ':') {
				return false
			}
		}
		return len(h) > 2
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(isAlnum(c) || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return h[0] != '.' && h[0] != '-'
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// cleanRemoteHost makes a remote host name safe for "dns;host": it keeps only
// characters that occur in host names and address literals.
func cleanRemoteHost(h string) string {
	h = cleanText(h)
	var b strings.Builder
	for i := 0; i < len(h) && b.Len() < maxHostLen; i++ {
		c := h[i]
		if isAlnum(c) || strings.IndexByte("-._:[]", c) >= 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// validStatus reports whether s is an RFC 3463 status code:
// class "." subject "." detail, class 2, 4 or 5, subject and detail 1-3 digits.
func validStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || strings.IndexByte("245", parts[0][0]) < 0 {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// writeField writes "Name: value" with CRLF, folding at spaces so lines stay
// near 78 octets (RFC 5322 2.2.3). value must already be one clean line. A
// run without spaces longer than maxWordLen is broken with a fold, which adds
// a space on unfolding: acceptable for free text, and addresses are bounded
// below that length so they are never broken.
func writeField(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteByte(':')
	lineLen := len(name) + 1
	wordsOnLine := 0
	for _, w := range strings.Split(value, " ") {
		for w != "" {
			chunk := w
			if len(chunk) > maxWordLen {
				cut := maxWordLen
				for cut > 0 && !utf8.RuneStart(w[cut]) {
					cut--
				}
				chunk = w[:cut]
			}
			w = w[len(chunk):]
			if wordsOnLine > 0 && lineLen+1+len(chunk) > softLineLen {
				b.WriteString("\r\n")
				lineLen = 0
				wordsOnLine = 0
			}
			b.WriteByte(' ')
			b.WriteString(chunk)
			lineLen += 1 + len(chunk)
			wordsOnLine++
		}
	}
	b.WriteString("\r\n")
}
