package mailtext

import (
	"golang.org/x/text/transform"
)

// b64Decoder is a lenient streaming base64 decoder (RFC 2045 6.8): it skips
// whitespace silently and any other non-alphabet byte with a count, treats
// '=' as the end of a quantum and carries on after it (concatenated base64
// blobs are common), and decodes an unpadded tail.
type b64Decoder struct {
	acc      uint32
	n        int   // sextets in acc
	invalid  int64 // non-alphabet, non-space bytes seen
	dangling bool  // a single sextet was left over: at least 6 bits lost
}

// b64Values maps a byte to its base64 sextet, or to 0xFF outside the
// alphabet.
var b64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	return t
}()

func b64Value(c byte) (byte, bool) {
	v := b64Values[c]
	return v, v != 0xFF
}

func (d *b64Decoder) Reset() { *d = b64Decoder{} }

// bad reports whether the input was not clean base64.
func (d *b64Decoder) bad() bool { return d.invalid > 0 || d.dangling }

// flush emits the bytes held in a partial quantum.
func (d *b64Decoder) flush(dst []byte) int {
	var n int
	switch d.n {
	case 1:
		d.dangling = true
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
		// Whole quanta of four alphabet bytes, the bulk of any base64
		// body, decode four at a time; everything else (line breaks,
		// padding, stray bytes, a quantum split between calls) takes
		// the byte-wise path below, which this shortcut never changes
		// the result of.
		for d.n == 0 && len(src)-nSrc >= 4 && len(dst)-nDst >= 3 {
			a, b, c, e := b64Values[src[nSrc]], b64Values[src[nSrc+1]], b64Values[src[nSrc+2]], b64Values[src[nSrc+3]]
			if (a|b|c|e)&0xC0 != 0 { // one of them is outside the alphabet
				break
			}
			q := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(e)
			dst[nDst], dst[nDst+1], dst[nDst+2] = byte(q>>16), byte(q>>8), byte(q)
			nSrc += 4
			nDst += 3
		}
		if nSrc == len(src) {
			break
		}
		c := src[nSrc]
		v, ok := b64Value(c)
		if !ok {
			switch c {
			case '=':
				if len(dst)-nDst < 2 {
					return nDst, nSrc, transform.ErrShortDst
				}
				nDst += d.flush(dst[nDst:])
			case ' ', '\t', '\r', '\n', '\f', '\v':
			default:
				d.invalid++
			}
			continue
		}
		d.acc = d.acc<<6 | uint32(v)
		d.n++
		if d.n == 4 {
			if len(dst)-nDst < 3 {
				// Undo: the sextet is re-read on the next call.
				d.acc >>= 6
				d.n--
				return nDst, nSrc, transform.ErrShortDst
			}
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

// qpDecoder is a lenient streaming quoted-printable decoder (RFC 2045 6.7):
// malformed escapes are kept literally and counted rather than failing.
type qpDecoder struct {
	invalid int64
}

func (d *qpDecoder) Reset()    { d.invalid = 0 }
func (d *qpDecoder) bad() bool { return d.invalid > 0 }

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f': // lower case is invalid but common
		return c - 'a' + 10, true
	}
	return 0, false
}

// qpPadMax bounds the transport padding accepted between '=' and a soft line
// break, so the decoder never needs an unbounded lookahead.
const qpPadMax = 64

func (d *qpDecoder) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
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
		// Soft line break, possibly after transport padding.
		i := 0
		for i < len(rest) && i < qpPadMax && (rest[i] == ' ' || rest[i] == '\t') {
			i++
		}
		switch {
		case i < len(rest) && rest[i] == '\n':
			nSrc += 1 + i + 1
			continue
		case i+1 < len(rest) && rest[i] == '\r' && rest[i+1] == '\n':
			nSrc += 1 + i + 2
			continue
		case !atEOF && (i == len(rest) || (i+1 == len(rest) && rest[i] == '\r')) && i < qpPadMax:
			return nDst, nSrc, transform.ErrShortSrc
		case i > 0 && i == len(rest) && atEOF:
			// "=" plus padding at the very end: a soft break with no line end.
			nSrc += 1 + i
			continue
		}
		if len(rest) < 2 && !atEOF {
			return nDst, nSrc, transform.ErrShortSrc
		}
		if len(rest) >= 2 {
			h, ok1 := unhex(rest[0])
			l, ok2 := unhex(rest[1])
			if ok1 && ok2 {
				if nDst >= len(dst) {
					return nDst, nSrc, transform.ErrShortDst
				}
				dst[nDst] = h<<4 | l
				nDst++
				nSrc += 3
				continue
			}
		}
		// A malformed escape: keep the '=' literally, as most readers do.
		if nDst >= len(dst) {
			return nDst, nSrc, transform.ErrShortDst
		}
		d.invalid++
		dst[nDst] = '='
		nDst++
		nSrc++
	}
	return nDst, nSrc, nil
}
