package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxHeaderBytes bounds the header section kept for ARC, DKIM tag parsing
// and From cross-checks; it matches mailtext's default bound.
const maxHeaderBytes = 1 << 20

// field is one raw header field as received.
type field struct {
	name string // as written, surrounding blanks trimmed
	// raw is the whole field, "Name: value" with its folding, every line
	// ending normalised to CRLF and without the final CRLF.
	raw string
}

// value returns the raw text after the colon, folding included.
func (f field) value() string {
	_, v, _ := strings.Cut(f.raw, ":")
	return v
}

// rawHeader is the top-level header section in order.
type rawHeader struct {
	fields    []field
	truncated bool   // the section was longer than maxHeaderBytes
	bytes     []byte // the section as kept, for sampling hashes
}

// readRawHeader reads the header section from r up to the empty line that
// ends it, leaving r at the start of the body. Fields are split the way
// go-msgauth's DKIM verifier splits them (a line starting with a blank
// continues the previous field), so DKIM-Signature fields found here pair
// with its verifications by position. Memory is bounded by maxHeaderBytes;
// a longer section is read to its end and discarded.
func readRawHeader(r *bufio.Reader) (*rawHeader, error) {
	h := &rawHeader{}
	var cur []byte
	flush := func() {
		if cur == nil {
			return
		}
		s := strings.TrimSuffix(string(cur), "\r\n")
		name, _, _ := strings.Cut(s, ":")
		h.fields = append(h.fields, field{name: strings.TrimSpace(name), raw: s})
		cur = nil
	}
	for {
		var line []byte
		var head [2]byte
		n := 0
		var err error
		for {
			var piece []byte
			piece, err = r.ReadSlice('\n')
			for i := 0; i < len(piece) && n+i < 2; i++ {
				head[n+i] = piece[i]
			}
			n += len(piece)
			if !h.truncated && len(h.bytes)+len(line)+len(piece) <= maxHeaderBytes {
				line = append(line, piece...)
			} else if len(piece) > 0 {
				h.truncated = true
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("auth: read header: %w", err)
		}
		if n == 0 {
			break // end of input without a body
		}
		if n == 1 && head[0] == '\n' || n == 2 && head[0] == '\r' && head[1] == '\n' {
			break // the empty line ending the section
		}
		if !h.truncated {
			h.bytes = append(h.bytes, line...)
			content := bytes.TrimRight(line, "\r\n")
			if len(content) > 0 && (content[0] == ' ' || content[0] == '\t') && cur != nil {
				cur = append(cur, content...)
				cur = append(cur, '\r', '\n')
			} else {
				// A continuation line with nothing to continue starts a
				// field, as in go-msgauth, so signatures pair up.
				flush()
				cur = append(append([]byte{}, content...), '\r', '\n')
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	flush()
	return h, nil
}

// all returns the fields named name (case-insensitive), in order.
func (h *rawHeader) all(name string) []field {
	var out []field
	for _, f := range h.fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f)
		}
	}
	return out
}

// ---- tag lists (RFC 6376 3.2) ----

// tag is one tag=value pair of a tag list.
type tag struct {
	name  string
	value string // FWS at both ends removed, inner FWS kept
	eq    int    // offset of '=' in the list
	end   int    // offset just past the value's FWS: ';' or the end
}

type tagList struct {
	tags []tag
}

func (l *tagList) get(name string) (string, bool) {
	for _, t := range l.tags {
		if t.name == name {
			return t.value, true
		}
	}
	return "", false
}

func (l *tagList) has(name string) bool {
	_, ok := l.get(name)
	return ok
}

// maxTags bounds a tag list; real signatures have about a dozen.
const maxTags = 64

var (
	errTagSyntax    = errors.New("malformed tag list")
	errDuplicateTag = errors.New("duplicate tag")
)

// parseTagList parses s strictly: tag names are ALPHA *(ALPHA / DIGIT /
// "_"), values are printable ASCII other than ';' with folding white space,
// a name appears once (RFC 6376 3.2), and only a final empty tag-spec (a
// trailing ';') is allowed.
func parseTagList(s string) (*tagList, error) {
	l := &tagList{}
	pos := 0
	for {
		semi := strings.IndexByte(s[pos:], ';')
		end := len(s)
		if semi >= 0 {
			end = pos + semi
		}
		spec := s[pos:end]
		if isFWS(spec) {
			if semi < 0 && len(l.tags) > 0 {
				break // a trailing ';' (RFC 6376 3.2)
			}
			return nil, errTagSyntax
		}
		eq := strings.IndexByte(spec, '=')
		if eq < 0 {
			return nil, errTagSyntax
		}
		name := trimFWS(spec[:eq])
		if !validTagName(name) {
			return nil, errTagSyntax
		}
		val := trimFWS(spec[eq+1:])
		for i := 0; i < len(val); i++ {
			c := val[i]
			if !(c >= 0x21 && c <= 0x7e || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
				return nil, errTagSyntax
			}
		}
		if l.has(name) {
			return nil, errDuplicateTag
		}
		if len(l.tags) >= maxTags {
			return nil, errTagSyntax
		}
		l.tags = append(l.tags, tag{name: name, value: val, eq: pos + eq, end: end})
		if semi < 0 {
			break
		}
		pos = end + 1
	}
	return l, nil
}

func isFWS(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\r', '\n':
		default:
			return false
		}
	}
	return true
}

