package mailtext

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// textByRune is htmlConverter.text done one rune at a time, the reference
// its word-at-a-time path must match.
func textByRune(c *htmlConverter, b []byte) {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r == 0 {
			continue
		}
		if isHTMLSpace(r) {
			c.space = true
			continue
		}
		if c.truncated {
			continue
		}
		var sep string
		if c.out.Len() > 0 {
			if c.newline {
				sep = "\n"
			} else if c.space {
				sep = " "
			}
		}
		if int64(c.out.Len()+len(sep)+utf8.RuneLen(r)) > c.max {
			c.truncated = true
			continue
		}
		c.space, c.newline = false, false
		c.out.WriteString(sep)
		c.out.WriteRune(r)
	}
}

func TestHTMLTextWordsMatchRunes(t *testing.T) {
	t.Parallel()
	pieces := []string{"a", "word", "会議", " ", "  ", "\t", "\r\n", "\f", "\x00", "\u00a0", "\xff", "\xe4\xbc", "é", "\u3000", "x\u00a0y"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		var in []byte
		for k := rng.IntN(12); k >= 0; k-- {
			in = append(in, pieces[rng.IntN(len(pieces))]...)
		}
		for _, limit := range []int64{0, 1, 2, 3, 4, 5, 7, 10, 1 << 20} {
			for _, start := range []struct{ space, newline bool }{{false, false}, {true, false}, {false, true}} {
				got := &htmlConverter{max: limit, space: start.space, newline: start.newline}
				want := &htmlConverter{max: limit, space: start.space, newline: start.newline}
				// Something already written, so separators count.
				if rng.IntN(2) == 0 {
					got.out.WriteString("p")
					want.out.WriteString("p")
				}
				got.text(in)
				textByRune(want, in)
				if got.out.String() != want.out.String() || got.truncated != want.truncated ||
					got.space != want.space || got.newline != want.newline {
					t.Fatalf("input %q max %d start %+v: got %q truncated=%v space=%v newline=%v, want %q %v %v %v",
						in, limit, start, got.out.String(), got.truncated, got.space, got.newline,
						want.out.String(), want.truncated, want.space, want.newline)
				}
			}
		}
	}
}

func TestNormalizeNewlinesBytesMatchesStrings(t *testing.T) {
	t.Parallel()
	pieces := []string{"\r", "\n", "\r\n", "\n\r", "a", "会", "\xff", "\r\r\n"}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 5000; i++ {
		var in []byte
		for k := rng.IntN(10); k >= 0; k-- {
			in = append(in, pieces[rng.IntN(len(pieces))]...)
		}
		want := normalizeNewlines(string(in))
		if got := string(normalizeNewlinesBytes(append([]byte(nil), in...))); got != want {
			t.Fatalf("%q: got %q, want %q", in, got, want)
		}
	}
}
