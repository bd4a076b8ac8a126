package archive

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/attachtext"
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
	maxAttachmentText = 4 << 20 // over all attachments of a message
	// pdfTimeout bounds the reading of one PDF's text: a crafted document
	// must not stall the archiver, but nobody waits for it either.
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

// Attachment is one attachment's name, types by content, size and text
// (attachtext's reading, bounded by its default limits); an attached
// message is listed by its name only, its own attachments are
// read. Unread says why the text may be incomplete.
type Attachment = attachtext.Attachment

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

// attachments walks the message once more and reads its attachments'
// text within attachtext's bounds: a ZIP bomb or a damaged document gives
// partial text, never an error.
func attachments(ctx context.Context, raw []byte, m *mailtext.Message) []Attachment {
	lim := attachtext.DefaultLimits()
	lim.PDFTimeout = pdfTimeout
	read, _ := attachtext.Read(ctx, bytes.NewReader(raw), mailtext.Limits{}, m.Parts, lim, true)
	byPath := make(map[string]Attachment, len(read))
	for _, a := range read {
		byPath[a.Path] = a
	}
	var out []Attachment
	total := 0
	for _, p := range m.Parts {
		if !p.IsAttachment {
			continue
		}
		a, ok := byPath[p.Path]
		if !ok {
			// An attached message, by name (its own attachments are
			// listed too).
			a = Attachment{Path: p.Path, Name: p.Filename, Size: p.Size}
		}
		if total+len(a.Text) > maxAttachmentText {
			a.Text = truncUTF8(a.Text, maxAttachmentText-total)
			a.Unread = "text beyond the index's bound"
		}
		total += len(a.Text)
		out = append(out, a)
	}
	return out
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
