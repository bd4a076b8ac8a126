package av

import (
	"strings"
	"unicode"
)

// StripNotice returns the text that replaces an attachment removed because
// of a virus (VIRUS_ATTACHMENT), in English and then Japanese, one sentence
// each, lines ending in CRLF (the canonical form of text, RFC 2045 2.10). filename is the attachment's decoded name
// (mailtext Part.Filename), "" when it had none; signature is the detection
// name, "" when unknown. Both are cleaned (control characters removed,
// length bounded), so the result is safe to place in a text/plain part.
// It is a pure function, safe for concurrent use.
func StripNotice(filename, signature string) string {
	name := noticeText(filename, 200)
	sig := noticeText(signature, 100)
	enName, jaName := `"`+name+`"`, "「"+name+"」"
	if name == "" {
		enName, jaName = "(no name)", "(名前なし)"
	}
	var b strings.Builder
	b.WriteString("The attachment " + enName + " was removed by the mail gateway because a virus was found in it")
	if sig != "" {
		b.WriteString(" (" + sig + ")")
	}
	b.WriteString(".\r\n")
	b.WriteString("添付ファイル" + jaName + "はウイルス")
	if sig != "" {
		b.WriteString("(" + sig + ")")
	}
	b.WriteString("が検出されたため、メールゲートウェイにより削除されました。\r\n")
	return b.String()
}

// noticeText drops control and format characters (line breaks, bidi
// overrides that could disguise a name) and bounds the length in bytes.
func noticeText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		s = truncUTF8(s, max) + "…"
	}
	return s
}
