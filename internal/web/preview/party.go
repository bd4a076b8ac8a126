package preview

import (
	"encoding/base64"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Party is one mailbox of an address header, made safe to show.
type Party struct {
	// Name is the decoded display name (RFC 2047 encoded words, Japanese
	// charsets) with invisible and control characters removed.
	Name string
	// Address is the addr-spec as written, with control characters removed.
	// It is what the mail really claims to come from or go to; show it
	// next to Name, always.
	Address string
	// Suspicious is set when the name or address carried hidden
	// characters, when the name shows an address other than Address, or
	// when the address itself is implausible (the Mailsploit family).
	Suspicious bool
	// Why says in English why Suspicious is set, "" otherwise.
	Why string
}

const maxNameRunes = 256

// cleanText removes from s what must never reach a display: C0 and C1
// controls (NUL truncates names in some clients, CR/LF forge extra header
// lines), bidi embeddings, overrides, isolates and marks (they reorder what
// is shown, "gpj.exe"), zero-width and other invisible characters (they hide
// text or split an address so filters miss it), and Unicode tag characters.
// It reports whether anything was removed, other than plain tabs and a
// zero-width joiner inside an emoji sequence, which are common and
// harmless. The result is at most max runes.
func cleanText(s string, max int) (string, bool) {
	var b strings.Builder
	hidden := false
	prev := rune(-1)
	n := 0
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				hidden = true
				continue
			}
		}
		switch {
		case r == '\t':
			r = ' '
		case r == '\u200d' && prev >= 0 && unicode.Is(unicode.So, prev):
			// Zero-width joiner in an emoji sequence: keep it.
		case invisible(r):
			hidden = true
			continue
		}
		if n >= max {
			break
		}
		b.WriteRune(r)
		prev = r
		n++
	}
	return b.String(), hidden
}

// invisible reports characters that are removed from displayed header text.
func invisible(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f: // C0, DEL, C1
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, // bidi embeddings, overrides, isolates
		r == 0x200e, r == 0x200f, r == 0x061c: // LRM, RLM, ALM
		return true
	case r >= 0x200b && r <= 0x200d, r == 0x2060, r == 0xfeff, r == 0x180e, r == 0x00ad, // zero-width, soft hyphen
		r >= 0x2061 && r <= 0x2064, // invisible operators
		r == 0x2028, r == 0x2029,   // line and paragraph separators
		r == 0x115f, r == 0x1160, r == 0x3164, r == 0xffa0, // Hangul fillers render blank
		r >= 0xfff9 && r <= 0xfffb,   // interlinear annotation
		r >= 0xe0000 && r <= 0xe007f: // tag characters
		return true
	}
	return false
}

// encodedWord matches an RFC 2047 encoded word: charset, encoding, text.
var encodedWord = regexp.MustCompile(`=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=`)

// rawControls reports whether the mailbox text as written holds control
// characters, literally or inside the B or Q payload of an encoded word
// (Mailsploit hides "=00" or "=0A" there to cut or split what clients show).
// It only looks at the transfer encoding: controls are the same bytes in
// every charset seen on mail (ISO-2022-JP's ESC aside).
func rawControls(raw string) bool {
	ctl := func(b []byte) bool {
		for _, c := range b {
			if (c < 0x20 && c != '\t' && c != 0x1b) || c == 0x7f {
				return true
			}
		}
		return false
	}
	if ctl([]byte(raw)) {
		return true
	}
	for _, m := range encodedWord.FindAllStringSubmatch(raw, 64) {
		if ctl(wordPayload(m)) {
			return true
		}
	}
	return false
}

// encodedPunctuation reports whether an encoded word of the mailbox text
// as written holds address punctuation. RFC 2047 5(3) allows none of it in
// a display name's encoded word; hidden there, it makes a reader that
// decodes before parsing show another name or address (a ":" turns the
// name into a group, "<x@y>" into the address) than one that parses first.
func encodedPunctuation(raw string) bool {
	for _, m := range encodedWord.FindAllStringSubmatch(raw, 64) {
		// Decoded first: ISO-2022-JP's two-byte characters are made of
		// the bytes of ASCII punctuation.
		text, _ := mailtext.DecodeCharset(m[1], wordPayload(m))
		if strings.ContainsAny(text, `:;,<>"`) {
			return true
		}
	}
	return false
}

// wordPayload returns the bytes an encoded word carries, before charset
// decoding.
func wordPayload(m []string) []byte {
	if m[2] == "b" || m[2] == "B" {
		payload, _ := base64.StdEncoding.DecodeString(padBase64(m[3]))
		return payload
	}
	return qDecodeBytes(m[3])
}

func padBase64(s string) string {
	s = strings.TrimRight(s, "=")
	return s + strings.Repeat("=", (4-len(s)%4)%4)
}

// qDecodeBytes undoes only the "=XX" escapes of a Q payload (RFC 2047
// 4.2); that is all rawControls needs to see.
func qDecodeBytes(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '=' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(v))
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

// addrInName finds address-looking text in a display name.
var addrInName = regexp.MustCompile(`[^\s<>"'()\[\],;:@]+@[^\s<>"'()\[\],;:@]+\.[^\s<>"'()\[\],;:@]*[^\s<>"'()\[\],;:@.]`)

// makeParty turns a parsed address into a Party and judges it.
func makeParty(a mailtext.Address) Party {
	var why []string
	name, hiddenName := cleanText(a.Name, maxNameRunes)
	// mailtext turns controls that decoding produced into spaces, so look
	// for them in the mailbox as written too.
	if hiddenName || rawControls(a.Raw) {
		why = append(why, "display name contains control, bidi or invisible characters")
	}
	if encodedPunctuation(a.Raw) {
		why = append(why, "display name hides address punctuation in an encoded word")
	}
	addr, hiddenAddr := cleanText(a.Addr, maxNameRunes)
	if hiddenAddr {
		why = append(why, "address contains control, bidi or invisible characters")
	}
	name = strings.Join(strings.Fields(name), " ")
	addr = strings.TrimSpace(addr)
	switch {
	case addr == "":
		why = append(why, "no address")
	case strings.Contains(addr, "=?"):
		// RFC 2047 5(3): an encoded word never appears in an addr-spec;
		// clients that decode one anyway show an address the mail lacks.
		why = append(why, "address contains an encoded word")
	case strings.Count(addr, "@") != 1:
		why = append(why, "address is not a single mailbox")
	}
	// Compatibility forms (full-width ＠, small commercial at) show as an
	// address too: compare on the NFKC form.
	for _, m := range addrInName.FindAllString(norm.NFKC.String(name), 8) {
		if !strings.EqualFold(strings.Trim(m, "."), addr) {
			why = append(why, "display name shows another address ("+m+")")
			break
		}
	}
	return Party{Name: name, Address: addr, Suspicious: len(why) > 0, Why: strings.Join(why, "; ")}
}

func makeParties(as []mailtext.Address) []Party {
	if len(as) == 0 {
		return nil
	}
	const maxParties = 100
	ps := make([]Party, 0, min(len(as), maxParties))
	for _, a := range as {
		if len(ps) == maxParties {
			break
		}
		ps = append(ps, makeParty(a))
	}
	return ps
}
