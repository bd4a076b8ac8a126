package rewrite

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// walker walks the MIME tree the way mailtext does, copying what stays and
// rewriting what changes.
type walker struct {
	spec     *Spec
	lim      mailtext.Limits
	src      *source
	out      *output
	eol      string
	entities int
	// stopped ends the walk: the rest of the input is then copied as it is
	// (nothing is left to change, or the part bound was hit).
	stopped  bool
	rootDone bool
	tag      string
	strip    map[string]bool // every listed path
	pending  map[string]bool // listed paths not yet replaced
	banner   bannerState
}

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

// ectx is what an entity knows of its place.
type ectx struct {
	section   string // own section; for a message body, the message's
	msgBody   bool   // the body of a message (root or message/rfc822)
	root      bool
	depth     int
	defType   string
	inMessage bool   // inside an attached message: no banner there
	inAlt     bool   // inside a multipart/alternative
	alt       string // section of the nearest multipart/alternative
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

func (w *walker) run() error {
	if err := w.entity(ectx{msgBody: true, root: true}); err != nil {
		return fmt.Errorf("rewrite: %w", err)
	}
	if w.out.err != nil {
		return fmt.Errorf("rewrite: write message: %w", w.out.err)
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

// mayTake reports whether an entity at path could still get the banner.
func (b *bannerState) mayTake(e ectx, path string) bool {
	if b.finished || e.inMessage {
		return false
	}
	return !b.scopeSet || (b.scopeAlt && b.inScope(path))
}

// entityInfo is what the header says about an entity, read as mailtext
// reads it.
type entityInfo struct {
	mailtext.Entity
	deep bool // a container not opened (MaxDepth)
}

func (w *walker) classify(h *header, e ectx) entityInfo {
	in := entityInfo{Entity: mailtext.ClassifyEntity(h.parsed, e.defType)}
	in.deep = (in.Multipart || in.Message) && e.depth >= w.lim.MaxDepth
	return in
}

func (w *walker) entity(e ectx) error {
	if w.stopped || w.out.err != nil {
		return nil
	}
	if w.idle() {
		w.stopped = true
		return nil
	}
	w.entities++
	path := e.section
	if e.msgBody {
		path = mailtext.JoinPath(e.section, 1)
	}
	if w.entities > w.lim.MaxParts {
		w.stopped = true
		return nil
	}
	listed := w.strip[path]
	mode := modePass
	switch {
	case e.root:
		mode = modeHold
	case listed && !e.msgBody:
		mode = modeDrop
	case listed || w.pendingUnder(path) || w.banner.mayTake(e, path):
		mode = modeHold
	}
	h, err := w.readHeader(e.root, mode)
	if err != nil {
		if errors.Is(err, ErrHeaderTooLarge) {
			return fmt.Errorf("%w (part %s, over %d bytes)", err, path, w.lim.MaxHeaderBytes)
		}
		return err
	}
	in := w.classify(h, e)
	descend := !in.deep && (in.Multipart || (in.Message && mailtext.IdentityCTE(in.CTE)))

	// A message body's path is its first child's when it is an opened
	// multipart (RFC 3501 6.4.5); otherwise it names the entity.
	stripThis := listed && !(e.msgBody && in.Multipart && descend)
	// mailtext decodes a base64 or quoted-printable message/rfc822 and
	// numbers its insides; they cannot be rewritten in place, so a path
	// inside replaces the whole attached message.
	encodedMessage := in.Message && !in.deep && !mailtext.IdentityCTE(in.CTE)
	if !stripThis && encodedMessage && w.pendingUnder(path) {
		stripThis = true
	}
	if e.root {
		w.rootDone = true
	}
	if stripThis {
		w.replaced(path)
		return w.writeStripped(e, h, in.Filename)
	}
	if !in.Multipart && !in.Message && w.takeBanner(e, path, in) {
		return w.writeBanner(e, h, in)
	}
	if mode == modeHold {
		w.writeHeader(e, h, editNone, "")
	}
	if w.idle() {
		w.stopped = true
		return nil
	}
	switch {
	case descend && in.Multipart:
		return w.multipart(e, in.Params["boundary"], in.MediaType)
	case descend && in.Message:
		return w.entity(ectx{section: path, msgBody: true, depth: e.depth + 1, inMessage: true})
	}
	return w.copyBody()
}

// takeBanner decides whether the leaf gets the banner and updates the scope.
func (w *walker) takeBanner(e ectx, path string, in entityInfo) bool {
	b := &w.banner
	if !b.mayTake(e, path) {
		return false
	}
	isPlain, isHTML := in.MediaType == "text/plain", in.MediaType == "text/html"
	if !isPlain && !isHTML || strings.EqualFold(in.Disposition, "attachment") || in.Filename != "" {
		return false
	}
	if isPlain && b.donePlain || isHTML && b.doneHTML {
		return false
	}
	if !b.scopeSet {
		b.scopeSet = true
		b.scopeAlt, b.scope = e.inAlt, e.alt
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

// copyBody copies a body up to the next boundary of an open level.
func (w *walker) copyBody() error {
	for w.out.err == nil {
		b, start, err := w.src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if start {
			if _, _, ok := w.src.Match(b); ok {
				w.src.Unread()
				return nil
			}
		}
		w.out.write(b)
	}
	return nil
}

// multipart walks a multipart body (RFC 2046 5.1): preamble, delimiters
// and epilogue are copied; each body part is an entity.
func (w *walker) multipart(e ectx, boundary, mediaType string) error {
	s := w.src
	level := s.PushBoundary(boundary)
	defer s.PopBoundary(level)
	childType := mailtext.ChildType(mediaType)
	inAlt, alt := e.inAlt, e.alt
	if mediaType == "multipart/alternative" {
		inAlt, alt = true, e.section
	}
	n := 0
	for !w.stopped && w.out.err == nil {
		b, start, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if !start {
			w.out.write(b)
			continue
		}
		l, final, ok := s.Match(b)
		if !ok {
			w.out.write(b)
			continue
		}
		if l < level {
			s.Unread()
			break
		}
		w.out.write(b)
		if final {
			if err := w.epilogue(level); err != nil {
				return err
			}
			break
		}
		n++
		child := ectx{
			section: mailtext.JoinPath(e.section, n), depth: e.depth + 1, defType: childType,
			inMessage: e.inMessage, inAlt: inAlt, alt: alt,
		}
		if err := w.entity(child); err != nil {
			return err
		}
	}
	b := &w.banner
	if b.scopeSet && b.scopeAlt && b.scope == e.section && !e.inMessage {
		b.finished = true
	}
	return nil
}

// epilogue copies lines up to a boundary of an enclosing level.
func (w *walker) epilogue(level int) error {
	if w.out.err != nil {
		return nil
	}
	return w.src.SkipTo(level, func(b []byte) bool {
		w.out.write(b)
		return w.out.err == nil
	})
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
func (w *walker) writeHeader(e ectx, h *header, edit headerEdit, contentType string) {
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
		case e.root && w.removed(f.name):
			continue
		case f.name == "Mime-Version":
			sawMIME = true
		}
		if e.root && w.tag != "" && f.name == "Subject" {
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
	if e.root && w.tag != "" && !sawSubject {
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
	if edit != editNone && e.msgBody && !sawMIME {
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
func (w *walker) writeStripped(e ectx, h *header, filename string) error {
	w.out.startLine(w.eol)
	if e.msgBody {
		w.writeHeader(e, h, editStrip, "")
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
	br := w.src.Body()
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	w.out.writeString(w.eolAfter(br))
	return nil
}

// writeBanner re-encodes a text leaf as UTF-8 base64 with the banner in
// front.
func (w *walker) writeBanner(e ectx, h *header, in entityInfo) error {
	ct := in.MediaType + "; charset=utf-8"
	if v, ok := h.get("Content-Type"); ok && in.Params != nil {
		// A valid Content-Type: its other parameters are kept.
		ct = in.MediaType + "; charset=utf-8" + keptParams(v)
	}
	w.out.startLine(w.eol)
	w.writeHeader(e, h, editBanner, ct)
	br := w.src.Body()
	enc := newBase64Lines(w.out, w.eol)
	decoded := transferDecoder(br, in.CTE)
	var err error
	if in.MediaType == "text/html" {
		err = bannerHTML(enc, decoded, in.Params["charset"], w.banner.text)
	} else {
		err = bannerPlain(enc, decoded, in.Params["charset"], w.banner.text)
	}
	if err != nil {
		return err
	}
	enc.Close()
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	w.out.writeString(w.eolAfter(br))
	return nil
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
