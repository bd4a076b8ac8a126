package av

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// partSpool holds one decoded MIME part so that it can be read more than
// once and at random offsets (archive/zip needs an io.ReaderAt): in memory
// up to a threshold, beyond it in an unlinked temporary file. The part is
// the attachment as sent, not anything extracted from it. A partSpool is
// used by one goroutine; Close releases it.
type partSpool struct {
	mem  []byte
	f    *os.File
	size int64
}

// fillSpool reads r to the end. memLimit bounds the bytes kept in memory;
// dir is where a larger part goes ("" for the system default).
func fillSpool(r io.Reader, memLimit int64, dir string) (*partSpool, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, memLimit+1))
	if err != nil {
		return nil, err
	}
	if n <= memLimit {
		return &partSpool{mem: buf.Bytes(), size: n}, nil
	}
	f, err := os.CreateTemp(dir, "mailgate-av-*")
	if err != nil {
		return nil, fmt.Errorf("spooling part: %w", err)
	}
	// Unlinked at once where the system allows it, so nothing is left
	// behind if the process dies; Close removes it otherwise.
	_ = os.Remove(f.Name())
	s := &partSpool{f: f}
	m, err := io.Copy(f, io.MultiReader(&buf, r))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("spooling part: %w", err)
	}
	s.size = m
	return s, nil
}

// ReaderAt returns the spooled bytes for random access.
func (s *partSpool) ReaderAt() io.ReaderAt {
	if s.f != nil {
		return s.f
	}
	return bytes.NewReader(s.mem)
}

// Reader returns a fresh sequential reader of the whole part.
func (s *partSpool) Reader() io.Reader {
	return io.NewSectionReader(s.ReaderAt(), 0, s.size)
}

// Close releases the temporary file, if any.
func (s *partSpool) Close() error {
	if s.f == nil {
		return nil
	}
	name := s.f.Name()
	err := s.f.Close()
	if rerr := os.Remove(name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	s.f = nil
	return err
}