func trimFWS(s string) string { return strings.Trim(s, " \t\r\n") }

func validTagName(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlpha(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// stripFWS removes all folding white space (for b= and bh= values).
func stripFWS(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}

// withoutB returns the field's raw text with the value of the tag list's b=
// tag deleted, surrounding blanks included (RFC 6376 3.7, RFC 8617 5.1.1).
// valueOff is the offset of the tag list inside raw.
func withoutB(raw string, valueOff int, l *tagList) string {
	for _, t := range l.tags {
		if t.name == "b" {
			return raw[:valueOff+t.eq+1] + raw[valueOff+t.end:]
		}
	}
	return raw
}

// ---- canonicalisation (RFC 6376 3.4) ----
//
// The approach (streaming body canonicalisers that hold back blank lines and
// white space until they know whether they end the body) follows the one of
// github.com/emersion/go-msgauth (MIT licence), written anew here because
// that package does not export it.

// canonHeader returns the canonical form of a raw field with its final
// CRLF.
func canonHeader(raw string, relaxed bool) string {
	if !relaxed {
		return raw + "\r\n"
	}
	name, value, _ := strings.Cut(raw, ":")
	var b strings.Builder
	b.Grow(len(raw) + 2)
	b.WriteString(strings.ToLower(strings.TrimRight(name, " \t")))
	b.WriteByte(':')
	wsp := false
	started := false
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\r', '\n':
			// Unfolding: line breaks disappear (RFC 6376 3.4.2).
		case ' ', '\t':
			wsp = true
		default:
			if wsp && started {
				b.WriteByte(' ')
			}
			wsp = false
			started = true
			b.WriteByte(c)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// bodyCanon is a streaming body canonicaliser writing to w. Bare LF counts
// as a line end, as the message may have been stored with either.
type bodyCanon struct {
	w       io.Writer
	relaxed bool

	empty   int  // blank lines held back: they vanish if they end the body
	wsp     bool // relaxed: white space held back within a line
	cr      bool // a CR held back: it may start a CRLF
	content bool // the current line has content
	wrote   bool // anything was written
	buf     []byte
	err     error
}

func newBodyCanon(w io.Writer, relaxed bool) *bodyCanon {
	return &bodyCanon{w: w, relaxed: relaxed}
}

func (c *bodyCanon) emit(b ...byte) { c.buf = append(c.buf, b...) }

func (c *bodyCanon) contentByte(ch byte) {
	if !c.content {
		for ; c.empty > 0; c.empty-- {
			c.emit('\r', '\n')
		}
	}
	if c.wsp {
		c.emit(' ')
		c.wsp = false
	}
	c.emit(ch)
	c.content = true
}

func (c *bodyCanon) endLine() {
	c.wsp = false
	if c.content {
		c.emit('\r', '\n')
	} else {
		c.empty++
	}
	c.content = false
}

func (c *bodyCanon) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for _, ch := range p {
		if c.cr {
			c.cr = false
			if ch == '\n' {
				c.endLine()
				continue
			}
			c.contentByte('\r')
		}
		switch {
		case ch == '\r':
			c.cr = true
		case ch == '\n':
			c.endLine()
		case c.relaxed && (ch == ' ' || ch == '\t'):
			// Held back: dropped at the end of a line, one SP otherwise
			// (leading white space included, RFC 6376 3.4.4).
			c.wsp = true
		default:
			c.contentByte(ch)
		}
	}
	if len(c.buf) > 0 {
		c.wrote = true
		_, c.err = c.w.Write(c.buf)
		c.buf = c.buf[:0]
	}
	return len(p), c.err
}

// Close ends the body: a last line without CRLF gets one, trailing blank
// lines are dropped, and an empty body is CRLF in simple canonicalisation
// (RFC 6376 3.4.3) and empty in relaxed (3.4.4).
func (c *bodyCanon) Close() error {
	if c.err != nil {
		return c.err
	}
	if c.cr {
		c.cr = false
		c.contentByte('\r')
	}
	if c.content {
		c.wsp = false
		c.emit('\r', '\n')
		c.content = false
	}
	if !c.relaxed && !c.wrote && len(c.buf) == 0 {
		c.emit('\r', '\n')
	}
	if len(c.buf) > 0 {
		_, c.err = c.w.Write(c.buf)
		c.buf = c.buf[:0]
	}
	return c.err
}
