package bec

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// maxNameBytes bounds the display name examined; a longer one is not a
// person's name and is cut (after which it will not match).
const maxNameBytes = 512

// nameTokens normalises a display name into comparable tokens: NFKC (which
// also turns the full-width space U+3000 into a plain one), lower case,
// bracketed annotations and quotes removed ("山田 太郎（経理部）"),
// separators (comma, dot, middle dot, slash) made spaces, honorifics and
// titles dropped ("様", "さん", "Mr.", "社長"), then each token reduced to its
// skeleton so homoglyph tricks in names compare equal too.
func nameTokens(name string) []string {
	if len(name) > maxNameBytes {
		name = name[:maxNameBytes]
	}
	name = norm.NFKC.String(strings.ToValidUTF8(name, ""))
	name = strings.ToLower(name)
	name = removeBracketed(name)
	var b strings.Builder
	for _, r := range name {
		switch {
		case strings.ContainsRune(`"'`+"`"+`“”‘’«»「」『』`, r):
			// dropped
		case strings.ContainsRune(",.;:/|\\_-・、。･~〜+&", r), unicode.IsSpace(r), unicode.IsControl(r),
			unicode.Is(unicode.Cf, r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	var out []string
	for _, t := range strings.Fields(b.String()) {
		if isHonorific(t) {
			continue
		}
		t = stripHonorificSuffix(t)
		if t == "" {
			continue
		}
		out = append(out, skeleton(t))
	}
	return out
}

// removeBracketed drops text inside (), [], {}, <>, 【】, 〔〕, 《》, 〈〉 (NFKC
// has already turned full-width parentheses into ASCII ones). Unbalanced
// closers are dropped; an unclosed opener drops the rest.
func removeBracketed(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch r {
		case '(', '[', '{', '<', '【', '〔', '《', '〈':
			depth++
			b.WriteByte(' ')
			continue
		case ')', ']', '}', '>', '】', '〕', '》', '〉':
			if depth > 0 {
				depth--
			}
			b.WriteByte(' ')
			continue
		}
		if depth == 0 {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isHonorific reports whether a whole token is a form of address or a job
// title rather than part of a name.
func isHonorific(t string) bool {
	switch t {
	case "mr", "mrs", "ms", "miss", "dr", "prof", "sir", "san", "sama", "sensei", "kun", "dono",
		"様", "さま", "さん", "殿", "どの", "氏", "君", "くん", "ちゃん", "先生", "御中", "各位",
		"社長", "代表", "代表取締役", "代表取締役社長", "取締役", "会長", "副社長", "専務", "常務",
		"部長", "課長", "係長", "室長", "本部長", "支店長",
		"ceo", "cfo", "coo", "cto", "president", "director", "manager":
		return true
	}
	return false
}

// honorificSuffixes are stripped from the end of a token ("山田太郎様"),
// longest first so "代表取締役社長" goes before "社長".
func honorificSuffixes() []string {
	return []string{"代表取締役社長", "代表取締役", "取締役", "副社長", "本部長", "支店長",
		"社長", "会長", "専務", "常務", "部長", "課長", "係長", "室長",
		"先生", "ちゃん", "さま", "さん", "くん", "御中", "様", "殿", "氏"}
}

func stripHonorificSuffix(t string) string {
	for _, suf := range honorificSuffixes() {
		if strings.HasSuffix(t, suf) && len(t) > len(suf) {
			return strings.TrimSuffix(t, suf)
		}
	}
	return t
}

// hasCJK reports whether s holds Han or kana, whose names are short.
func hasCJK(s string) bool {
	for _, r := range s {
		if unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul) {
			return true
		}
	}
	return false
}

// nameKeys turns tokens into the keys under which a name is indexed and
// looked up. The keys make word order and spacing irrelevant: "Yamada,
// Taro", "Taro Yamada" and "yamada taro" share the sorted key; "山田太郎"
// and "山田 太郎" share the joined key. Names too short to identify a
// person give no keys: one Latin word (a first name, "Sales") or fewer
// than two CJK characters.
func nameKeys(tokens []string) []string {
	if len(tokens) == 0 {
		return nil
	}
	joined := strings.Join(tokens, "")
	if hasCJK(joined) {
		if utf8.RuneCountInString(joined) < 2 {
			return nil
		}
	} else if len(tokens) < 2 || utf8.RuneCountInString(joined) < 4 {
		return nil
	}
	sorted := append([]string(nil), tokens...)
	sort.Strings(sorted)
	keys := []string{strings.Join(sorted, " "), joined}
	rev := make([]string, len(tokens))
	for i, t := range tokens {
		rev[len(tokens)-1-i] = t
	}
	if r := strings.Join(rev, ""); r != joined {
		keys = append(keys, r)
	}
	return keys
}

// localPartTokens derives a romanised name from an address's local part
// when it reads as one ("taro.yamada", "yamada_taro"): directories often
// hold the name in kanji while outsiders write it in Latin letters.
// Local parts with digits or a single word give nothing.
func localPartTokens(local string) []string {
	local = strings.ToLower(local)
	parts := strings.FieldsFunc(local, func(r rune) bool { return r == '.' || r == '_' || r == '-' })
	if len(parts) < 2 {
		return nil
	}
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			if p[i] < 'a' || p[i] > 'z' {
				return nil
			}
		}
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = skeleton(p)
	}
	return out
}
