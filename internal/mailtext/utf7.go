package mailtext

import (
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/transform"
)

// utf7Decoder decodes UTF-7 (RFC 2152) to UTF-8, leniently: golang.org/x/text
// has no UTF-7, and mail still carries it (older Outlook sent it). Direct
// characters pass as they are; "+" starts modified base64 of UTF-16 code
// units, ended by any other character ("-" is then absorbed), "+-" is a
// plus sign. A "+" followed by a character that cannot continue it is kept
// literally, as readers do. Bytes above 0x7F (never valid UTF-7), unpaired
// surrogates and leftover bits become U+FFFD.
type utf7Decoder struct {
	shifted bool
	fresh   bool   // just after "+": "+-" is a literal plus sign
	acc     uint32 // base64 bits not yet in a code unit
	nbits   uint
	high    rune // a high surrogate waiting for its low half, 0 if none
}

func (d *utf7Decoder) Reset() { *d = utf7Decoder{} }

// utf7MaxOut is the most one step of Transform writes: U+FFFD for a
// dangling high surrogate and a 3-byte rune, or a 4-byte rune, or the end
// of a base64 run (U+FFFD for a dangling high surrogate and one for
// leftover bits).
const utf7MaxOut = 6

func (d *utf7Decoder) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	emit := func(r rune) { nDst += utf8.EncodeRune(dst[nDst:], r) }
	for nSrc < len(src) {
		if len(dst)-nDst < utf7MaxOut {
			return nDst, nSrc, transform.ErrShortDst
		}
		c := src[nSrc]
		if d.shifted {
			if v, ok := b64Value(c); ok {
				d.fresh = false
				d.acc = d.acc<<6 | uint32(v)
				d.nbits += 6
				if d.nbits >= 16 {
					d.nbits -= 16
					d.unit(rune(d.acc>>d.nbits&0xffff), emit)
					d.acc &= 1<<d.nbits - 1
				}
				nSrc++
				continue
			}
			// The run ends here. What it leaves over is written in this
			// step and c is read again as a direct character in the
			// next, after its own check of the room in dst: together
			// they could need more than utf7MaxOut. Just after "+"
			// nothing is left over, so a literal plus fits.
			fresh := d.fresh
			d.endShift(emit)
			d.fresh = false
			if fresh {
				emit('+')
			}
			if c == '-' {
				nSrc++
			}
			continue
		}
		switch {
		case c == '+':
			d.shifted, d.fresh, d.acc, d.nbits = true, true, 0, 0
		case c >= utf8.RuneSelf:
			emit(utf8.RuneError)
		default:
			emit(rune(c))
		}
		nSrc++
	}
	if atEOF && d.shifted {
		if len(dst)-nDst < utf7MaxOut {
			return nDst, nSrc, transform.ErrShortDst
		}
		d.endShift(emit)
		if d.fresh {
			emit('+')
			d.fresh = false
		}
	}
	return nDst, nSrc, nil
}

// unit takes one UTF-16 code unit.
func (d *utf7Decoder) unit(u rune, emit func(rune)) {
	switch {
	case utf16.IsSurrogate(u) && u < 0xdc00:
		if d.high != 0 {
			emit(utf8.RuneError)
		}
		d.high = u
	case utf16.IsSurrogate(u):
		if d.high == 0 {
			emit(utf8.RuneError)
			return
		}
		emit(utf16.DecodeRune(d.high, u))
		d.high = 0
	default:
		if d.high != 0 {
			emit(utf8.RuneError)
			d.high = 0
		}
		emit(u)
	}
}

// endShift closes a base64 run: a surrogate still waiting, or more than the
// padding bits left over (RFC 2152: fewer than 6, all zero), is an error.
func (d *utf7Decoder) endShift(emit func(rune)) {
	if d.high != 0 {
		emit(utf8.RuneError)
		d.high = 0
	}
	if d.nbits >= 6 || d.acc != 0 {
		emit(utf8.RuneError)
	}
	d.shifted, d.acc, d.nbits = false, 0, 0
}
