package mailtext

import (
	"context"
	"fmt"
	"io"
)

// Attachments are what TakeAttachments found: each attachment's part path
// and, when a bound may have hidden one, why.
type Attachments struct {
	Paths []string
	// Problem is set when the walk hit a bound that could hide an
	// attachment (depth, part count, decoded size, header size): a caller
	// that must see every attachment refuses the message.
	Problem string
}

// TakeAttachments reads a whole message from r, writing every byte it
// reads to keep (for a rewrite afterwards), and calls each with every
// attachment in order, numbered from 1: a part marked as an attachment,
// or an attached message whole (message/rfc822, not opened). body is the
// transfer-decoded content, valid during the call. An error from each
// stops the walk and is returned.
func TakeAttachments(ctx context.Context, r io.Reader, keep io.Writer, lim Limits, each func(n *Node, i int, body io.Reader) error) (Attachments, error) {
	c := &attachmentVisitor{each: each}
	in := io.TeeReader(NewContextReader(ctx, r), keep)
	if err := Walk(ctx, in, lim, c); err != nil {
		return c.out, err
	}
	// What a finished walk left unread (an epilogue) is kept too.
	if _, err := io.Copy(keep, NewContextReader(ctx, r)); err != nil {
		return c.out, fmt.Errorf("read message: %w", err)
	}
	return c.out, nil
}

type attachmentVisitor struct {
	each func(n *Node, i int, body io.Reader) error
	out  Attachments
}

var _ ProblemVisitor = (*attachmentVisitor)(nil)

func (c *attachmentVisitor) Header(n *Node) (Action, error) {
	if n.Message {
		return AsLeaf, nil // an attached message is taken whole
	}
	return Descend, nil
}

func (c *attachmentVisitor) Body(n *Node, b *Body) error {
	if c.out.Problem != "" || !(n.IsAttachment() || n.Message) {
		return nil
	}
	if err := c.each(n, len(c.out.Paths)+1, b.Decoded()); err != nil {
		return err
	}
	c.out.Paths = append(c.out.Paths, n.Path)
	return nil
}

// Problem notes the bounds that could hide an attachment.
func (c *attachmentVisitor) Problem(n *Node, p Problem) {
	switch p.Kind {
	case ProblemDepthExceeded, ProblemTooManyParts, ProblemDecodedLimit, ProblemHeaderTooLarge:
		if c.out.Problem == "" {
			c.out.Problem = p.Detail
			if c.out.Problem == "" {
				c.out.Problem = string(p.Kind)
			}
		}
	}
}
