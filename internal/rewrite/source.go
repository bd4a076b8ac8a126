package rewrite

import (
	"bufio"
	"bytes"
	"io"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// lineBufSize is the longest line fragment read at once. It equals
// mailtext's so that overlong lines split the same way in both walks.
const lineBufSize = mailtext.LineBufSize

// source is the line reader the walk shares with mailtext, so overlong
// lines, delimiters and header sections are read identically.
type source = mailtext.LineReader

func newSource(r io.Reader, size int) *source { return mailtext.NewLineReader(r, size) }

// copyRest writes everything not yet consumed, the pushed-back line first.
func copyRest(s *source, o *output) error {
	if err := s.WriteRest(o); err != nil {
		return err
	}
	return o.err
}

// detectEOL peeks at the first line: the message's own line ending is used
// for everything Apply writes. CRLF (RFC 5322) unless the first line ends
// in a bare LF.
func detectEOL(s *source) string {
	b, _ := s.Peek(lineBufSize)
	return eolOf(b)
}

// eolOf is the line ending of the message starting with b: that of its
// first line.
func eolOf(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 && (i == 0 || b[i-1] != '\r') {
		return "\n"
	}
	return "\r\n"
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// output buffers writes to the destination and keeps the first error, so
// loops can stop early and the error surfaces once.
type output struct {
	w     io.Writer
	bw    *bufio.Writer
	err   error
	last  byte // last byte written
	wrote bool // anything was written (last may be a NUL byte)
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
		o.last, o.wrote = p[len(p)-1], true
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
		o.last, o.wrote = s[len(s)-1], true
	}
	_, o.err = o.bw.WriteString(s)
}

// startLine ends a line the input left open (a delimiter at the very end
// of the input) before a new entity is written.
func (o *output) startLine(eol string) {
	switch {
	case o.last == '\r' && eol == "\r\n":
		// A line cut off after its CR (the input ended there) only needs
		// the LF; a second CR would make the line read differently.
		o.writeString("\n")
	case o.wrote && o.last != '\n':
		o.writeString(eol)
	}
}

func (o *output) flush() error {
	if o.err == nil && o.bw != nil {
		o.err = o.bw.Flush()
	}
	return o.err
}
