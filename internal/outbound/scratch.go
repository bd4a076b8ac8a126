package outbound

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// scratchMemory is how much of an intermediate copy is held in memory;
// the rest goes to a temporary file.
const scratchMemory = 1 << 20

// scratch holds an intermediate copy of a message (rewritten, zipped,
// not yet signed): the pipeline's steps pass their output on through
// scratches, and only the final copies are written to the spool, made
// durable once each. A scratch is never what a recipient's delivery
// reads, so it needs no fsync and nothing of it outlives the process:
// its temporary file is unlinked as soon as it is created.
type scratch struct {
	buf  bytes.Buffer
	f    *os.File
	size int64
}

func (s *scratch) Write(p []byte) (int, error) {
	if s.f == nil && s.buf.Len()+len(p) > scratchMemory {
		f, err := os.CreateTemp("", "mailgate-out-*")
		if err != nil {
			return 0, fmt.Errorf("outbound scratch: %w", err)
		}
		os.Remove(f.Name()) // the open descriptor keeps the data
		if _, err := f.Write(s.buf.Bytes()); err != nil {
			f.Close()
			return 0, fmt.Errorf("outbound scratch: %w", err)
		}
		s.f = f
		s.buf = bytes.Buffer{}
	}
	var n int
	var err error
	if s.f != nil {
		n, err = s.f.Write(p)
		if err != nil {
			err = fmt.Errorf("outbound scratch: %w", err)
		}
	} else {
		n, _ = s.buf.Write(p)
	}
	s.size += int64(n)
	return n, err
}

// reader reads the copy from its start; each reader is independent.
func (s *scratch) reader() io.ReadSeeker {
	if s.f != nil {
		return io.NewSectionReader(s.f, 0, s.size)
	}
	return bytes.NewReader(s.buf.Bytes())
}

// close releases the copy.
func (s *scratch) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.buf = bytes.Buffer{}
}
