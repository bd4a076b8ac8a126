// Package attachtext reads the attachments of a message: their types by
// content (magic bytes), the names of archive members (CP932 names too),
// and the text inside them (plain text and HTML in any charset, Office
// Open XML, PDF, and all of these inside ZIP archives, nested). The
// outbound rules and the archive's search index both read attachments
// through it.
//
// Reading is bounded whatever an attachment holds (a ZIP bomb, a thousand
// nested archives, a PDF that loops the reader): it stops at Limits and
// says what was not read, never fails or hangs on bad content.
package attachtext

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Attachment types, recognised by content (magic bytes), not by name.
const (
	TypeZip       = "zip"       // a ZIP archive (Office documents too)
	TypeArchive   = "archive"   // any archive: ZIP, 7z, RAR, gzip
	TypeEncrypted = "encrypted" // a ZIP with encrypted entries, or an encrypted Office document
	TypeOffice    = "office"    // Word, Excel or PowerPoint, old or new
	TypeDocx      = "docx"
	TypeXlsx      = "xlsx"
	TypePptx      = "pptx"
	TypePDF       = "pdf"
	TypeExe       = "exe" // Windows or ELF executables
	TypeImage     = "image"
	TypeText      = "text"
	TypeHTML      = "html"
	TypeOther     = "other"
)

// Types lists every type Read reports.
var Types = []string{TypeZip, TypeArchive, TypeEncrypted, TypeOffice, TypeDocx, TypeXlsx, TypePptx, TypePDF, TypeExe, TypeImage,
	TypeText, TypeHTML, TypeOther}

// Limits bound the work of reading attachments. Whatever an attachment
// holds (a ZIP bomb, a thousand nested archives), reading it stops at
// these bounds, and what was not read is reported.
type Limits struct {
	MaxAttachments int   // attachments whose content is read (the rest: names, sizes and types only)
	MaxPartBytes   int64 // decoded bytes of one attachment held for reading
	MaxTotalBytes  int64 // bytes read from all attachments and archive members together
	MaxDepth       int   // archives inside archives (an attached ZIP is 1)
	MaxEntries     int   // archive members over all archives
	MaxRatio       int64 // uncompressed:compressed of one member above which it is not read
	MaxTextBytes   int64 // text kept per attachment
	// PDFTimeout bounds the reading of one PDF's text; zero means
	// DefaultPDFTimeout.
	PDFTimeout time.Duration
}

// DefaultPDFTimeout bounds one PDF's text when Limits.PDFTimeout is zero.
const DefaultPDFTimeout = 5 * time.Second

// DefaultLimits fit ordinary office mail with a wide margin.
func DefaultLimits() Limits {
	return Limits{MaxAttachments: 1000, MaxPartBytes: 32 << 20, MaxTotalBytes: 128 << 20, MaxDepth: 5, MaxEntries: 10000,
		MaxRatio: 200, MaxTextBytes: 4 << 20, PDFTimeout: DefaultPDFTimeout}
}

// Attachment is what was read of one attachment.
type Attachment struct {
	Path  string   // mailtext part path
	Name  string   // decoded file name ("" when none)
	Names []string // names of the members of an archive, decoded (CP932 names too)
	Size  int64    // decoded size
	Types []string // recognised types, e.g. [zip office docx]
	Text  string   // text found inside (UTF-8)
	// Unread says why the content was not read completely ("" = it was):
	// what depends on its text is then unknown, never "not there".
	Unread string
}

// HasType reports whether the attachment was recognised as type t.
func (a *Attachment) HasType(t string) bool { return slices.Contains(a.Types, t) }

// reader reads attachments within one budget.
type reader struct {
	ctx     context.Context
	lim     Limits
	noText  bool // names and types only
	used    int64
	entries int
}

func (x *reader) take(n int64) bool {
	if x.used+n > x.lim.MaxTotalBytes {
		return false
	}
	x.used += n
	return true
}

