package mailtext

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
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
// MaxTextBytes (plus at most 8 MiB buffered for one HTML token). Malformed
// input yields Problems, never an error or a panic; the error is non-nil
// only when reading r fails or ctx is done, and then the Message is nil.
// Parse is safe for concurrent use on different inputs.
func Parse(ctx context.Context, r io.Reader, lim Limits) (*Message, error) {
	lim = lim.withDefaults()
	w := &walker{
		lim:       lim,
		msg:       &Message{},
		textLeft:  lim.MaxTextBytes,
		partIndex: map[string]int{},
		seen:      map[Problem]bool{},
		pending:   map[string][]ProblemKind{},
		listed:    map[*Node]int{},
		starts:    map[*Node][]int{},
	}
	if err := Walk(ctx, r, lim, w); err != nil {
		return nil, fmt.Errorf("mailtext: read message: %w", err)
	}
	w.finish()
	return w.msg, nil
}

// walker is Parse's visitor of the MIME tree.
type walker struct {
	lim       Limits
	msg       *Message
	textLeft  int64
	inText    []bool
	partIndex map[string]int
	seen      map[Problem]bool
	pending   map[string][]ProblemKind
	nProblems int
	listed    map[*Node]int   // Parts index of each listed entity, until End
	starts    map[*Node][]int // Parts index where each branch of an alternative starts
}

var (
	_ StartVisitor   = (*walker)(nil)
	_ EndVisitor     = (*walker)(nil)
	_ ProblemVisitor = (*walker)(nil)
)

// Problem records what the walk found.
func (w *walker) Problem(_ *Node, p Problem) { w.problem(p.Kind, p.Part, p.Detail) }

// Start notes where each branch of a multipart/alternative begins.
func (w *walker) Start(n *Node) error {
	if p := n.Parent; p != nil && p.MediaType == "multipart/alternative" {
		w.starts[p] = append(w.starts[p], len(w.msg.Parts))
	}
	return nil
}

// Header decodes the top-level header, records the problems of the MIME
// fields and lists the entity: leaves, messages and containers left
// closed are Parts; opened multiparts are not.
func (w *walker) Header(n *Node) (Action, error) {
	if n.Root {
		w.rootHeader(n.Fields, n.charset)
	}
	w.headerFlags(n.ctFlags, n.Section, "Content-Type")
	if n.BadContentType {
		defType := n.defType
		if defType == "" {
			defType = "text/plain"
		}
		w.problem(ProblemMalformedHeader, n.Section, "invalid Content-Type, using "+defType)
	}
	w.headerFlags(n.cdFlags, n.Section, "Content-Disposition")
	p := Part{
		Path:        n.Path,
		ContentType: n.MediaType,
		Filename:    truncUTF8(n.Filename, maxFilename),
		Disposition: n.Disposition,
	}
	if n.NoBoundary {
		w.problem(ProblemMalformedMIME, n.Path, "multipart without boundary, read as text/plain")
	}
	switch {
	case n.DepthExceeded:
	case n.Multipart:
		return Descend, nil
	default:
		p.IsAttachment = n.IsAttachment()
	}
	w.listed[n] = w.addPart(p)
	return Descend, nil
}

// Body keeps the first bytes of every leaf and the text of text leaves;
// the walk reads the rest.
func (w *walker) Body(n *Node, b *Body) error {
	if n.DepthExceeded {
		return nil
	}
	var head [HeadLen]byte
	dec := b.Decoded()
	k, err := io.ReadFull(dec, head[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return err
	}
	i, listed := w.listed[n]
	if listed {
		w.msg.Parts[i].Head = string(head[:k])
	}
	if !strings.HasPrefix(n.MediaType, "text/") {
		return nil
	}
	body := io.MultiReader(bytes.NewReader(head[:k]), dec)
	if n.MediaType == "text/html" {
		return w.htmlText(i, body, n.Params["charset"])
	}
	return w.plainText(i, body, n.Params["charset"])
}

// End records sizes and picks the branch of an alternative that counts.
func (w *walker) End(n *Node) error {
	if i, ok := w.listed[n]; ok {
		w.msg.Parts[i].Size = n.Size
		delete(w.listed, n)
	}
	if n.MediaType == "multipart/alternative" && n.Multipart {
		w.chooseAlternative(w.starts[n])
		delete(w.starts, n)
	}
	return nil
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

// normalizeNewlinesBytes is normalizeNewlines in place: CRLF and lone CR
// become LF. Only for ASCII-compatible text, where those bytes are always
// line breaks.
func normalizeNewlinesBytes(b []byte) []byte {
	if bytes.IndexByte(b, '\r') < 0 {
		return b
	}
	out := b[:0]
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\r' {
			if i+1 < len(b) && b[i+1] == '\n' {
				continue // CRLF: the LF is kept
			}
			c = '\n'
		}
		out = append(out, c)
	}
	return out
}

func (w *walker) plainText(i int, r io.Reader, declared string) error {
	path := w.msg.Parts[i].Path
	left := w.textLeft
	buf := getTextBuf()
	defer putTextBuf(buf)
	if _, err := buf.ReadFrom(io.LimitReader(r, left+1)); err != nil {
		return err
	}
	raw := buf.Bytes()
	truncated := int64(len(raw)) > left
	if truncated {
		raw = raw[:left]
	}
	label := resolveLabel(declared, raw)
	if isUTF8Label(label) {
		// Line breaks normalised before the one copy into a string rather
		// than after it; the same text, one copy less.
		raw = normalizeNewlinesBytes(raw)
	}
	text, used, derr := decodeResolved(declared, label, raw)
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
	p.Payload = textPayload(text)
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
	p.Payload = cmp.Or(c.payload, textPayload(text))
	return nil
}

// finish assembles Message.Text from the parts chosen for it.
func (w *walker) finish() {
	// The text parts joined by newlines; one part is used as it is.
	size, n, last := 0, 0, ""
	for i, p := range w.msg.Parts {
		if w.inText[i] && p.Text != "" {
			size += len(p.Text) + 1
			n++
			last = p.Text
		}
	}
	text := last
	if n > 1 {
		var b strings.Builder
		b.Grow(size)
		for i, p := range w.msg.Parts {
			if !w.inText[i] || p.Text == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(p.Text)
		}
		text = b.String()
	}
	w.msg.Text = truncUTF8(text, int(w.lim.MaxTextBytes))
	if w.msg.Parts == nil {
		w.msg.Parts = []Part{}
	}
}
