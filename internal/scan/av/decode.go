package av

import "golang.org/x/text/transform"

// Transfer decoders (RFC 2045 6.7, 6.8), lenient in the same way as
// mailtext's so that both produce the same bytes (and the same sizes, which
// Check compares): what a mail reader would still decode must be scanned,
// since malware hides in exactly the encodings a strict decoder refuses.

// b64Decoder skips whitespace and any other non-alphabet byte, treats '='
// as the end of a quantum and carries on after it (concatenated base64
// blobs are common), and decodes an unpadded tail.
type b64Decoder struct {
	acc uint32
	n   int // sextets held in acc
}

func b64Value(c byte) (byte, bool) {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A', true
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26, true
	case c >= '0' && c <= '9':
		return c - '0' + 52, true
	case c == '+':
		return 62, true
	case c == '/':
		return 63, true
	}
	return 0, false
}

func (d *b64Decoder) Reset() { *d = b64Decoder{} }

// flush emits the bytes of a partial quantum; a lone sextet carries no
// whole byte.
func (d *b64Decoder) flush(dst []byte) int {
	n := 0
	switch d.n {
	case 2:
		dst[0] = byte(d.acc >> 4)
		n = 1
	case 3:
		dst[0] = byte(d.acc >> 10)
		dst[1] = byte(d.acc >> 2)
		n = 2
	}
	d.acc, d.n = 0, 0
	return n
}

func (d *b64Decoder) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	for ; nSrc < len(src); nSrc++ {
		c := src[nSrc]
		v, ok := b64Value(c)
		if !ok {
			if c == '=' {
				if len(dst)-nDst < 2 {
					return nDst, nSrc, transform.ErrShortDst
				}
				nDst += d.flush(dst[nDst:])
			}
			continue
		}
		if d.n == 3 && len(dst)-nDst < 3 {
			return nDst, nSrc, transform.ErrShortDst
		}
		d.acc = d.acc<<6 | uint32(v)
		d.n++
		if d.n == 4 {
			dst[nDst] = byte(d.acc >> 16)
			dst[nDst+1] = byte(d.acc >> 8)
			dst[nDst+2] = byte(d.acc)
			nDst += 3
			d.acc, d.n = 0, 0
		}
	}
	if atEOF && d.n > 0 {
		if len(dst)-nDst < 2 {
			return nDst, nSrc, transform.ErrShortDst
		}
		nDst += d.flush(dst[nDst:])
	}
	return nDst, nSrc, nil
}

// qpDecoder keeps a malformed escape's '=' literally, accepts lower-case
// hex, and takes "=" plus up to qpPadMax blanks before a line end as a soft
// line break, so it never needs an unbounded look-ahead.
type qpDecoder struct{}

const qpPadMax = 64

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func (qpDecoder) Reset() {}

func (qpDecoder) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	for nSrc < len(src) {
		c := src[nSrc]
		if c != '=' {
			if nDst >= len(dst) {
				return nDst, nSrc, transform.ErrShortDst
			}
			dst[nDst] = c
			nDst++
			nSrc++
			continue
		}
		rest := src[nSrc+1:]
		i := 0
		for i < len(rest) && i < qpPadMax && (rest[i] == ' ' || rest[i] == '\t') {
			i++
		}
		switch {
		case i < len(rest) && rest[i] == '\n':
			nSrc += i + 2
			continue
		case i+1 < len(rest) && rest[i] == '\r' && rest[i+1] == '\n':
			nSrc += i + 3
			continue
		case !atEOF && (i == len(rest) || (i+1 == len(rest) && rest[i] == '\r')) && i < qpPadMax:
			return nDst, nSrc, transform.ErrShortSrc
		case i > 0 && i == len(rest) && atEOF:
			nSrc += 1 + i // "=" and blanks at the very end: a soft break
			continue
		}
		if len(rest) < 2 && !atEOF {
			return nDst, nSrc, transform.ErrShortSrc
		}
		if len(rest) >= 2 {
			if h, ok := unhex(rest[0]); ok {
				if l, ok := unhex(rest[1]); ok {
					if nDst >= len(dst) {
						return nDst, nSrc, transform.ErrShortDst
					}
					dst[nDst] = h<<4 | l
					nDst++
					nSrc += 3
					continue
				}
			}
		}
		if nDst >= len(dst) {
			return nDst, nSrc, transform.ErrShortDst
		}
		dst[nDst] = '='
		nDst++
		nSrc++
	}
	return nDst, nSrc, nil
}
