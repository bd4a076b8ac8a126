package av

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mailgate/mailgate/internal/mailtext"
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

// walkLimits are the bounds of one walk; zero fields take mailtext's
// defaults so that both walkers stop at the same places.
type walkLimits struct {
	maxDepth   int
	maxParts   int
	maxHeader  int
	maxDecoded int64
}

func limitsFrom(l mailtext.Limits) walkLimits {
	d := l.WithDefaults()
	return walkLimits{maxDepth: d.MaxDepth, maxParts: d.MaxParts, maxHeader: d.MaxHeaderBytes, maxDecoded: d.MaxDecodedBytes}
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
	// A visitor that swallowed a read error cannot hide that the message
	// was not read: the context reader keeps it.
	in := mailtext.NewContextReader(ctx, r)
	err := w.entity(mailtext.NewLineReader(in, mailtext.LineBufSize), entityCtx{msgBody: true, root: true})
	if err == nil {
		err = in.Err()
	}
	if err != nil {
		return walkResult{}, err
	}
	return walkResult{Leaves: w.leaves, Incomplete: w.incomplete}, nil
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

// readHeader reads one header section with mailtext's rules, keeping at
// most maxHeader bytes of it.
func (w *walker) readHeader(s *mailtext.LineReader, e entityCtx) ([]mailtext.RawField, error) {
	fields, _, err := mailtext.HeaderReader{
		MaxBytes: w.lim.maxHeader,
		Root:     e.root,
		Line: func(_ []byte, _ mailtext.HeaderLineKind, over bool) error {
			if over {
				w.bound(fmt.Sprintf("header section over %d bytes", w.lim.maxHeader))
			}
			return nil
		},
	}.Read(s)
	return fields, err
}

// entity walks one MIME entity: header, then body by type.
func (w *walker) entity(s *mailtext.LineReader, e entityCtx) error {
	if w.stopped {
		return nil
	}
	w.entities++
	// The body of a message is section 1 of it when it is not multipart
	// (RFC 3501 6.4.5).
	path := e.section
	if e.msgBody {
		path = mailtext.JoinPath(e.section, 1)
	}
	if w.entities > w.lim.maxParts {
		w.bound(fmt.Sprintf("more than %d MIME entities", w.lim.maxParts))
		w.stopped = true
		return nil
	}
	fields, err := w.readHeader(s, e)
	if err != nil {
		return err
	}
	ent := mailtext.ClassifyEntity(fields, e.defType)
	if (ent.Multipart || ent.Message) && e.depth >= w.lim.maxDepth {
		// Not opened: skip its body up to an enclosing delimiter.
		w.bound(fmt.Sprintf("nesting deeper than %d", w.lim.maxDepth))
		_, err := io.Copy(io.Discard, &countReader{r: s.Body(), w: w})
		return err
	}
	switch {
	case ent.Multipart:
		return w.multipart(s, e, ent.Params["boundary"], ent.MediaType)
	case ent.Message:
		return w.message(s, e, path, ent.CTE)
	}
	return w.leaf(s, leafPart{Path: path, ContentType: ent.MediaType, InMessage: e.inMessage}, ent.CTE)
}

func (w *walker) multipart(s *mailtext.LineReader, e entityCtx, boundary, mediaType string) error {
	level := s.PushBoundary(boundary)
	defer s.PopBoundary(level)
	childType := mailtext.ChildType(mediaType)
	n := 0
	for !w.stopped {
		b, start, err := s.Next()
		if errors.Is(err, io.EOF) {
			break // not terminated: the content so far still counts
		}
		if err != nil {
			return err
		}
		if !start {
			continue
		}
		l, final, ok := s.Match(b)
		if !ok {
			continue // preamble or epilogue of an inner level
		}
		if l < level {
			s.Unread() // closed by an enclosing delimiter
			break
		}
		if final {
			// The epilogue is skipped up to an enclosing delimiter; a bound
			// hit while reading it stops the walk at once.
			if w.stopped {
				return nil
			}
			return s.SkipTo(level, func([]byte) bool { return !w.stopped })
		}
		n++
		child := entityCtx{section: mailtext.JoinPath(e.section, n), depth: e.depth + 1, defType: childType, inMessage: e.inMessage}
		if err := w.entity(s, child); err != nil {
			return err
		}
	}
	return nil
}

// message walks an encapsulated message (RFC 2046 5.2.1): unencoded, from
// the same line source; base64 or quoted-printable encoded (not allowed,
// but sent), from its own source over the decoded bytes.
func (w *walker) message(s *mailtext.LineReader, e entityCtx, path, cte string) error {
	inner := entityCtx{section: path, msgBody: true, depth: e.depth + 1, inMessage: true}
	if mailtext.IdentityCTE(cte) {
		return w.entity(s, inner)
	}
	cr := &countReader{r: mailtext.NewTransferDecoder(s.Body(), cte), w: w}
	if err := w.entity(mailtext.NewLineReader(cr, mailtext.NestedLineBufSize), inner); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, cr)
	return err
}

func (w *walker) leaf(s *mailtext.LineReader, p leafPart, cte string) error {
	w.leaves++
	cr := &countReader{r: mailtext.NewTransferDecoder(s.Body(), cte), w: w}
	if err := w.visit(p, cr); err != nil {
		return err
	}
	// Whatever the visitor left is read so the walk can go on.
	_, err := io.Copy(io.Discard, cr)
	return err
}
