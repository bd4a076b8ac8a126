package mailtext

// Walk is the one walker of the MIME tree in mailgate: Parse, the
// rewriter, the virus scan and the console preview are visitors of it, so
// they split lines, match delimiters, end header sections, bound the work
// and number parts (RFC 3501 6.4.5) identically. A path Parse reports names
// the same entity in every other visitor.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/text/transform"
)

// Node is one MIME entity as Walk meets it: its place in the tree, its
// header, and what the header says about it (Entity).
type Node struct {
	Entity
	// Path is the IMAP section number (RFC 3501 6.4.5), as Part.Path: the
	// body of a message that is not an opened multipart is the message's
	// section plus ".1" ("1" for the top level).
	Path string
	// Section is the entity's own section: for the body of a message it is
	// the message's ("" for the top level), which is where problems of its
	// header section are recorded and how its children are numbered.
	Section string
	// Parent is the enclosing multipart or message, nil at the top.
	Parent *Node
	// Depth counts the containers around the entity (0 at the top).
	Depth int
	// Root is set for the top-level entity, whose header is the message's.
	Root bool
	// MsgBody is set for the body of a message (the top level or an opened
	// message/rfc822).
	MsgBody bool
	// InMessage is set inside an opened message/rfc822 or message/global:
	// such an entity is never part of the mail's own body.
	InMessage bool
	// Fields is the header section, at most Limits.MaxHeaderBytes of it.
	Fields []RawField
	// HeaderEnd says how the header section ended.
	HeaderEnd HeaderEnd
	// DepthExceeded is set for a container nested deeper than
	// Limits.MaxDepth: the walk does not open it, even when asked to.
	DepthExceeded bool
	// Size is set before EndVisitor.End: the body's bytes after transfer
	// decoding as the walk read them (0 when the visitor read it raw); for
	// an opened message/rfc822, its length as written when not encoded.
	Size int64

	refused bool     // the visitor asked to open it, but it was too deep
	defType string   // type of the entity when its Content-Type is missing
	charset string   // guess for raw 8-bit header text
	ctFlags hdrFlags // decoding problems of Content-Type
	cdFlags hdrFlags // and of Content-Disposition
}

// Action says how Walk goes on after Visitor.Header.
type Action int

const (
	// Descend opens a container (a multipart with a boundary, a
	// message/rfc822 or message/global) and walks its children. For any
	// other entity it means AsLeaf.
	Descend Action = iota
	// AsLeaf leaves the entity closed: its body goes to Visitor.Body as a
	// leaf's does.
	AsLeaf
)

// ErrStop, returned by a Visitor method, ends the walk at once: Walk then
// returns nil and leaves the rest of the input unread.
var ErrStop = errors.New("mailtext: stop the walk")

// Visitor receives the entities of a message in order. Its methods are
// called from the goroutine that called Walk, one entity at a time: for a
// given entity StartVisitor.Start, HeaderLineVisitor.HeaderLine, Header,
// then either its children or Body, then EndVisitor.End. An error from any
// method ends the walk and is returned by Walk as is (ErrStop aside).
type Visitor interface {
	// Header is called once the entity's header section was read.
	Header(n *Node) (Action, error)
	// Body is called for each entity that is not opened: leaves, containers
	// Header left closed, containers too deep (n.DepthExceeded). b is valid
	// only during the call; what the visitor leaves unread is read after it
	// returns, transfer-decoded unless only b.Raw was used.
	Body(n *Node, b *Body) error
}

// StartVisitor is a Visitor told about an entity before its header is
// read: n has its place in the tree but no header yet.
type StartVisitor interface {
	Start(n *Node) error
}

// HeaderLineVisitor is a Visitor given every line of every header section
// as read (see HeaderReader.Line).
type HeaderLineVisitor interface {
	HeaderLine(n *Node, line []byte, kind HeaderLineKind, over bool) error
}

// RawLineVisitor is a Visitor given the lines of a multipart that belong to
// no entity: preamble, delimiters and epilogue, line breaks included
// (delimiters go to DelimiterVisitor.Delimiter instead when the visitor is
// one). With the header and body lines a visitor reads, they add up to the
// input.
type RawLineVisitor interface {
	RawLine(line []byte) error
}

// DelimiterVisitor is a Visitor given the delimiter lines of a multipart
// (RFC 2046 5.1.1) instead of RawLineVisitor.RawLine: n is the multipart,
// final is set for its close delimiter. A delimiter that is not final is
// followed by the Start of the body part it opens.
type DelimiterVisitor interface {
	Delimiter(n *Node, line []byte, final bool) error
}

// EndVisitor is a Visitor told when the walk leaves an entity, after its
// body or its children; it is not called once the walk ended with an
// error.
type EndVisitor interface {
	End(n *Node) error
}

