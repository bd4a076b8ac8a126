package zipcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// ---- traditional PKWARE encryption ("ZipCrypto", APPNOTE 6.1) ----

// zipCrypto is the traditional PKWARE stream cipher. It is weak (known
// plaintext breaks it) but it is the only one Windows Explorer opens
// without extra software, which is why it is the default.
type zipCrypto struct{ k0, k1, k2 uint32 }

func newZipCrypto(password []byte) *zipCrypto {
	z := &zipCrypto{0x12345678, 0x23456789, 0x34567890}
	for _, c := range password {
		z.update(c)
	}
	return z
}

func crcByte(k uint32, c byte) uint32 { return crc32.IEEETable[byte(k)^c] ^ k>>8 }

func (z *zipCrypto) update(c byte) {
	z.k0 = crcByte(z.k0, c)
	z.k1 = (z.k1+z.k0&0xff)*134775813 + 1
	z.k2 = crcByte(z.k2, byte(z.k1>>24))
}

func (z *zipCrypto) stream() byte {
	t := uint16(z.k2) | 2
	return byte(uint32(t) * uint32(t^1) >> 8)
}

// encrypt enciphers p in place.
func (z *zipCrypto) encrypt(p []byte) {
	for i, c := range p {
		p[i] = c ^ z.stream()
		z.update(c)
	}
}

// zipCryptoWriter encrypts what is written through it.
type zipCryptoWriter struct {
	z   *zipCrypto
	w   io.Writer
	buf []byte
}

func (e *zipCryptoWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), len(e.buf))
		copy(e.buf, p[:k])
		e.z.encrypt(e.buf[:k])
		if _, err := e.w.Write(e.buf[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// zipCryptoHeader is the 12-byte encryption header (APPNOTE 6.1.3): 11
// random bytes and the high byte of the entry's CRC-32, which readers
// use to check the password. rnd supplies the random bytes.
func zipCryptoHeader(z *zipCrypto, crc uint32, rnd io.Reader) ([]byte, error) {
	h := make([]byte, 12)
	if _, err := io.ReadFull(rnd, h[:11]); err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	h[11] = byte(crc >> 24)
	z.encrypt(h)
	return h, nil
}

// ---- WinZip AES, AE-2 (AES-256) ----

const (
	aesSaltLen    = 16 // AES-256
	aesKeyLen     = 32
	aesPWVLen     = 2
	aesMACLen     = 10
	aesIterations = 1000
	aesMethod     = 99     // compression method of an AES entry
	aesExtraID    = 0x9901 // AES extra data field
	aesOverhead   = aesSaltLen + aesPWVLen + aesMACLen
)

// aesExtra is the AES extra field: AE-2 (no CRC stored), vendor "AE",
// strength 3 (AES-256), and the entry's real compression method.
func aesExtra(method uint16) []byte {
	b := make([]byte, 11)
	binary.LittleEndian.PutUint16(b[0:], aesExtraID)
	binary.LittleEndian.PutUint16(b[2:], 7)
	binary.LittleEndian.PutUint16(b[4:], 2) // AE-2
	b[6], b[7] = 'A', 'E'
	b[8] = 3
	binary.LittleEndian.PutUint16(b[9:], method)
	return b
}

// aesWriter encrypts with AES in WinZip's counter mode (a little-endian
// block counter starting at 1) and authenticates the ciphertext with
// HMAC-SHA1, whose first 10 bytes Close writes.
type aesWriter struct {
	w       io.Writer
	block   cipher.Block
	ctr     [aes.BlockSize]byte
	ks      [aes.BlockSize]byte
	used    int // bytes of ks consumed
	mac     hash.Hash
	buf     []byte
	written int64
}

// newAESWriter derives the keys from password and salt (PBKDF2-HMAC-SHA1,
// 1000 iterations), writes salt and the password verifier, and returns the
// writer for the compressed data.
func newAESWriter(w io.Writer, password, salt []byte) (*aesWriter, error) {
	dk, err := pbkdf2.Key(sha1.New, string(password), salt, aesIterations, 2*aesKeyLen+aesPWVLen)
	if err != nil {
		return nil, fmt.Errorf("derive AES key: %w", err)
	}
	block, err := aes.NewCipher(dk[:aesKeyLen])
	if err != nil {
		return nil, err
	}
	a := &aesWriter{w: w, block: block, mac: hmac.New(sha1.New, dk[aesKeyLen:2*aesKeyLen]), used: aes.BlockSize, buf: make([]byte, 32<<10)}
	if _, err := w.Write(salt); err != nil {
		return nil, err
	}
	if _, err := w.Write(dk[2*aesKeyLen:]); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *aesWriter) next() {
	for i := range a.ctr {
		a.ctr[i]++
		if a.ctr[i] != 0 {
			break
		}
	}
	a.block.Encrypt(a.ks[:], a.ctr[:])
	a.used = 0
}

func (a *aesWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), len(a.buf))
		for i := 0; i < k; i++ {
			if a.used == aes.BlockSize {
				a.next()
			}
			a.buf[i] = p[i] ^ a.ks[a.used]
			a.used++
		}
		a.mac.Write(a.buf[:k])
		if _, err := a.w.Write(a.buf[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// Close writes the authentication code.
func (a *aesWriter) Close() error {
	_, err := a.w.Write(a.mac.Sum(nil)[:aesMACLen])
	return err
}
