package bec

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// domainInfo is a domain name in the forms the checks compare.
type domainInfo struct {
	ascii      string // lower-case, A-labels (RFC 5890), no trailing dot
	unicode    string // U-labels where the A-labels decode, else as ascii
	reg        string // registrable domain (public suffix + 1 label), ascii
	regUnicode string // reg with U-labels
	suffix     string // public suffix of ascii
}

// parseDomain canonicalises a domain as written in an address (U-labels
// from an internationalised address or A-labels alike). It reports false
// for anything that is not a plausible host name: address literals, empty
// labels, over-long names (RFC 1035 2.3.4), characters outside LDH and
// underscore once converted.
func parseDomain(s string) (domainInfo, bool) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" || len(s) > 1024 || !utf8.ValidString(s) || strings.HasPrefix(s, "[") {
		return domainInfo{}, false
	}
	ascii, err := idna.Lookup.ToASCII(s)
	if err != nil {
		// Lookup refuses some names that still occur in mail (underscores):
		// keep plain ASCII ones as they are.
		ascii = strings.ToLower(s)
	}
	if !validHost(ascii) {
		return domainInfo{}, false
	}
	d := domainInfo{ascii: ascii, unicode: toUnicode(ascii)}
	d.suffix, _ = publicsuffix.PublicSuffix(ascii)
	if reg, err := publicsuffix.EffectiveTLDPlusOne(ascii); err == nil {
		d.reg = reg
	} else {
		// A bare suffix or a single label: the name is its own registrable
		// domain for comparison purposes.
		d.reg = ascii
	}
	d.regUnicode = toUnicode(d.reg)
	return d, true
}

// toUnicode decodes A-labels without validation: a hostile label that IDNA
// would refuse must still be shown and compared as it renders.
func toUnicode(ascii string) string {
	u, err := idna.Punycode.ToUnicode(ascii)
	if err != nil || !utf8.ValidString(u) {
		return ascii
	}
	return u
}

func validHost(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// splitAddr splits local@domain at the last '@' (a quoted local part may
// hold another one).
func splitAddr(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}

// protected is a domain impersonation is measured against: one of the
// tenant's own domains or a configured brand.
type protected struct {
	d        domainInfo
	skel     string // skeleton of d.regUnicode
	labelLen int    // runes of the registrable label (without the suffix)
	brand    bool
}

func newProtected(d domainInfo, brand bool) protected {
	label := strings.TrimSuffix(d.regUnicode, "."+toUnicode(d.suffix))
	return protected{d: d, skel: skeleton(d.regUnicode), labelLen: utf8.RuneCountInString(label), brand: brand}
}

// protectedSet parses domains (the tenant's or brands), keeping one entry
// per registrable domain, sorted for deterministic results.
func protectedSet(names []string, brand bool) []protected {
	seen := map[string]bool{}
	var out []protected
	for _, n := range names {
		d, ok := parseDomain(n)
		if !ok || seen[d.reg] {
			continue
		}
		seen[d.reg] = true
		out = append(out, newProtected(d, brand))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].d.reg < out[j].d.reg })
	return out
}

// parseBrands reads the bec.brands setting: names separated by commas or
// white space.
func parseBrands(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || unicode.IsSpace(r) })
}

// Thresholds of the look-alike comparison.
const (
	// minEditLabel is the shortest registrable label compared by edit
	// distance; shorter names (ibm, hp) have too many honest neighbours and
	// only count when their skeletons are equal.
	minEditLabel = 5
	// longLabel is the label length from which two edits still count.
	longLabel = 10
)

// lookalike is one look-alike match.
type lookalike struct {
	target   protected
	how      string // "skeleton", "distance N" or "embeds"
	distance int
}

// findLookalike compares d against every protected domain and returns the
// closest one it imitates: equal skeletons first, then the smallest edit
// distance, then a protected name used as a subdomain; ties go to the
// first in sorted order. A domain whose registrable part is itself one of
// the protected ones is genuine and never a look-alike.
func findLookalike(d domainInfo, set []protected) (lookalike, bool) {
	for _, p := range set {
		if p.d.reg == d.reg {
			return lookalike{}, false
		}
	}
	skel := skeleton(d.regUnicode)
	// Labels left of the registrable domain, dot-delimited, to find a
	// protected name used as a subdomain (example.co.jp.secure-mail.net).
	prefix := "." + strings.TrimSuffix(d.ascii, d.reg)
	best, found := lookalike{}, false
	for _, p := range set {
		cand, ok := compareDomain(skel, prefix, p)
		if ok && (!found || cand.distance < best.distance) {
			best, found = cand, true
		}
	}
	return best, found
}