// ProblemVisitor is a Visitor told about the problems the walk finds:
// bounds hit (a container too deep that Header asked to open, and the
// bounds that stop the walk), malformed structure, header sections and
// transfer encodings. Problems of header
// values (encoded-words, charsets, an invalid Content-Type) are not
// reported; Parse finds those itself.
type ProblemVisitor interface {
	Problem(n *Node, p Problem)
}

// Walk reads one message from r and hands its MIME entities to v.
//
// It reads r once, sequentially, and stops early when a bound of lim is hit
// (MaxDepth, MaxParts, MaxHeaderBytes, MaxDecodedBytes; zero fields take
// DefaultLimits) or v returns ErrStop. Memory stays bounded whatever the
// input: one header section and a line buffer per encoded message level,
// plus what v keeps. Malformed input is read as mail readers read it:
// whitespace before a field's colon, a header ended by a line that is no
// field, an outer boundary closing an unterminated inner multipart, a
// multipart without a boundary read as text/plain, base64 and
// quoted-printable decoded leniently. The error is non-nil only when
// reading r fails, ctx is done, or v fails.
func Walk(ctx context.Context, r io.Reader, lim Limits, v Visitor) error {
	in := NewContextReader(ctx, r)
	// The line buffer is the walk's largest allocation; nothing of it is
	// reachable once the walk returns, so walks share them.
	br := lineBufs.Get().(*bufio.Reader)
	br.Reset(in)
	defer func() {
		br.Reset(nil)
		lineBufs.Put(br)
	}()
	err := WalkLines(&LineReader{br: br, nextAtStart: true}, lim, v)
	if err == nil {
		// A visitor that swallowed a read error cannot hide that the
		// message was not read.
		err = in.Err()
	}
	return err
}

// lineBufs holds the line buffers of finished walks.
var lineBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, LineBufSize) }}

