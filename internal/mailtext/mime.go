package mailtext

// The MIME reading primitives of Walk: line splitting, delimiter matching,
// header sections, media types and transfer decoding. Part paths agree
// between Walk's visitors because these rules live here and nowhere else.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/textproto"
	"strconv"
	"strings"

	"golang.org/x/text/transform"
)

// LineBufSize is the longest line fragment Parse reads at once from the
// message. Walkers that must number parts as Parse does read the message
// with a LineReader of this size, so overlong lines split the same way.
const LineBufSize = topBufSize

// NestedLineBufSize is the LineReader size Parse uses for the decoded body
// of a base64 or quoted-printable encoded message/rfc822.
const NestedLineBufSize = nestedBufSize

// ContextReader fails reads once its context is done, so a stalled or
// endless input cannot outlive the caller's deadline. The first error other
// than io.EOF is kept and returned by every later Read and by Err, so a
// consumer that swallowed it cannot hide that the input was not read. It
// is not safe for concurrent use.
type ContextReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

// NewContextReader returns a ContextReader reading r until ctx is done.
func NewContextReader(ctx context.Context, r io.Reader) *ContextReader {
	return &ContextReader{ctx: ctx, r: r}
}

// Read reads from the underlying reader unless ctx is done or an earlier
// read failed.
func (c *ContextReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

// Err returns the first read error other than io.EOF, or nil.
func (c *ContextReader) Err() error { return c.err }

// LineReader yields the lines of a byte stream, cut into fragments no
// longer than its buffer, and knows the delimiters of the open multiparts
// so that one scan finds the end of every nesting level: an unterminated
// inner multipart is closed by an outer boundary, as mail readers do. It
// is not safe for concurrent use.
type LineReader struct {
	br          *bufio.Reader
	bounds      [][]byte // "--boundary", innermost last
	line        []byte
	lineStart   bool
	nextAtStart bool
	unread      bool
	consumed    int64
	scratch     []byte // BodyReader.WriteTo's buffer
}

// NewLineReader returns a LineReader over r whose fragments are at most
// size bytes.
func NewLineReader(r io.Reader, size int) *LineReader {
	return &LineReader{br: bufio.NewReaderSize(r, size), nextAtStart: true}
}

// Next returns the next line or fragment, line break included, valid until
// the following call, and whether it starts a line. io.EOF marks the end of
// input; any other error is the underlying reader's.
func (s *LineReader) Next() ([]byte, bool, error) {
	if s.unread {
		s.unread = false
		s.consumed += int64(len(s.line))
		return s.line, s.lineStart, nil
	}
	b, err := s.br.ReadSlice('\n')
	start := s.nextAtStart
	switch {
	case err == nil:
		s.nextAtStart = true
	case errors.Is(err, bufio.ErrBufferFull):
		s.nextAtStart = false
	case errors.Is(err, io.EOF):
		if len(b) == 0 {
			return nil, start, io.EOF
		}
		s.nextAtStart = true
	default:
		return nil, false, err
	}
	s.line, s.lineStart = b, start
	s.consumed += int64(len(b))
	return b, start, nil
}

// Unread pushes back the line just returned by Next; the next call returns
// it again.
func (s *LineReader) Unread() {
	s.unread = true
	s.consumed -= int64(len(s.line))
}

// Consumed returns the number of bytes returned by Next and not pushed back.
func (s *LineReader) Consumed() int64 { return s.consumed }

// Peek returns up to n bytes not yet read from the underlying reader
// (a pushed-back line is not included), without consuming them.
func (s *LineReader) Peek(n int) ([]byte, error) { return s.br.Peek(n) }

// WriteRest writes everything not yet consumed to w, the pushed-back line
// first, and returns the first write or read error.
func (s *LineReader) WriteRest(w io.Writer) error {
	if s.unread {
		s.unread = false
		if _, err := w.Write(s.line); err != nil {
			return err
		}
	}
	_, err := s.br.WriteTo(w)
	return err
}

// PushBoundary opens a multipart level delimited by boundary and returns
// its level (0 is the outermost). Close it with PopBoundary.
func (s *LineReader) PushBoundary(boundary string) int {
	s.bounds = append(s.bounds, []byte("--"+boundary))
	return len(s.bounds) - 1
}

// PopBoundary closes level and every level inside it.
func (s *LineReader) PopBoundary(level int) { s.bounds = s.bounds[:level] }

// Match reports whether a line is a delimiter of an open multipart
// (RFC 2046 5.1.1: "--" boundary, optional "--", transport padding) and of
// which level; the innermost level wins. final is true for a close
// delimiter. Only call it for lines that start a line.
func (s *LineReader) Match(b []byte) (level int, final, ok bool) {
	if len(s.bounds) == 0 || len(b) < 3 || b[0] != '-' || b[1] != '-' {
		return 0, false, false
	}
	t := bytes.TrimRight(trimEOL(b), " \t")
	for i := len(s.bounds) - 1; i >= 0; i-- {
		bd := s.bounds[i]
		if !bytes.HasPrefix(t, bd) {
			continue
		}
		switch rest := t[len(bd):]; string(rest) {
		case "":
			return i, false, true
		case "--":
			return i, true, true
		}
	}
	return 0, false, false
}

// SkipTo reads lines up to a delimiter of a level above level, which is
// left unread, or to the end of input. It serves multipart epilogues.
// Each line passed over is given to each when it is not nil, after it was
// consumed; each returning false stops the skip there.
func (s *LineReader) SkipTo(level int, each func(line []byte) bool) error {
	for {
		b, start, err := s.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if start {
			if l, _, ok := s.Match(b); ok && l < level {
				s.Unread()
				return nil
			}
		}
		if each != nil && !each(b) {
			return nil
		}
	}
}

// Body returns a reader of the entity body that starts at the current
// position.
func (s *LineReader) Body() *BodyReader { return &BodyReader{s: s} }

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func splitEOL(b []byte) (content, eol []byte) {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		return b[:len(b)-2], b[len(b)-2:]
	case bytes.HasSuffix(b, []byte("\n")):
		return b[:len(b)-1], b[len(b)-1:]
	}
	return b, nil
}

