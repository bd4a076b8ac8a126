package preview

import (
	"bytes"
	"html"
	"net/url"
	"regexp"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	xhtml "golang.org/x/net/html"
)

// The HTML of a mail goes through two stages. bluemonday keeps only an
// allow list of presentational elements and attributes, with no element
// whose content the browser parses differently from plain data (script,
// style, textarea, noscript, template, svg, math...), so the tokenizer that
// sanitises and the browser that renders agree on the structure (the mXSS
// family needs such a raw-text or foreign-content element). A second pass
// over bluemonday's output then decides about resources: images become
// placeholders unless they are inline data or allowed remote HTTPS, links
// get a strict rel and target. The iframe document's CSP and sandbox
// (Headers) are a further wall should either stage miss something.

// styleValue is what a kept CSS declaration's value may look like: words,
// numbers, colours, quoted font names and rgb()/hsl() functions. No url(),
// no escapes, no expression(), no image functions.
var styleValue = regexp.MustCompile(`^(?:[a-z0-9#%.,\s+!'"/-]|rgba?\(|hsla?\(|\))*$`)

// unsafeStyle is checked again on the raw declaration text after
// bluemonday, which matches styleValue on a lower-cased, unescaped copy.
var unsafeStyle = regexp.MustCompile(`(?i)url|image|expression|\\|@|behavior|binding|src|attr\(|var\(|env\(`)

var (
	htmlLength = regexp.MustCompile(`^[0-9]{1,5}(?:%|px)?$`)
	htmlColor  = regexp.MustCompile(`^#?[0-9a-zA-Z]{1,20}$`)
	htmlAlign  = regexp.MustCompile(`(?i)^(?:left|right|center|justify|top|middle|bottom|baseline)$`)
	htmlDir    = regexp.MustCompile(`(?i)^(?:ltr|rtl|auto)$`)
	htmlFace   = regexp.MustCompile(`^[\w\s,'"-]{1,100}$`)
	htmlSmall  = regexp.MustCompile(`^[+-]?[0-9]{1,3}$`)
)

// newPolicy builds the allow list. A Policy is safe for concurrent use once
// built; it is built per call because the package keeps no global state.
func newPolicy() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.RequireParseableURLs(true)
	// Relative URLs pass to the second pass, which keeps only the
	// protocol-relative ones ("//host/x"), as https.
	p.AllowRelativeURLs(true)
	p.AllowURLSchemes("http", "https", "mailto", "cid")
	p.AllowDataURIImages()
	p.AddSpaceWhenStrippingTag(true)
	// Elements whose content is dropped with them: code, styles, foreign
	// content and form controls. The others lose the tag and keep the text.
	p.SkipElementsContent("script", "style", "title", "noscript", "template", "textarea",
		"select", "svg", "math", "object", "embed", "applet", "iframe", "frame", "frameset",
		"noembed", "noframes", "xmp", "plaintext", "head", "video", "audio", "canvas", "button")

	p.AllowElements("a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "big",
		"blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd", "del",
		"dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer", "h1", "h2", "h3",
		"h4", "h5", "h6", "header", "hr", "i", "img", "ins", "kbd", "li", "main", "mark", "nav",
		"ol", "p", "pre", "q", "s", "samp", "section", "small", "span", "strike", "strong", "sub",
		"sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var", "wbr")
	p.AllowNoAttrs().OnElements("table", "tbody", "thead", "tfoot", "tr", "td", "th", "colgroup", "col", "span", "div", "font")

	p.AllowAttrs("href").OnElements("a")
	p.AllowAttrs("src").OnElements("img")
	p.AllowAttrs("alt", "title").Matching(regexp.MustCompile(`^[^\x00]{0,500}$`)).Globally()
	p.AllowAttrs("dir").Matching(htmlDir).Globally()
	p.AllowAttrs("width", "height").Matching(htmlLength).OnElements("img", "table", "td", "th", "col", "colgroup", "hr")
	p.AllowAttrs("align", "valign").Matching(htmlAlign).Globally()
	p.AllowAttrs("bgcolor").Matching(htmlColor).OnElements("table", "tr", "td", "th")
	p.AllowAttrs("color").Matching(htmlColor).OnElements("font", "hr")
	p.AllowAttrs("face").Matching(htmlFace).OnElements("font")
	p.AllowAttrs("size").Matching(htmlSmall).OnElements("font", "hr")
	p.AllowAttrs("border", "cellpadding", "cellspacing").Matching(htmlLength).OnElements("table", "img")
	p.AllowAttrs("colspan", "rowspan").Matching(htmlSmall).OnElements("td", "th")
	p.AllowAttrs("start").Matching(htmlSmall).OnElements("ol")

	// Presentational CSS only: no property that takes an image or a URL
	// (background, background-image, list-style, border-image, content,
	// cursor, mask, filter) and values restricted by styleValue.
	p.AllowStyles("color", "background-color", "font-family", "font-size", "font-style",
		"font-weight", "font-variant", "text-align", "text-decoration", "text-indent",
		"text-transform", "line-height", "letter-spacing", "word-spacing", "white-space",
		"vertical-align", "direction", "width", "height", "max-width", "min-width",
		"max-height", "min-height", "margin", "margin-top", "margin-right", "margin-bottom",
		"margin-left", "padding", "padding-top", "padding-right", "padding-bottom",
		"padding-left", "border", "border-top", "border-right", "border-bottom",
		"border-left", "border-color", "border-style", "border-width", "border-collapse",
		"border-spacing", "border-radius", "display", "float", "clear", "overflow",
		"table-layout", "word-break", "overflow-wrap", "word-wrap").
		Matching(styleValue).Globally()
	return p
}

