package archive

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxTokenBytes bounds one word: longer runs (base64 left in a body, a
// hash) are cut, so an index entry stays small.
const maxTokenBytes = 64

// cjk reports whether r is written without spaces between words: Han,
// Hiragana, Katakana and Hangul. Such text is indexed as overlapping
// pairs of characters (bigrams), so any word of two characters or more
// (会議, 東京) is found without a dictionary.
func cjk(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) || r == 'ー' || r == '々'
}

// Tokens splits text into the terms the archive's indexes keep and
// search: NFKC-folded (full-width letters and half-width kana become
// their usual forms), lower-cased words of letters and digits, and
// bigrams of CJK runs (a lone CJK character stands alone). The embedded
// index's CJK analyzer makes the same terms; the PostgreSQL index and
// the archive rules use this function.
func Tokens(text string) []string {
	text = norm.NFKC.String(text)
	var out []string
	var word []rune
	var run []rune
	flushWord := func() {
		if len(word) > 0 {
			w := strings.ToLower(string(word))
			if len(w) > maxTokenBytes {
				w = truncUTF8(w, maxTokenBytes)
			}
			out = append(out, w)
			word = word[:0]
		}
	}
	flushRun := func() {
		switch len(run) {
		case 0:
		case 1:
			out = append(out, string(run))
		default:
			for i := 0; i+1 < len(run); i++ {
				out = append(out, string(run[i:i+2]))
			}
		}
		run = run[:0]
	}
	for len(text) > 0 {
		r, n := utf8.DecodeRuneInString(text)
		text = text[n:]
		switch {
		case cjk(r):
			flushWord()
			run = append(run, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			flushRun()
			word = append(word, r)
		default:
			flushWord()
			flushRun()
		}
	}
	flushWord()
	flushRun()
	return out
}

// uniqueTokens is Tokens without repeats, in first-seen order.
func uniqueTokens(text string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range Tokens(text) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
