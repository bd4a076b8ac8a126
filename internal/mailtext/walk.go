package mailtext

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/transform"
)

const (
	topBufSize    = 64 << 10 // line fragment size of the outer source
	nestedBufSize = 16 << 10 // for a base64/QP-encoded message/rfc822
	maxProblems   = 1000
	maxFilename   = 1 << 10
	maxDetail     = 200
)

// Parse reads one message from r and decodes it for content checks.
//
// It reads r sequentially at most once and may stop early when a bound in
// lim is hit (the rest of r is left unread). Memory stays bounded by lim
// whatever the input: no part is read whole except text, which is capped by
// MaxTextBytes (plus at most 8 MiB buffered for one HTML token). Malformed input yields Problems, never an error or a panic;
// the error is non-nil only when reading r fails or ctx is done, and then
// the Message is nil. Parse is safe for concurrent use on different inputs.
func Parse(ctx context.Context, r io.Reader, lim Limits) (*Message, error) {
	lim = lim.withDefaults()
	w := &walker{
		lim:       lim,
		msg:       &Message{},
		textLeft:  lim.MaxTextBytes,
		partIndex: map[string]int{},
		seen:      map[Problem]bool{},
		pending:   map[string][]ProblemKind{},
	}
	in := NewContextReader(ctx, r)
	src := NewLineReader(in, topBufSize)
	err := w.entity(src, entityCtx{msgBody: true, root: true})
	if err == nil {
		// A read error swallowed on the way (an HTML part stops at one) still
		// means the message was not read: report it.
		err = in.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("mailtext: read message: %w", err)
	}
	w.finish()
	return w.msg, nil
}

// countReader counts decoded bytes for Part.Size and enforces
// MaxDecodedBytes; past the bound it ends the stream and stops the walk.
type countReader struct {
	r    io.Reader
	w    *walker
	path string
	n    int64
}