func isEOL(b []byte) bool {
	return len(b) == 1 && b[0] == '\n' || len(b) == 2 && b[0] == '\r' && b[1] == '\n'
}

// BodyReader reads an entity body, still transfer-encoded, up to the next
// delimiter line of any open level, leaving that line unread in its
// LineReader. The line break before a delimiter belongs to the delimiter
// (RFC 2046 5.1.1), so each line break is held back until the following
// line is known not to be a delimiter.
type BodyReader struct {
	s     *LineReader
	held  [2]byte // line break of the last line, not yet emitted
	nh    int
	emit  [2]byte // backing for out1, apart from held
	out1  []byte  // held line break being emitted
	out2  []byte  // line content (aliases the LineReader's buffer)
	done  bool
	delim [2]byte // the line break that belongs to the ending delimiter
	nd    int
}

// Read implements io.Reader; it returns io.EOF at the delimiter or the end
// of input, and the LineReader's read errors.
func (r *BodyReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.out1) > 0 {
			k := copy(p[n:], r.out1)
			r.out1 = r.out1[k:]
			n += k
			continue
		}
		if len(r.out2) > 0 {
			k := copy(p[n:], r.out2)
			r.out2 = r.out2[k:]
			n += k
			continue
		}
		if r.done {
			break
		}
		b, start, err := r.s.Next()
		if errors.Is(err, io.EOF) {
			// No delimiter follows: the last line break is content.
			r.done = true
			r.out1 = r.held[:r.nh]
			continue
		}
		if err != nil {
			return n, err
		}
		if start {
			if _, _, ok := r.s.Match(b); ok {
				r.s.Unread()
				r.done = true
				r.nd = copy(r.delim[:], r.held[:r.nh])
				break
			}
		}
		content, eol := splitEOL(b)
		pn := copy(r.emit[:], r.held[:r.nh])
		r.nh = copy(r.held[:], eol)
		r.out1 = r.emit[:pn]
		r.out2 = content
	}
	if n == 0 && r.done {
		return 0, io.EOF
	}
	return n, nil
}

