package rewrite

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// field is one header field as read. Raw holds its bytes (continuation
// lines and line ending included) when the section is held; name is ""
// for a line that is no field (an mbox "From " line, a stray continuation
// line at the start), which is copied as it is.
type field struct {
	name  string // canonical (textproto) form
	value string // unfolded and trimmed, as mailtext sees it
	raw   []byte
}

// header is one header section.
type header struct {
	fields []field
	parsed []field // name/value of the first MaxHeaderBytes, as mailtext keeps them
	term   []byte  // the empty line that ended the section, nil when something else did
	// endsEOL is false when the last line of the section lacks a line break
	// (the input ended inside the header).
	endsEOL bool
}

// get returns the first value of a field, as mailtext does.
func (h *header) get(name string) (string, bool) {
	for _, f := range h.parsed {
		if f.name == name {
			return f.value, true
		}
	}
	return "", false
}

type headerMode int

const (
	modePass headerMode = iota // write each line as read
	modeHold                   // keep the raw section for rewriting
	modeDrop                   // read and parse only; the section is replaced
)

func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// splitField splits "Name: value"; whitespace before the colon is tolerated.
func splitField(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	name = bytes.TrimRight(line[:i], " \t")
	if !validFieldName(name) {
		return nil, nil, false
	}
	return name, line[i+1:], true
}

func isEOL(b []byte) bool {
	return len(b) == 1 && b[0] == '\n' || len(b) == 2 && b[0] == '\r' && b[1] == '\n'
}

func unfold(s string) string {
	if strings.IndexAny(s, "\r\n") < 0 {
		return s
	}
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
}

// readHeader reads one header section with mailtext's rules: an empty line
// ends it; so does a boundary line (left unread: the entity has no body)
// and a line that is no field (left unread: it starts the body). Fields
// past MaxHeaderBytes are not parsed, as in mailtext; in modeHold a section
// that large is an error since it could not be rewritten whole.
func (w *walker) readHeader(root bool, mode headerMode) (*header, error) {
	h := &header{endsEOL: true}
	s := w.src
	var cur, curRaw []byte
	total, first, over := 0, true, false
	limit := w.lim.MaxHeaderBytes
	flush := func() {
		if len(cur) > 0 {
			if name, val, ok := splitField(cur); ok {
				h.parsed = append(h.parsed, field{
					name:  textproto.CanonicalMIMEHeaderKey(string(name)),
					value: strings.TrimSpace(unfold(string(val))),
				})
			}
		}
		cur = cur[:0]
		if mode == modeHold && len(curRaw) > 0 {
			f := field{raw: curRaw}
			if name, val, ok := splitField(curRaw); ok {
				f.name = textproto.CanonicalMIMEHeaderKey(string(name))
				f.value = strings.TrimSpace(unfold(string(val)))
			}
			h.fields = append(h.fields, f)
			curRaw = nil
		}
	}
	keep := func(b []byte) {
		switch mode {
		case modePass:
			w.out.write(b)
		case modeHold:
			curRaw = append(curRaw, b...)
		}
		h.endsEOL = len(b) > 0 && b[len(b)-1] == '\n'
	}
	for {
		b, start, err := s.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if start {
			if isEOL(b) {
				flush()
				h.term = append([]byte(nil), b...)
				if mode == modePass {
					w.out.write(b)
				}
				return h, nil
			}
			if _, _, ok := s.match(b); ok {
				s.unreadLine()
				break
			}
			if b[0] != ' ' && b[0] != '\t' {
				flush()
				if _, _, ok := splitField(b); !ok {
					if first && root && bytes.HasPrefix(b, []byte("From ")) {
						keep(b) // mbox separator: kept, not a field
						flush()
						continue
					}
					s.unreadLine()
					break
				}
			}
		}
		first = false
		total += len(b)
		if mode == modeHold && total > limit {
			return nil, ErrHeaderTooLarge
		}
		keep(b)
		if total > limit {
			over = true
		}
		if !over {
			cur = append(cur, b...)
		}
	}
	flush()
	return h, nil
}

// ---- media type values (RFC 2045 5.1, RFC 2231), as mailtext reads them ----

type paramSeg struct {
	val string
	ext bool
}

const (
	maxParams       = 64
	maxContinuation = 256
)

