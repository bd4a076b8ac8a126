package imapd

import "strings"

// matchAny reports whether a folder name matches any LIST pattern under
// the reference name (RFC 9051 6.3.9: "*" matches anything, "%" anything
// but the hierarchy delimiter).
func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if matchList(name, ref, p) {
			return true
		}
	}
	return false
}

func matchList(name, ref, pattern string) bool {
	// The reference is prepended to the pattern (RFC 9051 6.3.9); the
	// namespace has no root, so a leading delimiter means nothing.
	pattern = strings.TrimPrefix(ref+pattern, "/")
	if strings.EqualFold(pattern, "INBOX") {
		pattern = "INBOX"
	}
	return wildMatch(name, pattern)
}

// wildMatch matches with dynamic programming, so a hostile pattern of
// many wildcards costs len(name)×len(pattern), not an exponential search.
func wildMatch(name, pattern string) bool {
	n, p := []rune(name), []rune(pattern)
	// ok[j]: pattern[:i] matches name[:j]
	ok := make([]bool, len(n)+1)
	ok[0] = true
	for i := 0; i < len(p); i++ {
		next := make([]bool, len(n)+1)
		switch p[i] {
		case '*':
			run := false
			for j := 0; j <= len(n); j++ {
				run = run || ok[j]
				next[j] = run
			}
		case '%':
			run := false
			for j := 0; j <= len(n); j++ {
				if j > 0 && n[j-1] == '/' {
					run = false
				}
				run = run || ok[j]
				next[j] = run
			}
		default:
			for j := 1; j <= len(n); j++ {
				next[j] = ok[j-1] && n[j-1] == p[i]
			}
		}
		ok = next
	}
	return ok[len(n)]
}
