package preview

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// The preview needs what mailtext.Parse does not keep: the HTML source of
// the body and the bytes of attachments. This walker reads the MIME tree
// with mailtext's exported primitives (line source, header reader, entity
// classification, transfer decoders), so splitting, header and delimiter
// rules are mailtext's and section numbers match mailtext's Part.Path
// (RFC 3501 6.4.5). It decodes nothing itself.

// leaf is one leaf entity handed to the visitor.
type leaf struct {
	Path        string
	ContentType string // lower-case type/subtype after defaulting
	Charset     string // declared charset parameter, may be ""
	Filename    string // decoded, from Content-Disposition or Content-Type
	Disposition string // lower-case token
	// Alt is the number (from 1) of the innermost multipart/alternative
	// holding the leaf, 0 when there is none.
	Alt int
}

// visitFunc receives each leaf with a reader of its transfer-decoded body,
// valid only during the call. An error from it ends the walk as is.
type visitFunc func(l leaf, body io.Reader) error

type walker struct {
	lim      mailtext.Limits
	visit    visitFunc
	entities int
	decoded  int64
	alts     int
	stopped  bool // a global bound was hit: read nothing more
	// rootHeader receives the raw top-level header section (fields only,
	// at most MaxHeaderBytes) so that mailtext.Parse can decode it.
	rootHeader []byte
	problems   []string
}

type entityCtx struct {
	section string
	msgBody bool
	root    bool
	depth   int
	defType string
	alt     int
}

// walk reads the message from r once, sequentially, with memory bounded by
// lim (one header section and a line buffer per encoded message level). It
// fails only when reading r fails, ctx is done, or visit fails; the walker
// is returned either way.
func walk(ctx context.Context, r io.Reader, lim mailtext.Limits, visit visitFunc) (*walker, error) {
	w := &walker{lim: lim.WithDefaults(), visit: visit}
	in := mailtext.NewContextReader(ctx, r)
	err := w.entity(mailtext.NewLineReader(in, mailtext.LineBufSize), entityCtx{msgBody: true, root: true})
	if err == nil {
		// A visitor that swallowed a read error cannot hide it.
		err = in.Err()
	}
	return w, err
}

func (w *walker) problem(format string, args ...any) {
	const maxProblems = 100
	if len(w.problems) < maxProblems {
		w.problems = append(w.problems, fmt.Sprintf(format, args...))
	}
}

// countReader enforces MaxDecodedBytes over the whole walk.
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
	if c.w.decoded > c.w.lim.MaxDecodedBytes {
		c.w.problem("message larger than %d decoded bytes: the rest is not shown", c.w.lim.MaxDecodedBytes)
		c.w.stopped = true
		return n, io.EOF
	}
	return n, err
}

func (w *walker) entity(s *mailtext.LineReader, e entityCtx) error {
	if w.stopped {
		return nil
	}
	w.entities++
	path := e.section
	if e.msgBody {
		path = mailtext.JoinPath(e.section, 1)
	}
	if w.entities > w.lim.MaxParts {
		w.problem("more than %d MIME parts: the rest is not shown", w.lim.MaxParts)
		w.stopped = true
		return nil
	}
	over := false
	fields, _, err := mailtext.HeaderReader{
		MaxBytes: w.lim.MaxHeaderBytes,
		Root:     e.root,
		Line: func(line []byte, kind mailtext.HeaderLineKind, beyond bool) error {
			if beyond {
				over = true
				return nil
			}
			if e.root && kind != mailtext.LineMbox && kind != mailtext.LineEnd {
				w.rootHeader = append(w.rootHeader, line...)
			}
			return nil
		},
	}.Read(s)
	if err != nil {
		return err
	}
	if over {
		w.problem("header of part %s larger than %d bytes: cut", path, w.lim.MaxHeaderBytes)
	}
	ent := mailtext.ClassifyEntity(fields, e.defType)
	if ent.Multipart && e.depth >= w.lim.MaxDepth {
		w.problem("part %s nested deeper than %d: not shown", path, w.lim.MaxDepth)
		_, err := io.Copy(io.Discard, &countReader{r: s.Body(), w: w})
		return err
	}
	if ent.Multipart {
		return w.multipart(s, e, ent.Params["boundary"], ent.MediaType)
	}
	// An encapsulated message (RFC 2046 5.2.1) is not opened: the preview
	// shows the outer message, and a forwarded one is offered whole as an
	// attachment, as mail readers offer it.
	l := leaf{
		Path:        path,
		ContentType: ent.MediaType,
		Charset:     ent.Params["charset"],
		Filename:    ent.Filename,
		Disposition: ent.Disposition,
		Alt:         e.alt,
	}
	cr := &countReader{r: mailtext.NewTransferDecoder(s.Body(), ent.CTE), w: w}
	if err := w.visit(l, cr); err != nil {
		return err
	}
	// Whatever the visitor left is read so the walk can go on.
	_, err = io.Copy(io.Discard, cr)
	return err
}

func (w *walker) multipart(s *mailtext.LineReader, e entityCtx, boundary, mediaType string) error {
	level := s.PushBoundary(boundary)
	defer s.PopBoundary(level)
	alt := e.alt
	if mediaType == "multipart/alternative" {
		w.alts++
		alt = w.alts
	}
	childType := mailtext.ChildType(mediaType)
	n := 0
	for !w.stopped {
		b, start, err := s.Next()
		if errors.Is(err, io.EOF) {
			return nil // unterminated: what was read still shows
		}
		if err != nil {
			return err
		}
		if !start {
			continue
		}
		l, final, ok := s.Match(b)
		if !ok {
			continue // preamble, or epilogue of an inner level
		}
		if l < level {
			s.Unread() // closed by an enclosing delimiter
			return nil
		}
		if final {
			return s.SkipTo(level, func([]byte) bool { return !w.stopped })
		}
		n++
		child := entityCtx{
			section: mailtext.JoinPath(e.section, n),
			depth:   e.depth + 1,
			defType: childType,
			alt:     alt,
		}
		if err := w.entity(s, child); err != nil {
			return err
		}
	}
	return nil
}
