package rewrite

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"html"
	"io"
	"strings"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// ---- base64 output ----

// lineWriter breaks its output into lines of 76 characters (RFC 2045 6.8),
// with a line break between lines and none after the last.
type lineWriter struct {
	out *output
	eol string
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if l.col == 76 {
			l.out.writeString(l.eol)
			l.col = 0
		}
		k := min(76-l.col, len(p))
		l.out.write(p[:k])
		l.col += k
		p = p[k:]
	}
	if l.out.err != nil {
		return 0, l.out.err
	}
	return n, nil
}

func newBase64Lines(out *output, eol string) io.WriteCloser {
	return base64.NewEncoder(base64.StdEncoding, &lineWriter{out: out, eol: eol})
}

// ---- charset decoding ----

const charsetChunk = 64 << 10

// charsetReader converts text to UTF-8 with mailtext.DecodeCharset, chunk
// by chunk so memory stays bounded. Chunks end at a line break where one
// is in reach: Japanese multi-byte sequences never span one, and
// ISO-2022-JP text returns to ASCII before each (RFC 1468), so decoding by
// lines equals decoding the whole. An undeclared charset is sniffed per
// chunk, as mailtext sniffs a whole text.
type charsetReader struct {
	r     io.Reader
	label string
	buf   []byte
	n     int
	out   []byte
	eof   bool
}

func newCharsetReader(r io.Reader, label string) *charsetReader {
	return &charsetReader{r: r, label: label, buf: make([]byte, charsetChunk)}
}

func (c *charsetReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.eof && c.n == 0 {
			return 0, io.EOF
		}
		for !c.eof && c.n < len(c.buf) {
			k, err := c.r.Read(c.buf[c.n:])
			c.n += k
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				return 0, err
			}
		}
		cut := c.n
		if !c.eof {
			if i := bytes.LastIndexByte(c.buf[:c.n], '\n'); i >= 0 {
				cut = i + 1
			}
		}
		s, _ := mailtext.DecodeCharset(c.label, c.buf[:cut])
		c.out = []byte(s)
		c.n = copy(c.buf, c.buf[cut:c.n])
	}
	k := copy(p, c.out)
	c.out = c.out[k:]
	return k, nil
}

// ---- banner ----

// bannerPlain writes the banner, an empty line and the text.
func bannerPlain(dst io.Writer, body io.Reader, charset, banner string) error {
	br := bufio.NewReaderSize(newCharsetReader(body, charset), 4096)
	sample, err := br.Peek(4096)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return err
	}
	// Follow the text's own line breaks; CRLF is the canonical form.
	nl := "\r\n"
	if bytes.IndexByte(sample, '\n') >= 0 && !bytes.Contains(sample, []byte("\r\n")) {
		nl = "\n"
	}
	b := strings.ReplaceAll(strings.ReplaceAll(banner, "\r\n", "\n"), "\r", "\n")
	b = strings.TrimRight(b, "\n")
	if _, err := io.WriteString(dst, strings.ReplaceAll(b, "\n", nl)+nl+nl); err != nil {
		return err
	}
	_, err = io.Copy(dst, br)
	return err
}

// bannerStyle makes the warning stand out in any mail reader: inline
// styles only, since readers drop <style> elements.
const bannerStyle = "margin:0 0 12px 0;padding:8px 12px;border:2px solid #c5221f;" +
	"background:#fce8e6;color:#202124;font-family:sans-serif;font-size:14px;line-height:1.4"

// htmlScanLimit bounds how much decoded HTML is held to find <body>.
const htmlScanLimit = 256 << 10

func bannerDiv(banner string) string {
	b := strings.ReplaceAll(strings.ReplaceAll(banner, "\r\n", "\n"), "\r", "\n")
	b = strings.TrimRight(b, "\n")
	esc := strings.ReplaceAll(html.EscapeString(b), "\n", "<br>")
	return `<div style="` + bannerStyle + `">` + esc + `</div>`
}

