package bytesize

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want int64
		err  error
	}{
		{"0", 0, nil},
		{"1048576", 1 << 20, nil},
		{"524288000", 500 << 20, nil},
		{"007", 7, nil},
		{"9223372036854775807", math.MaxInt64, nil},
		{"4K", 4 << 10, nil},
		{"4k", 4 << 10, nil},
		{"25M", 25 << 20, nil},
		{"25m", 25 << 20, nil},
		{"2G", 2 << 30, nil},
		{"2g", 2 << 30, nil},
		{"4KB", 4 << 10, nil},
		{"4kb", 4 << 10, nil},
		{"4kB", 4 << 10, nil},
		{"25MB", 25 << 20, nil},
		{"25mb", 25 << 20, nil},
		{"2GB", 2 << 30, nil},
		{"2gb", 2 << 30, nil},
		{"0K", 0, nil},
		{" 1G", 1 << 30, nil},
		{"1G ", 1 << 30, nil},
		{"\t 400K\n", 400 << 10, nil},
		{"8589934591G", 8589934591 << 30, nil}, // the largest G that fits

		{"", 0, ErrSyntax},
		{"   ", 0, ErrSyntax},
		{"-1", 0, ErrSyntax},
		{"-1K", 0, ErrSyntax},
		{"+1", 0, ErrSyntax},
		{"1.5M", 0, ErrSyntax},
		{"0x10", 0, ErrSyntax},
		{"1_000", 0, ErrSyntax},
		{"ten", 0, ErrSyntax},
		{"10T", 0, ErrSyntax},
		{"10MiB", 0, ErrSyntax},
		{"10B", 0, ErrSyntax},
		{"10BB", 0, ErrSyntax},
		{"10KK", 0, ErrSyntax},
		{"10 M", 0, ErrSyntax},
		{"1 0", 0, ErrSyntax},
		{"K", 0, ErrSyntax},
		{"m", 0, ErrSyntax},
		{"GB", 0, ErrSyntax},
		{"B", 0, ErrSyntax},
		{"１０", 0, ErrSyntax}, // full-width digits

		{"9223372036854775808", 0, ErrRange},
		{"99999999999999999999999", 0, ErrRange},
		{"9223372036854775807K", 0, ErrRange},
		{"8589934592G", 0, ErrRange},
		{"9007199254740992M", 0, ErrRange},
	} {
		got, err := Parse(c.in)
		if c.err == nil {
			if err != nil || got != c.want {
				t.Errorf("Parse(%q) = %d, %v; want %d", c.in, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, c.err) || got != 0 {
			t.Errorf("Parse(%q) = %d, %v; want 0 and an error wrapping %q", c.in, got, err, c.err)
		}
	}
}

func TestParseErrorSaysWhatIsAccepted(t *testing.T) {
	t.Parallel()
	_, err := Parse("1.5M")
	if err == nil || !strings.Contains(err.Error(), "K, M or G") {
		t.Fatalf("error %v does not say what is accepted", err)
	}
}

// grammar is Parse's grammar written again independently, for the fuzz
// test's reference.
var grammar = regexp.MustCompile(`^([0-9]+)([KkMmGg][Bb]?)?$`)

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0", "25M", "4kb", " 2G ", "9223372036854775807K", "-1", "B", "1.5M"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		m := grammar.FindStringSubmatch(strings.TrimSpace(s))
		if m == nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q) = %d, %v; want a syntax error", s, got, err)
			}
			return
		}
		want, _ := new(big.Int).SetString(m[1], 10)
		if m[2] != "" {
			shift := map[byte]uint{'k': 10, 'm': 20, 'g': 30}[strings.ToLower(m[2])[0]]
			want.Lsh(want, shift)
		}
		if !want.IsInt64() {
			if !errors.Is(err, ErrRange) {
				t.Fatalf("Parse(%q) = %d, %v; want a range error", s, got, err)
			}
			return
		}
		if err != nil || got != want.Int64() {
			t.Fatalf("Parse(%q) = %d, %v; want %s", s, got, err, want)
		}
	})
}
