package rewrite

import (
	"crypto/rand"
	"encoding/hex"
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
	drop    map[string]bool // every path to drop
	pending map[string]bool // listed paths not yet replaced
	// held is a delimiter line not yet written: it is dropped with the
	// body part it opens when that part is dropped (heldSet tells an empty
	// line from none).
	held    []byte
	heldSet bool
	// kids counts the written and dropped body parts of each multipart
	// that had a part dropped.
	kids map[*mailtext.Node]*kidCount
	// rootMixed is the top-level multipart/mixed the appended parts go
	// into; wrap is set instead when the message is wrapped in a new one
	// with boundary wrapBoundary. appended is set once they are written.
	rootMixed    *mailtext.Node
	wrap         bool
	wrapBoundary string
	appended     bool
	// shadowed is set when a multipart inside rootMixed reuses its
	// boundary: rootMixed's delimiters can then no longer be told apart.
	shadowed bool
	banner   bannerState
	// rootDone is set once the top-level header was written.
	rootDone bool
	// The entity being read: how its header is kept, the header, and what
	// Body does with it.
	mode   headerMode
	h      *header
	curRaw []byte
	action bodyAction
	// openHeader is set when the last header written had no empty line
	// after it (the input ended in it, or a delimiter or a body line did):
	// fields written next would be read as more of it.
	openHeader bool
}

var (
	_ mailtext.StartVisitor      = (*walker)(nil)
	_ mailtext.HeaderLineVisitor = (*walker)(nil)
	_ mailtext.RawLineVisitor    = (*walker)(nil)
	_ mailtext.EndVisitor        = (*walker)(nil)
	_ mailtext.DelimiterVisitor  = (*walker)(nil)
)

// kidCount is what became of a multipart's body parts.
type kidCount struct{ written, dropped int }

// bodyAction is what Body does with an entity left closed.
type bodyAction int

const (
	bodyCopy   bodyAction = iota // as it is
	bodyStrip                    // replaced by a notice
	bodyBanner                   // re-encoded with the banner
	bodyDrop                     // removed with its delimiter
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
		drop:    map[string]bool{},
		kids:    map[*mailtext.Node]*kidCount{},
		pending: map[string]bool{},
		banner:  bannerState{text: strings.ToValidUTF8(s.Banner, "\ufffd")},
	}
	for _, p := range s.StripParts {
		w.strip[p] = true
		w.pending[p] = true
	}
	for _, p := range s.DropParts {
		w.drop[p] = true
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
	// A delimiter held when the walk stopped (at a bound, or with nothing
	// left to change) comes before the rest of the input.
	w.flushHeld()
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
	return w.rootDone && len(w.pending) == 0 && w.banner.finished &&
		(len(w.spec.AppendParts) == 0 || w.wrap || w.appended)
}

func (w *walker) flushHeld() {
	if w.heldSet {
		w.out.write(w.held)
		w.held, w.heldSet = w.held[:0], false
	}
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
	dropped := w.drop[n.Path] && !n.MsgBody
	if p := n.Parent; p != nil && p.Multipart {
		k := w.kids[p]
		if k == nil {
			k = &kidCount{}
			w.kids[p] = k
		}
		if dropped {
			k.dropped++
		} else {
			k.written++
		}
	}
	if dropped {
		w.held, w.heldSet = w.held[:0], false
	} else {
		w.flushHeld()
	}
	listed := w.strip[n.Path] || w.drop[n.Path]
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
	listed := w.strip[n.Path] || w.drop[n.Path]
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
		if len(w.spec.AppendParts) > 0 {
			if n.Multipart && descend && n.MediaType == "multipart/mixed" && n.HeaderEnd == mailtext.HeaderEndBlank {
				w.rootMixed = n
			} else {
				w.wrap = true
				w.wrapBoundary = newBoundary()
				w.writeHeader(n, h, editWrap, "multipart/mixed; boundary=\""+w.wrapBoundary+"\"")
			}
		}
	}
	if descend && n.Multipart && !n.Root && w.rootMixed != nil && n.Params["boundary"] == w.rootMixed.Params["boundary"] {
		w.shadowed = true
	}
	w.action = bodyCopy
	switch {
	case stripThis && w.drop[n.Path] && !n.MsgBody && !w.strip[n.Path]:
		w.replaced(n.Path)
		w.action = bodyDrop
		return mailtext.AsLeaf, nil
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
	case bodyDrop:
		_, err := io.Copy(io.Discard, b.Raw())
		return err
	case bodyStrip:
		return w.writeStripped(n, w.h, n.Filename, b.Raw())
	case bodyBanner:
		return w.writeBanner(n, w.h, b.Raw())
	}
	w.openHeader = false
	br := b.Raw()
	if _, err := io.Copy(w.out, br); err != nil {
		return err
	}
	w.out.write(br.DelimiterEOL())
	return w.out.err
}

// RawLine copies preambles and epilogues.
func (w *walker) RawLine(line []byte) error {
	w.openHeader = false
	w.flushHeld()
	w.out.write(line)
	return w.out.err
}

