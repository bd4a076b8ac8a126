package archive

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/bytesize"
)

func TestParseQuerySize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]int64{
		"larger:5M smaller:100k":  {5 << 20, 100 << 10},
		"larger:2GB smaller:3gb":  {2 << 30, 3 << 30},
		"larger:1024 smaller:4KB": {1024, 4 << 10},
		`larger:"10m"`:            {10 << 20, 0},
	} {
		q, err := ParseQuery(in)
		if err != nil || q.MinSize != want[0] || q.MaxSize != want[1] {
			t.Errorf("ParseQuery(%q) = %d, %d, %v; want %d, %d", in, q.MinSize, q.MaxSize, err, want[0], want[1])
		}
	}
	for _, in := range []string{"larger:1.5M", "larger:M", "smaller:-1", "larger:10T", "smaller:ten"} {
		_, err := ParseQuery(in)
		if !errors.Is(err, bytesize.ErrSyntax) || !strings.Contains(err.Error(), "K, M or G") {
			t.Errorf("ParseQuery(%q): %v; want an error saying what a size is", in, err)
		}
	}
}

// A size term too large for an int64 is refused; it used to wrap around,
// so that 2^54+1 K read as 1024 bytes and found nearly every message.
func TestParseQuerySizeOverflow(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"larger:9223372036854775807K",
		"larger:18014398509481985K",
		"smaller:9007199254740993M",
		"larger:99999999999999999999",
	} {
		q, err := ParseQuery(in)
		if !errors.Is(err, bytesize.ErrRange) {
			t.Errorf("ParseQuery(%q) = %+v, %v; want a range error", in, q, err)
		}
	}
}