func (c *countReader) Read(p []byte) (int, error) {
	if c.w.stopped {
		return 0, io.EOF
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.w.decoded += int64(n)
	if c.w.decoded > c.w.lim.MaxDecodedBytes {
		c.w.problem(ProblemDecodedLimit, c.path, fmt.Sprintf("more than %d decoded bytes", c.w.lim.MaxDecodedBytes))
		c.w.stopped = true
		return n, io.EOF
	}
	return n, err
}

type walker struct {
	lim       Limits
	msg       *Message
	entities  int
	decoded   int64
	textLeft  int64
	stopped   bool // a global bound was hit: read nothing more
	inText    []bool
	partIndex map[string]int
	seen      map[Problem]bool
	pending   map[string][]ProblemKind
	nProblems int
}

type entityCtx struct {
	section string // own section number; for a message body, the message's
	msgBody bool   // the entity is the body of a message (root or rfc822)
	root    bool
	depth   int
	defType string
}

func (w *walker) problem(kind ProblemKind, path, detail string) {
	if kind.Unscannable() {
		w.msg.Unscannable = true
	}
	p := Problem{Kind: kind, Part: path, Detail: truncUTF8(strings.ToValidUTF8(detail, "\ufffd"), maxDetail)}
	if w.seen[p] {
		return
	}
	if w.nProblems >= maxProblems {
		if w.nProblems == maxProblems {
			w.msg.Problems = append(w.msg.Problems, Problem{Kind: ProblemTooManyProblems})
			w.nProblems++
		}
		return
	}
	w.seen[p] = true
	w.nProblems++
	w.msg.Problems = append(w.msg.Problems, p)
	if i, ok := w.partIndex[path]; ok {
		w.msg.Parts[i].Problems = addKind(w.msg.Parts[i].Problems, kind)
	} else if path != "" && len(w.pending) < maxProblems {
		// Found in the part's header, before the Part exists.
		w.pending[path] = addKind(w.pending[path], kind)
	}
}

func addKind(ks []ProblemKind, k ProblemKind) []ProblemKind {
	for _, x := range ks {
		if x == k {
			return ks
		}
	}
	return append(ks, k)
}

func (w *walker) headerFlags(f hdrFlags, path, field string) {
	if f&flagBadBase64 != 0 {
		w.problem(ProblemBadBase64, path, "encoded-word in "+field)
	}
	if f&flagBadQP != 0 {
		w.problem(ProblemBadQP, path, "encoded-word in "+field)
	}
	if f&flagBadCharset != 0 {
		w.problem(ProblemBadCharset, path, "unknown charset in "+field)
	}
}

func (w *walker) addPart(p Part) int {
	w.msg.Parts = append(w.msg.Parts, p)
	w.inText = append(w.inText, true)
	i := len(w.msg.Parts) - 1
	if _, dup := w.partIndex[p.Path]; !dup {
		w.partIndex[p.Path] = i
	}
	if ks, ok := w.pending[p.Path]; ok {
		for _, k := range ks {
			w.msg.Parts[i].Problems = addKind(w.msg.Parts[i].Problems, k)
		}
		delete(w.pending, p.Path)
	}
	return i
}

// singleFields may appear at most once (RFC 5322 3.6, RFC 2045 3); more
// than one is how display spoofing and parser-differential tricks work.
var singleFields = map[string]bool{
	"Date": true, "From": true, "Sender": true, "Reply-To": true, "To": true,
	"Cc": true, "Bcc": true, "Message-Id": true, "In-Reply-To": true,
	"References": true, "Subject": true, "Mime-Version": true,
	"Content-Type": true, "Content-Transfer-Encoding": true, "Content-Disposition": true,
}

// readHeader reads one header section, keeping at most MaxHeaderBytes of it,
// and records its problems as they are met.
func (w *walker) readHeader(s *LineReader, e entityCtx) ([]RawField, error) {
	path := e.section
	first, over := true, false
	fields, end, err := HeaderReader{
		MaxBytes: w.lim.MaxHeaderBytes,
		Root:     e.root,
		Line: func(_ []byte, kind HeaderLineKind, beyond bool) error {
			switch kind {
			case LineMbox, LineEnd:
				return nil
			case LineContinuation:
				if first {
					w.problem(ProblemMalformedHeader, path, "header starts with a continuation line")
				}
			}
			first = false
			if beyond && !over {
				over = true
				w.problem(ProblemHeaderTooLarge, path, fmt.Sprintf("header section over %d bytes", w.lim.MaxHeaderBytes))
			}
			return nil
		},
	}.Read(s)
	if err != nil {
		return nil, err
	}
	if end == HeaderEndBody {
		w.problem(ProblemMalformedHeader, path, "line without a field name ends the header")
	}
	counts := map[string]int{}
	for _, f := range fields {
		if singleFields[f.Name] {
			counts[f.Name]++
			if counts[f.Name] == 2 {
				w.problem(ProblemDuplicateHeader, path, f.Name)
			}
		}
	}
	return fields, nil
}

// entity walks one MIME entity: header, then body by type. It returns only
// read errors; bounds stop the walk through w.stopped.
func (w *walker) entity(s *LineReader, e entityCtx) error {
	if w.stopped {
		return nil
	}
	w.entities++
	// The body of a message is section 1 of it when it is not multipart
	// (RFC 3501 6.4.5); header problems belong to the message's own section.
	path := e.section
	if e.msgBody {
		path = JoinPath(e.section, 1)
	}
	if w.entities > w.lim.MaxParts {
		w.problem(ProblemTooManyParts, path, fmt.Sprintf("more than %d MIME entities", w.lim.MaxParts))
		w.stopped = true
		return nil
	}
	fields, err := w.readHeader(s, e)
	if err != nil {
		return err
	}
	fallback := headerCharset(fields)
	if e.root {
		w.rootHeader(fields, fallback)
	}
	ent, ctFlags, cdFlags := classify(fields, e.defType, fallback)
	w.headerFlags(ctFlags, e.section, "Content-Type")
	if ent.BadContentType {
		defType := e.defType
		if defType == "" {
			defType = "text/plain"
		}
		w.problem(ProblemMalformedHeader, e.section, "invalid Content-Type, using "+defType)
	}
	w.headerFlags(cdFlags, e.section, "Content-Disposition")
	p := Part{
		Path:        path,
		ContentType: ent.MediaType,
		Filename:    truncUTF8(ent.Filename, maxFilename),
		Disposition: ent.Disposition,
	}
	if ent.NoBoundary {
		w.problem(ProblemMalformedMIME, path, "multipart without boundary, read as text/plain")
	}
	if (ent.Multipart || ent.Message) && e.depth >= w.lim.MaxDepth {
		// Do not open it; skip its body up to an enclosing boundary.
		i := w.addPart(p)
		w.problem(ProblemDepthExceeded, path, fmt.Sprintf("nesting deeper than %d", w.lim.MaxDepth))
		cr := &countReader{r: s.Body(), w: w, path: path}
		if _, err := io.Copy(io.Discard, cr); err != nil {
			return err
		}
		w.msg.Parts[i].Size = cr.n
		return nil
	}
	switch {
	case ent.Multipart:
		return w.multipart(s, e, ent.Params["boundary"], ent.MediaType)
	case ent.Message:
		return w.message(s, e, p, ent.CTE)
	}
	return w.leaf(s, p, ent.CTE, ent.Params["charset"])
}

func (w *walker) rootHeader(fields []RawField, fallback string) {
	m := w.msg
	m.Header = make([]HeaderField, 0, len(fields))
	for _, f := range fields {
		v, fl := decodeHeaderValue(f.Value, fallback)
		w.headerFlags(fl, "", f.Name)
		m.Header = append(m.Header, HeaderField{Name: f.Name, Value: v})
	}
	if v, ok := Lookup(fields, "Subject"); ok {
		m.Subject, _ = decodeHeaderValue(v, fallback)
	}
	addrs := func(name string) []Address {
		v, ok := Lookup(fields, name)
		if !ok {
			return nil
		}
		a, fl := parseAddressList(v, fallback)
		w.headerFlags(fl, "", name)
		return a
	}
	m.From = addrs("From")
	m.ReplyTo = addrs("Reply-To")
	m.To = addrs("To")
	m.Cc = addrs("Cc")
}

func (w *walker) multipart(s *LineReader, e entityCtx, boundary, mediaType string) error {
	level := s.PushBoundary(boundary)
	defer s.PopBoundary(level)
	childType := ChildType(mediaType)
	var starts []int
	n := 0
	for !w.stopped {
		b, start, err := s.Next()
		if errors.Is(err, io.EOF) {
			w.problem(ProblemMalformedMIME, e.section, "multipart not terminated")
			break
		}
		if err != nil {
			return err
		}
		if !start {
			continue
		}
		l, final, ok := s.Match(b)
		if !ok {
			continue // preamble
		}
		if l < level {
			s.Unread()
			w.problem(ProblemMalformedMIME, e.section, "multipart closed by an enclosing boundary")
			break
		}
		if final {
			if err := w.skipEpilogue(s, level); err != nil {
				return err
			}
			break
		}
		n++
		starts = append(starts, len(w.msg.Parts))
		child := entityCtx{section: JoinPath(e.section, n), depth: e.depth + 1, defType: childType}
		if err := w.entity(s, child); err != nil {
			return err
		}
	}
	if mediaType == "multipart/alternative" {
		w.chooseAlternative(starts)
	}
	return nil
}

// skipEpilogue skips lines up to a boundary of a level above level, and
// stops as soon as a bound stops the walk.
func (w *walker) skipEpilogue(s *LineReader, level int) error {
	if w.stopped {
		return nil
	}
	return s.SkipTo(level, func([]byte) bool { return !w.stopped })
}

// chooseAlternative keeps one branch of a multipart/alternative in
// Message.Text: the first with non-blank text/plain, else the last with any
// text (RFC 2046 5.1.4 orders branches by increasing richness).
func (w *walker) chooseAlternative(starts []int) {
	end := len(w.msg.Parts)
	rng := func(k int) (int, int) {
		if k+1 < len(starts) {
			return starts[k], starts[k+1]
		}
		return starts[k], end
	}
	pick := -1
	for k := range starts {
		a, b := rng(k)
		for i := a; i < b && pick < 0; i++ {
			p := w.msg.Parts[i]
			if w.inText[i] && p.ContentType == "text/plain" && strings.TrimSpace(p.Text) != "" {
				pick = k
			}
		}
		if pick >= 0 {
			break
		}
	}
	for k := len(starts) - 1; k >= 0 && pick < 0; k-- {
		a, b := rng(k)
		for i := a; i < b; i++ {
			if w.inText[i] && strings.TrimSpace(w.msg.Parts[i].Text) != "" {
				pick = k
				break
			}
		}
	}
	if pick < 0 {
		return
	}
	for k := range starts {
		if k == pick {
			continue
		}
		a, b := rng(k)
		for i := a; i < b; i++ {
			w.inText[i] = false
		}
	}
}

// transferDecode wraps body in the decoder for cte (RFC 2045 6).
func (w *walker) transferDecode(body io.Reader, cte, path string) (io.Reader, func()) {
	switch cte {
	case "base64":
		d := &b64Decoder{}
		return transform.NewReader(body, d), func() {
			if d.bad() {
				w.problem(ProblemBadBase64, path, fmt.Sprintf("%d invalid bytes", d.invalid))
			}
		}
	case "quoted-printable":
		d := &qpDecoder{}
		return transform.NewReader(body, d), func() {
			if d.bad() {
				w.problem(ProblemBadQP, path, fmt.Sprintf("%d malformed escapes", d.invalid))
			}
		}
	}
	if !IdentityCTE(cte) {
		w.problem(ProblemBadTransferEncoding, path, "unknown Content-Transfer-Encoding "+strconv.Quote(cte)+", read as is")
	}
	return body, func() {}
}

// message walks an encapsulated message (RFC 2046 5.2.1). Unencoded, it is
// read from the same line source; base64 or quoted-printable encoded (not
// allowed, but sent), it is decoded and parsed from its own source.
func (w *walker) message(s *LineReader, e entityCtx, p Part, cte string) error {
	p.IsAttachment = p.Disposition == "attachment" || p.Filename != ""
	i := w.addPart(p)
	inner := entityCtx{section: p.Path, msgBody: true, depth: e.depth + 1}
	if IdentityCTE(cte) {
		before := s.Consumed()
		if err := w.entity(s, inner); err != nil {
			return err
		}
		// Whatever the inner walk left (after a stop) is not read.
		w.msg.Parts[i].Size = s.Consumed() - before
		return nil
	}
	dec, report := w.transferDecode(s.Body(), cte, p.Path)
	cr := &countReader{r: dec, w: w, path: p.Path}
	if err := w.entity(NewLineReader(cr, nestedBufSize), inner); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return err
	}
	report()
	w.msg.Parts[i].Size = cr.n
	return nil
}

