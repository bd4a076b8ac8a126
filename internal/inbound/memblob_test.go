package inbound

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// countingOpen returns an opener of data that counts its calls; failAt,
// when non-nil, is returned by Read at the end instead of io.EOF (a
// damaged blob).
func countingOpen(data []byte, failAt error, n *int) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		*n++
		var r io.Reader = bytes.NewReader(data)
		if failAt != nil {
			r = io.MultiReader(r, errReader{failAt})
		}
		return io.NopCloser(r), nil
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestMemBlobReadsTheSpoolOnce(t *testing.T) {
	msg := []byte("Subject: x\r\n\r\nbody\r\n")
	opens := 0
	b := newMemBlob(countingOpen(msg, nil, &opens), int64(len(msg)), nil)
	for i := 0; i < 3; i++ {
		r, err := b.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("read %d: %q, %v", i, got, err)
		}
	}
	if opens != 1 {
		t.Fatalf("spool opened %d times, want 1", opens)
	}
}

func TestMemBlobDamagedFailsEveryOpen(t *testing.T) {
	damaged := errors.New("damaged blob")
	opens := 0
	b := newMemBlob(countingOpen([]byte("Subject: x\r\n\r\n"), damaged, &opens), 14, nil)
	for i := 0; i < 2; i++ {
		if _, err := b.Open(); !errors.Is(err, damaged) {
			t.Fatalf("open %d: err %v, want the damage", i, err)
		}
	}
}

func TestMemBlobLargeStreamsFromTheSpool(t *testing.T) {
	big := []byte(strings.Repeat("a", memBlobMax+10))
	for _, size := range []int64{int64(len(big)), 100} { // recorded size right, and understated
		opens := 0
		b := newMemBlob(countingOpen(big, nil, &opens), size, nil)
		for i := 0; i < 2; i++ {
			r, err := b.Open()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if len(got) != len(big) {
				t.Fatalf("size %d: read %d bytes, want %d", size, len(got), len(big))
			}
		}
		if opens < 2 {
			t.Fatalf("size %d: spool opened %d times, want one per Open", size, opens)
		}
	}
}
