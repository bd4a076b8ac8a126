package mailtext

import (
	"strings"

	"golang.org/x/net/html/atom"
)

// eicarMarker is the readable middle of the EICAR anti-virus test string:
// administrators test a gateway by mailing it in a message's text.
const eicarMarker = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"

// textPayload names what in a text part's decoded text is not text to
// read (Part.Payload), "" when nothing is. Mail readers still show
// uuencoded, yEnc and BinHex blocks inside plain text as attachments.
func textPayload(s string) string {
	switch {
	case strings.Contains(s, eicarMarker):
		return "eicar"
	case uuencodeBegin(s):
		return "uuencode"
	case strings.Contains(s, "=ybegin "):
		return "yenc"
	case strings.Contains(s, "(This file must be converted with BinHex"):
		return "binhex"
	}
	return ""
}

// uuencodeBegin reports whether s has a line "begin MODE NAME" with an
// octal mode, the start of a uuencoded file.
func uuencodeBegin(s string) bool {
	for off := 0; ; {
		i := strings.Index(s[off:], "begin ")
		if i < 0 {
			return false
		}
		at := off + i
		off = at + len("begin ")
		if at > 0 && s[at-1] != '\n' {
			continue
		}
		digits := 0
		for off+digits < len(s) && s[off+digits] >= '0' && s[off+digits] <= '7' {
			digits++
		}
		if digits >= 3 && digits <= 4 && off+digits < len(s) && s[off+digits] == ' ' {
			return true
		}
	}
}

// activeElement names the HTML elements that run or embed something
// (Part.Payload), "" for the others.
func activeElement(a atom.Atom) string {
	switch a {
	case atom.Script, atom.Object, atom.Embed, atom.Applet, atom.Iframe, atom.Frame, atom.Frameset:
		return a.String()
	}
	return ""
}

// linkPayload names a link that runs a script or carries its content
// inline instead of pointing somewhere. Browsers ignore tabs and line
// breaks anywhere in a URL and blanks before it, so those are skipped.
func linkPayload(url string) string {
	var b [11]byte
	n := 0
	for i := 0; i < len(url) && n < len(b); i++ {
		c := url[i]
		switch {
		case c == '\t' || c == '\n' || c == '\r':
			continue
		case n == 0 && (c == ' ' || c == '\f' || c == 0):
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[n] = c
		n++
	}
	u := string(b[:n])
	switch {
	case strings.HasPrefix(u, "javascript:"), strings.HasPrefix(u, "vbscript:"):
		return "script-link"
	case strings.HasPrefix(u, "data:"):
		return "data-link"
	}
	return ""
}