// Read walks the message in r once and reads the attachments listed in
// parts (Parse's parts of the same message; attached messages are not
// attachments here, the walk opens them and reads the attachments inside
// them that parts lists): their types, archive members' names and, with
// text, the text inside. It returns one Attachment per listed attachment,
// in order, also when it returns an error (reading r failed, or ctx ended).
func Read(ctx context.Context, r io.Reader, mlim mailtext.Limits, parts []mailtext.Part, lim Limits, text bool) ([]Attachment, error) {
	if lim.PDFTimeout <= 0 {
		lim.PDFTimeout = DefaultPDFTimeout
	}
	want := map[string]int{}
	var out []Attachment
	for _, p := range parts {
		if !p.IsAttachment || p.ContentType == "message/rfc822" {
			continue
		}
		a := Attachment{Path: p.Path, Name: p.Filename, Size: p.Size}
		if len(want) >= lim.MaxAttachments {
			a.Unread = fmt.Sprintf("more than %d attachments: not read", lim.MaxAttachments)
			a.Types = []string{TypeOther}
		} else {
			want[p.Path] = len(out)
		}
		out = append(out, a)
	}
	if len(want) == 0 {
		return out, nil
	}
	x := &reader{ctx: ctx, lim: lim, noText: !text}
	v := &visitor{x: x, want: want, out: out}
	if err := mailtext.Walk(ctx, r, mlim, v); err != nil {
		return out, fmt.Errorf("read message: %w", err)
	}
	for path, i := range want {
		if !v.seen[path] && out[i].Unread == "" {
			out[i].Unread = "not found when reading the message"
		}
	}
	return out, nil
}

type visitor struct {
	x    *reader
	want map[string]int
	out  []Attachment
	seen map[string]bool
}

func (v *visitor) Header(*mailtext.Node) (mailtext.Action, error) { return mailtext.Descend, nil }

