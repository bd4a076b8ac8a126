package archive

import (
	"bytes"
	"context"
	"io"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// minAttachSegment is the least size of an attachment's body stored as a
// segment of its own: smaller ones are not worth a blob.
const minAttachSegment = 4096

// splitter finds the byte spans of a message's attachment bodies: the
// header lines, the multipart lines between entities and the bodies (read
// raw) follow each other through the message, so a running offset gives
// each body's place. A body's raw bytes leave out the line break before
// the delimiter after it (RFC 2046 5.1.1: it belongs to the delimiter),
// so each line is found at the offset, after such a line break.
type splitter struct {
	raw    []byte
	off    int64
	cuts   [][2]int64
	astray bool // a line was not where the count said: no cuts
}

func (s *splitter) Header(*mailtext.Node) (mailtext.Action, error) { return mailtext.Descend, nil }

func (s *splitter) line(line []byte) {
	rest := s.raw[min(s.off, int64(len(s.raw))):]
	for _, eol := range []string{"", "\r\n", "\n"} {
		if bytes.HasPrefix(rest, []byte(eol)) && bytes.HasPrefix(rest[len(eol):], line) {
			s.off += int64(len(eol) + len(line))
			return
		}
	}
	s.astray = true
}

func (s *splitter) HeaderLine(_ *mailtext.Node, line []byte, _ mailtext.HeaderLineKind, _ bool) error {
	s.line(line)
	return nil
}

func (s *splitter) RawLine(line []byte) error {
	s.line(line)
	return nil
}

func (s *splitter) Body(n *mailtext.Node, b *mailtext.Body) error {
	start := s.off
	k, err := io.Copy(io.Discard, b.Raw())
	s.off += k
	if err == nil && k >= minAttachSegment && n.IsAttachment() {
		s.cuts = append(s.cuts, [2]int64{start, start + k})
	}
	return err
}

// segmentsOf splits a message into the parts stored as its segments: each
// attachment body of at least minAttachSegment bytes on its own (an
// attachment sent again, in another message, is then stored once), and
// the bytes between them. The segments concatenated are the message; a
// message the walk cannot account for byte by byte is one segment.
func segmentsOf(ctx context.Context, raw []byte) [][]byte {
	whole := [][]byte{raw}
	if len(raw) < 2*minAttachSegment || !bytes.Contains(raw, []byte("--")) {
		return whole
	}
	s := splitter{raw: raw}
	err := mailtext.Walk(ctx, bytes.NewReader(raw), mailtext.Limits{MaxDecodedBytes: int64(len(raw)) + 1}, &s)
	if err != nil || s.astray || s.off != int64(len(raw)) || len(s.cuts) == 0 {
		return whole
	}
	var out [][]byte
	at := int64(0)
	for _, c := range s.cuts {
		if c[0] < at || c[1] > int64(len(raw)) {
			return whole
		}
		if c[0] > at {
			out = append(out, raw[at:c[0]])
		}
		out = append(out, raw[c[0]:c[1]])
		at = c[1]
	}
	if at < int64(len(raw)) {
		out = append(out, raw[at:])
	}
	return out
}
