// Package spill holds an intermediate copy of data that is read back,
// possibly more than once and at random offsets: in memory up to a limit,
// beyond it in a temporary file. Small copies, the common case for mail,
// then cost no file system calls at all; large ones cost no memory.
//
// The temporary file is unlinked as soon as it is created where the
// system allows it, so nothing is left behind if the process dies; Close
// removes it otherwise. A Buffer is used by one goroutine at a time.
package spill

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Buffer is written to its end and read from its start. Its zero value
// is not usable: make one with New.
type Buffer struct {
	dir   string
	limit int64
	mem   []byte
	f     *os.File
	size  int64
}

// New returns an empty Buffer that keeps up to memLimit bytes in memory
// and moves to a temporary file in dir ("" for the system's) beyond that.
func New(dir string, memLimit int64) *Buffer {
	return &Buffer{dir: dir, limit: memLimit}
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	if b.f == nil && b.size+int64(len(p)) > b.limit {
		if err := b.toFile(); err != nil {
			return 0, err
		}
	}
	if b.f == nil {
		b.mem = append(b.mem, p...)
		b.size += int64(len(p))
		return len(p), nil
	}
	n, err := b.f.WriteAt(p, b.size)
	b.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("spill: %w", err)
	}
	return n, nil
}

// toFile moves the content to a new temporary file.
func (b *Buffer) toFile() error {
	f, err := os.CreateTemp(b.dir, "mailgate-spill-*")
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	_ = os.Remove(f.Name())
	if _, err := f.Write(b.mem); err != nil {
		f.Close()
		return fmt.Errorf("spill: %w", err)
	}
	b.f, b.mem = f, nil
	return nil
}

// Size is the number of bytes written since New or the last Reset.
func (b *Buffer) Size() int64 { return b.size }

// inFile reports whether the content went to a temporary file (tests).
func (b *Buffer) inFile() bool { return b.f != nil }

// ReaderAt reads the content at any offset below Size. It stays valid
// until the next Write, Reset or Close.
func (b *Buffer) ReaderAt() io.ReaderAt {
	if b.f != nil {
		return b.f
	}
	return memReader(b.mem)
}

// Reader returns a new reader of the whole content, independent of any
// other; the same validity as ReaderAt.
func (b *Buffer) Reader() *io.SectionReader {
	return io.NewSectionReader(b.ReaderAt(), 0, b.size)
}

// Reset empties the Buffer for reuse. A temporary file is kept, emptied,
// for what comes next.
func (b *Buffer) Reset() error {
	b.size = 0
	b.mem = b.mem[:0]
	if b.f != nil {
		if err := b.f.Truncate(0); err != nil {
			return fmt.Errorf("spill: %w", err)
		}
	}
	return nil
}

// Close releases the memory and the temporary file, if any.
func (b *Buffer) Close() error {
	b.mem, b.size = nil, 0
	if b.f == nil {
		return nil
	}
	name := b.f.Name()
	err := b.f.Close()
	if rerr := os.Remove(name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	b.f = nil
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	return nil
}

// memReader is io.ReaderAt over a byte slice, without bytes.Reader's
// allocation per call of ReaderAt.
type memReader []byte

func (m memReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("spill: negative offset")
	}
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