func (v *visitor) Body(n *mailtext.Node, b *mailtext.Body) error {
	i, ok := v.want[n.Path]
	if !ok {
		return nil
	}
	if v.seen == nil {
		v.seen = map[string]bool{}
	}
	v.seen[n.Path] = true
	a := &v.out[i]
	max := v.x.lim.MaxPartBytes
	data, err := io.ReadAll(io.LimitReader(b.Decoded(), max+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > max {
		a.Unread = fmt.Sprintf("larger than %d bytes: not read", max)
		a.Types = sniff(head(data), n.MediaType)
		return nil
	}
	if !v.x.take(int64(len(data))) {
		a.Unread = "attachments larger than the reading budget together"
		a.Types = sniff(head(data), n.MediaType)
		return nil
	}
	cs := ""
	if n.Params != nil {
		cs = n.Params["charset"]
	}
	r := v.x.content(data, n.MediaType, cs, 1)
	a.Types, a.Text, a.Names, a.Unread = r.types, r.text, r.names, r.unread
	return nil
}

func head(b []byte) []byte {
	if len(b) > 512 {
		return b[:512]
	}
	return b
}

// result is what reading one file found.
type result struct {
	types  []string
	text   string
	names  []string
	unread string
}

// content reads one file (an attachment or an archive member).
func (x *reader) content(data []byte, declared, charset string, depth int) result {
	var r result
	r.types = sniff(head(data), declared)
	switch {
	case slices.Contains(r.types, TypeZip):
		x.zip(data, depth, &r)
	case x.noText:
	case slices.Contains(r.types, TypeHTML):
		if charset == "" {
			charset = mailtext.MetaCharset(head(data))
		}
		s, _ := mailtext.DecodeCharset(charset, data)
		t, _ := mailtext.HTMLToText(strings.NewReader(s), x.lim.MaxTextBytes)
		r.text = t
	case slices.Contains(r.types, TypeText):
		s, _ := mailtext.DecodeCharset(charset, data)
		r.text = s
	case slices.Contains(r.types, TypePDF):
		t, err := mailtext.PDFText(data, x.lim.MaxTextBytes+1, x.lim.PDFTimeout)
		if err != nil {
			// Unread: a block or hold rule on attachment text holds it.
			r.unread = "PDF text not readable: " + err.Error()
		}
		r.text = t
	}
	if int64(len(r.text)) > x.lim.MaxTextBytes {
		r.text = mailtext.TruncUTF8(r.text, int(x.lim.MaxTextBytes))
		r.unread = "text beyond the kept length"
	}
	return r
}

// zip reads an archive's members: their names, their text, archives in
// archives down to MaxDepth, Office documents' XML.
func (x *reader) zip(data []byte, depth int, r *result) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		r.unread = "damaged ZIP archive: " + err.Error()
		return
	}
	office := ""
	hasCT := false
	for _, f := range zr.File {
		switch {
		case f.Name == "[Content_Types].xml":
			hasCT = true
			if office == "" {
				office = "?"
			}
		case strings.HasPrefix(f.Name, "word/"):
			office = TypeDocx
		case strings.HasPrefix(f.Name, "xl/"):
			office = TypeXlsx
		case strings.HasPrefix(f.Name, "ppt/"):
			office = TypePptx
		}
	}
	isOffice := hasCT && office != "" && office != "?"
	if isOffice {
		r.types = append(r.types, TypeOffice, office)
	} else {
		r.types = append(r.types, TypeArchive)
	}
	var text strings.Builder
	note := func(s string) {
		if r.unread == "" {
			r.unread = s
		}
	}
	for _, f := range zr.File {
		if x.ctx.Err() != nil {
			note("stopped: " + x.ctx.Err().Error())
			return
		}
		x.entries++
		if x.entries > x.lim.MaxEntries {
			note(fmt.Sprintf("more than %d archive members", x.lim.MaxEntries))
			return
		}
		name := zipName(f)
		if f.FileInfo().IsDir() {
			continue
		}
		if !isOffice {
			r.names = append(r.names, name)
		}
		if f.Flags&0x1 != 0 || f.Method == 99 {
			if !slices.Contains(r.types, TypeEncrypted) {
				r.types = append(r.types, TypeEncrypted)
			}
			note("encrypted archive member " + name)
			continue
		}
		if isOffice && (x.noText || !officeText(f.Name)) {
			continue
		}
		if f.CompressedSize64 > 0 && f.UncompressedSize64/f.CompressedSize64 > uint64(x.lim.MaxRatio) && f.UncompressedSize64 > 1<<20 {
			note(fmt.Sprintf("archive member %s expands %d times: not read", name, f.UncompressedSize64/f.CompressedSize64))
			continue
		}
		left := min(x.lim.MaxPartBytes, x.lim.MaxTotalBytes-x.used)
		if int64(f.UncompressedSize64) > left {
			note(fmt.Sprintf("archive member %s larger than the reading budget", name))
			continue
		}
		rc, err := f.Open()
		if err != nil {
			note("archive member " + name + ": " + err.Error())
			continue
		}
		// Declared sizes may lie: the read is bounded whatever they say.
		b, err := io.ReadAll(io.LimitReader(rc, left+1))
		rc.Close()
		if err != nil && !errors.Is(err, zip.ErrChecksum) {
			note("archive member " + name + ": " + err.Error())
			continue
		}
		if int64(len(b)) > left || !x.take(int64(len(b))) {
			note(fmt.Sprintf("archive member %s larger than the reading budget", name))
			continue
		}
		if isOffice {
			t, err := xmlText(b)
			if err != nil {
				note("document part " + name + ": " + err.Error())
			}
			text.WriteString(t)
			text.WriteByte('\n')
			continue
		}
		if depth >= x.lim.MaxDepth {
			note(fmt.Sprintf("archives nested deeper than %d", x.lim.MaxDepth))
			continue
		}
		sub := x.content(b, typeByName(name), "", depth+1)
		for _, t := range sub.types {
			if (t == TypeEncrypted || t == TypeOffice || t == TypeDocx || t == TypeXlsx || t == TypePptx || t == TypePDF || t == TypeExe) && !slices.Contains(r.types, t) {
				r.types = append(r.types, t)
			}
		}
		r.names = append(r.names, sub.names...)
		if sub.text != "" {
			text.WriteString(sub.text)
			text.WriteByte('\n')
		}
		if sub.unread != "" {
			note(name + ": " + sub.unread)
		}
	}
	r.text = text.String()
}

