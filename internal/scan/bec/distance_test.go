package bec

import "testing"

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"paypal", "paypal", 0},
		{"paypal", "paypa1", 1},               // substitution
		{"example", "exmaple", 1},             // adjacent transposition
		{"example", "exampel", 1},             // transposition at the end
		{"microsoft", "micrsoft", 1},          // deletion
		{"microsoft", "microsofft", 1},        // insertion
		{"ca", "abc", 2},                      // unrestricted: OSA would say 3
		{"kitten", "sitting", 3},              // classic Levenshtein
		{"山田太郎", "山田太朗", 1},                   // counted in runes, not bytes
		{"example.co.jp", "example-co.jp", 1}, // dot swapped for hyphen
	} {
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := distance(tc.b, tc.a); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d (symmetry)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestDistanceBoundsLongInput(t *testing.T) {
	long := make([]byte, maxCompareRunes+1)
	for i := range long {
		long[i] = 'a'
	}
	other := append([]byte("b"), long[1:]...)
	// One substitution apart but over the bound: reported as far apart,
	// not compared.
	if got := distance(string(long), string(other)); got != len(long) {
		t.Errorf("distance over the bound = %d, want %d", got, len(long))
	}
	if got := distance(string(long), string(long)); got != 0 {
		t.Errorf("distance of equal long strings = %d, want 0", got)
	}
}
