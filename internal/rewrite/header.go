package rewrite

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// field is one header field as read: its bytes (continuation lines and
// line ending included) and, unless name is "", its name and value as
// mailtext sees them. name is "" for a line that is no field (an mbox
// "From " line, a stray continuation line at the start), which is copied
// as it is.
type field struct {
	name  string // canonical (textproto) form
	value string // unfolded and trimmed
	raw   []byte
}

// header is one header section.
type header struct {
	fields []field             // the raw section, in modeHold only
	parsed []mailtext.RawField // the first MaxHeaderBytes, as mailtext keeps them
	term   []byte              // the empty line that ended the section, nil when something else did
	// endsEOL is false when the last line of the section lacks a line break
	// (the input ended inside the header).
	endsEOL bool
}

// get returns the first value of a field, as mailtext does.
func (h *header) get(name string) (string, bool) { return mailtext.Lookup(h.parsed, name) }

type headerMode int

const (
	modePass headerMode = iota // write each line as read
	modeHold                   // keep the raw section for rewriting
	modeDrop                   // read and parse only; the section is replaced
)

func unfold(s string) string { return mailtext.Unfold(s) }

// flushField ends the raw field being held.
func (w *walker) flushField() {
	if w.mode == modeHold && len(w.curRaw) > 0 {
		f := field{raw: w.curRaw}
		if name, value, ok := mailtext.ParseField(w.curRaw); ok {
			f.name, f.value = name, value
		}
		w.h.fields = append(w.h.fields, f)
		w.curRaw = nil
	}
}

// HeaderLine keeps, copies or drops each line of a header section as the
// entity's mode says. In modeHold a section larger than MaxHeaderBytes is
// an error: it could not be rewritten whole.
func (w *walker) HeaderLine(n *mailtext.Node, b []byte, kind mailtext.HeaderLineKind, over bool) error {
	h := w.h
	keep := func(b []byte) {
		switch w.mode {
		case modePass:
			w.out.write(b)
		case modeHold:
			w.curRaw = append(w.curRaw, b...)
		}
		h.endsEOL = len(b) > 0 && b[len(b)-1] == '\n'
	}
	switch kind {
	case mailtext.LineEnd:
		w.flushField()
		h.term = append([]byte(nil), b...)
		if w.mode == modePass {
			w.out.write(b)
		}
		return w.out.err
	case mailtext.LineMbox:
		w.flushField()
		keep(b) // mbox separator: kept, not a field
		w.flushField()
		return w.out.err
	case mailtext.LineField:
		w.flushField()
	}
	if w.mode == modeHold && over {
		return fmt.Errorf("%w (part %s, over %d bytes)", ErrHeaderTooLarge, n.Path, w.lim.MaxHeaderBytes)
	}
	keep(b)
	return w.out.err
}

// ---- writing fields ----

// sanitizeValue makes a value safe to write as one field: control
// characters other than TAB (CR and LF above all, which would start a new
// field) become spaces, and invalid UTF-8 is replaced.
func sanitizeValue(v string) string {
	v = strings.ToValidUTF8(v, "\ufffd")
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return ' '
		}
		return r
	}, v)
}

const foldAt = 78 // RFC 5322 2.1.1: lines SHOULD be at most 78 characters

// formatField renders "Name: value" folded before whitespace so lines stay
// within 78 octets where the value allows (RFC 5322 2.2.3). A line never
// consists of whitespace only, and unfolding restores the value.
func formatField(name, value, eol string) string {
	line := name + ":"
	if value != "" {
		line += " " + value
	}
	var b strings.Builder
	start := 0                // start of the current output line
	minSplit := len(name) + 2 // never fold inside "Name: "
	for len(line)-start > foldAt {
		split := -1
		for i := start + 1; i < len(line); i++ {
			if i-start > foldAt && split > 0 {
				break
			}
			if (line[i] == ' ' || line[i] == '\t') && i > minSplit &&
				line[i-1] != ' ' && line[i-1] != '\t' && strings.TrimLeft(line[i:], " \t") != "" {
				split = i
			}
		}
		if split < 0 {
			break
		}
		b.WriteString(line[start:split])
		b.WriteString(eol)
		start = split
	}
	b.WriteString(line[start:])
	b.WriteString(eol)
	return b.String()
}

// ---- subject tag ----

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// encodedWords writes s as UTF-8 "B" encoded-words (RFC 2047 4.1), split
// at character boundaries so each word stays within 75 characters,
// separated by spaces (ignored between encoded-words, RFC 2047 6.2).
func encodedWords(s string) string {
	const prefix, suffix = "=?UTF-8?B?", "?="
	maxRaw := (75 - len(prefix) - len(suffix)) / 4 * 3
	var words []string
	for len(s) > 0 {
		n := len(s)
		if n > maxRaw {
			n = maxRaw
			for n > 0 && !utf8.RuneStart(s[n]) {
				n--
			}
			if n == 0 {
				n = maxRaw
			}
		}
		words = append(words, prefix+base64.StdEncoding.EncodeToString([]byte(s[:n]))+suffix)
		s = s[n:]
	}
	return strings.Join(words, " ")
}

// startsWithEncodedWord reports whether s begins with something shaped
// like an RFC 2047 encoded-word, "=?charset?B|Q?text?=".
func startsWithEncodedWord(s string) bool {
	if !strings.HasPrefix(s, "=?") {
		return false
	}
	q1 := strings.IndexByte(s[2:], '?')
	if q1 <= 0 || q1 > 75 {
		return false
	}
	p := 2 + q1 + 1
	if p+1 >= len(s) || s[p+1] != '?' || (s[p]&^0x20 != 'B' && s[p]&^0x20 != 'Q') {
		return false
	}
	return strings.Contains(s[p+2:], "?=")
}

// tagSubject puts tag in front of the raw Subject field raw ("Subject:"
// through its last line break), keeping every original byte after the
// leading blanks of the first line. Decoding the result gives tag, a
// space, and the decoded original. When the tag would push a first line
// that fitted in 78 octets past them, the tag gets a line of its own
// (folding there unfolds to the same space).
func tagSubject(raw []byte, tag, eol string) []byte {
	colon := bytes.IndexByte(raw, ':')
	rest := bytes.TrimLeft(raw[colon+1:], " \t")
	content := bytes.TrimLeft(rest, " \t\r\n")
	lineBreak := len(rest) > 0 && (rest[0] == '\r' || rest[0] == '\n')
	var t string
	switch {
	case isPrintableASCII(tag) && !strings.Contains(tag, "=?"):
		t = tag
	case len(bytes.TrimSpace(content)) > 0 && startsWithEncodedWord(string(content)):
		// The space between two encoded-words is dropped when decoding,
		// so the one after the tag goes inside the word.
		t = encodedWords(tag + " ")
	default:
		t = encodedWords(tag)
	}
	out := make([]byte, 0, len(raw)+len(t)+2)
	out = append(out, raw[:colon+1]...)
	out = append(out, ' ')
	out = append(out, t...)
	if !lineBreak && len(rest) > 0 {
		firstLen := func(b []byte) int {
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				return len(trimEOL(b[:i+1]))
			}
			return len(b)
		}
		if firstLen(raw) <= foldAt && len(out)+1+firstLen(rest) > foldAt {
			out = append(out, eol...)
		}
		out = append(out, ' ')
	}
	return append(out, rest...)
}
