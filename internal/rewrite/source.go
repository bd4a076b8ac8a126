package rewrite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
)

// lineBufSize is the longest line fragment read at once. It equals
// mailtext's so that overlong lines split the same way in both walks.
const lineBufSize = 64 << 10

// ctxReader fails reads once ctx is done, so a stalled or endless input
// cannot outlive the caller's deadline. The first error other than io.EOF
// is kept and repeated.
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

// source yields the lines of the message, cut into fragments no longer
// than its buffer, and knows the boundaries of the open multiparts.
type source struct {
	br          *bufio.Reader
	bounds      [][]byte // "--boundary", innermost last
	line        []byte
	lineStart   bool
	nextAtStart bool
	unread      bool
}

func newSource(r io.Reader, size int) *source {
	return &source{br: bufio.NewReaderSize(r, size), nextAtStart: true}
}

// next returns the next line or fragment (valid until the following call)
// and whether it starts a line. io.EOF marks the end of input.
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

// unreadLine pushes back the line just returned by next.
func (s *source) unreadLine() { s.unread = true }

// copyRest writes everything not yet consumed, the pushed-back line first.
func (s *source) copyRest(o *output) error {
	if s.unread {
		s.unread = false
		o.write(s.line)
	}
	if o.err != nil {
		return o.err
	}
	if _, err := s.br.WriteTo(o); err != nil {
		return err
	}
	return o.err
}

// detectEOL peeks at the first line: the message's own line ending is used
// for everything Apply writes. CRLF (RFC 5322) unless the first line ends
// in a bare LF.
func detectEOL(s *source) string {
	b, _ := s.br.Peek(lineBufSize)
	if i := bytes.IndexByte(b, '\n'); i >= 0 && (i == 0 || b[i-1] != '\r') {
		return "\n"
	}
	return "\r\n"
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

// match reports whether a line is a boundary delimiter of an open multipart
// (RFC 2046 5.1.1: "--" boundary, optional "--", transport padding) and of
// which level; the innermost level wins.
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
		switch rest := t[len(bd):]; string(rest) {
		case "":
			return i, false, true
		case "--":
			return i, true, true
		}
	}
	return 0, false, false
}

// bodyReader reads an entity body up to the next boundary line of any open
// level, leaving that line unread. The line break before a boundary belongs
// to the delimiter (RFC 2046 5.1.1): it is held back until the following
// line is known not to be a boundary, and kept in delimEOL when one is.
type bodyReader struct {
	s        *source
	held     [2]byte
	nh       int
	emit     [2]byte
	out1     []byte
	out2     []byte
	done     bool
	lines    int  // lines (or fragments) consumed
	atBound  bool // ended at a boundary rather than at the end of input
	delimEOL []byte
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
				r.done, r.atBound = true, true
				r.delimEOL = append([]byte(nil), r.held[:r.nh]...)
				break
			}
		}
		r.lines++
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

// output buffers writes to the destination and keeps the first error, so
// loops can stop early and the error surfaces once.
type output struct {
	w    io.Writer
	bw   *bufio.Writer
	err  error
	last byte // last byte written
}

func (o *output) Write(p []byte) (int, error) {
	o.write(p)
	if o.err != nil {
		return 0, o.err
	}
	return len(p), nil
}

func (o *output) write(p []byte) {
	if o.err != nil {
		return
	}
	if o.bw == nil {
		o.bw = bufio.NewWriterSize(o.w, 32<<10)
	}
	if len(p) > 0 {
		o.last = p[len(p)-1]
	}
	_, o.err = o.bw.Write(p)
}

func (o *output) writeString(s string) {
	if o.err != nil {
		return
	}
	if o.bw == nil {
		o.bw = bufio.NewWriterSize(o.w, 32<<10)
	}
	if len(s) > 0 {
		o.last = s[len(s)-1]
	}
	_, o.err = o.bw.WriteString(s)
}

// startLine ends a line the input left open (a delimiter at the very end
// of the input) before a new entity is written.
func (o *output) startLine(eol string) {
	if o.last != 0 && o.last != '\n' {
		o.writeString(eol)
	}
}

func (o *output) flush() error {
	if o.err == nil && o.bw != nil {
		o.err = o.bw.Flush()
	}
	return o.err
}
