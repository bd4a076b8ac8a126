package av

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
)

// ---- ZIP builders ----

type zipEntry struct {
	name   string
	data   []byte
	stored bool
}

// zipOf returns an archive of the entries, deflated unless stored is set.
func zipOf(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		m := zip.Deflate
		if e.stored {
			m = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: m, Modified: time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// nestedZip wraps data in depth archives: depth 1 is a plain ZIP of data.
func nestedZip(t testing.TB, name string, data []byte, depth int) []byte {
	t.Helper()
	for i := 0; i < depth; i++ {
		data = zipOf(t, zipEntry{name: name, data: data})
		name = fmt.Sprintf("level%d.zip", i+1)
	}
	return data
}

// zeroDeflate returns a raw deflate stream of n zero bytes (n a multiple of
// 1 MiB) without compressing n bytes: one compressed MiB of zeros, flushed
// to a byte boundary, decodes to zeros again when repeated, because its
// back-references only reach zeros.
func zeroDeflate(t testing.TB, n int64) []byte {
	t.Helper()
	const chunk = 1 << 20
	if n%chunk != 0 {
		t.Fatalf("zeroDeflate: %d is not a multiple of %d", n, chunk)
	}
	var head, body bytes.Buffer
	fw, err := flate.NewWriter(&head, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, chunk)
	fw.Write(zeros)
	fw.Flush()
	first := append([]byte(nil), head.Bytes()...)
	head.Reset()
	fw.Write(zeros)
	fw.Flush()
	repeat := append([]byte(nil), head.Bytes()...)
	head.Reset()
	fw.Close()
	final := head.Bytes() // an empty final block
	body.Write(first)
	for i := int64(1); i < n/chunk; i++ {
		body.Write(repeat)
	}
	body.Write(final)
	return body.Bytes()
}

// zerosCRC is the CRC-32 of n zero bytes.
func zerosCRC(n int64) uint32 {
	zeros := make([]byte, 1<<20)
	var crc uint32
	for left := n; left > 0; {
		k := min(left, int64(len(zeros)))
		crc = crc32.Update(crc, crc32.IEEETable, zeros[:k])
		left -= k
	}
	return crc
}

// zipBomb returns an archive with one entry of n zeros, deflated, wrapped
// in wrap further archives (the classic nested bomb).
func zipBomb(t testing.TB, n int64, wrap int) []byte {
	t.Helper()
	comp := zeroDeflate(t, n)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: "zeros.bin", Method: zip.Deflate, CRC32: zerosCRC(n),
		CompressedSize64: uint64(len(comp)), UncompressedSize64: uint64(n),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	for i := 0; i < wrap; i++ {
		data = zipOf(t, zipEntry{name: fmt.Sprintf("bomb%d.zip", i), data: data})
	}
	return data
}

// zipCrypto encrypts with the traditional PKWARE stream cipher (APPNOTE
// 6.1): three keys updated with CRC-32 steps, a 12-byte header whose last
// byte is the CRC's high byte for password verification.
type zipCrypto struct{ k0, k1, k2 uint32 }

func newZipCrypto(password string) *zipCrypto {
	z := &zipCrypto{0x12345678, 0x23456789, 0x34567890}
	for i := 0; i < len(password); i++ {
		z.update(password[i])
	}
	return z
}

func crcStep(crc uint32, b byte) uint32 {
	return crc32.IEEETable[(crc^uint32(b))&0xff] ^ (crc >> 8)
}

func (z *zipCrypto) update(b byte) {
	z.k0 = crcStep(z.k0, b)
	z.k1 = (z.k1+(z.k0&0xff))*134775813 + 1
	z.k2 = crcStep(z.k2, byte(z.k1>>24))
}

func (z *zipCrypto) encrypt(dst, src []byte) {
	for i, p := range src {
		t := uint16(z.k2 | 2)
		dst[i] = p ^ byte((uint32(t)*uint32(t^1))>>8)
		z.update(p)
	}
}

// encryptedZip returns an archive with one ZipCrypto-encrypted, deflated
// entry, as "zip -e" and Windows Explorer write them.
func encryptedZip(t testing.TB, name, password string, data []byte) []byte {
	t.Helper()
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.DefaultCompression)
	fw.Write(data)
	fw.Close()
	crc := crc32.ChecksumIEEE(data)
	plain := make([]byte, 12, 12+comp.Len())
	copy(plain, "mailgate-av")  // fixed "random" bytes keep the test reproducible
	plain[11] = byte(crc >> 24) // password check byte (no data descriptor)
	plain = append(plain, comp.Bytes()...)
	enc := make([]byte, len(plain))
	newZipCrypto(password).encrypt(enc, plain)

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: name, Method: zip.Deflate, Flags: zipFlagEncrypted, CRC32: crc,
		CompressedSize64: uint64(len(enc)), UncompressedSize64: uint64(len(data)),
		Modified: time.Date(2025, 4, 1, 9, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(enc)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ---- messages ----

// part is one body part of a test message: its header lines and body.
type part struct {
	header []string
	body   string
}

func textPart(s string) part {
	return part{header: []string{"Content-Type: text/plain; charset=us-ascii"}, body: s}
}

func b64(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

func attachment(name, ctype string, data []byte) part {
	return part{header: []string{
		"Content-Type: " + ctype + "; name=\"" + name + "\"",
		"Content-Disposition: attachment; filename=\"" + name + "\"",
		"Content-Transfer-Encoding: base64",
	}, body: b64(data)}
}

// multipart renders a multipart body with the given subtype.
func multipart(subtype, boundary string, parts ...part) part {
	var b strings.Builder
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n")
		for _, h := range p.header {
			b.WriteString(h + "\r\n")
		}
		b.WriteString("\r\n" + p.body + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return part{header: []string{"Content-Type: multipart/" + subtype + "; boundary=\"" + boundary + "\""}, body: b.String()}
}

// rfc822 wraps a message as an attached message/rfc822 part.
func rfc822(msg []byte) part {
	return part{header: []string{"Content-Type: message/rfc822", "Content-Disposition: inline"}, body: string(msg)}
}

// message renders a whole message with top as its body.
func message(subject string, top part) []byte {
	var b strings.Builder
	b.WriteString("From: Sender <sender@example.net>\r\nTo: user@example.com\r\n")
	b.WriteString("Subject: " + subject + "\r\nDate: Tue, 01 Apr 2025 09:00:00 +0900\r\n")
	b.WriteString("Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.net>\r\nMIME-Version: 1.0\r\n")
	for _, h := range top.header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + top.body)
	if !strings.HasSuffix(top.body, "\r\n") {
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

func policyMessage(raw []byte) *policy.Message {
	return &policy.Message{
		Env: &policy.Envelope{
			MailFrom: "sender@example.net",
			Rcpts:    []policy.Rcpt{{Addr: "user@example.com", Domain: "example.com"}},
		},
		Size: int64(len(raw)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
	}
}

// leafInfo is what the walker reports of a leaf, for comparisons.
type leafInfo struct {
	Path, ContentType string
	Size              int64
}

func walkLeaves(t testing.TB, raw []byte, lim walkLimits) ([]leafInfo, walkResult) {
	t.Helper()
	var out []leafInfo
	res, err := walkParts(context.Background(), bytes.NewReader(raw), lim, func(p leafPart, body io.Reader) error {
		n, err := io.Copy(io.Discard, body)
		out = append(out, leafInfo{p.Path, p.ContentType, n})
		return err
	})
	if err != nil {
		t.Fatalf("walkParts: %v", err)
	}
	return out, res
}
