package spam

import (
	"mime"
	"net/netip"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Header shapes: the form of the values mail software writes, which
// people do not choose and bulk-mail tools get subtly wrong or make
// random: "<00000e256af3$000032f9$00000b75@host>" against
// "<200208212035.QAA14776@host>", a Date without a day name or with a
// zone comment, a MIME boundary of random letters. The words of these
// values mean nothing; their shape is the mailer's fingerprint, and it
// outlives any one campaign's wording.

// shape returns the form of s: every run of ASCII letters and digits
// becomes its class ('d' digits, 'a' lower case, 'A' upper case, 'W'
// capitalised, 'h' hexadecimal, 'x' other mixtures) followed by its length
// rounded down to a power of two (nothing for one character), other
// non-space ASCII stays, any run of spaces is one space and any run of
// other characters is 'u'. At most max bytes.
func shape(s string, max int) string {
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; {
		c := s[i]
		switch {
		case isAlnum(c):
			j := i
			var digit, lower, upper bool
			for j < len(s) && isAlnum(s[j]) {
				switch d := s[j]; {
				case '0' <= d && d <= '9':
					digit = true
				case 'a' <= d && d <= 'z':
					lower = true
				default:
					upper = true
				}
				j++
			}
			run := s[i:j]
			cls := byte('x')
			switch {
			case !lower && !upper:
				cls = 'd'
			case !digit && !upper:
				cls = 'a'
			case !digit && !lower:
				cls = 'A'
			case !digit && 'A' <= run[0] && run[0] <= 'Z' && !hasUpper(run[1:]):
				cls = 'W'
			case digit && isHex(run):
				cls = 'h'
			}
			b = append(b, cls)
			b = append(b, lengthBucket(j-i)...)
			i = j
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
				i++
			}
			b = append(b, ' ')
		case c >= 0x80:
			for i < len(s) && s[i] >= 0x80 {
				i++
			}
			b = append(b, 'u')
		default:
			b = append(b, c)
			i++
		}
	}
	return strings.TrimSpace(string(b))
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// lengthBucket is "" for 1, else the largest power of two <= n (at most 16).
func lengthBucket(n int) string {
	switch {
	case n < 2:
		return ""
	case n < 4:
		return "2"
	case n < 8:
		return "4"
	case n < 16:
		return "8"
	}
	return "16"
}

// maxShapeBytes bounds one shape token.
const maxShapeBytes = 48

// shapes adds the header-shape features of msg.
func (t *tokenizer) shapes(msg *mailtext.Message) {
	var received []string
	n := 0
	mimeVersion, contentType := false, ""
	for _, h := range msg.Header {
		switch strings.ToLower(h.Name) {
		case "message-id":
			t.messageID(h.Value, msg)
		case "date":
			t.addp("date-shape:", shape(clip(strings.TrimSpace(h.Value), 256), maxShapeBytes))
		case "received":
			if n++; t.list != nil && n-1 < t.list.entry {
				continue // the list's onward delivery
			}
			if len(received) < maxReceived {
				received = append(received, h.Value)
			}
		case "mime-version":
			mimeVersion = true
			if v := strings.TrimSpace(h.Value); !strings.HasPrefix(v, "1.0") {
				t.addp("mime-version:", shape(clip(v, 64), 16))
			}
		case "content-type":
			if contentType == "" {
				contentType = h.Value
			}
		case "to":
			if strings.Contains(strings.ToLower(h.Value), "undisclosed") {
				t.add("to:undisclosed")
			}
		}
	}
	if contentType != "" {
		if !mimeVersion {
			t.add("mime:no-version")
		}
		if _, params, err := mime.ParseMediaType(contentType); err == nil {
			if b := params["boundary"]; b != "" {
				t.addp("boundary-shape:", shape(clip(b, 256), maxShapeBytes))
			}
		}
	}
	if len(msg.From) > 0 {
		f := msg.From[0]
		local, _, _ := strings.Cut(f.Addr, "@")
		t.addp("from-shape:", shape(clip(local, 128), 24))
		switch {
		case strings.TrimSpace(f.Name) == "":
			t.add("from-name:none")
		case strings.EqualFold(strings.TrimSpace(f.Name), f.Addr):
			t.add("from-name:address")
		}
	}
	t.dateSkew(msg)
	for _, r := range received {
		t.receivedHop(r)
	}
}

// messageID adds the Message-ID's shape and where its host part points:
// the sender's own domain, another one, an address literal or nothing.
func (t *tokenizer) messageID(v string, msg *mailtext.Message) {
	v = strings.TrimSpace(clip(v, 256))
	id := strings.Trim(v, "<>")
	local, host, ok := strings.Cut(id, "@")
	if !ok {
		t.add("mid:no-host")
		t.addp("mid-shape:", shape(v, maxShapeBytes))
		return
	}
	t.addp("mid-shape:", shape("<"+local+"@", maxShapeBytes))
	host = strings.ToLower(strings.Trim(host, "[]. "))
	fromDom := ""
	if len(msg.From) > 0 {
		fromDom = addrDomain(msg.From[0].Addr)
	}
	switch {
	case host == "":
		t.add("mid:no-host")
	case isIPLiteral(host):
		t.add("mid:ip-host")
	case !strings.Contains(host, "."):
		t.add("mid:bare-host")
	case fromDom != "" && sameOrg(host, fromDom):
		t.add("mid:from-domain")
	default:
		t.add("mid:other-domain")
	}
}

func isIPLiteral(s string) bool {
	_, err := netip.ParseAddr(strings.TrimPrefix(s, "ipv6:"))
	return err == nil
}

// dateSkew adds how far the Date is from the message's arrival (the
// topmost Received field's date), in buckets, and its zone's form.
func (t *tokenizer) dateSkew(msg *mailtext.Message) {
	ds := msg.HeaderValues("Date")
	if len(ds) == 0 {
		return
	}
	d, err := parseDate(ds[0])
	if err != nil {
		return
	}
	_, off := d.Zone()
	t.addp("date-zone:", d.Format("-0700"))
	if off%3600 != 0 {
		t.add("date-zone:odd")
	}
	rcv := msg.HeaderValues("Received")
	if len(rcv) == 0 {
		return
	}
	i := strings.LastIndexByte(rcv[0], ';')
	if i < 0 {
		return
	}
	at, err := parseDate(rcv[0][i+1:])
	if err != nil {
		return
	}
	skew := at.Sub(d) // positive: the Date lies before arrival
	var b string
	switch {
	case skew < -24*time.Hour:
		b = "future-days"
	case skew < -time.Hour:
		b = "future-hours"
	case skew < -5*time.Minute:
		b = "future-minutes"
	case skew < time.Hour:
		b = "hour"
	case skew < 6*time.Hour:
		b = "hours"
	case skew < 24*time.Hour:
		b = "day"
	case skew < 4*24*time.Hour:
		b = "days"
	case skew < 30*24*time.Hour:
		b = "weeks"
	default:
		b = "months"
	}
	t.addp("date-skew:", b)
}

// receivedHop adds the form of one Received field's "from" clause: how
// the name the client gave (HELO) relates to the name its address
// resolves to, and the protocol the hop names. Bulk mailers announce
// themselves with address literals, bare words or other people's names.
func (t *tokenizer) receivedHop(v string) {
	v = strings.ToLower(clip(v, 1024))
	if w := strings.Index(v, " with "); w >= 0 {
		f := strings.Fields(v[w+6:])
		if len(f) > 0 {
			if p := strings.Trim(f[0], "();,"); p != "" && len(p) <= 16 && isTokenName(p) {
				t.addp("rcvd-with:", p)
			}
		}
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "from ")
	if !ok {
		t.add("rcvd:no-from")
		return
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return
	}
	helo := strings.Trim(f[0], "[]")
	var rdns string
	var ip bool
	if len(f) > 1 && strings.HasPrefix(f[1], "(") {
		c := strings.Trim(f[1], "()")
		switch {
		case strings.HasPrefix(c, "["):
			ip = true // "(helo [ip])": no name for the address
		default:
			rdns = c
			if len(f) > 2 && strings.HasPrefix(f[2], "[") {
				ip = true
			}
		}
	}
	var shapeTok string
	switch {
	case isIPLiteral(helo):
		shapeTok = "ip-literal"
	case !strings.Contains(helo, "."):
		shapeTok = "bare"
	case rdns == "" || rdns == "unknown":
		shapeTok = "no-rdns"
		if !ip {
			shapeTok = "name"
		}
	case rdns == helo:
		shapeTok = "rdns-same"
	case isHostname(rdns) && sameOrg(rdns, helo):
		shapeTok = "rdns-org"
	default:
		shapeTok = "rdns-other"
	}
	t.addp("rcvd-helo:", shapeTok)
}
