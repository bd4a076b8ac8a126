package jamail

import (
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"
)

// Charsets the generator writes, as mail software labels them.
const (
	ISO2022JP = "ISO-2022-JP"
	ShiftJIS  = "Shift_JIS"
	UTF8      = "UTF-8"
)

func encoder(cs string) *encoding.Encoder {
	switch cs {
	case ISO2022JP:
		return encoding.ReplaceUnsupported(japanese.ISO2022JP.NewEncoder())
	case ShiftJIS:
		return encoding.ReplaceUnsupported(japanese.ShiftJIS.NewEncoder())
	}
	return nil
}

// encodeText returns s in charset cs. Characters the charset lacks become
// the charset's replacement (templates avoid them for the JIS charsets).
func encodeText(cs, s string) []byte {
	e := encoder(cs)
	if e == nil {
		return []byte(s)
	}
	b, err := e.Bytes([]byte(s))
	if err != nil {
		panic(fmt.Sprintf("jamail: encode %s: %v", cs, err)) // ReplaceUnsupported does not fail
	}
	return b
}

// encodedWords returns s as RFC 2047 B encoded words in charset cs, one per
// at most 10 characters so every line stays short and every ISO-2022-JP
// word ends in ASCII (RFC 1468), separated by folding white space. ASCII
// text is returned as is.
func encodedWords(cs, s string) string {
	if isASCII(s) {
		return s
	}
	var words []string
	rs := []rune(s)
	for len(rs) > 0 {
		n := min(10, len(rs))
		chunk := string(rs[:n])
		rs = rs[n:]
		words = append(words, "=?"+cs+"?B?"+base64.StdEncoding.EncodeToString(encodeText(cs, chunk))+"?=")
	}
	return strings.Join(words, "\r\n ")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// encodedWord returns s as one RFC 2047 B encoded word (for parameters
// such as file names, which must not be folded).
func encodedWord(cs, s string) string {
	if isASCII(s) {
		return s
	}
	return "=?" + cs + "?B?" + base64.StdEncoding.EncodeToString(encodeText(cs, s)) + "?="
}

// address formats a From/To field value with an encoded display name.
func address(cs, name, addr string) string {
	if name == "" {
		return addr
	}
	return encodedWords(cs, name) + " <" + addr + ">"
}

// body encodes text for a part in charset cs with transfer encoding cte
// ("7bit", "8bit", "base64", "quoted-printable"), CRLF line endings.
func body(cs, cte, text string) string {
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n")
	if !strings.HasSuffix(text, "\r\n") {
		text += "\r\n"
	}
	raw := encodeText(cs, text)
	switch cte {
	case "base64":
		enc := base64.StdEncoding.EncodeToString(raw)
		var b strings.Builder
		for len(enc) > 76 {
			b.WriteString(enc[:76])
			b.WriteString("\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc)
		b.WriteString("\r\n")
		return b.String()
	case "quoted-printable":
		var b strings.Builder
		w := quotedprintable.NewWriter(&b)
		w.Write(raw)
		w.Close()
		s := strings.ReplaceAll(b.String(), "\r\n", "\n")
		return strings.ReplaceAll(s, "\n", "\r\n") + "\r\n"
	}
	return string(raw)
}