// Delimiter holds a delimiter line until the part it opens is known to
// stay, and before a close delimiter writes the parts that go there: a
// stand-in for dropped parts when none is left, and the appended parts at
// the end of the top-level multipart/mixed.
func (w *walker) Delimiter(n *mailtext.Node, line []byte, final bool) error {
	w.openHeader = false
	w.flushHeld()
	if !final {
		w.held, w.heldSet = append(w.held[:0], line...), true
		return w.out.err
	}
	boundary := n.Params["boundary"]
	if k := w.kids[n]; k != nil && k.written == 0 && k.dropped > 0 {
		w.writePart(boundary, w.dropNoticePart())
	}
	if n == w.rootMixed && !w.appended {
		w.appended = true
		for _, p := range w.spec.AppendParts {
			w.writePart(boundary, p)
		}
	}
	w.out.write(line)
	return w.out.err
}

// finish writes what comes after the input: the appended parts and the
// close delimiter of a wrapping multipart, or of a top-level
// multipart/mixed whose own close delimiter was never seen.
func (w *walker) finish() error {
	boundary := w.wrapBoundary
	switch {
	case w.wrap:
	case w.rootMixed != nil && !w.appended:
		if w.shadowed {
			// Parts written after a nested multipart that reuses the
			// boundary would read as that multipart's.
			return fmt.Errorf("%w: %q", ErrBoundaryReused, w.rootMixed.Params["boundary"])
		}
		boundary = w.rootMixed.Params["boundary"]
	default:
		return nil
	}
	w.appended = true
	for _, p := range w.spec.AppendParts {
		w.writePart(boundary, p)
	}
	w.out.startLine(w.eol)
	w.out.writeString("--" + boundary + "--" + w.eol)
	if err := w.out.flush(); err != nil {
		return fmt.Errorf("rewrite: write message: %w", err)
	}
	return nil
}

func (w *walker) dropNotice() string {
	if w.spec.DropNotice != "" {
		return w.spec.DropNotice
	}
	return DefaultDropNotice
}

func (w *walker) dropNoticePart() Part {
	return Part{ContentType: "text/plain; charset=utf-8", Disposition: "inline",
		Body: strings.NewReader(strings.ToValidUTF8(w.dropNotice(), "\ufffd"))}
}

// writePart writes a delimiter of boundary and the part after it, ending
// where the next delimiter line starts.
func (w *walker) writePart(boundary string, p Part) {
	w.out.startLine(w.eol)
	w.out.writeString("--" + boundary + w.eol)
	w.out.writeString(formatField("Content-Type", sanitizeValue(p.ContentType), w.eol))
	if p.Disposition != "" {
		w.out.writeString(formatField("Content-Disposition", sanitizeValue(p.Disposition), w.eol))
	}
	w.out.writeString("Content-Transfer-Encoding: base64" + w.eol + w.eol)
	enc := newBase64Lines(w.out, w.eol)
	if p.Body != nil {
		if _, err := io.Copy(enc, p.Body); err != nil && w.out.err == nil {
			w.out.err = fmt.Errorf("part to append: %w", err)
		}
	}
	enc.Close()
	w.out.writeString(w.eol)
}

// newBoundary returns a multipart boundary that cannot occur in base64 or
// quoted-printable text ("=_") and is random besides.
func newBoundary() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // cannot happen on supported systems
	}
	return "=_mg_" + hex.EncodeToString(b[:])
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
	editWrap              // the message's own fields, then a wrapping multipart's delimiter
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
	// A wrapped message's header is split: its own fields above the new
	// multipart (editWrap), its Content-* fields in the first part.
	wrapped := n.Root && w.wrap
	contentOnly := wrapped && edit != editWrap
	for _, f := range h.fields {
		content := strings.HasPrefix(f.name, "Content-")
		switch {
		case contentOnly && !content:
			continue
		case edit == editWrap && content:
			continue
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
	if n.Root && w.tag != "" && !sawSubject && !contentOnly {
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
	if edit == editWrap {
		adds = append(adds, strings.TrimSuffix(formatField("Content-Type", contentType, w.eol), w.eol))
	}
	if edit != editNone && n.MsgBody && !sawMIME && !contentOnly {
		adds = append(adds, "MIME-Version: 1.0") // RFC 2045 4
	}
	if len(adds) > 0 && !endsEOL {
		w.out.writeString(w.eol)
	}
	for _, a := range adds {
		w.out.writeString(a)
		w.out.writeString(w.eol)
	}
	if edit == editWrap {
		w.out.writeString(w.eol + "--" + w.wrapBoundary + w.eol)
		return
	}
	if edit != editNone {
		w.out.writeString(w.eol)
		return
	}
	if contentOnly && h.term == nil {
		// The part's header must end before the body that follows.
		w.out.writeString(w.eol)
	}
	w.out.write(h.term)
	w.openHeader = h.term == nil && !contentOnly
}

// endOpenHeader ends a header written without its empty line before an
// entity written in place of the input's (a notice, a banner): the input's
// own next line would have ended it, the fields written now would not.
func (w *walker) endOpenHeader() {
	if w.openHeader {
		w.out.startLine(w.eol)
		w.out.writeString(w.eol)
		w.openHeader = false
	}
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
	w.endOpenHeader()
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
	if w.drop[n.Path] && !w.strip[n.Path] {
		notice = func(string) string { return w.dropNotice() }
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
	w.endOpenHeader()
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
