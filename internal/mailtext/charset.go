package mailtext

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/transform"
)

// Canonical labels reported in Part.Charset for the charsets we treat
// specially; other charsets keep their (lower-cased) declared label.
const (
	csUTF8     = "utf-8"
	csASCII    = "us-ascii"
	csISO2022  = "iso-2022-jp"
	csShiftJIS = "shift_jis"
	csEUCJP    = "euc-jp"
	csLatin1   = "iso-8859-1"
	csWin1252  = "windows-1252"
	csUTF7     = "utf-7"
)

// errUnknownCharset is wrapped by DecodeCharset when the label is not known.
var errUnknownCharset = errors.New("unknown charset")

// normalizeLabel trims what senders wrap around charset names: quotes,
// spaces and an RFC 2231 language suffix ("utf-8*ja").
func normalizeLabel(label string) string {
	label = strings.ToLower(strings.Trim(label, " \t\"'"))
	if i := strings.IndexByte(label, '*'); i >= 0 {
		label = label[:i]
	}
	return label
}

// japaneseEncoding maps the labels seen on Japanese mail to our decoders:
// every ISO-2022-JP variant to the lenient CP5022x-superset decoder, every
// Shift_JIS variant to CP932 (x/text's Shift JIS is the WHATWG/Windows-31J
// table) and EUC-JP variants to EUC-JP.
func japaneseEncoding(label string) (encoding.Encoding, string, bool) {
	switch label {
	case "iso-2022-jp", "csiso2022jp", "iso2022jp", "iso-2022-jp-1", "iso-2022-jp-2",
		"iso-2022-jp-3", "iso-2022-jp-2004", "iso-2022-jp-ms", "cp50220", "cp50221",
		"cp50222", "x-cp50220", "x-cp50221", "x-cp50222", "jis", "iso-2022-jp-ext",
		"csiso2022jp2", "x-iso2022jp-cp932":
		return iso2022JP{}, csISO2022, true
	case "shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "csshiftjis",
		"windows-31j", "cswindows31j", "cp932", "ms932", "x-ms-cp932", "ibm-943",
		"shift_jisx0213", "shift_jis-2004", "x-sjis-open", "sjis-open", "sjis-win":
		return japanese.ShiftJIS, csShiftJIS, true
	case "euc-jp", "x-euc-jp", "eucjp", "cseucpkdfmtjapanese", "eucjp-ms",
		"euc-jis-2004", "euc-jisx0213", "cp51932", "eucjp-open", "eucjp-win", "ujis":
		return japanese.EUCJP, csEUCJP, true
	}
	return nil, "", false
}

// charsetReader returns a streaming UTF-8 decoder for label and the label to
// report, or ok=false when the label is unknown.
func charsetReader(label string, r io.Reader) (io.Reader, string, bool) {
	label = normalizeLabel(label)
	switch {
	case isUTF8Label(label):
		// Undeclared UTF-8 in a us-ascii part is common; invalid bytes become
		// U+FFFD at the end of the pipeline.
		return r, csUTF8, true
	case label == "":
		return nil, "", false
	}
	if t, name, ok := charsetTransformer(label); ok {
		return transform.NewReader(r, t), name, true
	}
	dr, err := charset.Reader(label, r)
	if err != nil {
		return nil, "", false
	}
	return dr, label, true
}

// charsetTransformer returns the decoder of the charsets mailgate decodes
// itself (Latin-1 as windows-1252, the Japanese ones, UTF-7) for a
// normalised label; others go through go-message's charset package.
func charsetTransformer(label string) (transform.Transformer, string, bool) {
	switch label {
	case "iso-8859-1", "latin1", "iso_8859-1", "l1":
		// Senders label windows-1252 text as Latin-1 (WHATWG does the same).
		return charmap.Windows1252.NewDecoder(), csWin1252, true
	}
	if enc, name, ok := japaneseEncoding(label); ok {
		return enc.NewDecoder(), name, true
	}
	switch label {
	case "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7", "x-unicode-2-0-utf-7":
		return &utf7Decoder{}, csUTF7, true
	}
	return nil, "", false
}

// CharsetName returns the name DecodeCharset and Part.Charset use for the
// charset label ("utf-7" for "UNICODE-1-1-UTF-7", "shift_jis" for
// "Windows-31J"), or "" when the label names no charset known here.
func CharsetName(label string) string {
	_, name, ok := charsetReader(label, bytes.NewReader(nil))
	if !ok {
		return ""
	}
	return name
}

// DecodeCharset converts b from the named charset to UTF-8. The result is
// always valid UTF-8: undecodable bytes become U+FFFD.
//
// Labels are matched case-insensitively; ISO-2022-JP is decoded leniently as
// a CP50220/CP50221 superset, Shift_JIS as CP932, EUC-JP as EUC-JP and
// UTF-7 (RFC 2152) leniently; other charsets go through go-message's charset
// package. An empty label means
// "undeclared": the bytes are sniffed (UTF-8, ISO-2022-JP, Shift_JIS, EUC-JP,
// else windows-1252). For an unknown label b is decoded as UTF-8 when valid
// and as Latin-1 otherwise, and the returned error wraps the reason; the
// string is still usable. DecodeCharset is safe for concurrent use.
func DecodeCharset(cs string, b []byte) (string, error) {
	s, _, err := decodeCharset(cs, b)
	return s, err
}

// decodeCharset is DecodeCharset that also reports the charset actually used.
func decodeCharset(cs string, b []byte) (string, string, error) {
	return decodeResolved(cs, resolveLabel(cs, b), b)
}

