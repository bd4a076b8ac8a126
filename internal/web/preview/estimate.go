package preview

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	xhtml "golang.org/x/net/html"
	"golang.org/x/text/width"
)

// The preview frame is sandboxed without scripts and without its origin, so
// neither the document nor the console page can measure it. Its height is
// estimated here instead, from the document as sanitised: lines of text
// wrapped at a typical console width, block breaks, and images by their
// declared height. The console sets it as the iframe's height attribute;
// the frame scrolls if the guess is short, and the reader can resize it.

const (
	lineUnits        = 100 // width of a line in half-width characters (about 800 px)
	linePx           = 20  // height of a line of text
	blockGapPx       = 12  // margin around paragraphs, headings, lists, tables
	bodyMarginPx     = 16  // the document's body margin, top and bottom
	defaultImagePx   = 150 // an image without a usable height attribute
	maxImagePx       = 2000
	placeholderUnits = 30 // a blocked-image placeholder
	minFramePx       = 120
	maxFramePx       = 2400
)

// pageEstimate adds up the height of a document as it is laid out.
type pageEstimate struct {
	px  int // height of the lines already ended
	col int // width used on the current line
	pre int // depth inside <pre>: line breaks and spaces count
}

// text lays out a text token: whitespace collapses outside <pre>, where
// line breaks end lines.
func (e *pageEstimate) text(s string) {
	space := false
	for _, r := range s {
		switch {
		case r == '\n' && e.pre > 0:
			e.br()
			continue
		case unicode.IsSpace(r) && e.pre == 0:
			space = e.col > 0
			continue
		}
		if space {
			e.inline(1)
			space = false
		}
		e.inline(runeUnits(r))
	}
	if space {
		e.inline(1)
	}
}

// runeUnits is the width of r in half-width characters.
func runeUnits(r rune) int {
	if r < utf8.RuneSelf {
		return 1
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// inline places n units on the current line, wrapping as needed.
func (e *pageEstimate) inline(n int) {
	if e.col+n > lineUnits && e.col > 0 {
		e.px += linePx
		e.col = 0
	}
	e.col += n
}

// br ends the current line, empty or not.
func (e *pageEstimate) br() {
	e.px += linePx
	e.col = 0
}

// block ends the current line if it holds anything.
func (e *pageEstimate) block(gap int) {
	if e.col > 0 {
		e.br()
	}
	e.px += gap
}

// tag lays out an element boundary.
func (e *pageEstimate) tag(tok xhtml.Token, start bool) {
	switch tok.Data {
	case "br":
		e.br()
	case "img":
		if start || tok.Type == xhtml.SelfClosingTagToken {
			e.image(tok)
		}
	case "pre":
		e.block(blockGapPx)
		if start {
			e.pre++
		} else if e.pre > 0 {
			e.pre--
		}
	case "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "blockquote", "hr", "figure":
		e.block(blockGapPx)
	case "div", "li", "dt", "dd", "tr", "caption", "section", "article", "header", "footer",
		"main", "nav", "aside", "address", "center", "figcaption":
		e.block(0)
	case "td", "th":
		if start {
			e.inline(1)
		}
	}
}

// image places an image: a line of its declared height, if any.
func (e *pageEstimate) image(tok xhtml.Token) {
	h := defaultImagePx
	for _, a := range tok.Attr {
		if a.Key == "height" {
			if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(a.Val), "px")); err == nil && n >= 0 {
				h = min(n, maxImagePx)
			}
		}
	}
	if e.col > 0 {
		e.br()
	}
	e.px += h
}

// preText lays out text shown in a <pre> block.
func (e *pageEstimate) preText(s string) {
	e.block(0)
	e.pre++
	e.text(s)
	e.pre--
	e.block(0)
}

// height returns the estimate in CSS pixels, within what a frame needs to
// be useful and what a page should hold.
func (e *pageEstimate) height() int {
	px := e.px + 2*bodyMarginPx
	if e.col > 0 {
		px += linePx
	}
	return max(minFramePx, min(px, maxFramePx))
}
