package preview

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	xhtml "golang.org/x/net/html"
)

// allowedElements is every element an iframe document may contain: the
// sanitiser's allow list plus the document skeleton. Anything else (script,
// style, svg, math, iframe, object, embed, base, meta, link, form, input,
// noscript, template...) fails the check.
const allowedElements = `html head title body
		a abbr acronym address article aside b bdi big blockquote br caption center cite code
		col colgroup dd del dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6
		header hr i img ins kbd li main mark nav ol p pre q s samp section small span strike
		strong sub sup table tbody td tfoot th thead tr tt u ul var wbr`

// allowedAttrs is every attribute key a document may carry.
const allowedAttrs = `lang style href src alt title dir width height align valign
		bgcolor color face size border cellpadding cellspacing colspan rowspan start target rel
		referrerpolicy`

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

var (
	okDataImage = regexp.MustCompile(`^data:image/(png|gif|jpeg|jpg|webp);base64,`)
	badStyle    = regexp.MustCompile(`(?i)url\s*\(|expression|@import|\\|image|binding|behavior`)
)

// urlScheme returns the scheme a browser would see: it drops ASCII tab and
// newline anywhere and leading C0 controls and spaces (WHATWG URL parsing).
func urlScheme(v string) string {
	v = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, v)
	v = strings.TrimLeft(v, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	i := strings.IndexByte(v, ':')
	if i < 0 {
		return ""
	}
	s := strings.ToLower(v[:i])
	if strings.ContainsAny(s, "/?#") {
		return ""
	}
	return s
}

// checkDocument parses doc as a browser would and returns every violation
// of the iframe document's contract. allowRemote permits https: images.
func checkDocument(doc []byte, allowRemote bool) []string {
	return checkDocumentLinks(doc, allowRemote, "")
}

// checkDocumentLinks is checkDocument for a document whose links lead to
// the link page at linkPrefix (Options.LinkURL): every href must then.
func checkDocumentLinks(doc []byte, allowRemote bool, linkPrefix string) []string {
	var bad []string
	elements, attrs := wordSet(allowedElements), wordSet(allowedAttrs)
	root, err := xhtml.Parse(bytes.NewReader(doc))
	if err != nil {
		return []string{"parse: " + err.Error()}
	}
	var visit func(n *xhtml.Node)
	visit = func(n *xhtml.Node) {
		if n.Type == xhtml.ElementNode {
			name := n.Data
			if n.Namespace != "" {
				name = n.Namespace + ":" + n.Data
			}
			if !elements[name] {
				bad = append(bad, "element <"+name+">")
			}
			for _, a := range n.Attr {
				key := a.Key
				if a.Namespace != "" {
					key = a.Namespace + ":" + a.Key
				}
				if !attrs[key] || strings.HasPrefix(key, "on") {
					bad = append(bad, fmt.Sprintf("attribute %s on <%s>", key, name))
					continue
				}
				switch key {
				case "href":
					if linkPrefix != "" {
						if !strings.HasPrefix(a.Val, linkPrefix) {
							bad = append(bad, fmt.Sprintf("href %q not through the link page", a.Val))
						}
						break
					}
					switch urlScheme(a.Val) {
					case "http", "https", "mailto":
					default:
						bad = append(bad, fmt.Sprintf("href %q", a.Val))
					}
					if strings.HasPrefix(strings.TrimSpace(a.Val), "//") {
						bad = append(bad, fmt.Sprintf("scheme-relative href %q", a.Val))
					}
				case "src":
					s := urlScheme(a.Val)
					switch {
					case s == "data" && okDataImage.MatchString(strings.TrimSpace(a.Val)):
					case s == "https" && allowRemote:
					default:
						bad = append(bad, fmt.Sprintf("src %q", a.Val))
					}
				case "style":
					if badStyle.MatchString(a.Val) {
						bad = append(bad, fmt.Sprintf("style %q", a.Val))
					}
				case "target":
					if a.Val != "_blank" {
						bad = append(bad, "target "+a.Val)
					}
				}
			}
			if name == "a" {
				if href := attrVal(n, "href"); href != "" && !strings.Contains(" "+attrVal(n, "rel")+" ", " noopener ") {
					bad = append(bad, "link without rel=noopener")
				}
			}
		}
		if n.Type == xhtml.CommentNode {
			bad = append(bad, "comment")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			visit(c)
		}
	}
	visit(root)
	return bad
}

func attrVal(n *xhtml.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}
