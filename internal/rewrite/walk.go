package rewrite

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// walker is the rewriting visitor of mailtext's MIME walk: it copies what
// stays and rewrites what changes.
type walker struct {
	spec    *Spec
	lim     mailtext.Limits
	src     *source
	out     *output
	eol     string
	tag     string
	strip   map[string]bool // every listed path
	pending map[string]bool // listed paths not yet replaced
	banner  bannerState
	// rootDone is set once the top-level header was written.
	rootDone bool
	// The entity being read: how its header is kept, the header, and what
	// Body does with it.
	mode   headerMode
	h      *header
	curRaw []byte
	action bodyAction
}

var (
	_ mailtext.StartVisitor      = (*walker)(nil)
	_ mailtext.HeaderLineVisitor = (*walker)(nil)
	_ mailtext.RawLineVisitor    = (*walker)(nil)
	_ mailtext.EndVisitor        = (*walker)(nil)
)

// bodyAction is what Body does with an entity left closed.
type bodyAction int

const (
	bodyCopy   bodyAction = iota // as it is
	bodyStrip                    // replaced by a notice
	bodyBanner                   // re-encoded with the banner
)

// bannerState tracks which parts get the banner: the first eligible text
// part decides the scope, the multipart/alternative around it if any.
type bannerState struct {
	text      string
	scopeSet  bool
	scopeAlt  bool
	scope     string // section of the alternative; "" is the message itself
	donePlain bool
	doneHTML  bool
	finished  bool
}

func newWalker(s *Spec, src *source, out *output, eol string) *walker {
	w := &walker{
		spec:    s,
		lim:     s.Limits.WithDefaults(),
		src:     src,
		out:     out,
		eol:     eol,
		tag:     strings.TrimSpace(sanitizeValue(s.SubjectTag)),
		strip:   map[string]bool{},
		pending: map[string]bool{},
		banner:  bannerState{text: strings.ToValidUTF8(s.Banner, "\ufffd")},
	}
	for _, p := range s.StripParts {
		w.strip[p] = true
		w.pending[p] = true
	}
	w.banner.finished = w.banner.text == ""
	return w
}

// run walks the message. The walk stops as soon as nothing is left to
// change, or at a bound; Apply then copies the rest as it is.
func (w *walker) run() error {
	// Bodies are read raw, so MaxDecodedBytes never stops this walk: only
	// the bounds that decide part numbering apply.
	err := mailtext.WalkLines(w.src, w.lim, w)
	if w.out.err != nil {
		return fmt.Errorf("rewrite: write message: %w", w.out.err)
	}
	if err != nil {
		return fmt.Errorf("rewrite: %w", err)
	}
	if len(w.pending) > 0 {
		missing := make([]string, 0, len(w.pending))
		for p := range w.pending {
			missing = append(missing, p)
		}
		sort.Strings(missing)
		return fmt.Errorf("%w: %s", ErrPartNotFound, strings.Join(missing, ", "))
	}
	return nil
}

// idle reports whether nothing is left to change.
func (w *walker) idle() bool {
	return w.rootDone && len(w.pending) == 0 && w.banner.finished
}