// bannerHTML writes the HTML text with the banner <div> after the <body>
// tag (or where the body content starts when there is no tag). Meta tags
// declaring a charset before it are rewritten to UTF-8, which the part now
// is.
func bannerHTML(dst io.Writer, body io.Reader, charset, banner string) error {
	raw := bufio.NewReaderSize(body, 8192)
	if strings.TrimSpace(charset) == "" {
		// As mailtext does: an undeclared charset may be in a <meta>.
		sample, err := raw.Peek(8192)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		charset = mailtext.MetaCharset(sample)
	}
	text := newCharsetReader(raw, charset)
	buf := make([]byte, htmlScanLimit)
	n, err := io.ReadFull(text, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	buf = buf[:n]
	at, metas := scanHTMLHead(buf)
	prev := 0
	for _, m := range metas {
		if _, err := dst.Write(buf[prev:m[0]]); err != nil {
			return err
		}
		if _, err := io.WriteString(dst, `<meta charset="utf-8">`); err != nil {
			return err
		}
		prev = m[1]
	}
	if _, err := dst.Write(buf[prev:at]); err != nil {
		return err
	}
	if _, err := io.WriteString(dst, bannerDiv(banner)); err != nil {
		return err
	}
	if _, err := dst.Write(buf[at:]); err != nil {
		return err
	}
	_, err = io.Copy(dst, text)
	return err
}

func isTagNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// tagEnd returns the index of the '>' closing the tag that starts p,
// skipping quoted attribute values, or -1.
func tagEnd(p []byte, from int) int {
	var q byte
	for i := from; i < len(p); i++ {
		switch c := p[i]; {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '>':
			return i
		}
	}
	return -1
}

// scanHTMLHead finds where the banner goes: just after the <body> start
// tag, or before the first thing that belongs to the body (text, an
// element that is not head content, </body>, </html>). Comments, doctype
// and head elements are skipped, <title>, <style> and <script> with their
// content. It also returns the <meta> tags that declare a charset. When p
// ends first, the position reached is returned.
func scanHTMLHead(p []byte) (int, [][2]int) {
	var metas [][2]int
	i := 0
	for i < len(p) {
		c := p[i]
		if c != '<' {
			switch {
			case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f':
				i++
				continue
			case bytes.HasPrefix(p[i:], []byte("\ufeff")):
				i += 3
				continue
			}
			return i, metas
		}
		rest := p[i:]
		if bytes.HasPrefix(rest, []byte("<!--")) {
			e := bytes.Index(rest[4:], []byte("-->"))
			if e < 0 {
				return i, metas
			}
			i += 4 + e + 3
			continue
		}
		if len(rest) > 1 && (rest[1] == '!' || rest[1] == '?') {
			e := bytes.IndexByte(rest, '>')
			if e < 0 {
				return i, metas
			}
			i += e + 1
			continue
		}
		j := 1
		closing := len(rest) > 1 && rest[1] == '/'
		if closing {
			j = 2
		}
		k := j
		for k < len(rest) && isTagNameByte(rest[k]) {
			k++
		}
		if k == j {
			return i, metas // a '<' that starts no tag is text
		}
		name := strings.ToLower(string(rest[j:k]))
		end := tagEnd(rest, k)
		if end < 0 {
			return i, metas
		}
		if closing {
			if name == "head" {
				i += end + 1
				continue
			}
			return i, metas
		}
		switch name {
		case "body":
			return i + end + 1, metas
		case "html", "head", "link", "base", "basefont", "bgsound":
			i += end + 1
			continue
		case "meta":
			if bytes.Contains(bytes.ToLower(rest[:end]), []byte("charset")) {
				metas = append(metas, [2]int{i, i + end + 1})
			}
			i += end + 1
			continue
		case "title", "style", "script":
			closeAt := bytes.Index(bytes.ToLower(rest[end+1:]), []byte("</"+name))
			if closeAt < 0 {
				return i, metas
			}
			after := end + 1 + closeAt
			e2 := bytes.IndexByte(rest[after:], '>')
			if e2 < 0 {
				return i, metas
			}
			i += after + e2 + 1
			continue
		}
		return i, metas
	}
	return i, metas
}
