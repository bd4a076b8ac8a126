package mailtext

import (
	"bytes"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/text/transform"
)

// hdrFlags records what went wrong while decoding one header value.
type hdrFlags uint8

const (
	flagBadBase64 hdrFlags = 1 << iota
	flagBadQP
	flagBadCharset
)

// DecodeHeader decodes a header field value for display and matching:
// RFC 2047 encoded-words in any charset DecodeCharset knows (B and Q,
// either case, bad base64 tolerated), adjacent encoded-words joined without
// the whitespace between them, and the bytes of adjacent same-charset words
// concatenated before charset decoding so a character split across two words
// survives. Encoded-words glued to other text are decoded too, as mail
// readers do. Raw ISO-2022-JP and raw 8-bit text (UTF-8, Shift_JIS, EUC-JP,
// else windows-1252) are detected and decoded. Folding line breaks are
// removed (RFC 5322 2.2.3). The result is valid UTF-8. DecodeHeader never
// fails and is safe for concurrent use.
func DecodeHeader(s string) string {
	out, _ := decodeHeaderValue(s, "")
	return out
}

// unfold removes folding line breaks (RFC 5322 2.2.3) and stray CR/LF.
func unfold(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\r' && s[i] != '\n' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

type hdrToken struct {
	raw     string // raw text, when not an encoded-word
	isWord  bool
	charset string // normalised
	enc     byte   // 'B' or 'Q'
	text    string
}

// parseEncodedWord parses "=?charset?E?text?=" at the start of s (RFC 2047
// section 2), leniently: the text may be empty and the language suffix of
// RFC 2231 is dropped from the charset. It returns the token length.
func parseEncodedWord(s string) (hdrToken, int, bool) {
	if !strings.HasPrefix(s, "=?") {
		return hdrToken{}, 0, false
	}
	q1 := strings.IndexByte(s[2:], '?')
	if q1 <= 0 || q1 > 75 {
		return hdrToken{}, 0, false
	}
	cs := s[2 : 2+q1]
	if strings.ContainsAny(cs, " \t\r\n=()<>@,;:\"/[]") {
		return hdrToken{}, 0, false
	}
	p := 2 + q1 + 1
	if p+1 >= len(s) || s[p+1] != '?' {
		return hdrToken{}, 0, false
	}
	enc := s[p] &^ 0x20 // upper case
	if enc != 'B' && enc != 'Q' {
		return hdrToken{}, 0, false
	}
	end := strings.Index(s[p+2:], "?=")
	if end < 0 {
		return hdrToken{}, 0, false
	}
	text := s[p+2 : p+2+end]
	if strings.ContainsAny(text, "\r\n") && strings.TrimSpace(text) != text {
		return hdrToken{}, 0, false
	}
	return hdrToken{isWord: true, charset: normalizeLabel(cs), enc: enc, text: text}, p + 2 + end + 2, true
}

func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' {
			return false
		}
	}
	return true
}

// decodeB64 decodes base64 leniently and reports whether it was clean.
func decodeB64(text string) ([]byte, bool) {
	var d b64Decoder
	out, _, err := transform.Bytes(&d, []byte(text))
	return out, err == nil && !d.bad()
}

// decodeQWord decodes RFC 2047 4.2 "Q" text.
func decodeQWord(text string) ([]byte, bool) {
	out := make([]byte, 0, len(text))
	ok := true
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '_':
			out = append(out, ' ')
		case c == '=' && i+2 < len(text):
			h, ok1 := unhex(text[i+1])
			l, ok2 := unhex(text[i+2])
			if ok1 && ok2 {
				out = append(out, h<<4|l)
				i += 2
				continue
			}
			ok = false
			out = append(out, c)
		case c == '=':
			ok = false
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out, ok
}

