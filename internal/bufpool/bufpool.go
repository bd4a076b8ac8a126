// Package bufpool lends the 32 KiB buffers io.Copy would otherwise
// allocate for every copy (when neither side is an io.WriterTo or
// io.ReaderFrom), so copying each message's bytes on the mail paths
// costs no allocation.
package bufpool

import (
	"io"
	"sync"
)

// Size is the length of the buffers, io.Copy's own.
const Size = 32 << 10

var bufs = sync.Pool{New: func() any {
	b := make([]byte, Size)
	return &b
}}

// Get lends a buffer of Size bytes; Put gives it back.
func Get() *[]byte { return bufs.Get().(*[]byte) }

// Put returns a buffer from Get; it must not be used afterwards.
func Put(b *[]byte) {
	if b != nil && len(*b) == Size {
		bufs.Put(b)
	}
}

// Copy is io.Copy with a lent buffer.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	b := Get()
	defer Put(b)
	return io.CopyBuffer(dst, src, *b)
}