// WriteTo writes the rest of the body to w in large writes, as io.Copy
// does through it; it stops at the delimiter as Read does.
func (r *BodyReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	write := func(b []byte) error {
		if len(b) == 0 {
			return nil
		}
		n, err := w.Write(b)
		total += int64(n)
		return err
	}
	if err := write(r.out1); err != nil {
		return total, err
	}
	r.out1 = nil
	if err := write(r.out2); err != nil {
		return total, err
	}
	r.out2 = nil
	if r.done {
		return total, nil
	}
	const flushAt = 32 << 10
	if r.s.scratch == nil {
		r.s.scratch = make([]byte, 0, flushAt+r.s.br.Size())
	}
	// buf holds whole lines; its last held bytes are the line break of the
	// last line, which belongs to a delimiter if one follows.
	buf := append(r.s.scratch[:0], r.held[:r.nh]...)
	held := r.nh
	r.nh = 0
	for {
		b, start, err := r.s.Next()
		if errors.Is(err, io.EOF) {
			// No delimiter follows: the last line break is content.
			r.done = true
			return total, write(buf)
		}
		if err != nil {
			return total, err
		}
		if start {
			if _, _, ok := r.s.Match(b); ok {
				r.s.Unread()
				r.done = true
				r.nd = copy(r.delim[:], buf[len(buf)-held:])
				return total, write(buf[:len(buf)-held])
			}
		}
		buf = append(buf, b...)
		held = 0
		if n := len(b); n > 0 && b[n-1] == '\n' {
			held = 1
			if n > 1 && b[n-2] == '\r' {
				held = 2
			}
		}
		if len(buf) >= flushAt {
			if err := write(buf[:len(buf)-held]); err != nil {
				return total, err
			}
			buf = append(buf[:0], buf[len(buf)-held:]...)
		}
	}
}

// DelimiterEOL returns the line break that preceded the delimiter ending
// the body, which belongs to the delimiter; it is empty until the body has
// been read to its end, and when the body ended at the end of input.
func (r *BodyReader) DelimiterEOL() []byte { return r.delim[:r.nd] }

// ---- header sections (RFC 5322 2.2, 3.6) ----

// RawField is a header field as read: its canonical name
// (textproto.CanonicalMIMEHeaderKey) and its value unfolded, trimmed and
// not decoded.
type RawField struct {
	Name  string
	Value string
}

// HeaderLineKind says what a line of a header section is.
type HeaderLineKind int

const (
	// LineField starts a header field.
	LineField HeaderLineKind = iota
	// LineContinuation continues the field before it (or, as the first
	// line, no field: it is then not parsed).
	LineContinuation
	// LineFragment is the rest of a line longer than the LineReader's
	// buffer.
	LineFragment
	// LineMbox is an mbox "From " separator before the top-level header;
	// it is no field.
	LineMbox
	// LineEnd is the empty line that ends the section.
	LineEnd
)

// HeaderEnd says how a header section ended.
type HeaderEnd int

const (
	HeaderEndBlank    HeaderEnd = iota // an empty line, consumed
	HeaderEndBoundary                  // a delimiter line, left unread: the entity has no body
	HeaderEndBody                      // a line that is no field, left unread: it starts the body
	HeaderEndInput                     // the end of input
)

