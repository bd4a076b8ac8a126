package av

import (
	"context"
	"io"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// The virus scan needs the decoded bytes of every leaf, which
// mailtext.Parse does not keep; it visits mailtext's MIME walk, so its
// section numbers (RFC 3501 6.4.5) are mailtext's Part.Path. Check still
// confirms each infected part against mailtext's parts (path, type and
// decoded size) before stripping it.

// walkLimits are the bounds of one walk; zero fields take mailtext's
// defaults so that the scan stops where mailtext.Parse stops.
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
// sequentially; memory stays bounded by the limits. It fails only when
// reading r fails, ctx is done, or visit fails.
func walkParts(ctx context.Context, r io.Reader, lim walkLimits, visit visitFunc) (walkResult, error) {
	v := &leafVisitor{visit: visit}
	err := mailtext.Walk(ctx, r, mailtext.Limits{
		MaxDepth: lim.maxDepth, MaxParts: lim.maxParts, MaxHeaderBytes: lim.maxHeader, MaxDecodedBytes: lim.maxDecoded,
	}, v)
	if err != nil {
		return walkResult{}, err
	}
	return v.res, nil
}

// leafVisitor hands every leaf to visit and notes the first bound hit.
type leafVisitor struct {
	visit visitFunc
	res   walkResult
}

var _ mailtext.ProblemVisitor = (*leafVisitor)(nil)

func (v *leafVisitor) Header(*mailtext.Node) (mailtext.Action, error) { return mailtext.Descend, nil }

func (v *leafVisitor) Body(n *mailtext.Node, b *mailtext.Body) error {
	if n.DepthExceeded {
		return nil // a container not opened: the walk skips it
	}
	v.res.Leaves++
	return v.visit(leafPart{Path: n.Path, ContentType: n.MediaType, InMessage: n.InMessage}, b.Decoded())
}

func (v *leafVisitor) Problem(_ *mailtext.Node, p mailtext.Problem) {
	if p.Kind.Unscannable() && v.res.Incomplete == "" {
		v.res.Incomplete = p.Detail
	}
}
