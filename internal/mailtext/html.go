package mailtext

import (
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Link is a hyperlink found in HTML: its target and the text a reader sees.
type Link struct {
	URL  string `json:"url"`
	Text string `json:"text,omitempty"`
	Part string `json:"part,omitempty"` // Path of the part it came from; empty from HTMLToText
}

const (
	// maxHTMLToken bounds what the tokenizer buffers for one token; a
	// larger token (say a huge data: URI) ends conversion as truncated.
	maxHTMLToken = 8 << 20
	maxLinkURL   = 8 << 10
	maxLinkText  = 1 << 10
)

// HTMLToText renders HTML as plain text for content checks: script, style,
// title, template, iframe and similar non-displayed content is dropped,
// <noscript> is kept (mail readers do not run scripts), entities are decoded,
// whitespace is collapsed, block elements start new lines, and link text is
// kept in the text. It returns at most max bytes of text (max <= 0 means
// DefaultLimits().MaxTextBytes) and the <a>/<area> links with their visible
// text, at most DefaultLimits().MaxLinks of them. Reading stops at the first
// read error, at EOF, or when one token exceeds the tokenizer buffer bound.
// The text is valid UTF-8 even for invalid input. Safe for concurrent use.
func HTMLToText(r io.Reader, max int64) (text string, links []Link) {
	if max <= 0 {
		max = DefaultLimits().MaxTextBytes
	}
	c := htmlConverter{max: max, maxLinks: DefaultLimits().MaxLinks}
	c.run(r)
	return c.out.String(), c.links
}

type htmlConverter struct {
	max      int64
	maxLinks int
	part     string

	out       strings.Builder
	truncated bool // text beyond max was dropped
	tooMany   bool // links beyond maxLinks were dropped
	links     []Link

	payload string // the first element or link that runs or embeds something (Part.Payload)

	skip     int // depth inside elements whose content is not shown
	space    bool
	newline  bool
	inLink   bool
	linkURL  string
	linkText strings.Builder
}

// hidden elements: their content is never displayed.
func hiddenElement(a atom.Atom) bool {
	switch a {
	case atom.Script, atom.Style, atom.Title, atom.Template, atom.Iframe,
		atom.Noembed, atom.Noframes, atom.Svg, atom.Math:
		return true
	}
	return false
}

// rawTextVisible are elements the tokenizer treats as raw text although a
// mail reader renders their content as markup or as text.
func rawTextVisible(a atom.Atom) bool {
	return a == atom.Noscript || a == atom.Textarea || a == atom.Xmp || a == atom.Plaintext
}

func blockElement(a atom.Atom) bool {
	switch a {
	case atom.P, atom.Div, atom.Br, atom.Li, atom.Ul, atom.Ol, atom.Tr, atom.Table,
		atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Blockquote,
		atom.Pre, atom.Hr, atom.Section, atom.Article, atom.Header, atom.Footer,
		atom.Nav, atom.Dl, atom.Dt, atom.Dd, atom.Form, atom.Address, atom.Center,
		atom.Body, atom.Tbody, atom.Thead, atom.Tfoot, atom.Caption, atom.Fieldset,
		atom.Figure, atom.Figcaption, atom.Main, atom.Aside, atom.Details, atom.Summary:
		return true
	}
	return false
}

func (c *htmlConverter) run(r io.Reader) {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(maxHTMLToken)
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				// Read error or an oversized token: what follows is unseen.
				c.truncated = true
			}
			c.endLink()
			return
		case html.TextToken:
			if c.skip == 0 {
				c.text(z.Text())
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			if tt == html.StartTagToken && rawTextVisible(a) {
				z.NextIsNotRawText()
			}
			if c.payload == "" {
				c.payload = activeElement(a)
			}
			if hiddenElement(a) {
				if tt == html.StartTagToken {
					c.skip++
				}
				continue
			}
			switch {
			case a == atom.A && hasAttr:
				c.endLink()
				if href, ok := attr(z, "href"); ok {
					c.inLink, c.linkURL = true, href
					c.linkText.Reset()
				}
			case a == atom.Area && hasAttr:
				href, ok := attr(z, "href")
				alt, _ := attr(z, "alt")
				if ok {
					c.addLink(href, alt)
				}
			case blockElement(a):
				c.newline = true
			case a == atom.Td || a == atom.Th || a == atom.Img:
				c.space = true
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if hiddenElement(a) {
				if c.skip > 0 {
					c.skip--
				}
				continue
			}
			switch {
			case a == atom.A:
				c.endLink()
			case blockElement(a):
				c.newline = true
			case a == atom.Td || a == atom.Th:
				c.space = true
			}
		}
	}
}

