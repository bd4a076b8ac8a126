package bufpool

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// onlyReader and onlyWriter hide ReadFrom and WriteTo, so Copy has to use
// its buffer.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }

func TestCopyBorrowsItsBuffer(t *testing.T) {
	src := strings.Repeat("0123456789", 10000)
	var dst bytes.Buffer
	if n, err := Copy(onlyWriter{&dst}, onlyReader{strings.NewReader(src)}); err != nil || n != int64(len(src)) || dst.String() != src {
		t.Fatalf("copied %d bytes, err %v; equal %v", n, err, dst.String() == src)
	}
	Copy(onlyWriter{io.Discard}, onlyReader{strings.NewReader(src)}) // warm the pool
	allocs := testing.AllocsPerRun(100, func() {
		Copy(onlyWriter{io.Discard}, onlyReader{strings.NewReader(src)})
	})
	// The string reader and the two wrappers may allocate; the 32 KiB
	// buffer must not.
	if allocs > 3 {
		t.Fatalf("%.1f allocations per copy", allocs)
	}
}
