package clamd_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"hash/crc32"
	"strings"
	"testing"
	"time"
)

// zipOf returns a zip archive holding one deflated file.
func zipOf(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// nestedZip wraps data in depth levels of zip archives.
func nestedZip(t testing.TB, name string, data []byte, depth int) []byte {
	t.Helper()
	for i := 0; i < depth; i++ {
		data = zipOf(t, name, data)
		name = "level.zip"
	}
	return data
}

// zipCryptoOf returns a zip archive holding one stored file encrypted with
// traditional PKWARE encryption ("ZipCrypto", APPNOTE.TXT section 6.1),
// which is what `zip -P` writes and what ClamAV's AlertEncrypted detects.
func zipCryptoOf(t testing.TB, name string, data []byte, password string) []byte {
	t.Helper()
	crc := crc32.ChecksumIEEE(data)
	k := newZipCryptoKeys(password)

	// 12-byte encryption header: random, except that its last byte is the
	// high byte of the CRC, which readers use to check the password
	// (APPNOTE 6.1.6; no data descriptor is written, so the CRC is known).
	header := make([]byte, 12)
	if _, err := rand.Read(header[:11]); err != nil {
		t.Fatal(err)
	}
	header[11] = byte(crc >> 24)
	ciphertext := append(k.encrypt(header), k.encrypt(data)...)

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name:               name,
		Method:             zip.Store,
		Flags:              0x1, // encrypted
		Modified:           time.Now(),
		CRC32:              crc,
		CompressedSize64:   uint64(len(ciphertext)),
		UncompressedSize64: uint64(len(data)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ciphertext); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type zipCryptoKeys [3]uint32

func newZipCryptoKeys(password string) *zipCryptoKeys {
	k := &zipCryptoKeys{0x12345678, 0x23456789, 0x34567890}
	for i := 0; i < len(password); i++ {
		k.update(password[i])
	}
	return k
}

// crc32Byte is APPNOTE's crc32(crc, b): one table step, without the
// pre- and post-inversion that crc32.Update applies.
func crc32Byte(crc uint32, b byte) uint32 {
	return crc32.IEEETable[byte(crc)^b] ^ crc>>8
}

func (k *zipCryptoKeys) update(b byte) {
	k[0] = crc32Byte(k[0], b)
	k[1] = (k[1]+k[0]&0xff)*134775813 + 1
	k[2] = crc32Byte(k[2], byte(k[1]>>24))
}

func (k *zipCryptoKeys) encrypt(plain []byte) []byte {
	out := make([]byte, len(plain))
	for i, p := range plain {
		tmp := k[2] | 2
		out[i] = p ^ byte((tmp*(tmp^1))>>8)
		k.update(p)
	}
	return out
}

// mimeWithAttachment returns an RFC 5322 message whose second MIME part
// (RFC 2045/2046) carries data base64-encoded as an attachment.
func mimeWithAttachment(filename string, data []byte) []byte {
	var b strings.Builder
	const boundary = "b0undary-test"
	crlf := func(s string) { b.WriteString(s + "\r\n") }
	crlf("From: sender@example.org")
	crlf("To: rcpt@example.com")
	crlf("Subject: test attachment")
	crlf("Date: Mon, 01 Jan 2024 00:00:00 +0000")
	crlf("Message-ID: <test@example.org>")
	crlf("MIME-Version: 1.0")
	crlf(`Content-Type: multipart/mixed; boundary="` + boundary + `"`)
	crlf("")
	crlf("--" + boundary)
	crlf("Content-Type: text/plain; charset=us-ascii")
	crlf("")
	crlf("See the attached file.")
	crlf("--" + boundary)
	crlf(`Content-Type: application/octet-stream; name="` + filename + `"`)
	crlf("Content-Transfer-Encoding: base64")
	crlf(`Content-Disposition: attachment; filename="` + filename + `"`)
	crlf("")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		crlf(enc[:76])
		enc = enc[76:]
	}
	crlf(enc)
	crlf("--" + boundary + "--")
	return []byte(b.String())
}