// HeaderReader reads header sections from a LineReader with the rules of
// Parse.
type HeaderReader struct {
	// MaxBytes bounds the bytes of a section that are parsed into fields;
	// lines beyond it are still read (and given to Line) but not parsed.
	MaxBytes int
	// Root allows an mbox "From " line at the very start of the section.
	Root bool
	// Line, when not nil, receives every line of the section in order,
	// line break included, with its kind and whether it lies beyond
	// MaxBytes. The line is valid only during the call. An error from it
	// ends the read and is returned as is.
	Line func(line []byte, kind HeaderLineKind, over bool) error
}

// Read reads one header section. A boundary line ends it (left unread);
// so does a line that is no header field, which then starts the body.
// Whitespace before a field's colon is tolerated. The error is the
// LineReader's or Line's.
func (h HeaderReader) Read(s *LineReader) ([]RawField, HeaderEnd, error) {
	var fields []RawField
	var cur []byte
	total, first := 0, true
	end := HeaderEndInput
	flush := func() {
		if len(cur) == 0 {
			return
		}
		if name, value, ok := ParseField(cur); ok {
			fields = append(fields, RawField{Name: name, Value: value})
		}
		cur = cur[:0]
	}
	line := func(b []byte, kind HeaderLineKind, over bool) error {
		if h.Line == nil {
			return nil
		}
		return h.Line(b, kind, over)
	}
	for {
		b, start, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, end, err
		}
		kind := LineFragment
		if start {
			kind = LineContinuation
			if isEOL(b) {
				end = HeaderEndBlank
				if err := line(b, LineEnd, false); err != nil {
					return nil, end, err
				}
				break
			}
			if _, _, ok := s.Match(b); ok {
				s.Unread()
				end = HeaderEndBoundary
				break
			}
			if b[0] != ' ' && b[0] != '\t' {
				flush()
				if _, _, ok := splitField(b); !ok {
					if first && h.Root && bytes.HasPrefix(b, []byte("From ")) {
						if err := line(b, LineMbox, false); err != nil {
							return nil, end, err
						}
						continue
					}
					s.Unread()
					end = HeaderEndBody
					break
				}
				kind = LineField
			}
		}
		first = false
		total += len(b)
		over := total > h.MaxBytes
		if err := line(b, kind, over); err != nil {
			return nil, end, err
		}
		if !over {
			cur = append(cur, b...)
		}
	}
	flush()
	return fields, end, nil
}

// ParseField splits one raw header field, continuation lines included,
// into its canonical name and its unfolded, trimmed value. ok is false
// when the text does not start with a field name and a colon.
func ParseField(raw []byte) (name, value string, ok bool) {
	n, v, ok := splitField(raw)
	if !ok {
		return "", "", false
	}
	return textproto.CanonicalMIMEHeaderKey(string(n)), strings.TrimSpace(Unfold(string(v))), true
}

// ValidFieldName reports whether name is a header field name: one or more
// printable US-ASCII characters other than colon (RFC 5322 2.2).
func ValidFieldName(name string) bool { return validFieldName([]byte(name)) }

// Unfold removes folding line breaks (RFC 5322 2.2.3) and stray CR and LF
// from a header value.
func Unfold(s string) string { return unfold(s) }

