package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Doc is what the search index keeps of one archived message: decoded
// header fields, body text, attachment names and text, and the facets the
// search filters on.
type Doc struct {
	TenantID int64
	ID       string
	// From, To and Cc hold the decoded header addresses with display
	// names; envelope sender and recipients are added to From and To, so
	// a blind-copied recipient is found too.
	From, To, Cc string
	Subject      string
	Body         string
	// Attachments holds the attachments' file names and extracted text.
	Attachments string
	// Addresses are the exact addresses the message is from or to, lower
	// case: the envelope sender and recipients and the From, To and Cc
	// headers' addresses (Participants). The query's Addr matches one of
	// them whole, never part of one.
	Addresses     []string
	Date          time.Time // received (imports: the Date header)
	Size          int64
	HasAttachment bool
	Direction     string
	Verdict       string // space-separated findings and outcomes ("spam quarantined")
	Imported      bool
}

// Extraction bounds: a message is archived whole whatever its content; the
// index gets what fits.
const (
	maxBodyText       = 4 << 20
	maxAttachmentText = 4 << 20
	maxAttachmentRead = 32 << 20 // decoded bytes of one attachment read for text
	maxZipEntryRead   = 16 << 20 // decompressed bytes read from one OOXML part
	maxZipEntries     = 2000
	// pdfTimeout bounds the reading of one PDF's text: a crafted document
	// must not stall the archiver.
	pdfTimeout = 30 * time.Second
)

// Extracted is the decoded view of a message for the archive.
type Extracted struct {
	Subject      string
	From, To, Cc []string // "Name <addr>" or addr
	// Addrs are the From, To and Cc headers' addresses, lower case.
	Addrs         []string
	Date          time.Time
	MessageID     string
	Body          string
	Attachments   []Attachment
	HasAttachment bool
	Problems      []string
}

// Attachment is one attachment's name, type and extracted text.
type Attachment struct {
	Name string
	Type string
	Size int64
	Text string
	// Note says why no text was extracted (type not supported, damaged).
	Note string
}

func formatAddrs(as []mailtext.Address) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		switch {
		case a.Name != "" && a.Addr != "":
			out = append(out, a.Name+" <"+a.Addr+">")
		case a.Addr != "":
			out = append(out, a.Addr)
		default:
			out = append(out, a.Raw)
		}
	}
	return out
}

// Extract decodes a message for the index: it never fails on bad input
// (broken charsets, malformed MIME, damaged attachments are indexed as far
// as they go, and the problems are listed).
func Extract(ctx context.Context, raw []byte) Extracted {
	var x Extracted
	m, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.Limits{MaxTextBytes: maxBodyText})
	if err != nil {
		x.Problems = append(x.Problems, "parse: "+err.Error())
	}
	if m == nil {
		return x
	}
	x.Subject = m.Subject
	x.From, x.To, x.Cc = formatAddrs(m.From), formatAddrs(m.To), formatAddrs(m.Cc)
	x.Addrs = headerAddrs(m)
	if v := m.HeaderValues("Message-ID"); len(v) > 0 {
		x.MessageID = strings.TrimSpace(v[0])
	}
	if v := m.HeaderValues("Date"); len(v) > 0 {
		if t, err := parseDate(v[0]); err == nil {
			x.Date = t
		}
	}
	x.Body = m.Text
	for _, p := range m.Problems {
		x.Problems = append(x.Problems, string(p.Kind))
	}
	for _, p := range m.Parts {
		if p.IsAttachment {
			x.HasAttachment = true
		}
	}
	x.Attachments = attachments(ctx, raw, m)
	return x
}

func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " ("); i > 0 {
		s = s[:i]
	}
	for _, layout := range []string{time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 -0700", time.RFC1123, "Mon, 2 Jan 2006 15:04:05 MST"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("unparsed date")
}

// attachments walks the message once more for the attachments' decoded
// bytes and extracts their text by type.
func attachments(ctx context.Context, raw []byte, m *mailtext.Message) []Attachment {
	byPath := map[string]mailtext.Part{}
	for _, p := range m.Parts {
		if p.IsAttachment {
			byPath[p.Path] = p
		}
	}
	if len(byPath) == 0 {
		return nil
	}
	v := &attVisitor{parts: byPath}
	_ = mailtext.Walk(ctx, bytes.NewReader(raw), mailtext.Limits{}, v)
	total := 0
	for i := range v.out {
		if total+len(v.out[i].Text) > maxAttachmentText {
			v.out[i].Text = truncUTF8(v.out[i].Text, maxAttachmentText-total)
			v.out[i].Note = "text truncated"
		}
		total += len(v.out[i].Text)
	}
	return v.out
}

