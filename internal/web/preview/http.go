package preview

import (
	"bytes"
	"html"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// docStyle is set on the body element of every document: the document has
// no <style> element, so nothing in it can hold a stylesheet.
const docStyle = "margin: 8px; font-family: sans-serif; overflow-wrap: anywhere"

const preStyle = "white-space: pre-wrap; overflow-wrap: anywhere; font-family: monospace; margin: 0"

// wrapDocument puts sanitised body content into a complete document. It has
// no <meta>: the charset is in the Content-Type header of Headers.
func wrapDocument(lang string, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + 200)
	b.WriteString(`<!DOCTYPE html><html lang="`)
	b.WriteString(lang)
	b.WriteString(`"><head><title></title></head><body style="`)
	b.WriteString(docStyle)
	b.WriteString(`">`)
	b.Write(body)
	b.WriteString("</body></html>\n")
	return b.Bytes()
}

// writePre writes text as an escaped preformatted block.
func writePre(b *bytes.Buffer, text string) {
	b.WriteString(`<pre style="`)
	b.WriteString(preStyle)
	b.WriteString(`">`)
	// A leading newline right after <pre> is eaten by HTML parsers.
	if strings.HasPrefix(text, "\n") {
		b.WriteString("\n")
	}
	b.WriteString(html.EscapeString(text))
	b.WriteString("</pre>")
}

// Document returns the iframe document for v: HTMLDoc when the body has
// HTML, else TextBody as an escaped <pre> document. It never returns nil.
func Document(v *View) []byte {
	if v.HTMLDoc != nil {
		return v.HTMLDoc
	}
	var b bytes.Buffer
	writePre(&b, v.TextBody)
	return wrapDocument(normLang(v.Lang), b.Bytes())
}

// CSP returns the Content-Security-Policy of the iframe document: nothing
// may load except inline raster images (and https: images when the reader
// allowed remote images), inline style attributes apply, and the document
// is sandboxed even when opened on its own (CSP Level 3 sandbox).
func CSP(allowRemoteImages bool) string {
	return csp(allowRemoteImages, "")
}

func csp(allowRemoteImages bool, sandbox string) string {
	img := "img-src data:"
	if allowRemoteImages {
		img += " https:"
	}
	if sandbox != "" {
		sandbox = " " + sandbox
	}
	return "default-src 'none'; " + img + "; style-src 'unsafe-inline'; sandbox" + sandbox + "; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
}

// linkSandbox is what the frame's sandbox allows when links lead to the
// console's link page: a click opens it in a new tab (popups), as a normal
// page rather than a sandboxed one (escape), so it can offer the way on.
// Still no script, no same-origin access, no forms, no top navigation.
const linkSandbox = "allow-popups allow-popups-to-escape-sandbox"

// FrameSandbox returns the sandbox attribute value of the iframe showing
// v's document, matching the sandbox of its CSP: empty (everything
// forbidden) unless links lead to Options.LinkURL.
func (v *View) FrameSandbox() string {
	if v.LinksOpen {
		return linkSandbox
	}
	return ""
}

// Headers returns the response headers for v's iframe document. The caller
// may add to them but must not loosen them.
func Headers(v *View) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp(v.RemoteImagesAllowed, v.FrameSandbox()))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	return h
}

// WriteDocument writes v's iframe document with the headers of Headers and
// status 200. Write errors are the client's and are not reported.
func WriteDocument(w http.ResponseWriter, v *View) {
	doc := Document(v)
	for k, vs := range Headers(v) {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

// WriteAttachment writes body as a download named name. The type is always
// application/octet-stream whatever the mail declared, so the browser
// neither renders nor sniffs it; a sandbox CSP covers a browser that shows
// it anyway. Write errors are the client's and are not reported.
func WriteAttachment(w http.ResponseWriter, name string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", ContentDisposition(name))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// ContentDisposition returns an attachment disposition for name (RFC 6266):
// an ASCII fallback filename for old clients and filename* with the UTF-8
// name percent-encoded (RFC 8187, formerly RFC 5987), so Japanese names
// survive. Controls, bidi and invisible characters, quotes and path
// separators never reach the header.
func ContentDisposition(name string) string {
	name, _ = cleanText(name, maxNameRunes)
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, strings.TrimSpace(name))
	name = strings.TrimLeft(name, ".")
	if name == "" {
		name = "attachment"
	}
	var ascii strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '%' || r == ';' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + pctEncode(name)
}

// pctEncode encodes everything but RFC 8187 attr-char.
func pctEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf && attrChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// attrChar is RFC 8187 3.2.1 attr-char.
func attrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
