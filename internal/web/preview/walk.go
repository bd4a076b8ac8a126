package preview

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// The preview needs what mailtext.Parse does not keep: the HTML source of
// the body and the bytes of attachments. It visits mailtext's MIME walk, so
// section numbers match mailtext's Part.Path (RFC 3501 6.4.5).

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
	// ContentID is the part's Content-ID without its angle brackets
	// (RFC 2392), "" when it has none.
	ContentID string
}

// visitFunc receives each leaf with a reader of its transfer-decoded body,
// valid only during the call. An error from it ends the walk as is.
type visitFunc func(l leaf, body io.Reader) error

// walker is the preview's visitor of the MIME walk.
type walker struct {
	lim   mailtext.Limits
	visit visitFunc
	alts  map[*mailtext.Node]int
	// stopped is set when a global bound ended the walk.
	stopped bool
	// rootHeader receives the raw top-level header section (fields only,
	// at most MaxHeaderBytes) so that mailtext.Parse can decode it.
	rootHeader []byte
	problems   []string
}

var (
	_ mailtext.HeaderLineVisitor = (*walker)(nil)
	_ mailtext.ProblemVisitor    = (*walker)(nil)
)

// walk reads the message from r once, sequentially, with memory bounded by
// lim. It fails only when reading r fails, ctx is done, or visit fails; the
// walker is returned either way.
func walk(ctx context.Context, r io.Reader, lim mailtext.Limits, visit visitFunc) (*walker, error) {
	w := &walker{lim: lim.WithDefaults(), visit: visit, alts: map[*mailtext.Node]int{}}
	return w, mailtext.Walk(ctx, r, w.lim, w)
}

func (w *walker) HeaderLine(n *mailtext.Node, line []byte, kind mailtext.HeaderLineKind, over bool) error {
	if n.Root && !over && kind != mailtext.LineMbox && kind != mailtext.LineEnd {
		w.rootHeader = append(w.rootHeader, line...)
	}
	return nil
}

// Header opens multiparts but not encapsulated messages (RFC 2046 5.2.1):
// the preview shows the outer message, and a forwarded one is offered whole
// as an attachment, as mail readers offer it.
func (w *walker) Header(n *mailtext.Node) (mailtext.Action, error) {
	if n.Message {
		return mailtext.AsLeaf, nil
	}
	if n.Multipart && n.MediaType == "multipart/alternative" && !n.DepthExceeded {
		w.alts[n] = len(w.alts) + 1
	}
	return mailtext.Descend, nil
}

func (w *walker) Body(n *mailtext.Node, b *mailtext.Body) error {
	if n.DepthExceeded && n.Multipart {
		return nil // not opened: not shown
	}
	l := leaf{
		Path:        n.Path,
		ContentType: n.MediaType,
		Charset:     n.Params["charset"],
		Filename:    n.Filename,
		Disposition: n.Disposition,
	}
	if alt := n.AltParent(); alt != nil {
		l.Alt = w.alts[alt]
	}
	for _, f := range n.Fields {
		if strings.EqualFold(f.Name, "Content-ID") {
			id := strings.TrimSpace(f.Value)
			id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
			if len(id) <= 250 {
				l.ContentID = strings.TrimSpace(id)
			}
			break
		}
	}
	return w.visit(l, b.Decoded())
}

// Problem notes the bounds hit, in the words the console shows.
func (w *walker) Problem(n *mailtext.Node, p mailtext.Problem) {
	switch p.Kind {
	case mailtext.ProblemDecodedLimit:
		w.stopped = true
		w.problem("message larger than %d decoded bytes: the rest is not shown", w.lim.MaxDecodedBytes)
	case mailtext.ProblemTooManyParts:
		w.stopped = true
		w.problem("more than %d MIME parts: the rest is not shown", w.lim.MaxParts)
	case mailtext.ProblemHeaderTooLarge:
		w.problem("header of part %s larger than %d bytes: cut", n.Path, w.lim.MaxHeaderBytes)
	case mailtext.ProblemDepthExceeded:
		w.problem("part %s nested deeper than %d: not shown", n.Path, w.lim.MaxDepth)
	}
}

func (w *walker) problem(format string, args ...any) {
	const maxProblems = 100
	if len(w.problems) < maxProblems {
		w.problems = append(w.problems, fmt.Sprintf(format, args...))
	}
}
