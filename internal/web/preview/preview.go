// Package preview renders a quarantined message for the web console so its
// recipient or a tenant admin can look at it without being attacked by it.
//
// Render reads the raw message once, with every size bounded, and returns a
// View: decoded subject and parties made safe for display (Mailsploit-style
// display names flagged), the text body, the attachment list and a complete
// HTML document for an iframe. That document is sanitised HTML (an allow
// list, no script, no active content, no resource loads except inline
// raster images, and remote HTTPS images when the caller allows them) or an
// escaped <pre> of the text. The console must serve it only with the headers
// of Headers (a CSP with sandbox and default-src 'none'), from its own URL,
// inside an <iframe sandbox> without allow-scripts and allow-same-origin.
//
// MIME splitting, header decoding and charsets (Japanese first-class) are
// mailtext's: this package only picks what to show.
package preview

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Options says how to render a message. The zero value is the safe default.
type Options struct {
	// AllowRemoteImages keeps remote https: images in the document (the
	// reader asked to see them; the sender learns the mail was opened).
	// http: images stay blocked either way.
	AllowRemoteImages bool
	// Lang is the console language for placeholders and the document's
	// lang attribute: "ja" or "en" (anything else is "en").
	Lang string
	// Limits bounds the walk as mailtext.Parse is bounded; zero fields take
	// mailtext's defaults. MaxTextBytes bounds the kept plain text and,
	// separately, the HTML source read.
	Limits mailtext.Limits
	// LinkURL, when set, gives the URL a kept link points to instead of its
	// target (an absolute http, https or mailto URL): a console page that
	// shows the target and lets the reader go on. The document then lets a
	// click open that page in a new tab (View.FrameSandbox). Nil leaves links
	// pointing at their targets, which the sandboxed frame never opens.
	LinkURL func(target string) string
	// InlineImages shows the message's own images that its HTML names by
	// cid: URL (RFC 2392: a part with that Content-ID), as inline data in
	// the document, when they are PNG, GIF, JPEG or WebP by their content,
	// at most 4 MiB each and 16 MiB together; other cid: images stay
	// placeholders. Nothing is fetched: the data comes from the message.
	InlineImages bool
}

// View is a message prepared for display. Every string is valid UTF-8 and
// free of control, bidi and invisible characters where noted.
type View struct {
	Subject string // decoded, cleaned like display names
	From    []Party
	To      []Party
	Cc      []Party
	ReplyTo []Party
	// Date is the Date field, zero when missing or unparseable.
	Date time.Time
	// TextBody is the plain text of the body: the text/plain parts, or the
	// text of HTML parts that have no plain alternative.
	TextBody string
	// HTMLDoc is the complete sanitised document for the iframe when the
	// body has HTML, nil otherwise (Document then renders TextBody).
	HTMLDoc []byte
	// RemoteImages is the number of remote images replaced by a
	// placeholder; EmbeddedImages the number of cid: images.
	RemoteImages   int
	EmbeddedImages int
	// InlineImages is the number of cid: images shown from the message
	// itself (Options.InlineImages).
	InlineImages int
	// RemoteImagesAllowed records Options.AllowRemoteImages: Headers opens
	// the CSP to https: images only then.
	RemoteImagesAllowed bool
	Attachments         []Attachment
	// Links are the links of the HTML body as shown, in order, at most
	// 1000.
	Links []Link
	// LinksOpen records that links point at Options.LinkURL.
	LinksOpen bool
	// FrameHeight estimates, in CSS pixels, the height of the document at
	// a usual console width: the sandboxed frame runs no script that could
	// report it, so the console sizes the frame with this.
	FrameHeight int
	// Problems describe in English what was wrong or cut: bounds hit,
	// duplicate or malformed headers. A non-empty list does not stop
	// rendering.
	Problems []string
	// Notices tell the reader how the message is shown when it could not
	// be shown as sent (an unknown charset decoded as best it could be).
	Notices []Notice
	// Lang is the document language, "ja" or "en".
	Lang string
}

