package av

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
	"golang.org/x/text/transform"
)

// The part walker hands the decoded bytes of every leaf MIME part to a
// visitor. mailtext.Parse decodes the same tree but keeps only text, and a
// virus scan needs the raw bytes of attachments; go-message's reader would
// number parts differently from mailtext on malformed input (it stops at the
// first broken delimiter). So this walker follows mailtext's reading rules
// line for line: one line source for all nesting levels, an outer boundary
// closing an unterminated inner multipart, the same header rules and the
// same bounds, giving the same section numbers (RFC 3501 6.4.5) as
// mailtext's Part.Path. Check still confirms each infected part against
// mailtext's parts (path, type and decoded size) before stripping it.

const (
	topBufSize    = 64 << 10 // line fragment size of the outer source (as mailtext)
	nestedBufSize = 16 << 10 // for a base64/QP-encoded message/rfc822 (as mailtext)
	maxParams     = 64
	maxContinue   = 256
)

// walkLimits are the bounds of one walk; zero fields take mailtext's
// defaults so that both walkers stop at the same places.
type walkLimits struct {
	maxDepth   int
	maxParts   int
	maxHeader  int
	maxDecoded int64
}

func limitsFrom(l mailtext.Limits) walkLimits {
	d := mailtext.DefaultLimits()
	w := walkLimits{maxDepth: l.MaxDepth, maxParts: l.MaxParts, maxHeader: l.MaxHeaderBytes, maxDecoded: l.MaxDecodedBytes}
	if w.maxDepth <= 0 {
		w.maxDepth = d.MaxDepth
	}
	if w.maxParts <= 0 {
		w.maxParts = d.MaxParts
	}
	if w.maxHeader <= 0 {
		w.maxHeader = d.MaxHeaderBytes
	}
	if w.maxDecoded <= 0 {
		w.maxDecoded = d.MaxDecodedBytes
	}
	return w
}

// leafPart describes one leaf entity handed to the visitor.
type leafPart struct {
	Path        string // IMAP section number, as mailtext's Part.Path
	ContentType string // lower-case type/subtype after defaulting
	// InMessage is true inside an encapsulated message/rfc822 or
	// message/global: such a part is never the body of the mail itself.
	InMessage bool
}

// walkResult summarises a walk.
type walkResult struct {
	Leaves int
	// Incomplete names the first bound that was hit ("" when the whole tree
	// was seen): part of the content was then not handed to the visitor.
	Incomplete string
}

// visitFunc receives each leaf with a reader of its transfer-decoded body.
// It may read as much or as little as it likes; the reader is only valid
// during the call. An error from it ends the walk and is returned as is.
type visitFunc func(p leafPart, body io.Reader) error

// walkParts walks the message read from r. It reads r at most once,
// sequentially; memory stays bounded by the limits (one header section, a
// line buffer per nesting of encoded messages). It fails only when reading
// r fails, ctx is done, or visit fails.
func walkParts(ctx context.Context, r io.Reader, lim walkLimits, visit visitFunc) (walkResult, error) {
	w := &walker{lim: lim, visit: visit}
	in := &ctxReader{ctx: ctx, r: r}
	err := w.entity(newSource(in, topBufSize), entityCtx{msgBody: true, root: true})
	if err == nil {
		err = in.err
	}
	if err != nil {
		return walkResult{}, err
	}
	return walkResult{Leaves: w.leaves, Incomplete: w.incomplete}, nil
}

// ctxReader fails reads once ctx is done and keeps the first read error, so
// a visitor that swallowed it cannot hide that the message was not read.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (c *ctxReader) Read(p []byte) (int, error) {
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

// source yields lines (or fragments of overlong lines) and keeps the
// delimiters of all open multiparts, innermost last.
type source struct {
	br          *bufio.Reader
	bounds      [][]byte
	line        []byte
	lineStart   bool
	nextAtStart bool
	unread      bool
}

func newSource(r io.Reader, size int) *source {
	return &source{br: bufio.NewReaderSize(r, size), nextAtStart: true}
}