// decodeHeaderValue implements DecodeHeader; fallback is the charset used
// for raw 8-bit text ("" sniffs each run on its own).
func decodeHeaderValue(s, fallback string) (string, hdrFlags) {
	s = unfold(s)
	var flags hdrFlags
	var toks []hdrToken
	rawStart := 0
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "=?")
		if j < 0 {
			break
		}
		j += i
		tok, n, ok := parseEncodedWord(s[j:])
		if !ok {
			i = j + 2
			continue
		}
		if rawStart < j {
			toks = append(toks, hdrToken{raw: s[rawStart:j]})
		}
		toks = append(toks, tok)
		i = j + n
		rawStart = i
	}
	if len(toks) == 0 {
		return cleanControls(decodeRaw(s, fallback, &flags)), flags
	}
	if rawStart < len(s) {
		toks = append(toks, hdrToken{raw: s[rawStart:]})
	}
	// RFC 2047 6.2: whitespace between adjacent encoded-words is ignored.
	kept := toks[:0]
	for i, t := range toks {
		if !t.isWord && isBlank(t.raw) && i > 0 && i+1 < len(toks) && toks[i-1].isWord && toks[i+1].isWord {
			continue
		}
		kept = append(kept, t)
	}
	toks = kept

	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(toks); {
		t := toks[i]
		if !t.isWord {
			b.WriteString(decodeRaw(t.raw, fallback, &flags))
			i++
			continue
		}
		// A run of words in one charset: join the bytes, then decode once.
		var raw []byte
		j := i
		for j < len(toks) && toks[j].isWord && toks[j].charset == t.charset {
			// Same-encoding neighbours are joined before transfer decoding so
			// base64 split mid-quantum decodes; '=' padding inside is harmless.
			k := j
			var text strings.Builder
			for k < len(toks) && toks[k].isWord && toks[k].charset == t.charset && toks[k].enc == toks[j].enc {
				text.WriteString(toks[k].text)
				k++
			}
			var part []byte
			var ok bool
			if toks[j].enc == 'B' {
				part, ok = decodeB64(text.String())
				if !ok {
					flags |= flagBadBase64
				}
			} else {
				part, ok = decodeQWord(text.String())
				if !ok {
					flags |= flagBadQP
				}
			}
			raw = append(raw, part...)
			j = k
		}
		out, _, err := decodeCharset(t.charset, raw)
		if err != nil {
			flags |= flagBadCharset
		}
		b.WriteString(out)
		i = j
	}
	return cleanControls(strings.ToValidUTF8(b.String(), "\ufffd")), flags
}

// cleanControls turns control characters that decoding produced (a CR/LF
// inside an encoded-word, NUL) into spaces, so a decoded value is one line
// and cannot inject fake header lines into logs or rewritten headers.
func cleanControls(s string) string {
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// decodeRaw decodes header text outside encoded-words: raw ISO-2022-JP or
// raw 8-bit bytes.
func decodeRaw(s, fallback string, flags *hdrFlags) string {
	if strings.IndexByte(s, 0x1b) >= 0 {
		out, _, _ := decodeCharset(csISO2022, []byte(s))
		return out
	}
	if !hasHighBit([]byte(s)) {
		return s
	}
	out, _, err := decodeCharset(fallback, []byte(s))
	if err != nil {
		*flags |= flagBadCharset
	}
	return out
}

// ---- header section ----

// HeaderField is one header field with its value decoded by DecodeHeader.
type HeaderField struct {
	Name  string `json:"name"` // canonical form, e.g. "Content-Type"
	Value string `json:"value"`
}

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

// splitField splits "Name: value" and reports whether it is a field line.
// Whitespace before the colon is tolerated (it appears in the wild).
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

// headerCharset guesses the charset of raw 8-bit header text from all of the
// section's 8-bit values together: more text gives a better guess.
func headerCharset(fields []RawField) string {
	var sample []byte
	for _, f := range fields {
		if hasHighBit([]byte(f.Value)) {
			sample = append(sample, f.Value...)
			sample = append(sample, '\n')
			if len(sample) > sniffLimit {
				break
			}
		}
	}
	if len(sample) == 0 {
		return csUTF8
	}
	return detectCharset(sample)
}

// ---- parameters (RFC 2045 5.1, RFC 2231) ----

const (
	maxParams       = 64
	maxContinuation = 256
)

// splitUnquoted splits s at sep outside quoted strings and comments.
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

// textParam reports whether a parameter holds human text to decode.
func textParam(name string) bool { return name == "name" || name == "filename" }

type paramSeg struct {
	val string
	ext bool
}

// parseMediaValue parses "token; a=b; c*0*=..." leniently. Values are
// decoded: RFC 2231 charset/continuations, and (non-standard but common)
// encoded-words or raw 8-bit text inside quoted values.
func parseMediaValue(v, fallback string) (token string, params map[string]string, flags hdrFlags) {
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
		// RFC 2231: name*=, name*N=, name*N*=
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
		if !textParam(name) {
			// Keep boundary and charset exactly as written: a boundary
			// may legitimately contain "=?".
			params[name] = val
			continue
		}
		out, f := decodeHeaderValue(val, fallback)
		flags |= f
		params[name] = out
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
			s := m[k]
			if s.ext {
				if k == 0 {
					// charset'language'value
					if a, r, ok := strings.Cut(s.val, "'"); ok {
						cs = a
						if _, r2, ok := strings.Cut(r, "'"); ok {
							r = r2
						}
						s.val = r
					}
				}
				raw = append(raw, pctDecode(s.val)...)
			} else {
				raw = append(raw, s.val...)
			}
		}
		var out string
		if cs == "" && !textParam(base) {
			out = string(raw)
		} else if cs == "" {
			var f hdrFlags
			out, f = decodeHeaderValue(string(raw), fallback)
			flags |= f
		} else {
			var err error
			out, _, err = decodeCharset(cs, raw)
			if err != nil {
				flags |= flagBadCharset
			}
		}
		params[base] = out // the extended form wins over a plain one
	}
	return token, params, flags
}

