// Package rewrite applies the per-recipient changes of a policy verdict to a
// message: headers in front, forged headers removed, a Subject tag, MIME
// parts replaced by a notice and a warning banner in the body.
//
// Apply streams: it reads the original once and writes the new message as it
// goes, holding at most one header section (bounded by
// Limits.MaxHeaderBytes) and fixed-size line and coding buffers, so a 100 MB
// message costs no more memory than a small one. Everything Apply does not
// change is copied byte for byte, line endings included: a Spec with only
// PrependHeaders yields exactly those header lines followed by the input.
//
// Part paths are the IMAP section numbers of internal/mailtext (Part.Path).
// Apply is a visitor of mailtext.Walk, the walk Parse uses, with the same
// depth, part and header bounds, so a path mailtext reported names the same
// entity here. When a listed path is not found Apply fails rather than
// deliver the part.
package rewrite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// HeaderField is a header field to add.
type HeaderField struct{ Name, Value string }

// Spec says what to change in one recipient's copy. The zero Spec changes
// nothing.
type Spec struct {
	// PrependHeaders are written first, in order, before the original
	// header. Values are sanitised (CR, LF and other control characters
	// except TAB become spaces) and folded at 78 columns where whitespace
	// allows (RFC 5322 2.2.3). Names must be valid field names.
	PrependHeaders []HeaderField
	// RemoveHeaders names top-level fields to drop, case-insensitively; a
	// name ending in "*" is a prefix ("X-Mailgate-*"). Prepended fields are
	// never removed.
	RemoveHeaders []string
	// SubjectTag is put in front of every top-level Subject field (one is
	// added when there is none) unless the decoded subject already starts
	// with it. The original field bytes, folding included, are kept after
	// the tag. An ASCII tag is written as text; any other as UTF-8
	// encoded-words (RFC 2047).
	SubjectTag string
	// StripParts lists mailtext part paths to replace, header and body, by
	// a text/plain; charset=utf-8 part carrying StripNotice's text. Listing a
	// message/rfc822 part replaces the whole attached message, and so does
	// a path inside a base64 or quoted-printable encoded one (mailtext
	// numbers its insides, but they cannot be rewritten in place).
	StripParts []string
	// StripNotice returns the text of a replacement part given the removed
	// part's decoded file name ("" when it had none). Nil uses a default
	// English notice.
	StripNotice func(filename string) string
	// Banner is prepended to the displayed body: the first text/plain or
	// text/html part outside attached messages and attachments, and when
	// that part is inside a multipart/alternative, to the first text/plain
	// and the first text/html of that alternative. Changed parts are
	// re-encoded as UTF-8 base64; for HTML the banner is an escaped, styled
	// <div> after <body>.
	Banner string
	// DropParts lists mailtext part paths to remove entirely: header, body
	// and the delimiter line that opens them, as if they had never been
	// there. Where that would leave a multipart without any body part
	// (RFC 2046 5.1.1 wants at least one), a text/plain part carrying
	// DropNotice takes their place; a listed message body (of the message
	// or of an attached one) is replaced by that part as StripParts would.
	DropParts []string
	// DropNotice is the text of the part that stands in for dropped parts
	// (see DropParts); "" uses a default English notice.
	DropNotice string
	// AppendParts are added after the message's content: as the last body
	// parts of the top-level multipart/mixed, or, when the body is anything
	// else, in a new top-level multipart/mixed whose first part is the
	// original body (its Content-* fields move into that part).
	AppendParts []Part
	// Limits bounds the walk; zero fields take mailtext.DefaultLimits. Use
	// the limits the message was parsed with so part numbering agrees.
	// MaxDepth, MaxParts and MaxHeaderBytes are used.
	Limits mailtext.Limits
}

// Part is a body part Apply adds (Spec.AppendParts). It is written with
// the given Content-Type and Content-Disposition (values are sanitised and
// folded as PrependHeaders' are) and its body base64 encoded.
type Part struct {
	ContentType string // full value, parameters included
	Disposition string // full value; "" for none
	Body        io.Reader
}

// Empty reports whether Apply with s copies the input unchanged.
func (s Spec) Empty() bool {
	return len(s.PrependHeaders) == 0 && !s.changesMessage()
}

// PrependsOnly reports whether s asks for nothing but PrependHeaders.
func (s Spec) PrependsOnly() bool { return !s.changesMessage() }

// PeekSize is how much of the start of a message Prepended needs.
const PeekSize = lineBufSize