// isUTF8Label reports whether a resolved label is read as UTF-8.
func isUTF8Label(label string) bool {
	switch normalizeLabel(label) {
	case "utf-8", "utf8", "us-ascii", "ascii", "x-utf_8j", "unicode-1-1-utf-8":
		return true
	}
	return false
}

// decodeResolved is decodeCharset with the label resolveLabel chose.
func decodeResolved(cs, label string, b []byte) (string, string, error) {
	if t, name, ok := charsetTransformer(normalizeLabel(label)); ok {
		// The whole input is here: decode it in one call, without a
		// streaming reader's buffers (header words are a few bytes).
		out, _, err := transform.Bytes(t, b)
		if err != nil {
			return fallbackDecode(b), fallbackName(b), fmt.Errorf("mailtext: decode %q: %w", cs, err)
		}
		return strings.ToValidUTF8(string(out), "\ufffd"), name, nil
	}
	r, name, ok := charsetReader(label, bytes.NewReader(b))
	if !ok {
		return fallbackDecode(b), fallbackName(b), fmt.Errorf("mailtext: decode %q: %w", cs, errUnknownCharset)
	}
	if name == csUTF8 {
		return strings.ToValidUTF8(string(b), "\ufffd"), name, nil
	}
	buf := getTextBuf()
	defer putTextBuf(buf)
	buf.Grow(len(b) + len(b)/2) // Japanese double-byte text grows by half in UTF-8
	if _, err := buf.ReadFrom(r); err != nil {
		return fallbackDecode(b), fallbackName(b), fmt.Errorf("mailtext: decode %q: %w", cs, err)
	}
	return strings.ToValidUTF8(buf.String(), "\ufffd"), name, nil
}

// textBufs holds the scratch buffers of text decoding: the bytes read and
// decoded are copied into the strings Parse returns, never kept.
var textBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledTextBuf keeps the rare huge text part's buffer out of the pool.
const maxPooledTextBuf = 1 << 20

func getTextBuf() *bytes.Buffer {
	b := textBufs.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putTextBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledTextBuf {
		textBufs.Put(b)
	}
}

// resolveLabel returns the label to decode with: the declared one, or a
// guess from sample when none was declared or a 7-bit label is contradicted
// by the data (8-bit bytes, or ISO-2022-JP escapes under us-ascii).
func resolveLabel(declared string, sample []byte) string {
	label := normalizeLabel(declared)
	switch {
	case label == "":
		return detectCharset(sample)
	case label == csASCII || label == "ascii":
		if hasHighBit(sample) || hasJISEscape(sample) {
			return detectCharset(sample)
		}
	case label == csISO2022:
		if hasHighBit(sample) && !hasJISEscape(sample) {
			return detectCharset(sample)
		}
	}
	return label
}

func hasJISEscape(b []byte) bool {
	return bytes.Contains(b, []byte("\x1b$B")) || bytes.Contains(b, []byte("\x1b$@")) ||
		bytes.Contains(b, []byte("\x1b(I")) || bytes.Contains(b, []byte("\x1b$(D"))
}

func fallbackName(b []byte) string {
	if utf8.Valid(b) {
		return csUTF8
	}
	return csLatin1
}

// fallbackDecode is the rule for unknown charsets: UTF-8 if valid, else Latin-1.
func fallbackDecode(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) * 2)
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

func hasHighBit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// sniffLimit bounds how much of a text the charset detector looks at.
const sniffLimit = 64 << 10

// detectCharset guesses the charset of undeclared or mislabelled text, the
// way raw 8-bit Japanese spam needs: ISO-2022-JP escapes, valid UTF-8, then
// whichever of CP932 and EUC-JP decodes into more plausible Japanese, and
// windows-1252 when neither does.
func detectCharset(b []byte) string {
	truncated := len(b) > sniffLimit
	if truncated {
		b = b[:sniffLimit]
	}
	if !hasHighBit(b) {
		if hasJISEscape(b) {
			return csISO2022
		}
		return csUTF8
	}
	if utf8.Valid(b) || (truncated && validUTF8Prefix(b)) {
		return csUTF8
	}
	sj, sjBad := japaneseScore(japanese.ShiftJIS, b)
	eu, euBad := japaneseScore(japanese.EUCJP, b)
	best, bad, name := sj, sjBad, csShiftJIS
	if eu > sj {
		best, bad, name = eu, euBad, csEUCJP
	}
	// Many replacement characters mean it is not Japanese at all.
	if best <= 0 || bad*20 > len(b) {
		return csWin1252
	}
	return name
}

// validUTF8Prefix accepts a sample that is valid UTF-8 except for a sequence
// cut by the sample's end.
func validUTF8Prefix(b []byte) bool {
	for i := 1; i <= 3 && i < len(b); i++ {
		if utf8.Valid(b[:len(b)-i]) {
			return true
		}
	}
	return false
}

// japaneseScore decodes b and rewards kana and kanji, penalising U+FFFD and
// the half-width katakana that EUC-JP bytes turn into when read as CP932.
func japaneseScore(enc encoding.Encoding, b []byte) (score, bad int) {
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return -1, len(b)
	}
	for _, r := range string(out) {
		switch {
		case r == utf8.RuneError:
			score -= 20
			bad++
		case r >= 0x3040 && r <= 0x30ff: // hiragana, katakana
			score += 3
		case r >= 0x4e00 && r <= 0x9fff, r >= 0x3000 && r <= 0x303f, r >= 0xff01 && r <= 0xff5e:
			score += 2
		case r >= 0xff61 && r <= 0xff9f:
			score++
		case r < 0x80:
		default:
			score--
		}
	}
	return score, bad
}