func splitUnquoted(s string, sep byte) []string {
	var parts []string
	inQuote, depth, start := false, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\':
			i++
		case c == '"' && depth == 0:
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) < 1 || s[0] != '"' {
		return s
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			i++
			b.WriteByte(s[i])
			continue
		}
		if c == '"' {
			break
		}
		b.WriteByte(c)
	}
	return b.String()
}

func stripComments(s string) string {
	if strings.IndexByte(s, '(') < 0 {
		return s
	}
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func pctDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				out = append(out, h<<4|l)
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

func textParam(name string) bool { return name == "name" || name == "filename" }

// parseMediaValue parses "token; a=b; c*0*=..." leniently, giving the same
// token and boundary/charset parameters as mailtext (which the part
// numbering depends on). File names are decoded for the strip notice.
func parseMediaValue(v string) (token string, params map[string]string) {
	parts := splitUnquoted(v, ';')
	token = strings.ToLower(strings.TrimSpace(stripComments(parts[0])))
	params = map[string]string{}
	plain := map[string]string{}
	segs := map[string]map[int]paramSeg{}
	for n, p := range parts[1:] {
		if n >= maxParams {
			break
		}
		eq := strings.IndexByte(p, '=')
		if eq < 0 {
			continue
		}
		name := strings.ToLower(strings.TrimSpace(p[:eq]))
		val := strings.TrimSpace(p[eq+1:])
		if strings.HasPrefix(val, "\"") {
			val = unquote(val)
		} else {
			val = strings.TrimSpace(stripComments(val))
		}
		if name == "" {
			continue
		}
		if !strings.Contains(name, "*") {
			if _, dup := plain[name]; !dup {
				plain[name] = val
			}
			continue
		}
		base, rest, _ := strings.Cut(name, "*")
		idx, ext := 0, false
		switch {
		case rest == "":
			ext = true
		case strings.HasSuffix(rest, "*"):
			ext = true
			rest = strings.TrimSuffix(rest, "*")
			fallthrough
		default:
			if rest != "" {
				k, err := strconv.Atoi(rest)
				if err != nil || k < 0 || k > maxContinuation {
					continue
				}
				idx = k
			}
		}
		if segs[base] == nil {
			segs[base] = map[int]paramSeg{}
		}
		if _, dup := segs[base][idx]; !dup {
			segs[base][idx] = paramSeg{val: val, ext: ext}
		}
	}
	for name, val := range plain {
		if textParam(name) {
			val = mailtext.DecodeHeader(val)
		}
		params[name] = val
	}
	for base, m := range segs {
		var raw []byte
		cs := ""
		idxs := make([]int, 0, len(m))
		for k := range m {
			idxs = append(idxs, k)
		}
		sort.Ints(idxs)
		for n, k := range idxs {
			if k != n {
				break // a gap ends the value (RFC 2231 3)
			}
			sg := m[k]
			if sg.ext {
				if k == 0 {
					if a, r, ok := strings.Cut(sg.val, "'"); ok {
						cs = a
						if _, r2, ok := strings.Cut(r, "'"); ok {
							r = r2
						}
						sg.val = r
					}
				}
				raw = append(raw, pctDecode(sg.val)...)
			} else {
				raw = append(raw, sg.val...)
			}
		}
		var out string
		switch {
		case cs == "" && !textParam(base):
			out = string(raw)
		case cs == "":
			out = mailtext.DecodeHeader(string(raw))
		default:
			out, _ = mailtext.DecodeCharset(cs, raw)
		}
		params[base] = out
	}
	return token, params
}

func validMediaType(t string) bool {
	a, b, ok := strings.Cut(t, "/")
	if !ok || a == "" || b == "" {
		return false
	}
	for _, c := range []byte(t) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"[]?=", c) >= 0 {
			return false
		}
	}
	return true
}

// ---- writing fields ----

// sanitizeValue makes a value safe to write as one field: control
// characters other than TAB (CR and LF above all, which would start a new
// field) become spaces, and invalid UTF-8 is replaced.
func sanitizeValue(v string) string {
	v = strings.ToValidUTF8(v, "\ufffd")
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return ' '
		}
		return r
	}, v)
}

const foldAt = 78 // RFC 5322 2.1.1: lines SHOULD be at most 78 characters