// resourceRules say what the second pass does with images and links.
type resourceRules struct {
	allowRemote bool
	lang        string
	linkURL     func(target string) string // Options.LinkURL
	images      *inlineImages              // the message's own images (Options.InlineImages)
}

// rewriteStats records what the second pass blocked and kept.
type rewriteStats struct {
	remote   int // http(s) images replaced by a placeholder
	embedded int // cid: images replaced by a placeholder
	inline   int // cid: images shown from the message
	links    []Link
	est      pageEstimate
}

// maxLinks bounds View.Links.
const maxLinks = 1000

// dataImage matches the inline image types shown: raster formats only (an
// SVG image cannot run script, but the policy is no SVG at all).
var dataImage = regexp.MustCompile(`(?i)^data:image/(?:png|gif|jpeg|jpg|webp);base64,[a-z0-9+/=\s]*$`)

// rewrite is the second pass over sanitised HTML. It re-emits tokens with
// x/net/html's escaping, so it cannot introduce markup of its own beyond
// the placeholders it writes.
func rewrite(sanitised []byte, rules resourceRules, st *rewriteStats) []byte {
	var out bytes.Buffer
	out.Grow(len(sanitised) + len(sanitised)/8)
	z := xhtml.NewTokenizer(bytes.NewReader(sanitised))
	var link *Link // the link whose text is being read
	var text strings.Builder
	endLink := func() {
		if link != nil {
			link.Text, _ = cleanText(strings.Join(strings.Fields(text.String()), " "), maxLinkText)
			st.links = append(st.links, *link)
			link = nil
		}
		text.Reset()
	}
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			// io.EOF, or a read error that a bytes.Reader never gives.
			break
		}
		tok := z.Token()
		switch tt {
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			tok.Attr = cleanStyle(tok.Attr)
			switch tok.Data {
			case "img":
				if n := out.Len(); !keepImage(&tok, rules, st, &out) {
					if out.Len() > n {
						st.est.inline(placeholderUnits)
					}
					continue
				}
			case "a":
				endLink()
				var target string
				tok.Attr, target = linkAttrs(tok.Attr, rules)
				if target != "" && len(st.links) < maxLinks {
					link = &Link{Target: target}
				}
			}
			st.est.tag(tok, tt == xhtml.StartTagToken)
		case xhtml.EndTagToken:
			if tok.Data == "a" {
				endLink()
			}
			st.est.tag(tok, false)
		case xhtml.TextToken:
			if link != nil && text.Len() < 4*maxLinkText {
				text.WriteString(tok.Data)
			}
			st.est.text(tok.Data)
		}
		out.WriteString(tok.String())
	}
	endLink()
	return out.Bytes()
}

// cleanStyle drops a style attribute holding anything that could load a
// resource, whatever bluemonday let through.
func cleanStyle(attrs []xhtml.Attribute) []xhtml.Attribute {
	kept := attrs[:0]
	for _, a := range attrs {
		if a.Key == "style" && (unsafeStyle.MatchString(a.Val) || strings.TrimSpace(a.Val) == "") {
			continue
		}
		kept = append(kept, a)
	}
	return kept
}

