package bec

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// skeleton maps s to a form in which strings that look alike to a reader
// compare equal, after the idea of the skeleton of Unicode Technical
// Standard #39 (section 4, "Confusable Detection"): two strings are
// confusable when their skeletons are equal. The table is our own and
// deliberately small; it covers the tricks seen in impersonation mail:
//
//   - compatibility forms (full-width letters, ligatures, mathematical
//     alphanumerics) through NFKC;
//   - accents, by dropping combining marks (but not the kana voicing marks,
//     which change a Japanese name);
//   - Cyrillic, Greek and Armenian letters that render like Latin ones, and
//     Latin variants such as dotless i;
//   - digit-for-letter swaps 0→o and 1→l, and the multi-letter look-alikes
//     rn→m, vv→w and cl→d;
//   - a few kanji and katakana that are drawn alike (口/ロ, 工/エ, 力/カ ...).
//
// The result is lower case and NFC. skeleton is idempotent and safe for any
// input, including invalid UTF-8 (replaced by U+FFFD).
func skeleton(s string) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	s = norm.NFD.String(norm.NFKC.String(s))
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if unicode.Is(unicode.Mn, r) && r != 0x3099 && r != 0x309A {
			continue
		}
		r = unicode.ToLower(r)
		if m, ok := confusable(r); ok {
			r = m
		}
		b.WriteRune(r)
	}
	out := b.String()
	// The replacements produce m, w and d, none of which starts or ends a
	// pattern, so one pass leaves nothing for a second one (idempotence).
	out = strings.NewReplacer("rn", "m", "vv", "w", "cl", "d").Replace(out)
	return norm.NFC.String(out)
}

// confusable returns the character r is commonly mistaken for. A switch
// rather than a map keeps the table immutable and allocation-free.
func confusable(r rune) (rune, bool) {
	switch r {
	// Digits and punctuation standing in for letters.
	case '0':
		return 'o', true
	case '1', '|', 'ǀ':
		return 'l', true

	// Latin variants.
	case 'ı', 'ɩ':
		return 'i', true
	case 'ȷ':
		return 'j', true
	case 'ɑ', 'α':
		return 'a', true
	case 'ɡ':
		return 'g', true
	case 'ł', 'ƚ':
		return 'l', true

	// Cyrillic.
	case 'а':
		return 'a', true
	case 'с', 'ϲ':
		return 'c', true
	case 'ԁ':
		return 'd', true
	case 'е':
		return 'e', true
	case 'һ', 'հ':
		return 'h', true
	case 'і', 'ι':
		return 'i', true
	case 'ј', 'ϳ':
		return 'j', true
	case 'к', 'κ':
		return 'k', true
	case 'ӏ':
		return 'l', true
	case 'о', 'ο', 'օ', 'σ':
		return 'o', true
	case 'р', 'ρ':
		return 'p', true
	case 'ԛ':
		return 'q', true
	case 'ѕ':
		return 's', true
	case 'υ', 'ս':
		return 'u', true
	case 'ν', 'ѵ':
		return 'v', true
	case 'ԝ', 'ѡ':
		return 'w', true
	case 'х', 'χ':
		return 'x', true
	case 'у', 'γ':
		return 'y', true
	case 'η', 'ո':
		return 'n', true

	// Kanji and kana drawn alike (display names).
	case '口':
		return 'ロ', true
	case '工':
		return 'エ', true
	case '力':
		return 'カ', true
	case '二':
		return 'ニ', true
	case '一':
		return 'ー', true
	case '夕':
		return 'タ', true
	case '卜':
		return 'ト', true
	case '八':
		return 'ハ', true
	case 'へ':
		return 'ヘ', true
	}
	return r, false
}
