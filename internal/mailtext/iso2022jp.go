package mailtext

import (
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/transform"
)

// jisTables maps JIS X 0208 (with the NEC and NEC-selected IBM extensions of
// CP932) and JIS X 0212 code points, indexed by (row-0x21)*94+(cell-0x21), to
// runes; 0 means unmapped.
type jisTables struct {
	x0208 [94 * 94]rune
	x0212 [94 * 94]rune
}

// loadJISTables builds the tables once from x/text's CP932 and EUC-JP
// decoders, so that ISO-2022-JP gets exactly the repertoire those decoders
// know (①, NEC row 13, IBM extensions in rows 89–92, JIS X 0212) without a
// copy of the mapping data. The result is immutable after construction.
var loadJISTables = sync.OnceValue(func() *jisTables {
	t := new(jisTables)
	sjis := japanese.ShiftJIS.NewDecoder()
	euc := japanese.EUCJP.NewDecoder()
	for j1 := 0x21; j1 <= 0x7e; j1++ {
		for j2 := 0x21; j2 <= 0x7e; j2++ {
			i := (j1-0x21)*94 + (j2 - 0x21)
			s1, s2 := jisToSJIS(byte(j1), byte(j2))
			t.x0208[i] = decodeOne(sjis, []byte{s1, s2})
			t.x0212[i] = decodeOne(euc, []byte{0x8f, byte(j1) | 0x80, byte(j2) | 0x80})
		}
	}
	return t
})

// jisToSJIS converts a JIS X 0208 code point to its Shift_JIS byte pair.
func jisToSJIS(j1, j2 byte) (byte, byte) {
	var s1, s2 byte
	if j1 <= 0x5e {
		s1 = (j1+1)/2 + 0x70
	} else {
		s1 = (j1+1)/2 + 0xb0
	}
	if j1&1 == 1 {
		s2 = j2 + 0x1f
		if j2 >= 0x60 {
			s2++
		}
	} else {
		s2 = j2 + 0x7e
	}
	return s1, s2
}

func decodeOne(d *encoding.Decoder, b []byte) rune {
	out, err := d.Bytes(b)
	if err != nil {
		return 0
	}
	r, n := utf8.DecodeRune(out)
	if r == utf8.RuneError || n != len(out) {
		return 0
	}
	return r
}

// iso2022JP is a lenient ISO-2022-JP decoder accepting the union of RFC 1468,
// ISO-2022-JP-1 (RFC 2237, JIS X 0212) and Microsoft's CP50220/CP50221/CP50222:
// NEC special characters such as ①, half-width katakana designated with
// ESC ( I or shifted with SO/SI, and stray 8-bit half-width katakana.
// Unknown escapes and unmapped characters become U+FFFD; it never fails.
type iso2022JP struct{}

func (iso2022JP) NewDecoder() *encoding.Decoder {
	return &encoding.Decoder{Transformer: &iso2022JPDecoder{tab: loadJISTables()}}
}

// NewEncoder exists only to satisfy encoding.Encoding; mailtext never encodes.
func (iso2022JP) NewEncoder() *encoding.Encoder { return japanese.ISO2022JP.NewEncoder() }

type jisMode uint8

const (
	modeASCII jisMode = iota
	modeKana
	mode0208
	mode0212
	modeUnknown94x94 // a 2-byte set we cannot map (e.g. GB2312 from ISO-2022-JP-2)
	modeAnnouncer    // ESC & @ (JIS X 0208-1990 announcer): no mode change
)

type iso2022JPDecoder struct {
	tab      *jisTables
	mode     jisMode
	shiftOut bool
}

func (d *iso2022JPDecoder) Reset() { d.mode, d.shiftOut = modeASCII, false }

// jisEscapes lists the designations we honour; read-only.
var jisEscapes = [...]struct {
	s string
	m jisMode
}{
	{"\x1b(B", modeASCII}, {"\x1b(J", modeASCII}, {"\x1b(H", modeASCII},
	{"\x1b(I", modeKana},
	{"\x1b$@", mode0208}, {"\x1b$B", mode0208}, {"\x1b$(B", mode0208}, {"\x1b$(@", mode0208},
	{"\x1b$(O", mode0208}, {"\x1b$(Q", mode0208}, // JIS X 0213 plane 1: 0208 is a subset
	{"\x1b$(D", mode0212},
	{"\x1b$A", modeUnknown94x94}, {"\x1b$(C", modeUnknown94x94}, {"\x1b$(P", modeUnknown94x94},
	{"\x1b&@", modeAnnouncer},
}

// escape recognises an escape sequence at the start of src. It returns the
// number of bytes consumed, the new mode, and ok=false with n=0 when more
// input is needed.
func escape(src []byte, atEOF bool) (n int, m jisMode, known, ok bool) {
	for _, q := range jisEscapes {
		k := len(q.s)
		if len(src) >= k {
			if string(src[:k]) == q.s {
				return k, q.m, true, true
			}
			continue
		}
		if string(src) == q.s[:len(src)] && !atEOF {
			return 0, 0, false, false
		}
	}
	return 1, 0, false, true
}

func (d *iso2022JPDecoder) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	var buf [utf8.UTFMax]byte
	for nSrc < len(src) {
		c := src[nSrc]
		var r rune
		size := 1
		switch {
		case c == 0x1b:
			n, m, known, ok := escape(src[nSrc:], atEOF)
			if !ok {
				return nDst, nSrc, transform.ErrShortSrc
			}
			if known {
				if m != modeAnnouncer {
					d.mode = m
				}
				nSrc += n
				continue
			}
			r = '\ufffd'
		case c == 0x0e:
			d.shiftOut = true
			nSrc++
			continue
		case c == 0x0f:
			d.shiftOut = false
			nSrc++
			continue
		case c >= 0xa1 && c <= 0xdf:
			// 8-bit JIS X 0201 katakana, accepted by CP50220-style decoders.
			r = rune(c) - 0xa1 + 0xff61
		case c >= 0x80:
			r = '\ufffd'
		case c < 0x21 || c == 0x7f:
			// Controls and space pass through in every mode, so a broken
			// line that never returned to ASCII still keeps its line breaks.
			r = rune(c)
		case d.shiftOut || d.mode == modeKana:
			if c <= 0x5f {
				r = rune(c) - 0x21 + 0xff61
			} else {
				r = '\ufffd'
			}
		case d.mode == modeASCII:
			r = rune(c)
		default: // a two-byte set
			if nSrc+1 >= len(src) {
				if !atEOF {
					return nDst, nSrc, transform.ErrShortSrc
				}
				r = '\ufffd'
				break
			}
			c2 := src[nSrc+1]
			if c2 < 0x21 || c2 > 0x7e {
				r = '\ufffd' // second byte is output on its own next round
				break
			}
			size = 2
			i := int(c-0x21)*94 + int(c2-0x21)
			switch d.mode {
			case mode0208:
				r = d.tab.x0208[i]
			case mode0212:
				r = d.tab.x0212[i]
			}
			if r == 0 {
				r = '\ufffd'
			}
		}
		n := utf8.EncodeRune(buf[:], r)
		if nDst+n > len(dst) {
			return nDst, nSrc, transform.ErrShortDst
		}
		copy(dst[nDst:], buf[:n])
		nDst += n
		nSrc += size
	}
	return nDst, nSrc, nil
}