func (w *walker) leaf(s *LineReader, p Part, cte, declared string) error {
	isText := strings.HasPrefix(p.ContentType, "text/")
	p.IsAttachment = p.Disposition == "attachment" || p.Filename != "" || !isText
	i := w.addPart(p)
	dec, report := w.transferDecode(s.Body(), cte, p.Path)
	cr := &countReader{r: dec, w: w, path: p.Path}
	if isText {
		var err error
		if p.ContentType == "text/html" {
			err = w.htmlText(i, cr, declared)
		} else {
			err = w.plainText(i, cr, declared)
		}
		if err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return err
	}
	report()
	w.msg.Parts[i].Size = cr.n
	return nil
}

// noteCharset records a charset that had to be guessed or was unknown.
func (w *walker) noteCharset(path, declared, used string, unknown bool) {
	d := normalizeLabel(declared)
	switch {
	case unknown:
		w.problem(ProblemBadCharset, path, fmt.Sprintf("unknown charset %q, decoded as %s", declared, used))
	case d == "" && used != csUTF8:
		w.problem(ProblemBadCharset, path, "no charset declared, guessed "+used)
	case (d == csASCII || d == "ascii") && used != csUTF8, d == csISO2022 && used != csISO2022:
		w.problem(ProblemBadCharset, path, fmt.Sprintf("declared %s, guessed %s", d, used))
	}
}

