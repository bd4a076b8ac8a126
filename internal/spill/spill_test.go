package spill

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

func content(t *testing.T, b *Buffer) string {
	t.Helper()
	got, err := io.ReadAll(b.Reader())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != b.Size() {
		t.Fatalf("read %d bytes, Size %d", len(got), b.Size())
	}
	return string(got)
}

// Up to the limit the content stays in memory; one byte more moves all of
// it to a file, which is never visible in the directory; reads, random or
// sequential, see every byte either way.
func TestMemoryThenFile(t *testing.T) {
	dir := t.TempDir()
	b := New(dir, 10)
	defer b.Close()
	io.WriteString(b, "0123")
	io.WriteString(b, "456789")
	if b.inFile() {
		t.Fatal("10 bytes of a 10-byte limit went to a file")
	}
	if got := content(t, b); got != "0123456789" {
		t.Fatalf("in memory: %q", got)
	}
	io.WriteString(b, "abc")
	if !b.inFile() {
		t.Fatal("13 bytes of a 10-byte limit stayed in memory")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the temporary file is visible: %v", entries)
	}
	if got := content(t, b); got != "0123456789abc" {
		t.Fatalf("in the file: %q", got)
	}
	p := make([]byte, 4)
	if n, err := b.ReaderAt().ReadAt(p, 9); n != 4 || err != nil || string(p) != "9abc" {
		t.Fatalf("ReadAt 9: %q, %d, %v", p[:n], n, err)
	}
	if n, err := b.ReaderAt().ReadAt(p, 11); n != 2 || err != io.EOF {
		t.Fatalf("ReadAt past the end: %d, %v", n, err)
	}
}

// Two readers do not share a position, in memory or in the file.
func TestIndependentReaders(t *testing.T) {
	for _, limit := range []int64{1 << 20, 4} {
		b := New(t.TempDir(), limit)
		io.WriteString(b, "hello world")
		r1, r2 := b.Reader(), b.Reader()
		p := make([]byte, 5)
		io.ReadFull(r1, p)
		rest, _ := io.ReadAll(r2)
		if string(p) != "hello" || string(rest) != "hello world" {
			t.Fatalf("limit %d: %q, %q", limit, p, rest)
		}
		b.Close()
	}
}

// Reset empties the buffer; what is written next is all that is read,
// whether the content was in memory or in a file.
func TestReset(t *testing.T) {
	for _, limit := range []int64{1 << 20, 8} {
		b := New(t.TempDir(), limit)
		io.WriteString(b, strings.Repeat("x", 20))
		if err := b.Reset(); err != nil {
			t.Fatal(err)
		}
		if b.Size() != 0 {
			t.Fatalf("limit %d: Size %d after Reset", limit, b.Size())
		}
		io.WriteString(b, "new")
		if got := content(t, b); got != "new" {
			t.Fatalf("limit %d: after Reset: %q", limit, got)
		}
		b.Close()
	}
}

// A large copy goes through intact, written in pieces as io.Copy does.
func TestLargeCopy(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	b := New(t.TempDir(), 64<<10)
	defer b.Close()
	if n, err := io.Copy(b, bytes.NewReader(src)); err != nil || n != int64(len(src)) {
		t.Fatalf("copy: %d, %v", n, err)
	}
	got, err := io.ReadAll(b.Reader())
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("read back %d bytes (want %d), %v", len(got), len(src), err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.inFile() || b.Size() != 0 {
		t.Fatal("Close left a file or content")
	}
}

// A directory that cannot take the file is reported, not ignored.
func TestFileError(t *testing.T) {
	b := New(t.TempDir()+"/missing", 2)
	if _, err := io.WriteString(b, "too long"); err == nil {
		t.Fatal("write past the limit into a missing directory succeeded")
	}
}