// ---- addresses (RFC 5322 3.4), leniently ----

// Address is one mailbox from an address header.
type Address struct {
	Name string `json:"name,omitempty"` // display name, decoded
	Addr string `json:"addr,omitempty"` // addr-spec as written (no case folding)
	Raw  string `json:"raw"`            // the mailbox's text as it appeared
}

const maxAddresses = 1000

// atomicWord returns how many bytes after the first of s belong to an
// encoded-word starting there, 0 when none does. An address list is split
// with encoded-words as single tokens, so that punctuation inside one
// ("=?utf-8?Q?a=3A_<b@c>?=", or a literal ":" or "<") stays part of the
// display name, as mail readers that parse before decoding show it. A word
// holding whitespace is no encoded-word (RFC 2047 2).
func atomicWord(s string) int {
	tok, n, ok := parseEncodedWord(s)
	if !ok || strings.ContainsAny(tok.text, " \t") {
		return 0
	}
	return n - 1
}

// parseAddressList splits an address header by hand rather than with
// net/mail, which rejects much real-world (and hostile) input and decodes
// encoded-words one at a time.
func parseAddressList(v, fallback string) ([]Address, hdrFlags) {
	var out []Address
	var flags hdrFlags
	var segs []string
	inQuote, depth, angle, start := false, 0, false, 0
	for i := 0; i < len(v); i++ {
		c := v[i]
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
		case depth > 0:
		case !angle && c == '=':
			i += atomicWord(v[i:])
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case angle:
		case c == ':':
			start = i + 1 // group name: "undisclosed-recipients:;"
		case c == ',' || c == ';':
			segs = append(segs, v[start:i])
			start = i + 1
		}
	}
	segs = append(segs, v[start:])
	for _, s := range segs {
		if len(out) >= maxAddresses {
			break
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		a, f := parseMailbox(s, fallback)
		flags |= f
		if a.Addr != "" || a.Name != "" {
			out = append(out, a)
		}
	}
	return out, flags
}

func parseMailbox(s, fallback string) (Address, hdrFlags) {
	var rawFlags hdrFlags
	a := Address{Raw: decodeRaw(s, fallback, &rawFlags)}
	var name string
	lt := -1
	inQuote, depth := false, 0
	for i := 0; i < len(s) && lt < 0; i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"' && depth == 0:
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '=' && depth == 0:
			i += atomicWord(s[i:])
		case c == '<' && depth == 0:
			lt = i
		}
	}
	if lt >= 0 {
		addr := s[lt+1:]
		if gt := strings.IndexByte(addr, '>'); gt >= 0 {
			addr = addr[:gt]
		}
		a.Addr = addr
		name = s[:lt]
	} else {
		a.Addr = stripComments(s)
		if i := strings.IndexByte(s, '('); i >= 0 {
			if j := strings.LastIndexByte(s, ')'); j > i {
				name = s[i+1 : j]
			}
		}
	}
	a.Addr = strings.TrimSpace(a.Addr)
	// Obsolete source route "@a,@b:user@host" (RFC 5322 4.4).
	if strings.HasPrefix(a.Addr, "@") {
		if i := strings.IndexByte(a.Addr, ':'); i >= 0 {
			a.Addr = a.Addr[i+1:]
		}
	}
	a.Addr = strings.ToValidUTF8(a.Addr, "\ufffd")
	name = strings.TrimSpace(name)
	if strings.Contains(name, "\"") {
		var b strings.Builder
		for i := 0; i < len(name); i++ {
			c := name[i]
			if c == '\\' && i+1 < len(name) {
				i++
				b.WriteByte(name[i])
				continue
			}
			if c != '"' {
				b.WriteByte(c)
			}
		}
		name = b.String()
	}
	var flags hdrFlags
	a.Name, flags = decodeHeaderValue(strings.TrimSpace(name), fallback)
	a.Name = strings.TrimSpace(a.Name)
	if lt < 0 && !strings.Contains(a.Addr, "@") {
		// Not a mailbox at all (e.g. a bare phrase); keep it as a name.
		if a.Name == "" {
			a.Name, _ = decodeHeaderValue(a.Addr, fallback)
		}
		a.Addr = ""
	}
	return a, flags | rawFlags
}