// Lookup returns the value of the first field named name (canonical form).
func Lookup(fields []RawField, name string) (string, bool) {
	for _, f := range fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// ---- media types and entity classification (RFC 2045, 2046, 2231) ----

// SplitParameters splits a media-type value at the semicolons outside
// quoted strings and comments: the token first, then each parameter as
// written. It always returns at least one element.
func SplitParameters(v string) []string { return splitUnquoted(v, ';') }

// Entity is what a MIME entity's header says about how to walk it.
type Entity struct {
	// MediaType is the lower-case type/subtype after defaulting: the
	// default type when Content-Type is missing or invalid, text/plain for
	// a multipart without a boundary.
	MediaType string
	// Params are the Content-Type parameters; nil when it was defaulted.
	Params map[string]string
	// CTE is the Content-Transfer-Encoding, lower-case, comments removed.
	CTE string
	// Disposition is the Content-Disposition token, lower-case.
	Disposition string
	// Filename is the disposition's filename, else the type's name, decoded.
	Filename string
	// Multipart is set for a multipart with a boundary: its body parts are
	// the entity's children.
	Multipart bool
	// Message is set for message/rfc822 and message/global (RFC 6532): the
	// body is a message whose body is section 1 of the entity.
	Message bool
	// BadContentType is set when a Content-Type was present but invalid.
	BadContentType bool
	// NoBoundary is set for a multipart type without a boundary, read as
	// text/plain.
	NoBoundary bool
}

// ClassifyEntity reads the MIME fields of a header section. defType is the
// type of an entity without a valid Content-Type ("" for text/plain, or
// see ChildType).
func ClassifyEntity(fields []RawField, defType string) Entity {
	e, _, _ := classify(fields, defType, "")
	return e
}

// IdentityCTE reports whether a (lower-case) transfer encoding leaves the
// body as it is: none, 7bit, 8bit or binary.
func IdentityCTE(cte string) bool {
	return cte == "" || cte == "7bit" || cte == "8bit" || cte == "binary"
}

// ChildType returns the default type of the body parts of a multipart of
// type mediaType (RFC 2046 5.1.5: message/rfc822 in a multipart/digest).
func ChildType(mediaType string) string {
	if mediaType == "multipart/digest" {
		return "message/rfc822"
	}
	return "text/plain"
}

// JoinPath returns the section number of the n-th (from 1) child of the
// entity at prefix (RFC 3501 6.4.5); prefix "" is the message itself.
// The body of a message that is not an opened multipart is its child 1.
func JoinPath(prefix string, n int) string {
	if prefix == "" {
		return strconv.Itoa(n)
	}
	return prefix + "." + strconv.Itoa(n)
}

// classify implements ClassifyEntity; fallback is the charset for raw
// 8-bit file names, and the flags are those of decoding Content-Type and
// Content-Disposition.
func classify(fields []RawField, defType, fallback string) (e Entity, ctFlags, cdFlags hdrFlags) {
	if defType == "" {
		defType = "text/plain"
	}
	e.MediaType = defType
	if v, ok := Lookup(fields, "Content-Type"); ok {
		t, p, f := parseMediaValue(v, fallback)
		ctFlags = f
		if validMediaType(t) {
			e.MediaType, e.Params = t, p
		} else {
			e.BadContentType = true
		}
	}
	cte, _ := Lookup(fields, "Content-Transfer-Encoding")
	e.CTE = strings.ToLower(strings.TrimSpace(stripComments(cte)))
	var dparams map[string]string
	if v, ok := Lookup(fields, "Content-Disposition"); ok {
		e.Disposition, dparams, cdFlags = parseMediaValue(v, fallback)
	}
	e.Filename = dparams["filename"]
	if e.Filename == "" {
		e.Filename = e.Params["name"]
	}
	e.Multipart = strings.HasPrefix(e.MediaType, "multipart/")
	e.Message = e.MediaType == "message/rfc822" || e.MediaType == "message/global"
	if e.Multipart && e.Params["boundary"] == "" {
		e.Multipart, e.NoBoundary = false, true
		e.MediaType = "text/plain"
	}
	return e, ctFlags, cdFlags
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

// ---- transfer decoding (RFC 2045 6) ----

// NewTransferDecoder returns a reader of body with the transfer encoding
// cte (lower-case, as Entity.CTE) undone, leniently as mail readers do:
// base64 skips bytes outside its alphabet, carries on after padding and
// decodes an unpadded tail; quoted-printable keeps malformed escapes
// literally and accepts transport padding before a soft line break. An
// identity or unknown encoding returns body itself. It never fails on bad
// input; read errors are body's.
func NewTransferDecoder(body io.Reader, cte string) io.Reader {
	switch cte {
	case "base64":
		return transform.NewReader(body, &b64Decoder{})
	case "quoted-printable":
		return transform.NewReader(body, &qpDecoder{})
	}
	return body
}