// Attachment is one part offered for download rather than shown.
type Attachment struct {
	// Index numbers attachments from 0 in message order; it is the index
	// AttachmentData takes.
	Index int
	// Path is the part's IMAP section number (RFC 3501 6.4.5), as mailtext
	// numbers it.
	Path string
	// Name is the decoded file name, cleaned like display names and with
	// path separators replaced; "" when the part has none.
	Name        string
	ContentType string // as declared (lower-case), never trusted for serving
	Size        int64  // bytes after transfer decoding
	// Suspicious is set when the name hid characters (a right-to-left
	// override turning "txt.exe" into "exe.txt" is the classic).
	Suspicious bool
	// Inline is set for an image the document shows (Options.InlineImages).
	Inline bool
}

// Notice is something the reader is told about how the message is shown.
// Key is a message of the console's catalogue (one of NoticeKeys), Part and
// Charset its arguments.
type Notice struct {
	Key     string
	Part    string // section number of the part concerned
	Charset string // the declared charset, cleaned for display
}

// Notice keys.
const (
	// NoticeCharset: a part declares a charset not known here; it is shown
	// as UTF-8 when valid, else as Latin-1.
	NoticeCharset = "preview_charset_unknown"
	// NoticeHeaderCharset: a header field uses a charset not known here.
	NoticeHeaderCharset = "preview_header_charset"
	// NoticeUTF7HTML: an HTML part in UTF-7 is shown as written.
	NoticeUTF7HTML = "preview_utf7_html"
)

// NoticeKeys returns every Notice key, for the console's catalogue check.
func NoticeKeys() []string {
	return []string{NoticeCharset, NoticeHeaderCharset, NoticeUTF7HTML}
}

// Link is one link of the HTML body as shown.
type Link struct {
	// Target is the absolute http, https or mailto URL the link leads to,
	// after sanitising (a protocol-relative link is https).
	Target string
	// Text is the link's visible text, cleaned like display names.
	Text string
}

const maxLinkText = 200

// ErrNoAttachment is returned by AttachmentData for an index that names no
// attachment.
var ErrNoAttachment = errors.New("preview: no such attachment")

// bodyPart is one inline text part kept for display.
type bodyPart struct {
	html bool
	text string // decoded source (HTML) or text
	alt  int
}

// inlineText reports whether a leaf is shown as the body rather than
// offered as an attachment (RFC 2183: inline is the default).
func inlineText(l leaf) bool {
	if l.Disposition == "attachment" || l.Filename != "" {
		return false
	}
	return l.ContentType == "text/plain" || l.ContentType == "text/html"
}