// formatField renders "Name: value" folded before whitespace so lines stay
// within 78 octets where the value allows (RFC 5322 2.2.3). A line never
// consists of whitespace only, and unfolding restores the value.
func formatField(name, value, eol string) string {
	line := name + ":"
	if value != "" {
		line += " " + value
	}
	var b strings.Builder
	start := 0                // start of the current output line
	minSplit := len(name) + 2 // never fold inside "Name: "
	for len(line)-start > foldAt {
		split := -1
		for i := start + 1; i < len(line); i++ {
			if i-start > foldAt && split > 0 {
				break
			}
			if (line[i] == ' ' || line[i] == '\t') && i > minSplit &&
				line[i-1] != ' ' && line[i-1] != '\t' && strings.TrimLeft(line[i:], " \t") != "" {
				split = i
			}
		}
		if split < 0 {
			break
		}
		b.WriteString(line[start:split])
		b.WriteString(eol)
		start = split
	}
	b.WriteString(line[start:])
	b.WriteString(eol)
	return b.String()
}

// ---- subject tag ----

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// encodedWords writes s as UTF-8 "B" encoded-words (RFC 2047 4.1), split
// at character boundaries so each word stays within 75 characters,
// separated by spaces (ignored between encoded-words, RFC 2047 6.2).
func encodedWords(s string) string {
	const prefix, suffix = "=?UTF-8?B?", "?="
	maxRaw := (75 - len(prefix) - len(suffix)) / 4 * 3
	var words []string
	for len(s) > 0 {
		n := len(s)
		if n > maxRaw {
			n = maxRaw
			for n > 0 && !utf8.RuneStart(s[n]) {
				n--
			}
			if n == 0 {
				n = maxRaw
			}
		}
		words = append(words, prefix+base64.StdEncoding.EncodeToString([]byte(s[:n]))+suffix)
		s = s[n:]
	}
	return strings.Join(words, " ")
}

// startsWithEncodedWord reports whether s begins with something shaped
// like an RFC 2047 encoded-word, "=?charset?B|Q?text?=".
func startsWithEncodedWord(s string) bool {
	if !strings.HasPrefix(s, "=?") {
		return false
	}
	q1 := strings.IndexByte(s[2:], '?')
	if q1 <= 0 || q1 > 75 {
		return false
	}
	p := 2 + q1 + 1
	if p+1 >= len(s) || s[p+1] != '?' || (s[p]&^0x20 != 'B' && s[p]&^0x20 != 'Q') {
		return false
	}
	return strings.Contains(s[p+2:], "?=")
}

// tagSubject puts tag in front of the raw Subject field raw ("Subject:"
// through its last line break), keeping every original byte after the
// leading blanks of the first line. Decoding the result gives tag, a
// space, and the decoded original. When the tag would push a first line
// that fitted in 78 octets past them, the tag gets a line of its own
// (folding there unfolds to the same space).
func tagSubject(raw []byte, tag, eol string) []byte {
	colon := bytes.IndexByte(raw, ':')
	rest := bytes.TrimLeft(raw[colon+1:], " \t")
	content := bytes.TrimLeft(rest, " \t\r\n")
	lineBreak := len(rest) > 0 && (rest[0] == '\r' || rest[0] == '\n')
	var t string
	switch {
	case isPrintableASCII(tag) && !strings.Contains(tag, "=?"):
		t = tag
	case len(bytes.TrimSpace(content)) > 0 && startsWithEncodedWord(string(content)):
		// The space between two encoded-words is dropped when decoding,
		// so the one after the tag goes inside the word.
		t = encodedWords(tag + " ")
	default:
		t = encodedWords(tag)
	}
	out := make([]byte, 0, len(raw)+len(t)+2)
	out = append(out, raw[:colon+1]...)
	out = append(out, ' ')
	out = append(out, t...)
	if !lineBreak && len(rest) > 0 {
		firstLen := func(b []byte) int {
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				return len(trimEOL(b[:i+1]))
			}
			return len(b)
		}
		if firstLen(raw) <= foldAt && len(out)+1+firstLen(rest) > foldAt {
			out = append(out, eol...)
		}
		out = append(out, ' ')
	}
	return append(out, rest...)
}
