package outbound

import (
	"math/rand"
	"strings"
	"testing"
)

// The set never rules out a keyword that is in the text: every substring
// of random texts (ASCII and Japanese) passes, and a keyword with a pair
// the text lacks is ruled out.
func TestBigramsNeverRuleOutAKeywordInTheText(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	alphabet := []string{"a", "b", "-", "1", "顧", "客", "リ", "ス", "ト", "\n", "社", "外", "秘"}
	var b bigrams
	for range 200 {
		var sb strings.Builder
		for range 50 + r.Intn(3000) {
			sb.WriteString(alphabet[r.Intn(len(alphabet))])
		}
		text := sb.String()
		b.fill(text)
		for range 50 {
			i := r.Intn(len(text))
			j := i + r.Intn(min(40, len(text)-i)+1)
			if k := text[i:j]; b.lacks(k) {
				t.Fatalf("keyword %q of the text ruled out", k)
			}
		}
	}
	b.fill("Quarterly figures, nothing secret.")
	if !b.lacks("顧客リスト") || !b.lacks("secrets") || b.lacks("secret") || b.lacks("x") {
		t.Fatal("wrong verdicts on a plain text")
	}
}
