package inbound

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// memBlobMax is the largest message whose bytes the checks share in
// memory; larger ones are read from the spool by every check that asks.
// Ordinary mail is far below it, and the memory held is bounded by it
// times the messages being judged at once.
const memBlobMax = 1 << 20

// memBlob gives every check of one message the same bytes, read (and
// verified against the blob's SHA-256) from the spool once, instead of one
// spool read per check.
type memBlob struct {
	open func() (io.ReadCloser, error)
	size int64

	once   sync.Once
	data   []byte
	stream bool // larger than memBlobMax after all: every Open reads the spool
	err    error
}

// newMemBlob reads the message through open when first asked. written,
// when it holds size bytes, is the message as DATA wrote it to the spool
// (blob.Written): the checks then share those bytes and the spool is not
// read at all.
func newMemBlob(open func() (io.ReadCloser, error), size int64, written []byte) *memBlob {
	b := &memBlob{open: open, size: size}
	if written != nil && int64(len(written)) == size && size <= memBlobMax {
		b.data = written
		b.once.Do(func() {}) // loaded already: Open never reads the spool
	}
	return b
}

// Open returns a fresh reader of the message.
func (b *memBlob) Open() (io.ReadCloser, error) {
	if b.size < 0 || b.size > memBlobMax {
		return b.open()
	}
	b.once.Do(b.load)
	if b.err != nil {
		return nil, b.err
	}
	if b.stream {
		return b.open()
	}
	return io.NopCloser(bytes.NewReader(b.data)), nil
}

// load reads the whole blob; the spool's reader fails on a blob that is
// shorter, longer or other than it recorded, so the bytes kept are the
// verified ones.
func (b *memBlob) load() {
	r, err := b.open()
	if err != nil {
		b.err = err
		return
	}
	defer r.Close()
	buf := bytes.NewBuffer(make([]byte, 0, b.size+512))
	n, err := io.Copy(buf, io.LimitReader(r, memBlobMax+1))
	switch {
	case err != nil:
		b.err = fmt.Errorf("reading message: %w", err)
	case n > memBlobMax:
		b.stream = true
	default:
		b.data = buf.Bytes()
	}
}