func attr(z *html.Tokenizer, want string) (string, bool) {
	for {
		k, v, more := z.TagAttr()
		if string(k) == want {
			return strings.TrimSpace(string(v)), true
		}
		if !more {
			return "", false
		}
	}
}

func (c *htmlConverter) endLink() {
	if !c.inLink {
		return
	}
	c.inLink = false
	c.addLink(c.linkURL, strings.TrimSpace(c.linkText.String()))
}

func (c *htmlConverter) addLink(url, text string) {
	if c.payload == "" {
		c.payload = linkPayload(url)
	}
	if len(c.links) >= c.maxLinks {
		c.tooMany = true
		return
	}
	c.links = append(c.links, Link{
		URL:  truncUTF8(strings.ToValidUTF8(url, "\ufffd"), maxLinkURL),
		Text: truncUTF8(collapseSpace(strings.ToValidUTF8(text, "\ufffd")), maxLinkText),
		Part: c.part,
	})
}

func isHTMLSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == 0xa0
}

func (c *htmlConverter) text(b []byte) {
	for len(b) > 0 {
		// A word outside a link goes to the output in one piece, as the
		// rune-by-rune path below would write it.
		if !c.inLink && !c.truncated {
			if n := wordLen(b); n > 0 {
				c.word(b[:n])
				b = b[n:]
				continue
			}
		}
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r == 0 {
			continue
		}
		if isHTMLSpace(r) {
			c.space = true
			if c.inLink && c.linkText.Len() < maxLinkText {
				c.linkText.WriteByte(' ')
			}
			continue
		}
		if c.inLink && c.linkText.Len() < maxLinkText {
			c.linkText.WriteRune(r)
		}
		if c.truncated {
			continue
		}
		var sep string
		if c.out.Len() > 0 {
			if c.newline {
				sep = "\n"
			} else if c.space {
				sep = " "
			}
		}
		if int64(c.out.Len()+len(sep)+utf8.RuneLen(r)) > c.max {
			c.truncated = true
			continue
		}
		c.space, c.newline = false, false
		c.out.WriteString(sep)
		c.out.WriteRune(r)
	}
}

// word writes w, valid UTF-8 without NUL or HTML space, after the
// pending separator, keeping what fits within max.
func (c *htmlConverter) word(w []byte) {
	var sep string
	if c.out.Len() > 0 {
		if c.newline {
			sep = "\n"
		} else if c.space {
			sep = " "
		}
	}
	fit := c.max - int64(c.out.Len()+len(sep))
	if fit < int64(len(w)) {
		c.truncated = true
		k := max(fit, 0)
		for k > 0 && !utf8.RuneStart(w[k]) {
			k--
		}
		w = w[:k]
		if len(w) == 0 {
			return
		}
	}
	c.space, c.newline = false, false
	c.out.WriteString(sep)
	c.out.Write(w)
}

// wordLen returns the length of the longest prefix of b that is valid
// UTF-8 without NUL or HTML space (isHTMLSpace).
func wordLen(b []byte) int {
	i := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if c == 0 || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || r == 0xa0 {
			return i
		}
		i += n
	}
	return i
}

func collapseSpace(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// TruncUTF8 cuts s to at most n bytes (n >= 0) without splitting a
// character.
func TruncUTF8(s string, n int) string { return truncUTF8(s, n) }

func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
