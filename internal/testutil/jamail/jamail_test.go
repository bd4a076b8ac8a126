package jamail

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Every generated message parses, its Subject and text decode back to
// Japanese in every charset, and the same seed gives the same bytes.
func TestGenerateDecodesAndIsReproducible(t *testing.T) {
	msgs := Generate(1, 300, 150)
	again := Generate(1, 300, 150)
	charsets := map[string]int{}
	kinds := map[string]int{}
	for i, m := range msgs {
		if !bytes.Equal(m.Raw, again[i].Raw) {
			t.Fatalf("%s differs between two runs with the same seed", m.Name)
		}
		charsets[m.Charset]++
		kinds[m.Kind]++
		p, err := mailtext.Parse(context.Background(), bytes.NewReader(m.Raw), mailtext.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if !hasKana(p.Subject) && !hasKana(p.Text) {
			t.Fatalf("%s (%s): no Japanese after decoding: %q / %.200q", m.Name, m.Charset, p.Subject, p.Text)
		}
		if strings.ContainsRune(p.Subject+p.Text, '\uFFFD') {
			t.Fatalf("%s (%s): replacement characters after decoding: %q / %.300q", m.Name, m.Charset, p.Subject, p.Text)
		}
		if len(p.Problems) > 0 {
			t.Fatalf("%s: parse problems %v", m.Name, p.Problems)
		}
	}
	for _, cs := range []string{ISO2022JP, ShiftJIS, UTF8} {
		if charsets[cs] < 20 {
			t.Errorf("only %d messages in %s", charsets[cs], cs)
		}
	}
	if len(kinds) < len(hamKinds)+len(spamKinds)-2 {
		t.Errorf("only %d kinds: %v", len(kinds), kinds)
	}
	if other := Generate(2, 300, 150); bytes.Equal(other[0].Raw, msgs[0].Raw) {
		t.Error("seed 2 gave seed 1's first message")
	}
}

func hasKana(s string) bool {
	for _, r := range s {
		if r >= 0x3040 && r <= 0x30FF {
			return true
		}
	}
	return false
}