func normalizeNewlines(s string) string {
	if strings.IndexByte(s, '\r') < 0 {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

func (w *walker) plainText(i int, r io.Reader, declared string) error {
	path := w.msg.Parts[i].Path
	left := w.textLeft
	raw, err := io.ReadAll(io.LimitReader(r, left+1))
	if err != nil {
		return err
	}
	truncated := int64(len(raw)) > left
	if truncated {
		raw = raw[:left]
	}
	text, used, derr := decodeCharset(declared, raw)
	w.noteCharset(path, declared, used, derr != nil)
	text = normalizeNewlines(text)
	if int64(len(text)) > left {
		text = truncUTF8(text, int(left))
		truncated = true
	}
	if truncated {
		w.problem(ProblemTruncated, path, fmt.Sprintf("text beyond %d bytes not kept", w.lim.MaxTextBytes))
	}
	w.textLeft -= int64(len(text))
	p := &w.msg.Parts[i]
	p.Text, p.Charset = text, used
	return nil
}

// MetaCharset returns the charset label, lower-case, declared by the first
// <meta charset=...> or http-equiv Content-Type tag in b, the first bytes
// of an HTML document (Parse looks at 8 KiB), or "" when there is none. It
// is how Parse reads an HTML part whose Content-Type declares no charset.
func MetaCharset(b []byte) string {
	lower := bytes.ToLower(b)
	for off := 0; ; {
		i := bytes.Index(lower[off:], []byte("charset"))
		if i < 0 {
			return ""
		}
		j := off + i + len("charset")
		off = j
		// Only inside a <meta ...> tag.
		lt := bytes.LastIndexByte(lower[:j], '<')
		if lt < 0 || !bytes.HasPrefix(lower[lt:], []byte("<meta")) || bytes.IndexByte(lower[lt:j], '>') >= 0 {
			continue
		}
		k := j
		for k < len(lower) && (lower[k] == ' ' || lower[k] == '\t') {
			k++
		}
		if k >= len(lower) || lower[k] != '=' {
			continue
		}
		k++
		for k < len(lower) && (lower[k] == ' ' || lower[k] == '"' || lower[k] == '\'') {
			k++
		}
		st := k
		for k < len(lower) && strings.IndexByte(" \t\r\n\"';>/", lower[k]) < 0 {
			k++
		}
		if k > st {
			return string(lower[st:k])
		}
	}
}

func (w *walker) htmlText(i int, r io.Reader, declared string) error {
	path := w.msg.Parts[i].Path
	br := bufio.NewReaderSize(r, 8<<10)
	sample, err := br.Peek(8 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return err
	}
	if normalizeLabel(declared) == "" {
		declared = MetaCharset(sample)
	}
	dr, used, ok := charsetReader(resolveLabel(declared, sample), br)
	if !ok {
		used = fallbackName(sample)
		dr = br
		if used == csLatin1 {
			dr = transform.NewReader(br, charmap.ISO8859_1.NewDecoder())
		}
	}
	w.noteCharset(path, declared, used, !ok)
	c := htmlConverter{
		max:      w.textLeft,
		maxLinks: w.lim.MaxLinks - len(w.msg.HTMLLinks),
		part:     path,
	}
	c.run(dr)
	if c.truncated {
		w.problem(ProblemTruncated, path, "HTML text beyond the text bound or an oversized token")
	}
	if c.tooMany {
		w.problem(ProblemTooManyLinks, path, fmt.Sprintf("more than %d links", w.lim.MaxLinks))
	}
	text := c.out.String()
	w.textLeft -= int64(len(text))
	w.msg.HTMLLinks = append(w.msg.HTMLLinks, c.links...)
	p := &w.msg.Parts[i]
	p.Text, p.Charset = text, used
	return nil
}

// finish assembles Message.Text from the parts chosen for it.
func (w *walker) finish() {
	var b strings.Builder
	for i, p := range w.msg.Parts {
		if !w.inText[i] || p.Text == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text)
	}
	w.msg.Text = truncUTF8(b.String(), int(w.lim.MaxTextBytes))
	if w.msg.Parts == nil {
		w.msg.Parts = []Part{}
	}
}