// keepImage decides about one img tag: true to emit it (possibly changed),
// false when a placeholder was written instead or it was dropped.
func keepImage(tok *xhtml.Token, rules resourceRules, st *rewriteStats, out *bytes.Buffer) bool {
	var src, alt string
	for _, a := range tok.Attr {
		switch a.Key {
		case "src":
			src = strings.TrimSpace(a.Val)
		case "alt":
			alt = a.Val
		}
	}
	scheme := ""
	if u, err := url.Parse(src); err == nil {
		scheme = strings.ToLower(u.Scheme)
		if scheme == "" && u.Host != "" {
			// Protocol-relative ("//host/x.png"): remote, and only ever
			// loaded over https.
			scheme, src = "https", "https:"+src
		}
	}
	switch {
	case scheme == "data" && dataImage.MatchString(src):
		return true
	case scheme == "https" && rules.allowRemote:
		for i := range tok.Attr {
			if tok.Attr[i].Key == "src" {
				tok.Attr[i].Val = src
			}
		}
		tok.Attr = append(tok.Attr, xhtml.Attribute{Key: "referrerpolicy", Val: "no-referrer"})
		return true
	case scheme == "http" || scheme == "https":
		st.remote++
		placeholder(out, label(rules.lang, "remote"), alt)
	case scheme == "cid":
		if uri := rules.images.dataURI(src); uri != "" {
			for i := range tok.Attr {
				if tok.Attr[i].Key == "src" {
					tok.Attr[i].Val = uri
				}
			}
			st.inline++
			return true
		}
		st.embedded++
		placeholder(out, label(rules.lang, "embedded"), alt)
	default:
		// No source, or one that is no image the preview shows: the alt
		// text still tells the reader something was there.
		if alt != "" {
			placeholder(out, label(rules.lang, "other"), alt)
		}
	}
	return false
}

func placeholder(out *bytes.Buffer, what, alt string) {
	out.WriteString(`<span style="display: inline-block; border: 1px dashed #999999; color: #666666; padding: 2px 4px; font-size: 12px">`)
	out.WriteString(html.EscapeString(what))
	if alt = strings.TrimSpace(alt); alt != "" {
		out.WriteString(": ")
		out.WriteString(html.EscapeString(alt))
	}
	out.WriteString(`</span>`)
}

// linkAttrs keeps only absolute http, https and mailto links (a
// protocol-relative one becomes https), opened in a new browsing context
// without opener or referrer, and returns the kept target ("" when the link
// was dropped). With rules.linkURL the link points there instead, a page
// that shows the target before the reader goes on. The destination is put
// in the title too, so hovering shows where a link really goes.
func linkAttrs(attrs []xhtml.Attribute, rules resourceRules) ([]xhtml.Attribute, string) {
	var href, title string
	var rest []xhtml.Attribute
	for _, a := range attrs {
		switch a.Key {
		case "href":
			href = strings.TrimSpace(a.Val)
		case "title":
			title = a.Val
		case "target", "rel":
		default:
			rest = append(rest, a)
		}
	}
	u, err := url.Parse(href)
	if err != nil || href == "" {
		return rest, ""
	}
	if u.Scheme == "" && u.Host != "" {
		u.Scheme = "https"
		href = u.String()
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "mailto":
	default:
		return rest, ""
	}
	if u.Scheme != "mailto" && u.Host == "" {
		return rest, ""
	}
	if title == "" {
		title = href
	} else {
		title = title + " <" + href + ">"
	}
	dest := href
	if rules.linkURL != nil {
		dest = rules.linkURL(href)
	}
	return append(rest,
		xhtml.Attribute{Key: "href", Val: dest},
		xhtml.Attribute{Key: "title", Val: title},
		xhtml.Attribute{Key: "target", Val: "_blank"},
		xhtml.Attribute{Key: "rel", Val: "noopener noreferrer nofollow"},
	), href
}

// label returns the placeholder text in the console's language.
func label(lang, what string) string {
	ja := lang == "ja"
	switch what {
	case "remote":
		if ja {
			return "外部画像をブロックしました"
		}
		return "Remote image blocked"
	case "embedded":
		if ja {
			return "埋め込み画像（表示しません）"
		}
		return "Embedded image not shown"
	}
	if ja {
		return "画像"
	}
	return "Image"
}
