package blob

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
)

// Sum is the SHA-256 of a blob's content.
type Sum [sha256.Size]byte

// Verified returns the content r (closed by c) of the blob key as a reader
// that checks it against the size and SHA-256 recorded with the blob: at
// the end, or as soon as more bytes come than recorded, it returns an
// error wrapping ErrDamaged instead of io.EOF. Callers that stream a blob
// onwards (delivery) must treat any read error as "not sent".
func Verified(r io.Reader, c io.Closer, key string, size int64, sum Sum) io.ReadCloser {
	return &verifier{r: r, c: c, key: key, size: size, want: sum, h: sha256.New()}
}

type verifier struct {
	r    io.Reader
	c    io.Closer
	key  string
	size int64
	want Sum
	h    hash.Hash
	n    int64
	err  error
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if over := v.n + int64(n) - v.size; over > 0 {
		// Never hand out bytes beyond the recorded size.
		n -= int(over)
		v.h.Write(p[:n])
		v.n += int64(n)
		v.err = Damaged(v.key, "longer than the %d bytes recorded", v.size)
		return n, v.err
	}
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		var got Sum
		v.h.Sum(got[:0])
		switch {
		case v.n != v.size:
			v.err = Damaged(v.key, "truncated: %d of %d bytes", v.n, v.size)
		case got != v.want:
			v.err = Damaged(v.key, "content does not match its SHA-256")
		default:
			v.err = io.EOF
		}
		return n, v.err
	}
	if err != nil {
		return n, fmt.Errorf("read blob %s: %w", v.key, err)
	}
	return n, nil
}

func (v *verifier) Close() error { return v.c.Close() }

// Damaged is an error wrapping ErrDamaged about key.
func Damaged(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrDamaged, key, fmt.Sprintf(format, args...))
}
