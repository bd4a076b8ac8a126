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
	if r < 0x1100 { // below Hangul Jamo, the first of them
		return false
	}
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) || r == 'ー' || r == '々'
}

// wordRune reports whether r belongs in a word: a letter, a digit or a
// combining mark.
func wordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

// Tokens splits text into the terms the archive's indexes keep and
// search: NFKC-folded (full-width letters and half-width kana become
// their usual forms), lower-cased words of letters and digits, and
// bigrams of CJK runs (a lone CJK character stands alone). The embedded
// index's CJK analyzer makes the same terms; the PostgreSQL index and
// the archive rules use this function. The terms are slices of the
// folded text where they can be (no copy per term: archiving tokenizes
// every message).
func Tokens(text string) []string {
	text = norm.NFKC.String(text)
	var out []string
	word := -1    // where the current word starts
	var run []int // where the current CJK run's characters start
	flushWord := func(end int) {
		if word >= 0 {
			w := strings.ToLower(text[word:end])
			if len(w) > maxTokenBytes {
				w = truncUTF8(w, maxTokenBytes)
			}
			out = append(out, w)
			word = -1
		}
	}
	flushRun := func(end int) {
		switch len(run) {
		case 0:
		case 1:
			out = append(out, text[run[0]:end])
		default:
			for i := 0; i+1 < len(run); i++ {
				e := end
				if i+2 < len(run) {
					e = run[i+2]
				}
				out = append(out, text[run[i]:e])
			}
		}
		run = run[:0]
	}
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		switch {
		case cjk(r):
			flushWord(i)
			run = append(run, i)
		case wordRune(r):
			flushRun(i)
			if word < 0 {
				word = i
			}
		default:
			flushWord(i)
			flushRun(i)
		}
		i += n
	}
	flushWord(len(text))
	flushRun(len(text))
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