// pendingUnder reports whether a listed path lies inside the entity at path.
func (w *walker) pendingUnder(path string) bool {
	for p := range w.pending {
		if strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// replaced records that the entity at path (and all inside it) is gone.
func (w *walker) replaced(path string) {
	for p := range w.pending {
		if p == path || strings.HasPrefix(p, path+".") {
			delete(w.pending, p)
		}
	}
}

func (b *bannerState) inScope(path string) bool {
	return b.scope == "" || strings.HasPrefix(path, b.scope+".")
}

// mayTake reports whether the entity n could still get the banner.
func (b *bannerState) mayTake(n *mailtext.Node) bool {
	if b.finished || n.InMessage {
		return false
	}
	return !b.scopeSet || (b.scopeAlt && b.inScope(n.Path))
}

// Start stops the walk when nothing is left to change, and decides how the
// entity's header is kept: held when it may change, dropped when the entity
// is replaced, else copied as it is read.
func (w *walker) Start(n *mailtext.Node) error {
	if w.out.err != nil {
		return w.out.err
	}
	if w.idle() {
		return mailtext.ErrStop
	}
	listed := w.strip[n.Path]
	w.mode = modePass
	switch {
	case n.Root:
		w.mode = modeHold
	case listed && !n.MsgBody:
		w.mode = modeDrop
	case listed || w.pendingUnder(n.Path) || w.banner.mayTake(n):
		w.mode = modeHold
	}
	w.h, w.curRaw = &header{endsEOL: true}, nil
	return nil
}

// Header decides what becomes of the entity and writes a held header that
// stays.
func (w *walker) Header(n *mailtext.Node) (mailtext.Action, error) {
	h := w.h
	w.flushField()
	h.parsed = n.Fields
	// A container too deep is not opened, as mailtext does not open it; an
	// encoded message/rfc822 cannot be rewritten in place.
	descend := !n.DepthExceeded && (n.Multipart || (n.Message && mailtext.IdentityCTE(n.CTE)))

	// A message body's path is its first child's when it is an opened
	// multipart (RFC 3501 6.4.5); otherwise it names the entity.
	listed := w.strip[n.Path]
	stripThis := listed && !(n.MsgBody && n.Multipart && descend)
	// mailtext decodes a base64 or quoted-printable message/rfc822 and
	// numbers its insides; they cannot be rewritten in place, so a path
	// inside replaces the whole attached message.
	encodedMessage := n.Message && !n.DepthExceeded && !mailtext.IdentityCTE(n.CTE)
	if !stripThis && encodedMessage && w.pendingUnder(n.Path) {
		stripThis = true
	}
	if n.Root {
		w.rootDone = true
	}
	w.action = bodyCopy
	switch {
	case stripThis:
		w.replaced(n.Path)
		w.action = bodyStrip
		return mailtext.AsLeaf, nil
	case !n.Multipart && !n.Message && w.takeBanner(n):
		w.action = bodyBanner
		return mailtext.AsLeaf, nil
	}
	if w.mode == modeHold {
		w.writeHeader(n, h, editNone, "")
	}
	if w.idle() {
		return 0, mailtext.ErrStop
	}
	if descend {
		return mailtext.Descend, w.out.err
	}
	return mailtext.AsLeaf, w.out.err
}

// Body copies, replaces or re-encodes the body of an entity left closed.
func (w *walker) Body(n *mailtext.Node, b *mailtext.Body) error {
	switch w.action {
	case bodyStrip:
		return w.writeStripped(n, w.h, n.Filename, b.Raw())
	case bodyBanner:
		return w.writeBanner(n, w.h, b.Raw())
	}
	br := b.Raw()
	if _, err := io.Copy(w.out, br); err != nil {
		return err
	}
	w.out.write(br.DelimiterEOL())
	return w.out.err
}

// RawLine copies preambles, delimiters and epilogues.
func (w *walker) RawLine(line []byte) error {
	w.out.write(line)
	return w.out.err
}

// End closes the banner's scope with the alternative that holds it.
func (w *walker) End(n *mailtext.Node) error {
	b := &w.banner
	if n.Multipart && b.scopeSet && b.scopeAlt && b.scope == n.Section && !n.InMessage {
		b.finished = true
	}
	return nil
}

// takeBanner decides whether the leaf gets the banner and updates the scope.
func (w *walker) takeBanner(n *mailtext.Node) bool {
	b := &w.banner
	if !b.mayTake(n) {
		return false
	}
	isPlain, isHTML := n.MediaType == "text/plain", n.MediaType == "text/html"
	if !isPlain && !isHTML || strings.EqualFold(n.Disposition, "attachment") || n.Filename != "" {
		return false
	}
	if isPlain && b.donePlain || isHTML && b.doneHTML {
		return false
	}
	if !b.scopeSet {
		b.scopeSet = true
		if alt := n.AltParent(); alt != nil {
			b.scopeAlt, b.scope = true, alt.Section
		}
	}
	if isPlain {
		b.donePlain = true
	} else {
		b.doneHTML = true
	}
	if !b.scopeAlt || b.donePlain && b.doneHTML {
		b.finished = true
	}
	return true
}

type headerEdit int

const (
	editNone   headerEdit = iota
	editStrip             // Content-* fields replaced by a text/plain notice's
	editBanner            // Content-Type and Content-Transfer-Encoding replaced
)

// removed reports whether a top-level field is on the RemoveHeaders list.
func (w *walker) removed(name string) bool {
	for _, r := range w.spec.RemoveHeaders {
		r = strings.TrimSpace(r)
		if p, ok := strings.CutSuffix(r, "*"); ok {
			if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
				return true
			}
		} else if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

func (w *walker) alreadyTagged(value string) bool {
	return strings.HasPrefix(strings.TrimSpace(mailtext.DecodeHeader(value)), w.tag)
}

// writeHeader writes a held header section with the edits that apply: the
// top-level ones for the root, content fields for a rewritten entity. For
// editStrip and editBanner the section is ended with an empty line, since
// a new body follows; otherwise the original end is kept.
func (w *walker) writeHeader(n *mailtext.Node, h *header, edit headerEdit, contentType string) {
	endsEOL := true
	put := func(b []byte) {
		w.out.write(b)
		if len(b) > 0 {
			endsEOL = b[len(b)-1] == '\n'
		}
	}
	sawSubject, sawMIME, ctDone, cteDone := false, false, false, false
	for _, f := range h.fields {
		switch {
		case f.name == "":
			put(f.raw)
			continue
		case n.Root && w.removed(f.name):
			continue
		case f.name == "Mime-Version":
			sawMIME = true
		}
		if n.Root && w.tag != "" && f.name == "Subject" {
			sawSubject = true
			if !w.alreadyTagged(f.value) {
				put(tagSubject(f.raw, w.tag, w.eol))
				continue
			}
		}
		switch edit {
		case editStrip:
			if strings.HasPrefix(f.name, "Content-") {
				continue
			}
		case editBanner:
			switch f.name {
			case "Content-Type":
				if !ctDone {
					ctDone = true
					put([]byte(formatField("Content-Type", contentType, w.eol)))
				}
				continue
			case "Content-Transfer-Encoding":
				if !cteDone {
					cteDone = true
					put([]byte(formatField("Content-Transfer-Encoding", "base64", w.eol)))
				}
				continue
			}
		}
		put(f.raw)
	}
	var adds []string
	if n.Root && w.tag != "" && !sawSubject {
		adds = append(adds, string(tagSubject([]byte("Subject:"), w.tag, w.eol)))
	}
	if edit == editStrip {
		adds = append(adds, "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: base64")
	}
	if edit == editBanner {
		if !ctDone {
			adds = append(adds, strings.TrimSuffix(formatField("Content-Type", contentType, w.eol), w.eol))
		}
		if !cteDone {
			adds = append(adds, "Content-Transfer-Encoding: base64")
		}
	}
	if edit != editNone && n.MsgBody && !sawMIME {
		adds = append(adds, "MIME-Version: 1.0") // RFC 2045 4
	}
	if len(adds) > 0 && !endsEOL {
		w.out.writeString(w.eol)
	}
	for _, a := range adds {
		w.out.writeString(a)
		w.out.writeString(w.eol)
	}
	if edit != editNone {
		w.out.writeString(w.eol)
		return
	}
	w.out.write(h.term)
}

// eolAfter is the line break to write between a rewritten body and what
// follows: the delimiter's own line break when a boundary follows.
func (w *walker) eolAfter(br *mailtext.BodyReader) string {
	if d := br.DelimiterEOL(); len(d) > 0 {
		return string(d)
	}
	return w.eol
}

// writeStripped replaces the entity by a text/plain notice and skips its
// body. A message body keeps its message header fields.
func (w *walker) writeStripped(n *mailtext.Node, h *header, filename string, br *mailtext.BodyReader) error {
	w.out.startLine(w.eol)
	if n.MsgBody {
		w.writeHeader(n, h, editStrip, "")
	} else {
		w.out.writeString("Content-Type: text/plain; charset=utf-8" + w.eol +
			"Content-Transfer-Encoding: base64" + w.eol +
			"Content-Disposition: inline" + w.eol + w.eol)
	}
	notice := DefaultStripNotice
	if w.spec.StripNotice != nil {
		notice = w.spec.StripNotice
	}
	enc := newBase64Lines(w.out, w.eol)
	io.WriteString(enc, strings.ToValidUTF8(notice(filename), "\ufffd"))
	enc.Close()
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	w.out.writeString(w.eolAfter(br))
	return w.out.err
}

// writeBanner re-encodes a text leaf as UTF-8 base64 with the banner in
// front.
func (w *walker) writeBanner(n *mailtext.Node, h *header, br *mailtext.BodyReader) error {
	ct := n.MediaType + "; charset=utf-8"
	if v, ok := h.get("Content-Type"); ok && n.Params != nil {
		// A valid Content-Type: its other parameters are kept.
		ct = n.MediaType + "; charset=utf-8" + keptParams(v)
	}
	w.out.startLine(w.eol)
	w.writeHeader(n, h, editBanner, ct)
	enc := newBase64Lines(w.out, w.eol)
	decoded := mailtext.NewTransferDecoder(br, n.CTE)
	var err error
	if n.MediaType == "text/html" {
		err = bannerHTML(enc, decoded, n.Params["charset"], w.banner.text)
	} else {
		err = bannerPlain(enc, decoded, n.Params["charset"], w.banner.text)
	}
	if err != nil {
		return err
	}
	enc.Close()
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	w.out.writeString(w.eolAfter(br))
	return w.out.err
}

// keptParams returns the parameters of a Content-Type value other than
// charset, each as "; name=value", unfolded.
func keptParams(v string) string {
	var b strings.Builder
	parts := mailtext.SplitParameters(v)
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, _, _ := strings.Cut(p, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if base, _, _ := strings.Cut(name, "*"); base == "charset" {
			continue
		}
		b.WriteString("; ")
		b.WriteString(p)
	}
	return b.String()
}