// Render reads one raw message from r and prepares it for display.
//
// It reads r once, sequentially, and may stop early when a bound of
// opt.Limits is hit (recorded in Problems). Memory stays bounded by the
// limits. Malformed input never fails Render; the error is non-nil only when
// reading r fails or ctx is done. Render is safe for concurrent use.
func Render(ctx context.Context, r io.Reader, opt Options) (*View, error) {
	lim := opt.Limits.WithDefaults()
	v := &View{RemoteImagesAllowed: opt.AllowRemoteImages, Lang: normLang(opt.Lang)}
	var bodies []bodyPart
	textLeft, htmlLeft := lim.MaxTextBytes, lim.MaxTextBytes
	var problems []string
	images := &inlineImages{left: maxInlineTotal}
	visit := func(l leaf, body io.Reader) error {
		if !inlineText(l) {
			var n int64
			var err error
			if opt.InlineImages && l.ContentID != "" && strings.HasPrefix(l.ContentType, "image/") {
				n, err = images.read(l, body)
			} else {
				n, err = io.Copy(io.Discard, body)
			}
			if err != nil {
				return err
			}
			v.Attachments = append(v.Attachments, makeAttachment(len(v.Attachments), l, n))
			return nil
		}
		isHTML := l.ContentType == "text/html"
		left := &textLeft
		if isHTML {
			left = &htmlLeft
		}
		raw, err := io.ReadAll(io.LimitReader(body, *left+1))
		if err != nil {
			return err
		}
		if int64(len(raw)) > *left {
			raw = raw[:*left]
			problems = append(problems, fmt.Sprintf("part %s cut at %d bytes", l.Path, lim.MaxTextBytes))
		}
		*left -= int64(len(raw))
		cs := l.Charset
		if isHTML && strings.TrimSpace(cs) == "" {
			cs = mailtext.MetaCharset(raw[:min(len(raw), 8<<10)])
		}
		var text string
		if isHTML && mailtext.CharsetName(cs) == "utf-7" {
			// No browser decodes HTML as UTF-7 (the HTML Standard forbids
			// it: it hides markup from filters that do not decode it), so
			// neither does the preview: the part shows as written.
			text, _ = mailtext.DecodeCharset("utf-8", raw)
			v.Notices = append(v.Notices, Notice{Key: NoticeUTF7HTML, Part: l.Path})
		} else {
			var err error
			if text, err = mailtext.DecodeCharset(cs, raw); err != nil {
				// Shown as best it can be, never as an error.
				label, _ := cleanText(strings.TrimSpace(cs), 40)
				v.Notices = append(v.Notices, Notice{Key: NoticeCharset, Part: l.Path, Charset: label})
			}
		}
		bodies = append(bodies, bodyPart{html: isHTML, text: text, alt: l.Alt})
		return nil
	}
	w, err := walk(ctx, r, lim, visit)
	if err != nil {
		return nil, fmt.Errorf("preview: read message: %w", err)
	}
	v.Problems = append(v.Problems, w.problems...)
	v.Problems = append(v.Problems, problems...)
	if err := v.header(ctx, w.rootHeader, lim); err != nil {
		return nil, err
	}
	v.body(bodies, opt, images)
	for i := range v.Attachments {
		a := &v.Attachments[i]
		a.Inline = images.shown[a.Path]
	}
	return v, nil
}

// header decodes the top-level header with mailtext.Parse, fed the header
// section alone, so addresses and encoded words are decoded by the one
// implementation gateway checks use.
func (v *View) header(ctx context.Context, raw []byte, lim mailtext.Limits) error {
	src := append(raw[:len(raw):len(raw)], "\r\n"...)
	m, err := mailtext.Parse(ctx, bytes.NewReader(src), lim)
	if err != nil {
		return fmt.Errorf("preview: decode header: %w", err)
	}
	v.Subject, _ = cleanText(m.Subject, 1000)
	v.From = makeParties(m.From)
	v.To = makeParties(m.To)
	v.Cc = makeParties(m.Cc)
	v.ReplyTo = makeParties(m.ReplyTo)
	if len(v.From) > 1 {
		v.Problems = append(v.Problems, "more than one From address")
	}
	if ds := m.HeaderValues("Date"); len(ds) > 0 {
		if t, err := mail.ParseDate(ds[0]); err == nil {
			v.Date = t
		} else {
			v.Problems = append(v.Problems, "unparseable Date field")
		}
	}
	charsetNoticed := false
	for _, p := range m.Problems {
		switch p.Kind {
		case mailtext.ProblemBadCharset:
			// Of the top-level header's fields; the body parts' charsets
			// are noticed as the parts are read.
			if p.Part == "" && !charsetNoticed {
				charsetNoticed = true
				v.Notices = append(v.Notices, Notice{Key: NoticeHeaderCharset})
			}
		case mailtext.ProblemDuplicateHeader, mailtext.ProblemMalformedHeader, mailtext.ProblemHeaderTooLarge:
			s := string(p.Kind)
			if p.Detail != "" {
				s += ": " + p.Detail
			}
			v.Problems = append(v.Problems, s)
		}
	}
	return nil
}

