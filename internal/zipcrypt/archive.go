package zipcrypt

import (
	"archive/zip"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/spill"
)

// Cipher is the ZIP encryption method.
type Cipher string

// Ciphers.
const (
	// ZipCrypto is the traditional PKWARE encryption: weak, but opened by
	// Windows Explorer and every unzip tool without extra software.
	ZipCrypto Cipher = "zipcrypto"
	// AES256 is WinZip AES encryption (AE-2, AES-256): strong; opened by
	// 7-Zip, WinZip, Lhaplus, macOS Archive Utility, Windows 11 Explorer.
	AES256 Cipher = "aes256"
)

// archive writes an encrypted ZIP with one entry per attachment. Each
// entry is compressed into a scratch buffer first, so its CRC-32 and sizes
// are known before its header: the local headers then carry them and no
// data descriptor is needed (APPNOTE 4.3.9), which keeps the ZipCrypto
// check byte the CRC's, as every reader expects. Memory stays bounded
// whatever the attachments' sizes.
type archive struct {
	zw       *zip.Writer
	scratch  *spill.Buffer
	cipher   Cipher
	names    NameEncoding
	password []byte
	modTime  time.Time
	rand     io.Reader
	seen     nameSet
	level    int
}

func newArchive(w io.Writer, scratch *spill.Buffer, c Cipher, names NameEncoding, password string, modTime time.Time) *archive {
	return &archive{zw: zip.NewWriter(w), scratch: scratch, cipher: c, names: names, password: []byte(password),
		modTime: modTime, rand: rand.Reader, seen: nameSet{}, level: flate.DefaultCompression}
}

// countWriter counts bytes and computes the CRC-32 of what passes.
type countWriter struct {
	n   int64
	crc uint32
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
	return len(p), nil
}

// add compresses r and writes it as one encrypted entry named name
// (already cleaned). It returns the name used, made unique.
func (a *archive) add(name string, r io.Reader) (string, error) {
	name = a.seen.unique(name)
	if err := a.scratch.Reset(); err != nil {
		return "", err
	}
	fw, err := newFlate(a.scratch, a.level)
	if err != nil {
		return "", err
	}
	defer putFlate(fw, a.level)
	var raw countWriter
	if _, err := io.Copy(io.MultiWriter(fw, &raw), r); err != nil {
		return "", err
	}
	if err := fw.Close(); err != nil {
		return "", fmt.Errorf("compress %s: %w", name, err)
	}
	compressed := a.scratch.Size()

	fh := &zip.FileHeader{Method: zip.Deflate, Flags: 0x1, UncompressedSize64: uint64(raw.n)}
	a.setName(fh, name)
	a.setTime(fh)
	switch a.cipher {
	case AES256:
		// AE-2 stores no CRC: the HMAC authenticates the data instead.
		fh.Method = aesMethod
		fh.CreatorVersion, fh.ReaderVersion = 51, 51
		fh.CompressedSize64 = uint64(compressed) + aesOverhead
		fh.Extra = append(fh.Extra, aesExtra(zip.Deflate)...)
	default:
		fh.CRC32 = raw.crc
		fh.CreatorVersion, fh.ReaderVersion = 20, 20
		fh.CompressedSize64 = uint64(compressed) + 12
	}
	if fh.CompressedSize64 >= 1<<32-1 || fh.UncompressedSize64 >= 1<<32-1 {
		return "", fmt.Errorf("%s: attachment too large for a ZIP without ZIP64", name)
	}
	w, err := a.zw.CreateRaw(fh)
	if err != nil {
		return "", fmt.Errorf("zip entry %s: %w", name, err)
	}
	data := a.scratch.Reader()
	switch a.cipher {
	case AES256:
		salt := make([]byte, aesSaltLen)
		if _, err := io.ReadFull(a.rand, salt); err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		aw, err := newAESWriter(w, a.password, salt)
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(aw, data); err != nil {
			return "", fmt.Errorf("zip entry %s: %w", name, err)
		}
		if err := aw.Close(); err != nil {
			return "", err
		}
	default:
		z := newZipCrypto(a.password)
		h, err := zipCryptoHeader(z, raw.crc, a.rand)
		if err != nil {
			return "", err
		}
		if _, err := w.Write(h); err != nil {
			return "", err
		}
		if _, err := io.Copy(&zipCryptoWriter{z: z, w: w, buf: make([]byte, 32<<10)}, data); err != nil {
			return "", fmt.Errorf("zip entry %s: %w", name, err)
		}
	}
	return name, nil
}

func (a *archive) setName(fh *zip.FileHeader, name string) {
	switch a.names {
	case NamesUTF8:
		fh.Name = name
		fh.Flags |= 0x800
	default:
		fh.Name = encodeCP932(name)
		fh.NonUTF8 = true
		if fh.Name != name {
			fh.Extra = append(fh.Extra, unicodePathExtra(fh.Name, name)...)
		}
	}
}

// setTime sets the MS-DOS date and time (local time of modTime's
// location) and an extended timestamp field (0x5455) with the exact UTC
// modification time.
func (a *archive) setTime(fh *zip.FileHeader) {
	t := a.modTime
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, t.Location())
	}
	fh.ModifiedDate = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	fh.ModifiedTime = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	ext := make([]byte, 9)
	binary.LittleEndian.PutUint16(ext[0:], 0x5455)
	binary.LittleEndian.PutUint16(ext[2:], 5)
	ext[4] = 1 // modification time present
	binary.LittleEndian.PutUint32(ext[5:], uint32(a.modTime.Unix()))
	fh.Extra = append(fh.Extra, ext...)
}

// close writes the central directory.
func (a *archive) close() error {
	if err := a.zw.Close(); err != nil {
		return fmt.Errorf("zip directory: %w", err)
	}
	return nil
}

// defaultFlates holds compressors of flate.DefaultCompression between
// entries: each is over half a megabyte to set up.
var defaultFlates sync.Pool

func newFlate(w io.Writer, level int) (*flate.Writer, error) {
	if level == flate.DefaultCompression {
		if fw, ok := defaultFlates.Get().(*flate.Writer); ok {
			fw.Reset(w)
			return fw, nil
		}
	}
	return flate.NewWriter(w, level)
}

func putFlate(fw *flate.Writer, level int) {
	if level == flate.DefaultCompression {
		fw.Reset(io.Discard)
		defaultFlates.Put(fw)
	}
}
