package spam

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Writing systems. A model trained on mail in one language has seen the
// other scripts' words in one class only, if at all: the public English
// corpora hold Chinese and Korean spam but no Asian ham, so every CJK
// character pair in them is "spam evidence" to a naive classifier, and
// ordinary Japanese mail scores as spam. The classifier therefore judges a
// script's words only against the messages written in that script
// (Params.MinScriptMessages), and ignores them while it has not seen
// enough of both classes in it.
type script uint8

const (
	scriptNone script = iota // not text: numbers, URLs, header and structure features
	scriptLatin
	scriptCJK // Han, Hiragana, Katakana: Japanese and Chinese
	scriptHangul
	scriptCyrillic
	scriptGreek
	scriptOther // Arabic, Hebrew, Thai, Devanagari, ...
	numScripts
)

var scriptNames = [numScripts]string{"", "latin", "cjk", "hangul", "cyrillic", "greek", "other"}

// ScriptTokenPrefix starts the per-message script tokens ("script:cjk").
const ScriptTokenPrefix = "script:"

// minScriptTokens is how many word tokens of a script a message needs for
// its script token: a Japanese signature under English text, or one
// English product name in Japanese text, does not make the message one of
// that script's.
const minScriptTokens = 5

const (
	subjectPrefix  = "subject:"
	fromNamePrefix = "from-name:"
)

// isTextPrefix reports whether tokens under prefix are words of the
// message's text (body, Subject, sender name).
func isTextPrefix(prefix string) bool {
	return prefix == "" || prefix == subjectPrefix || prefix == fromNamePrefix
}

func runeScript(r rune) script {
	switch {
	case r < utf8.RuneSelf:
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return scriptLatin
		}
		return scriptNone
	case commonKana(r) || r == 0x30FC || unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana):
		return scriptCJK
	case unicode.Is(unicode.Hangul, r):
		return scriptHangul
	case unicode.Is(unicode.Latin, r):
		return scriptLatin
	case unicode.Is(unicode.Cyrillic, r):
		return scriptCyrillic
	case unicode.Is(unicode.Greek, r):
		return scriptGreek
	case unicode.IsLetter(r):
		return scriptOther
	}
	return scriptNone
}

// wordScript is the script of a word's first letter (none for a word
// without letters).
func wordScript(w string) script {
	for _, r := range w {
		if sc := runeScript(r); sc != scriptNone {
			return sc
		}
	}
	return scriptNone
}

// tokenScript returns the script a token's evidence belongs to: that of
// the word for text tokens (body words and pairs, Subject and sender-name
// words, CJK pairs), that of the charset for charset tokens (a charset
// says which language the text is in, nothing more), none for the rest.
func tokenScript(tok string) script {
	rest := tok
	if strings.HasPrefix(rest, subjectPrefix) {
		rest = rest[len(subjectPrefix):]
	} else if strings.HasPrefix(rest, fromNamePrefix) {
		rest = rest[len(fromNamePrefix):]
	} else if cs, ok := strings.CutPrefix(rest, "charset:"); ok {
		return charsetScript(cs)
	}
	if strings.IndexByte(rest, ':') >= 0 {
		return scriptNone // a feature (num:, url-host:, header:, ...)
	}
	return wordScript(rest)
}

// charsetScript maps a charset label to the script whose text it encodes;
// Unicode and unknown labels encode any script.
func charsetScript(cs string) script {
	cs = strings.NewReplacer("_", "-", " ", "").Replace(strings.ToLower(cs))
	switch cs {
	case "iso-2022-jp", "iso-2022-jp-2", "iso-2022-jp-3", "shift-jis", "sjis", "x-sjis", "cp932", "windows-31j", "ms932",
		"euc-jp", "x-euc-jp", "csshiftjis", "gb2312", "gbk", "gb18030", "x-gbk", "cp936", "euc-cn", "hz-gb-2312",
		"iso-2022-cn", "big5", "big5-hkscs", "x-big5", "cn-big5":
		return scriptCJK
	case "ks-c-5601-1987", "ks-c-5601", "euc-kr", "iso-2022-kr", "cp949", "korean", "x-windows-949":
		return scriptHangul
	case "koi8-r", "koi8-u", "windows-1251", "cp1251", "iso-8859-5":
		return scriptCyrillic
	case "iso-8859-7", "windows-1253":
		return scriptGreek
	case "us-ascii", "ascii", "ansi-x3.4-1968", "windows-1250", "windows-1252", "windows-1254", "windows-1257", "cp1252",
		"latin1", "latin-1", "iso-8859-1", "iso-8859-2", "iso-8859-3", "iso-8859-4", "iso-8859-9", "iso-8859-10",
		"iso-8859-13", "iso-8859-14", "iso-8859-15", "iso-8859-16":
		return scriptLatin
	}
	return scriptNone
}

// scriptOf returns the script a "script:" token names.
func scriptOf(name string) (script, bool) {
	for i, n := range scriptNames {
		if i > 0 && n == name {
			return script(i), true
		}
	}
	return scriptNone, false
}