// officeText reports whether an Office Open XML part holds document text.
func officeText(name string) bool {
	dir, file := path.Split(name)
	if !strings.HasSuffix(file, ".xml") {
		return false
	}
	switch dir {
	case "word/":
		return file == "document.xml" || strings.HasPrefix(file, "header") || strings.HasPrefix(file, "footer") ||
			file == "footnotes.xml" || file == "endnotes.xml" || file == "comments.xml"
	case "xl/":
		return file == "sharedStrings.xml"
	case "xl/worksheets/", "ppt/slides/", "ppt/notesSlides/":
		return true
	}
	return false
}

// xmlText returns the character data of an XML document: the runs of a
// paragraph joined as written (Word splits words into runs, so 顧客 and
// リスト may be two runs of one word), a line break after each paragraph,
// shared string, cell and row.
func xmlText(b []byte) (string, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = false
	d.Entity = xml.HTMLEntity
	var out strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out.String(), nil
		}
		if err != nil {
			return out.String(), err
		}
		switch t := tok.(type) {
		case xml.CharData:
			out.Write(t)
		case xml.StartElement:
			if t.Name.Local == "tab" {
				out.WriteByte(' ')
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "p", "si", "c", "row", "tc", "br", "cr":
				out.WriteByte('\n')
			}
		}
	}
}

// zipName decodes a member's name: UTF-8 when valid, else CP932 (Japanese
// Windows writes names so without saying).
func zipName(f *zip.File) string {
	if utf8.ValidString(f.Name) {
		return f.Name
	}
	s, _ := mailtext.DecodeCharset("shift_jis", []byte(f.Name))
	return s
}

// typeByName guesses a declared type from a member's name, for the
// charset sniffing of text members only; types come from content.
func typeByName(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".htm", ".html":
		return "text/html"
	case ".txt", ".csv", ".tsv", ".log", ".md", ".json", ".xml":
		return "text/plain"
	}
	return "application/octet-stream"
}

// sniff recognises a file by its first bytes (declared is its declared
// media type, used only to tell text from HTML).
func sniff(b []byte, declared string) []string {
	switch {
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")), bytes.HasPrefix(b, []byte("PK\x07\x08")):
		return []string{TypeZip}
	case bytes.HasPrefix(b, []byte("%PDF-")):
		return []string{TypePDF}
	case bytes.HasPrefix(b, []byte("MZ")), bytes.HasPrefix(b, []byte("\x7fELF")):
		return []string{TypeExe}
	case bytes.HasPrefix(b, []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")):
		// OLE2: Word, Excel, PowerPoint 97–2003, and Office documents
		// encrypted with a password.
		return []string{TypeOffice}
	case bytes.HasPrefix(b, []byte("7z\xbc\xaf\x27\x1c")), bytes.HasPrefix(b, []byte("Rar!\x1a\x07")), bytes.HasPrefix(b, []byte("\x1f\x8b")):
		return []string{TypeArchive}
	case bytes.HasPrefix(b, []byte("\x89PNG")), bytes.HasPrefix(b, []byte("GIF8")), bytes.HasPrefix(b, []byte("\xff\xd8\xff")),
		bytes.HasPrefix(b, []byte("BM")) && len(b) > 14, bytes.HasPrefix(b, []byte("RIFF")) && bytes.Contains(head(b), []byte("WEBP")):
		return []string{TypeImage}
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return []string{TypeOther}
	}
	lower := bytes.ToLower(bytes.TrimLeft(b, " \t\r\n\xef\xbb\xbf"))
	if declared == "text/html" || bytes.HasPrefix(lower, []byte("<!doctype html")) || bytes.HasPrefix(lower, []byte("<html")) {
		return []string{TypeHTML}
	}
	return []string{TypeText}
}
