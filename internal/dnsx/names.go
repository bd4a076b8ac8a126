package dnsx

import (
	"net"
	"strings"

	"golang.org/x/net/idna"
)

// newIDNAProfile converts internationalised names for lookup (RFC 5891 5,
// UTS 46 mapping, so "例え。jp" works too). STD3 rules are off because
// mail looks up underscore labels (_dmarc, _domainkey, _mta-sts); the
// host-name check in queryName applies afterwards.
func newIDNAProfile() *idna.Profile {
	return idna.New(idna.MapForLookup(), idna.StrictDomainName(false), idna.BidiRule(), idna.Transitional(false))
}

// queryName turns a caller's name into the fully qualified ASCII name to
// put in the question. It reports false for names that cannot exist, which
// callers answer with "no such host" as the standard resolver does.
func queryName(p *idna.Profile, name string) (string, bool) {
	if !isASCII(name) {
		a, err := p.ToASCII(name)
		if err != nil {
			return "", false
		}
		name = a
	}
	if !isDomainName(name) {
		return "", false
	}
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name, true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isDomainName applies the standard library's rules (RFC 1035 2.3.4,
// RFC 3696 2): letters, digits, '_' and inner '-', labels of 1 to 63 octets,
// at most 253 octets without the trailing dot, not all-numeric. It is used
// both for names we ask about and for names in answers (MX, PTR), so that
// a hostile zone cannot hand us names that break headers or logs.
func isDomainName(s string) bool {
	if s == "." {
		return true
	}
	l := len(s)
	if l == 0 || l > 254 || l == 254 && s[l-1] != '.' {
		return false
	}
	last := byte('.')
	nonNumeric := false
	partlen := 0
	for i := 0; i < l; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_':
			nonNumeric = true
			partlen++
		case '0' <= c && c <= '9':
			partlen++
		case c == '-':
			if last == '.' {
				return false
			}
			nonNumeric = true
			partlen++
		case c == '.':
			if last == '.' || last == '-' || partlen > 63 || partlen == 0 {
				return false
			}
			partlen = 0
		default:
			return false
		}
		last = c
	}
	return last != '-' && partlen <= 63 && nonNumeric
}

// ipLiteral parses host as an IP address, with an optional IPv6 zone.
func ipLiteral(host string) (net.IPAddr, bool) {
	h, zone, _ := strings.Cut(host, "%")
	ip := net.ParseIP(h)
	if ip == nil || zone != "" && ip.To4() != nil {
		return net.IPAddr{}, false
	}
	return net.IPAddr{IP: ip, Zone: zone}, true
}

// unescapeTXT undoes the presentation-format escaping that miekg/dns applies
// to character-strings when it unpacks a message (RFC 1035 5.1: "\X" is X,
// "\DDD" is the octet with decimal value DDD), giving back the raw octets
// that were on the wire. Malformed escapes are kept literally.
func unescapeTXT(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b = append(b, c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if v <= 0xff {
				b = append(b, byte(v))
				i += 3
				continue
			}
		}
		if isDigit(s[i+1]) {
			// A truncated or out-of-range \DDD: keep it as written.
			b = append(b, c)
			continue
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