// next returns the next line or fragment, valid until the following call,
// and whether it starts a line; io.EOF ends the input.
func (s *source) next() ([]byte, bool, error) {
	if s.unread {
		s.unread = false
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
	return b, start, nil
}

func (s *source) unreadLine() { s.unread = true }

// match reports whether b is a delimiter line of an open multipart (RFC 2046
// 5.1.1: "--" boundary, optional "--", transport padding) and of which
// level; the innermost level wins.
func (s *source) match(b []byte) (level int, final, ok bool) {
	if len(s.bounds) == 0 || len(b) < 3 || b[0] != '-' || b[1] != '-' {
		return 0, false, false
	}
	t := bytes.TrimRight(trimEOL(b), " \t")
	for i := len(s.bounds) - 1; i >= 0; i-- {
		bd := s.bounds[i]
		if !bytes.HasPrefix(t, bd) {
			continue
		}
		switch string(t[len(bd):]) {
		case "":
			return i, false, true
		case "--":
			return i, true, true
		}
	}
	return 0, false, false
}

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

// bodyReader reads an entity body up to the next delimiter line of any open
// level, which stays unread. The line break before a delimiter belongs to
// the delimiter (RFC 2046 5.1.1), so each line break is held back until the
// next line is known not to be one.
type bodyReader struct {
	s    *source
	held [2]byte
	nh   int
	emit [2]byte
	out1 []byte
	out2 []byte
	done bool
}

func (r *bodyReader) Read(p []byte) (int, error) {
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
		b, start, err := r.s.next()
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
			if _, _, ok := r.s.match(b); ok {
				r.s.unreadLine()
				r.done = true
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

type walker struct {
	lim        walkLimits
	visit      visitFunc
	entities   int
	decoded    int64
	leaves     int
	stopped    bool // a global bound was hit: read nothing more
	incomplete string
}

type entityCtx struct {
	section   string
	msgBody   bool
	root      bool
	inMessage bool
	depth     int
	defType   string
}

func (w *walker) bound(reason string) {
	if w.incomplete == "" {
		w.incomplete = reason
	}
}

// countReader counts decoded bytes against maxDecoded; past it the stream
// ends and the walk stops, as mailtext's does.
type countReader struct {
	r io.Reader
	w *walker
}

func (c *countReader) Read(p []byte) (int, error) {
	if c.w.stopped {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	c.w.decoded += int64(n)
	if c.w.decoded > c.w.lim.maxDecoded {
		c.w.bound(fmt.Sprintf("more than %d decoded bytes", c.w.lim.maxDecoded))
		c.w.stopped = true
		return n, io.EOF
	}
	return n, err
}

func joinPath(prefix string, n int) string {
	if prefix == "" {
		return strconv.Itoa(n)
	}
	return prefix + "." + strconv.Itoa(n)
}

// partHeader is what the walk needs of a header section: the first
// occurrence of each MIME field.
type partHeader struct {
	contentType, cte string
	hasCT            bool
}

func isEOL(b []byte) bool {
	return len(b) == 1 && b[0] == '\n' || len(b) == 2 && b[0] == '\r' && b[1] == '\n'
}

// fieldName returns the name of a header line, or false when the line is
// no header field. Whitespace before the colon is tolerated.
func fieldName(line []byte) ([]byte, bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, false
	}
	name := bytes.TrimRight(line[:i], " \t")
	if len(name) == 0 {
		return nil, false
	}
	for _, c := range name {
		if c < 33 || c > 126 || c == ':' {
			return nil, false
		}
	}
	return name, true
}

// readHeader reads one header section, keeping at most maxHeader bytes of
// it. A delimiter line ends it (the part has no body); so does a line that
// is no header field, which then starts the body.
func (w *walker) readHeader(s *source, e entityCtx) (partHeader, error) {
	var h partHeader
	var cur []byte
	total, first := 0, true
	flush := func() {
		if len(cur) == 0 {
			return
		}
		name, ok := fieldName(cur)
		if ok {
			val := cur[bytes.IndexByte(cur, ':')+1:]
			switch textproto.CanonicalMIMEHeaderKey(string(name)) {
			case "Content-Type":
				if !h.hasCT {
					h.hasCT = true
					h.contentType = strings.TrimSpace(unfold(string(val)))
				}
			case "Content-Transfer-Encoding":
				if h.cte == "" {
					h.cte = strings.TrimSpace(unfold(string(val)))
					if h.cte == "" {
						h.cte = " " // present but empty: the first one still wins
					}
				}
			}
		}
		cur = cur[:0]
	}
	for {
		b, start, err := s.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return h, err
		}
		if start {
			if isEOL(b) {
				break
			}
			if _, _, ok := s.match(b); ok {
				s.unreadLine()
				break
			}
			if b[0] != ' ' && b[0] != '\t' {
				flush()
				if _, ok := fieldName(b); !ok {
					if first && e.root && bytes.HasPrefix(b, []byte("From ")) {
						continue // mbox separator
					}
					s.unreadLine()
					break
				}
			}
		}
		first = false
		total += len(b)
		if total > w.lim.maxHeader {
			w.bound(fmt.Sprintf("header section over %d bytes", w.lim.maxHeader))
			continue
		}
		cur = append(cur, b...)
	}
	flush()
	h.cte = strings.TrimSpace(h.cte)
	return h, nil
}

func unfold(s string) string {
	if strings.IndexAny(s, "\r\n") < 0 {
		return s
	}
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
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

// entity walks one MIME entity: header, then body by type.
func (w *walker) entity(s *source, e entityCtx) error {
	if w.stopped {
		return nil
	}
	w.entities++
	// The body of a message is section 1 of it when it is not multipart
	// (RFC 3501 6.4.5).
	path := e.section
	if e.msgBody {
		path = joinPath(e.section, 1)
	}
	if w.entities > w.lim.maxParts {
		w.bound(fmt.Sprintf("more than %d MIME entities", w.lim.maxParts))
		w.stopped = true
		return nil
	}
	h, err := w.readHeader(s, e)
	if err != nil {
		return err
	}
	mediaType := e.defType
	if mediaType == "" {
		mediaType = "text/plain"
	}
	var boundary string
	if h.hasCT {
		t, b := parseContentType(h.contentType)
		if validMediaType(t) {
			mediaType, boundary = t, b
		}
	}
	cte := strings.ToLower(strings.TrimSpace(stripComments(h.cte)))

	isMultipart := strings.HasPrefix(mediaType, "multipart/")
	isMessage := mediaType == "message/rfc822" || mediaType == "message/global"
	if isMultipart && boundary == "" {
		isMultipart = false
		mediaType = "text/plain"
	}
	if (isMultipart || isMessage) && e.depth >= w.lim.maxDepth {
		// Not opened: skip its body up to an enclosing delimiter.
		w.bound(fmt.Sprintf("nesting deeper than %d", w.lim.maxDepth))
		_, err := io.Copy(io.Discard, &countReader{r: &bodyReader{s: s}, w: w})
		return err
	}
	switch {
	case isMultipart:
		return w.multipart(s, e, boundary, mediaType)
	case isMessage:
		return w.message(s, e, path, cte)
	}
	return w.leaf(s, leafPart{Path: path, ContentType: mediaType, InMessage: e.inMessage}, cte)
}

func (w *walker) multipart(s *source, e entityCtx, boundary, mediaType string) error {
	s.bounds = append(s.bounds, []byte("--"+boundary))
	level := len(s.bounds) - 1
	defer func() { s.bounds = s.bounds[:level] }()
	childType := "text/plain"
	if mediaType == "multipart/digest" {
		childType = "message/rfc822" // RFC 2046 5.1.5
	}
	n := 0
	for !w.stopped {
		b, start, err := s.next()
		if errors.Is(err, io.EOF) {
			break // not terminated: the content so far still counts
		}
		if err != nil {
			return err
		}
		if !start {
			continue
		}
		l, final, ok := s.match(b)
		if !ok {
			continue // preamble or epilogue of an inner level
		}
		if l < level {
			s.unreadLine() // closed by an enclosing delimiter
			break
		}
		if final {
			return w.drainLines(s, level)
		}
		n++
		child := entityCtx{section: joinPath(e.section, n), depth: e.depth + 1, defType: childType, inMessage: e.inMessage}
		if err := w.entity(s, child); err != nil {
			return err
		}
	}
	return nil
}

// drainLines skips the epilogue up to a delimiter of an enclosing level,
// which is left unread, or to the end of input.
func (w *walker) drainLines(s *source, level int) error {
	for !w.stopped {
		b, start, err := s.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !start {
			continue
		}
		if l, _, ok := s.match(b); ok && l < level {
			s.unreadLine()
			return nil
		}
	}
	return nil
}

func identityCTE(cte string) bool {
	return cte == "" || cte == "7bit" || cte == "8bit" || cte == "binary"
}

// transferDecode wraps body in the decoder for cte (RFC 2045 6); an unknown
// encoding is read as is, as mail readers do.
func transferDecode(body io.Reader, cte string) io.Reader {
	switch cte {
	case "base64":
		return transform.NewReader(body, &b64Decoder{})
	case "quoted-printable":
		return transform.NewReader(body, &qpDecoder{})
	}
	return body
}

// message walks an encapsulated message (RFC 2046 5.2.1): unencoded, from
// the same line source; base64 or quoted-printable encoded (not allowed,
// but sent), from its own source over the decoded bytes.
func (w *walker) message(s *source, e entityCtx, path, cte string) error {
	inner := entityCtx{section: path, msgBody: true, depth: e.depth + 1, inMessage: true}
	if identityCTE(cte) {
		return w.entity(s, inner)
	}
	cr := &countReader{r: transferDecode(&bodyReader{s: s}, cte), w: w}
	if err := w.entity(newSource(cr, nestedBufSize), inner); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, cr)
	return err
}

func (w *walker) leaf(s *source, p leafPart, cte string) error {
	w.leaves++
	cr := &countReader{r: transferDecode(&bodyReader{s: s}, cte), w: w}
	if err := w.visit(p, cr); err != nil {
		return err
	}
	// Whatever the visitor left is read so the walk can go on.
	_, err := io.Copy(io.Discard, cr)
	return err
}

// ---- Content-Type (RFC 2045 5.1, RFC 2231), only what the walk needs ----

// parseContentType returns the lower-case media type and the boundary
// parameter. Parameters are read as mailtext reads them: quoted strings and
// comments respected, the first plain occurrence kept, and an RFC 2231
// continued or extended boundary winning over a plain one.
func parseContentType(v string) (mediaType, boundary string) {
	parts := splitUnquoted(v, ';')
	mediaType = strings.ToLower(strings.TrimSpace(stripComments(parts[0])))
	plainSet := false
	segs := map[int]paramSeg{}
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
		base, rest, star := strings.Cut(name, "*")
		if base != "boundary" {
			continue
		}
		if !star {
			if !plainSet {
				plainSet, boundary = true, val
			}
			continue
		}
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
				if err != nil || k < 0 || k > maxContinue {
					continue
				}
				idx = k
			}
		}
		if _, dup := segs[idx]; !dup {
			segs[idx] = paramSeg{val: val, ext: ext}
		}
	}
	if len(segs) == 0 {
		return mediaType, boundary
	}
	var raw []byte
	for k := 0; ; k++ {
		sg, ok := segs[k]
		if !ok {
			break // a gap ends the value (RFC 2231 3)
		}
		if sg.ext {
			if k == 0 {
				// charset'language'value; a boundary is ASCII, so the
				// charset changes nothing.
				if _, r, ok := strings.Cut(sg.val, "'"); ok {
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
	return mediaType, string(raw)
}

type paramSeg struct {
	val string
	ext bool
}

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
	if s == "" || s[0] != '"' {
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