// body chooses what to show. Of a multipart/alternative, the document shows
// the HTML branch and TextBody the plain one (RFC 2046 5.1.4); other inline
// text parts are shown in order.
func (v *View) body(bodies []bodyPart, opt Options, images *inlineImages) {
	hasHTML, hasPlain := map[int]bool{}, map[int]bool{}
	for _, b := range bodies {
		if b.alt == 0 {
			continue
		}
		if b.html {
			hasHTML[b.alt] = true
		} else {
			hasPlain[b.alt] = true
		}
	}
	var text strings.Builder
	var doc bytes.Buffer
	anyHTML := false
	st := &rewriteStats{}
	policy := newPolicy()
	rules := resourceRules{allowRemote: opt.AllowRemoteImages, lang: v.Lang, linkURL: opt.LinkURL, images: images}
	for _, b := range bodies {
		inAltWithHTML := b.alt != 0 && hasHTML[b.alt]
		inAltWithPlain := b.alt != 0 && hasPlain[b.alt]
		switch {
		case b.html:
			anyHTML = true
			clean := policy.SanitizeBytes([]byte(b.text))
			writeSeparator(&doc, st)
			doc.Write(rewrite(clean, rules, st))
			if !inAltWithPlain {
				t, _ := mailtext.HTMLToText(strings.NewReader(b.text), int64(len(b.text)))
				appendText(&text, t)
			}
		default:
			appendText(&text, b.text)
			if !inAltWithHTML {
				writeSeparator(&doc, st)
				writePre(&doc, b.text)
				st.est.preText(b.text)
			}
		}
	}
	v.TextBody = text.String()
	v.RemoteImages, v.EmbeddedImages, v.InlineImages = st.remote, st.embedded, st.inline
	v.Links, v.LinksOpen = st.links, opt.LinkURL != nil
	if anyHTML {
		v.HTMLDoc = wrapDocument(v.Lang, doc.Bytes())
		v.FrameHeight = st.est.height()
	} else {
		// Document shows TextBody alone.
		var est pageEstimate
		est.preText(v.TextBody)
		v.FrameHeight = est.height()
	}
}

func appendText(b *strings.Builder, s string) {
	if strings.TrimSpace(s) == "" {
		return
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	b.WriteString(s)
}

func writeSeparator(doc *bytes.Buffer, st *rewriteStats) {
	if doc.Len() > 0 {
		doc.WriteString("<hr>")
		st.est.block(blockGapPx)
	}
}

func normLang(l string) string {
	if strings.HasPrefix(strings.ToLower(l), "ja") {
		return "ja"
	}
	return "en"
}

func makeAttachment(i int, l leaf, size int64) Attachment {
	name, hidden := cleanText(l.Filename, maxNameRunes)
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, strings.TrimSpace(name))
	return Attachment{Index: i, Path: l.Path, Name: name, ContentType: l.ContentType, Size: size, Suspicious: hidden}
}

// AttachmentData reads the raw message from r again and returns the
// attachment numbered index (as in View.Attachments for the same message
// and Options) with its transfer-decoded bytes.
//
// It reads r once, stopping after the attachment; opt.Limits bound it as
// they bound Render, so the numbering is the same. It returns an error
// wrapping ErrNoAttachment when there is no such attachment, and a read
// error when reading r fails or ctx is done. Safe for concurrent use.
func AttachmentData(ctx context.Context, r io.Reader, index int, opt Options) (Attachment, []byte, error) {
	lim := opt.Limits.WithDefaults()
	errFound := errors.New("found")
	n := 0
	var att Attachment
	var data []byte
	visit := func(l leaf, body io.Reader) error {
		if inlineText(l) {
			return nil
		}
		if n != index {
			n++
			return nil
		}
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		att, data = makeAttachment(index, l, int64(len(b))), b
		return errFound
	}
	w, err := walk(ctx, r, lim, visit)
	switch {
	case errors.Is(err, errFound) && w.stopped:
		// The decoded-size bound ended the attachment early: never hand
		// out a silently truncated file.
		return Attachment{}, nil, fmt.Errorf("preview: attachment %d larger than the decoding bound %d", index, lim.MaxDecodedBytes)
	case errors.Is(err, errFound):
		return att, data, nil
	case err != nil:
		return Attachment{}, nil, fmt.Errorf("preview: read message: %w", err)
	}
	return Attachment{}, nil, fmt.Errorf("preview: attachment %d: %w", index, ErrNoAttachment)
}