// WalkLines is Walk over a LineReader the caller made, which it may read on
// from after the walk (what a stopped walk left unread). Use LineBufSize so
// overlong lines split as in every other walk.
func WalkLines(s *LineReader, lim Limits, v Visitor) error {
	w := &walk{lim: lim.withDefaults(), v: v}
	w.start, _ = v.(StartVisitor)
	w.lines, _ = v.(HeaderLineVisitor)
	w.raw, _ = v.(RawLineVisitor)
	w.delim, _ = v.(DelimiterVisitor)
	w.end, _ = v.(EndVisitor)
	w.problems, _ = v.(ProblemVisitor)
	err := w.entity(s, &Node{Path: "1", Root: true, MsgBody: true})
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

type walk struct {
	lim      Limits
	v        Visitor
	start    StartVisitor
	lines    HeaderLineVisitor
	raw      RawLineVisitor
	delim    DelimiterVisitor
	end      EndVisitor
	problems ProblemVisitor
	entities int
	decoded  int64
	stopped  bool // a global bound was hit: read nothing more
}

func (w *walk) problem(n *Node, kind ProblemKind, path, detail string) {
	if w.problems != nil {
		w.problems.Problem(n, Problem{Kind: kind, Part: path, Detail: detail})
	}
}

// singleFields may appear at most once (RFC 5322 3.6, RFC 2045 3); more
// than one is how display spoofing and parser-differential tricks work.
var singleFields = map[string]bool{
	"Date": true, "From": true, "Sender": true, "Reply-To": true, "To": true,
	"Cc": true, "Bcc": true, "Message-Id": true, "In-Reply-To": true,
	"References": true, "Subject": true, "Mime-Version": true,
	"Content-Type": true, "Content-Transfer-Encoding": true, "Content-Disposition": true,
}

// header reads and classifies n's header section.
func (w *walk) header(s *LineReader, n *Node) error {
	first, over := true, false
	fields, end, err := HeaderReader{
		MaxBytes: w.lim.MaxHeaderBytes,
		Root:     n.Root,
		Line: func(line []byte, kind HeaderLineKind, beyond bool) error {
			if w.lines != nil {
				if err := w.lines.HeaderLine(n, line, kind, beyond); err != nil {
					return err
				}
			}
			switch kind {
			case LineMbox, LineEnd:
				return nil
			case LineContinuation:
				if first {
					w.problem(n, ProblemMalformedHeader, n.Section, "header starts with a continuation line")
				}
			}
			first = false
			if beyond && !over {
				over = true
				w.problem(n, ProblemHeaderTooLarge, n.Section, fmt.Sprintf("header section over %d bytes", w.lim.MaxHeaderBytes))
			}
			return nil
		},
	}.Read(s)
	if err != nil {
		return err
	}
	if end == HeaderEndBody {
		w.problem(n, ProblemMalformedHeader, n.Section, "line without a field name ends the header")
	}
	if w.problems != nil {
		counts := map[string]int{}
		for _, f := range fields {
			if singleFields[f.Name] {
				counts[f.Name]++
				if counts[f.Name] == 2 {
					w.problem(n, ProblemDuplicateHeader, n.Section, f.Name)
				}
			}
		}
	}
	n.Fields, n.HeaderEnd = fields, end
	n.charset = headerCharset(fields)
	n.Entity, n.ctFlags, n.cdFlags = classify(fields, n.defType, n.charset)
	n.DepthExceeded = (n.Multipart || n.Message) && n.Depth >= w.lim.MaxDepth
	return nil
}

// entity walks one MIME entity: header, then body by type and by what the
// visitor asked. It returns read and visitor errors; bounds stop the walk
// through w.stopped.
func (w *walk) entity(s *LineReader, n *Node) error {
	if w.stopped {
		return nil
	}
	w.entities++
	if w.entities > w.lim.MaxParts {
		w.problem(n, ProblemTooManyParts, n.Path, fmt.Sprintf("more than %d MIME entities", w.lim.MaxParts))
		w.stopped = true
		return nil
	}
	if w.start != nil {
		if err := w.start.Start(n); err != nil {
			return err
		}
	}
	if err := w.header(s, n); err != nil {
		return err
	}
	act, err := w.v.Header(n)
	if err != nil {
		return err
	}
	open := act == Descend && (n.Multipart || n.Message)
	if open && n.DepthExceeded {
		w.problem(n, ProblemDepthExceeded, n.Path, fmt.Sprintf("nesting deeper than %d", w.lim.MaxDepth))
		open, n.refused = false, true
	}
	switch {
	case open && n.Multipart:
		err = w.multipart(s, n)
	case open:
		err = w.message(s, n)
	default:
		b := w.body(s, n)
		if err = w.v.Body(n, b); err == nil {
			err = b.finish()
		}
	}
	if err != nil {
		return err
	}
	if w.end != nil {
		return w.end.End(n)
	}
	return nil
}

func (w *walk) rawLine(b []byte) error {
	if w.raw == nil {
		return nil
	}
	return w.raw.RawLine(b)
}

// multipart walks a multipart body (RFC 2046 5.1): preamble, body parts,
// epilogue.
func (w *walk) multipart(s *LineReader, n *Node) error {
	level := s.PushBoundary(n.Params["boundary"])
	defer s.PopBoundary(level)
	childType := ChildType(n.MediaType)
	k := 0
	for !w.stopped {
		b, start, err := s.Next()
		if errors.Is(err, io.EOF) {
			// What was read still counts.
			w.problem(n, ProblemMalformedMIME, n.Section, "multipart not terminated")
			return nil
		}
		if err != nil {
			return err
		}
		if !start {
			if err := w.rawLine(b); err != nil {
				return err
			}
			continue
		}
		l, final, ok := s.Match(b)
		if ok && l < level {
			s.Unread()
			w.problem(n, ProblemMalformedMIME, n.Section, "multipart closed by an enclosing boundary")
			return nil
		}
		if ok && w.delim != nil {
			err = w.delim.Delimiter(n, b, final)
		} else {
			err = w.rawLine(b)
		}
		if err != nil {
			return err
		}
		if !ok {
			continue // preamble, or epilogue of an inner level
		}
		if final {
			return w.epilogue(s, level)
		}
		k++
		child := &Node{
			Section:   JoinPath(n.Section, k),
			Parent:    n,
			Depth:     n.Depth + 1,
			InMessage: n.InMessage,
			defType:   childType,
		}
		child.Path = child.Section
		if err := w.entity(s, child); err != nil {
			return err
		}
	}
	return nil
}

// epilogue reads lines up to a delimiter of an enclosing level, and stops as
// soon as a bound stops the walk.
func (w *walk) epilogue(s *LineReader, level int) error {
	if w.stopped {
		return nil
	}
	var rerr error
	err := s.SkipTo(level, func(b []byte) bool {
		rerr = w.rawLine(b)
		return rerr == nil && !w.stopped
	})
	if rerr != nil {
		return rerr
	}
	return err
}

// message walks an encapsulated message (RFC 2046 5.2.1). Unencoded, it is
// read from the same line source; base64 or quoted-printable encoded (not
// allowed, but sent), it is decoded and read from a source of its own.
func (w *walk) message(s *LineReader, n *Node) error {
	inner := &Node{
		Path:      JoinPath(n.Path, 1),
		Section:   n.Path,
		Parent:    n,
		Depth:     n.Depth + 1,
		MsgBody:   true,
		InMessage: true,
	}
	if IdentityCTE(n.CTE) {
		before := s.Consumed()
		if err := w.entity(s, inner); err != nil {
			return err
		}
		// Whatever a stopped inner walk left is not read.
		n.Size = s.Consumed() - before
		return nil
	}
	b := w.body(s, n)
	if err := w.entity(NewLineReader(b.Decoded(), NestedLineBufSize), inner); err != nil {
		return err
	}
	return b.finish()
}

// Body is the body of one entity, handed to Visitor.Body.
type Body struct {
	w       *walk
	n       *Node
	raw     *BodyReader
	rawUsed bool
	dec     *countReader
	report  func()
}

func (w *walk) body(s *LineReader, n *Node) *Body {
	return &Body{w: w, n: n, raw: s.Body(), report: func() {}}
}

// Raw returns the body as written, transfer encoding included, up to the
// delimiter that ends it. It does not count against MaxDecodedBytes. Use
// either Raw or Decoded.
func (b *Body) Raw() *BodyReader {
	b.rawUsed = true
	return b.raw
}

// Decoded returns the body with its transfer encoding undone leniently
// (RFC 2045 6; an unknown encoding is read as is and reported), counted
// against MaxDecodedBytes: past it the reader ends and the walk stops. The
// body of a container the walk refused to open for its depth is read as
// is.
func (b *Body) Decoded() io.Reader {
	if b.dec != nil {
		return b.dec
	}
	var r io.Reader = b.raw
	if !b.n.refused {
		r, b.report = b.w.transferDecode(b.raw, b.n)
	}
	b.dec = &countReader{r: r, w: b.w, n: b.n}
	return b.dec
}

// finish reads what the visitor left and records the decoded size.
func (b *Body) finish() error {
	if b.rawUsed && b.dec == nil {
		_, err := io.Copy(io.Discard, b.raw)
		return err
	}
	if _, err := io.Copy(io.Discard, b.Decoded()); err != nil {
		return err
	}
	b.report()
	b.n.Size = b.dec.count
	return nil
}

// transferDecode wraps body in the decoder for n's transfer encoding; the
// returned func reports malformed encoding once the body was read.
func (w *walk) transferDecode(body io.Reader, n *Node) (io.Reader, func()) {
	switch n.CTE {
	case "base64":
		d := &b64Decoder{}
		return transform.NewReader(body, d), func() {
			if d.bad() {
				w.problem(n, ProblemBadBase64, n.Path, fmt.Sprintf("%d invalid bytes", d.invalid))
			}
		}
	case "quoted-printable":
		d := &qpDecoder{}
		return transform.NewReader(body, d), func() {
			if d.bad() {
				w.problem(n, ProblemBadQP, n.Path, fmt.Sprintf("%d malformed escapes", d.invalid))
			}
		}
	}
	if !IdentityCTE(n.CTE) {
		w.problem(n, ProblemBadTransferEncoding, n.Path, "unknown Content-Transfer-Encoding "+strconv.Quote(n.CTE)+", read as is")
	}
	return body, func() {}
}

// countReader counts decoded bytes for Node.Size and enforces
// MaxDecodedBytes over the whole walk; past the bound it ends the stream
// and stops the walk.
type countReader struct {
	r     io.Reader
	w     *walk
	n     *Node
	count int64
}

func (c *countReader) Read(p []byte) (int, error) {
	if c.w.stopped {
		return 0, io.EOF
	}
	k, err := c.r.Read(p)
	c.count += int64(k)
	c.w.decoded += int64(k)
	if c.w.decoded > c.w.lim.MaxDecodedBytes {
		c.w.problem(c.n, ProblemDecodedLimit, c.n.Path, fmt.Sprintf("more than %d decoded bytes", c.w.lim.MaxDecodedBytes))
		c.w.stopped = true
		return k, io.EOF
	}
	return k, err
}

// IsAttachment reports whether an entity left closed is an attachment
// rather than text of the body: one with Content-Disposition: attachment or
// a file name, and any leaf that is not text. An attached message counts
// only with a disposition or a name (a bare message/rfc822 is read as
// part of the body). Containers that are opened are never attachments.
func (n *Node) IsAttachment() bool {
	if n.Multipart && !n.DepthExceeded {
		return false
	}
	if n.Disposition == "attachment" || n.Filename != "" {
		return true
	}
	return !n.Message && !n.Multipart && !strings.HasPrefix(n.MediaType, "text/")
}

// AltParent returns the multipart/alternative n is a branch of, at any
// depth within the same message, or nil.
func (n *Node) AltParent() *Node {
	for p := n.Parent; p != nil && !p.Message; p = p.Parent {
		if p.MediaType == "multipart/alternative" {
			return p
		}
	}
	return nil
}