type attVisitor struct {
	parts map[string]mailtext.Part
	out   []Attachment
}

func (v *attVisitor) Header(n *mailtext.Node) (mailtext.Action, error) {
	// Attached messages stay closed: they are attachments here.
	if _, ok := v.parts[n.Path]; ok {
		return mailtext.AsLeaf, nil
	}
	return mailtext.Descend, nil
}

func (v *attVisitor) Body(n *mailtext.Node, b *mailtext.Body) error {
	p, ok := v.parts[n.Path]
	if !ok {
		return nil
	}
	a := Attachment{Name: p.Filename, Type: p.ContentType, Size: p.Size}
	data, err := io.ReadAll(io.LimitReader(b.Decoded(), maxAttachmentRead+1))
	switch {
	case err != nil:
		a.Note = "unreadable: " + err.Error()
	case len(data) > maxAttachmentRead:
		a.Note = "too large for text extraction"
	default:
		a.Size = int64(len(data))
		a.Text, a.Note = attachmentText(p, data)
	}
	v.out = append(v.out, a)
	return nil
}

func attachmentText(p mailtext.Part, data []byte) (string, string) {
	name := strings.ToLower(p.Filename)
	ext := path.Ext(name)
	switch {
	case p.Text != "":
		return p.Text, ""
	case strings.HasPrefix(p.ContentType, "text/html") || ext == ".html" || ext == ".htm":
		t, _ := mailtext.HTMLToText(bytes.NewReader(data), maxAttachmentText)
		return t, ""
	case strings.HasPrefix(p.ContentType, "text/") || ext == ".txt" || ext == ".csv":
		s, err := mailtext.DecodeCharset(p.Charset, data)
		if err != nil {
			return string(bytes.ToValidUTF8(data, []byte("\uFFFD"))), ""
		}
		return s, ""
	case ext == ".docx" || ext == ".xlsx" || ext == ".pptx" || strings.Contains(p.ContentType, "openxmlformats"):
		t, err := ooxmlText(data)
		if err != nil {
			return t, "office document: " + err.Error()
		}
		return t, ""
	case ext == ".pdf" || p.ContentType == "application/pdf":
		t, err := mailtext.PDFText(data, maxAttachmentText, pdfTimeout)
		if err != nil {
			return t, "pdf: " + err.Error()
		}
		return t, ""
	}
	return "", "no text extracted from this type"
}

// ooxmlText reads the text of a Word, Excel or PowerPoint (Office Open
// XML) file: the character data of its document parts, read through
// bounded readers so a compression bomb cannot exhaust memory.
func ooxmlText(data []byte) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", fmt.Errorf("not a zip file: %w", err)
	}
	if len(zr.File) > maxZipEntries {
		return "", fmt.Errorf("%d entries", len(zr.File))
	}
	var names []string
	for _, f := range zr.File {
		n := f.Name
		if n == "word/document.xml" || strings.HasPrefix(n, "word/header") || strings.HasPrefix(n, "word/footer") ||
			n == "xl/sharedStrings.xml" || strings.HasPrefix(n, "xl/worksheets/sheet") ||
			strings.HasPrefix(n, "ppt/slides/slide") && strings.HasSuffix(n, ".xml") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	budget := int64(maxZipEntryRead)
	for _, n := range names {
		f, err := zr.Open(n)
		if err != nil {
			continue
		}
		read, err := xmlText(&b, io.LimitReader(f, budget))
		f.Close()
		budget -= read
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return b.String(), fmt.Errorf("%s: %w", n, err)
		}
		if budget <= 0 || b.Len() > maxAttachmentText {
			return b.String(), errors.New("text beyond the extraction bound left out")
		}
	}
	if len(names) == 0 {
		return "", errors.New("no document parts")
	}
	return b.String(), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// xmlText appends the character data of an XML document, a space after
// each element (paragraphs, cells and runs then stay apart).
func xmlText(b *strings.Builder, r io.Reader) (int64, error) {
	cr := &countingReader{r: r}
	d := xml.NewDecoder(cr)
	d.Strict = false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return cr.n, nil
		}
		if err != nil {
			return cr.n, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(bytes.TrimSpace(t))
		case xml.EndElement:
			switch t.Name.Local {
			case "p", "t", "v", "si", "c", "tc", "br", "tab":
				b.WriteByte(' ')
			}
		}
	}
}

func truncUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