// Prepended returns the header lines Apply, with a Spec that only
// prepends fields, writes in front of the message whose first bytes are
// start (at least PeekSize of them, or the whole message): the rest of
// its output is the message byte for byte, so these lines can be kept
// apart from the message and written before it. ok is false when Apply
// would write more than lines in front (the message starts with an mbox
// "From " line, which stays first).
func Prepended(start []byte, fields []HeaderField) (lines string, ok bool, err error) {
	for _, f := range fields {
		if !mailtext.ValidFieldName(f.Name) {
			return "", false, fmt.Errorf("%w: %q", ErrBadHeaderName, f.Name)
		}
	}
	if bytes.HasPrefix(start, []byte("From ")) {
		return "", false, nil
	}
	eol := eolOf(start[:min(len(start), lineBufSize)])
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(formatField(f.Name, sanitizeValue(f.Value), eol))
	}
	return b.String(), true, nil
}

// changesMessage reports whether anything beyond prepending is asked for.
func (s Spec) changesMessage() bool {
	return len(s.RemoveHeaders) > 0 || strings.TrimSpace(sanitizeValue(s.SubjectTag)) != "" ||
		len(s.StripParts) > 0 || s.Banner != "" || len(s.DropParts) > 0 || len(s.AppendParts) > 0
}

// Errors Apply wraps; test with errors.Is.
var (
	// ErrHeaderTooLarge: a header section Apply had to inspect or rewrite
	// is larger than Limits.MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("rewrite: header section too large")
	// ErrPartNotFound: a StripParts path names no part of the message as
	// walked here.
	ErrPartNotFound = errors.New("rewrite: part to strip not found")
	// ErrBoundaryReused: parts were to be appended to a top-level
	// multipart/mixed that is never closed and holds a multipart with the
	// same boundary (RFC 2046 5.1.2 forbids it), so no place after its
	// content can be told apart from the inner multipart's.
	ErrBoundaryReused = errors.New("rewrite: nested multipart reuses the boundary")
	// ErrBadHeaderName: a PrependHeaders name is not a valid field name.
	ErrBadHeaderName = errors.New("rewrite: invalid header field name")
)

// DefaultDropNotice is the notice used when Spec.DropNotice is "".
const DefaultDropNotice = "Attachments were removed from this message by the mail gateway.\r\n"

// DefaultStripNotice is the notice used when Spec.StripNotice is nil.
func DefaultStripNotice(filename string) string {
	if filename == "" {
		return "An attachment was removed from this message by the mail gateway.\r\n"
	}
	return fmt.Sprintf("The attachment %q was removed from this message by the mail gateway.\r\n", filename)
}

// Apply reads a message from r and writes it to w changed as s says.
//
// Malformed MIME is read the way mailtext reads it and copied unchanged
// where nothing is to change; NUL bytes, bare LF and overlong lines pass
// through. Apply returns an error, having written an incomplete message
// that the caller must discard, when reading or writing fails, when ctx is
// done (checked on every read), when a header section it must inspect
// exceeds Limits.MaxHeaderBytes (ErrHeaderTooLarge: a header it cannot see
// whole could hide what was to be changed), and when a StripParts path was
// not found (ErrPartNotFound), and when parts cannot be appended
// (ErrBoundaryReused). An invalid PrependHeaders name fails before
// anything is written (ErrBadHeaderName). Apply is safe for concurrent use
// with different readers and writers.
func Apply(ctx context.Context, w io.Writer, r io.Reader, s Spec) error {
	for _, f := range s.PrependHeaders {
		if !mailtext.ValidFieldName(f.Name) {
			return fmt.Errorf("%w: %q", ErrBadHeaderName, f.Name)
		}
	}
	in := mailtext.NewContextReader(ctx, r)
	src := newSource(in, lineBufSize)
	out := &output{w: w}
	eol := detectEOL(src)
	if len(s.PrependHeaders) > 0 {
		// An mbox envelope line ("From ...") must stay first: after our
		// header fields it would read as a malformed header line that ends
		// the header section, hiding the fields below it.
		if p, _ := src.Peek(5); string(p) == "From " {
			for {
				line, _, err := src.Next()
				if err != nil {
					break
				}
				out.write(line)
				if bytes.HasSuffix(line, []byte("\n")) {
					break
				}
			}
		}
	}
	for _, f := range s.PrependHeaders {
		out.writeString(formatField(f.Name, sanitizeValue(f.Value), eol))
	}
	var wk *walker
	if s.changesMessage() {
		wk = newWalker(&s, src, out, eol)
		if err := wk.run(); err != nil {
			return err
		}
	}
	if err := copyRest(src, out); err != nil {
		return fmt.Errorf("rewrite: copy message: %w", err)
	}
	if wk != nil {
		if err := wk.finish(); err != nil {
			return err
		}
	}
	if err := out.flush(); err != nil {
		return fmt.Errorf("rewrite: write message: %w", err)
	}
	if err := in.Err(); err != nil {
		return fmt.Errorf("rewrite: read message: %w", err)
	}
	return nil
}
