package lists

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Normalize returns the form in which entry values and message texts are
// compared: valid UTF-8, NFKC (full-width ASCII becomes ASCII, half-width
// katakana becomes full-width, with its voiced marks composed), Unicode case
// folding, and NFKC again because folding may leave a non-normal sequence.
// ASCII input takes a fast path (lower-casing is then all of it). Safe for
// concurrent use; it allocates only when the text changes.
func Normalize(s string) string {
	ascii := true
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if ascii {
		if !upper {
			return s
		}
		return strings.ToLower(s)
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = norm.NFKC.String(s)
	s = cases.Fold().String(s)
	if !norm.NFKC.IsNormalString(s) {
		s = norm.NFKC.String(s)
	}
	return s
}

// clip cuts s to at most max bytes on a rune boundary.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// normText turns one message text of field f into its compared form.
func normText(f int, s string) string {
	s = clip(strings.TrimSpace(s), MaxTextBytes)
	s = Normalize(s)
	if f != fSubject {
		s = unicodeLabels(s)
	}
	if f == fFromDomain {
		s = strings.TrimSuffix(s, ".")
	}
	// NFKC can expand a text several times (U+FDFA is 18 runes).
	return clip(s, MaxTextBytes)
}

// normValue is normText for an entry value of a non-regex mode. Domain
// values may be written "@example.com" or ".example.com".
func normValue(field, mode, v string) string {
	f, ok := fieldID(field)
	if !ok {
		return ""
	}
	s := normText(f, v)
	if f == fFromDomain {
		s = strings.TrimLeft(s, "@.")
	}
	return s
}

// unicodeLabels replaces every A-label (xn--…) of a normalised address or
// domain by its U-label, normalised, so that an entry written either way
// matches mail written either way (RFC 5890 2.3.2.1). Labels that do not
// decode stay as they are.
func unicodeLabels(s string) string {
	if !strings.Contains(s, "xn--") {
		return s
	}
	var b strings.Builder
	start := 0
	flush := func(end int) {
		label := s[start:end]
		if strings.HasPrefix(label, "xn--") {
			if u, err := idna.Punycode.ToUnicode(label); err == nil && u != label {
				b.WriteString(Normalize(u))
				return
			}
		}
		b.WriteString(label)
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', '@', ' ', '<', '>':
			flush(i)
			b.WriteByte(s[i])
			start = i + 1
		}
	}
	flush(len(s))
	return b.String()
}