// compareDomain tests one protected domain; the distance of an "embeds"
// match ranks it after any edit-distance match.
func compareDomain(skel, prefix string, p protected) (lookalike, bool) {
	if skel == p.skel {
		return lookalike{target: p, how: "skeleton", distance: 0}, true
	}
	if p.labelLen >= minEditLabel {
		k := 1
		if p.labelLen >= longLabel {
			k = 2
		}
		n1, n2 := utf8.RuneCountInString(skel), utf8.RuneCountInString(p.skel)
		if n1-n2 <= k && n2-n1 <= k {
			if dist := distance(skel, p.skel); dist <= k {
				return lookalike{target: p, how: fmt.Sprintf("distance %d", dist), distance: dist}, true
			}
		}
	}
	if strings.Contains(prefix, "."+p.d.reg+".") {
		return lookalike{target: p, how: "embeds", distance: 3}, true
	}
	return lookalike{}, false
}

// script names the writing system of a letter for the mixed-script test.
func script(r rune) string {
	switch {
	case r < utf8.RuneSelf:
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return "Latin"
		}
		return "" // digits, hyphen: common to all scripts
	case unicode.Is(unicode.Latin, r):
		return "Latin"
	case unicode.Is(unicode.Cyrillic, r):
		return "Cyrillic"
	case unicode.Is(unicode.Greek, r):
		return "Greek"
	case unicode.Is(unicode.Armenian, r):
		return "Armenian"
	case unicode.Is(unicode.Han, r):
		return "Han"
	case unicode.Is(unicode.Hiragana, r):
		return "Hiragana"
	case unicode.Is(unicode.Katakana, r):
		return "Katakana"
	case unicode.Is(unicode.Hangul, r):
		return "Hangul"
	case unicode.Is(unicode.Bopomofo, r):
		return "Bopomofo"
	case unicode.Is(unicode.Common, r), unicode.Is(unicode.Inherited, r):
		return ""
	case unicode.IsLetter(r):
		return "Other:" + scriptName(r)
	}
	return ""
}

// scriptName finds the Unicode script of r, for scripts not listed in
// script. Linear in the number of scripts, reached only for rare letters.
func scriptName(r rune) string {
	names := make([]string, 0, len(unicode.Scripts))
	for n := range unicode.Scripts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if unicode.Is(unicode.Scripts[n], r) {
			return n
		}
	}
	return "Unknown"
}

// allowedMix reports whether a set of scripts in one label is an ordinary
// combination: a single script, or Latin with the scripts of Japanese,
// Chinese or Korean writing (the "Highly Restrictive" level of UTS #39
// section 5.2).
func allowedMix(scripts map[string]bool) bool {
	if len(scripts) <= 1 {
		return true
	}
	for _, set := range [][]string{
		{"Latin", "Han", "Hiragana", "Katakana"},
		{"Latin", "Han", "Bopomofo"},
		{"Latin", "Han", "Hangul"},
	} {
		ok := true
		for s := range scripts {
			if !slices.Contains(set, s) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// idnProblem reports why an internationalised domain is deceptive, or ""
// when it is not: a label mixing scripts (Cyrillic а in "аpple"), or a
// label wholly in another script that renders as Latin ("аррӏе") under an
// ASCII public suffix, where a reader expects Latin.
func idnProblem(d domainInfo) string {
	if d.unicode == d.ascii {
		return ""
	}
	asciiSuffix := isASCII(toUnicode(d.suffix))
	for _, label := range strings.Split(d.unicode, ".") {
		if isASCII(label) {
			continue
		}
		scripts := map[string]bool{}
		for _, r := range label {
			if s := script(r); s != "" {
				scripts[s] = true
			}
		}
		if !allowedMix(scripts) {
			return fmt.Sprintf("label %q mixes scripts %s", label, strings.Join(sortedKeys(scripts), "+"))
		}
		if asciiSuffix && !scripts["Latin"] && isASCII(skeleton(label)) {
			return fmt.Sprintf("label %q is written in %s letters that look Latin", label, strings.Join(sortedKeys(scripts), "+"))
		}
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
