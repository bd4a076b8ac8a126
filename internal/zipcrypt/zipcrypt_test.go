package zipcrypt

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// att is an attachment of a test message.
type att struct {
	name, ctype string
	data        []byte
}

// message builds a multipart/mixed message with a Japanese text body and
// the attachments, names encoded as RFC 2231 (and RFC 2047 in name=).
func message(atts ...att) []byte {
	var b bytes.Buffer
	b.WriteString("From: 山田 <yamada@example.test>\r\nTo: client@customer.test\r\nSubject: =?UTF-8?B?" +
		base64.StdEncoding.EncodeToString([]byte("見積書の送付")) + "?=\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n")
	body, _ := japanese.ISO2022JP.NewEncoder().String("お世話になっております。\r\n見積書を送ります。\r\n")
	b.WriteString(body)
	for _, a := range atts {
		b.WriteString("--b\r\n")
		b.WriteString("Content-Type: " + mime.FormatMediaType(a.ctype, map[string]string{"name": mime.BEncoding.Encode("UTF-8", a.name)}) + "\r\n")
		b.WriteString("Content-Disposition: " + mime.FormatMediaType("attachment", map[string]string{"filename": a.name}) + "\r\n")
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
		enc := base64.StdEncoding.EncodeToString(a.data)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--b--\r\n")
	return b.Bytes()
}

func rewriteMsg(t *testing.T, in []byte, o Options) ([]byte, Result) {
	t.Helper()
	if o.TempDir == "" {
		o.TempDir = t.TempDir()
	}
	var out bytes.Buffer
	res, err := Rewrite(context.Background(), &out, bytes.NewReader(in), o)
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return out.Bytes(), res
}

// zipOf finds the ZIP attachment of a rewritten message, checks that it
// is the only attachment left, and writes it to a file.
func zipOf(t *testing.T, out []byte, want string) string {
	t.Helper()
	var zipData []byte
	v := &partsVisitor{each: func(n *mailtext.Node, body []byte) {
		if n.IsAttachment() {
			if n.MediaType != "application/zip" || n.Filename != want {
				t.Errorf("attachment left in clear: %s %q", n.MediaType, n.Filename)
				return
			}
			zipData = body
		}
	}}
	if err := mailtext.Walk(context.Background(), bytes.NewReader(out), mailtext.DefaultLimits(), v); err != nil {
		t.Fatal(err)
	}
	if zipData == nil {
		t.Fatalf("no ZIP named %q in:\n%.2000s", want, out)
	}
	p := filepath.Join(t.TempDir(), "out.zip")
	if err := os.WriteFile(p, zipData, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type partsVisitor struct {
	each func(n *mailtext.Node, body []byte)
}

func (v *partsVisitor) Header(n *mailtext.Node) (mailtext.Action, error) {
	return mailtext.Descend, nil
}
func (v *partsVisitor) Body(n *mailtext.Node, b *mailtext.Body) error {
	data, err := io.ReadAll(b.Decoded())
	if err != nil {
		return err
	}
	v.each(n, data)
	return nil
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			peers.Missing(t, "%s not installed (Debian: unzip, p7zip-full, python3)", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// extracted reads every file under dir as name → contents.
func extracted(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			got[rel] = b
		}
		return nil
	})
	return got
}

func sameFiles(t *testing.T, tool string, got map[string][]byte, want []att) {
	t.Helper()
	if len(got) != len(want) {
		var names []string
		for n := range got {
			names = append(names, n)
		}
		t.Fatalf("%s: %d files %q, want %d", tool, len(got), names, len(want))
	}
	for _, a := range want {
		if !bytes.Equal(got[a.name], a.data) {
			t.Errorf("%s: %q: got %d bytes, want %d", tool, a.name, len(got[a.name]), len(a.data))
		}
	}
}

var japaneseAtts = []att{
	{"見積書.pdf", "application/pdf", []byte("%PDF-1.4 見積 " + strings.Repeat("x", 5000))},
	{"顧客リスト①.csv", "text/csv", []byte("名前,電話\r\n山田,03-0000-0000\r\n")},
	{"ｶﾀｶﾅ report.txt", "text/plain", bytes.Repeat([]byte{0, 1, 2, 250}, 3000)},
}

func TestZipCryptoOpensWithRealTools(t *testing.T) {
	need(t, "unzip", "7z", "/usr/bin/python3")
	in := message(japaneseAtts...)
	out, res := rewriteMsg(t, in, Options{Password: "s3cret-Pass", Lang: "ja"})
	if !res.Zipped || res.Password != "s3cret-Pass" || res.ZipName != "見積書.zip" {
		t.Fatalf("result %+v", res)
	}
	m, err := mailtext.Parse(context.Background(), bytes.NewReader(out), mailtext.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "見積書の送付" || !strings.Contains(m.Text, "見積書を送ります") || !strings.Contains(m.Text, "パスワード付きZIPファイル「見積書.zip」") {
		t.Errorf("subject %q, text %q", m.Subject, m.Text)
	}
	zp := zipOf(t, out, "見積書.zip")

	// Info-ZIP unzip: reads the Unicode Path field.
	dir := t.TempDir()
	if o, err := run(t, "unzip", "-P", "s3cret-Pass", "-d", dir, zp); err != nil {
		t.Fatalf("unzip: %v\n%s", err, o)
	}
	sameFiles(t, "unzip", extracted(t, dir), japaneseAtts)
	if o, err := run(t, "unzip", "-P", "wrong-pass", "-d", t.TempDir(), zp); err == nil {
		t.Errorf("unzip accepted a wrong password:\n%s", o)
	}

	// 7-Zip.
	dir = t.TempDir()
	if o, err := run(t, "7z", "x", "-pS3cret", "-o"+dir, zp); err == nil {
		t.Errorf("7z accepted a wrong password:\n%s", o)
	}
	dir = t.TempDir()
	if o, err := run(t, "7z", "x", "-ps3cret-Pass", "-o"+dir, zp); err != nil {
		t.Fatalf("7z: %v\n%s", err, o)
	}
	sameFiles(t, "7z", extracted(t, dir), japaneseAtts)
	if o, _ := run(t, "7z", "l", "-slt", "-ps3cret-Pass", zp); !strings.Contains(o, "Method = ZipCrypto Deflate") {
		t.Errorf("7z does not see ZipCrypto:\n%s", o)
	}

	// Python's zipfile decrypts ZipCrypto; names without the UTF-8 flag
	// are CP437 to it, so the raw bytes must be the CP932 of the name.
	script := `
import sys, zipfile, hashlib
z = zipfile.ZipFile(sys.argv[1])
z.setpassword(sys.argv[2].encode())
for i in z.infolist():
    name = i.filename
    if not i.flag_bits & 0x800:
        name = name.encode("cp437").decode("cp932")
    print(name + "\t" + hashlib.sha256(z.read(i)).hexdigest())
`
	o, err := run(t, "/usr/bin/python3", "-c", script, zp, "s3cret-Pass")
	if err != nil {
		t.Fatalf("python: %v\n%s", err, o)
	}
	var want []string
	for _, a := range japaneseAtts {
		h := sha256.Sum256(a.data)
		want = append(want, a.name+"\t"+hex.EncodeToString(h[:]))
	}
	if got := strings.Split(strings.TrimSpace(o), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("python:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The stored names are CP932 without the UTF-8 flag, as Japanese
	// Windows Explorer reads them.
	zr, err := zip.OpenReader(zp)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for i, f := range zr.File {
		if f.Flags&0x800 != 0 || f.Flags&0x1 == 0 || f.Flags&0x8 != 0 {
			t.Errorf("%d: flags %#x: want encrypted, no UTF-8 flag, no data descriptor", i, f.Flags)
		}
		dec, err := japanese.ShiftJIS.NewDecoder().String(f.Name)
		if err != nil || dec != japaneseAtts[i].name {
			t.Errorf("%d: CP932 name %q decodes as %q (%v)", i, f.Name, dec, err)
		}
		if f.CreatorVersion>>8 != 0 {
			t.Errorf("%d: made by host %d, want MS-DOS (0) so Windows reads the OEM code page", i, f.CreatorVersion>>8)
		}
		if f.Modified.Year() < 2000 {
			t.Errorf("%d: modified %v", i, f.Modified)
		}
	}
}

func TestAES256OpensWith7z(t *testing.T) {
	need(t, "7z")
	in := message(japaneseAtts...)
	out, res := rewriteMsg(t, in, Options{Cipher: AES256, Lang: "en", PasswordTo: PasswordToRecipients})
	if len(res.Password) != DefaultPasswordLength {
		t.Fatalf("password %q", res.Password)
	}
	m, _ := mailtext.Parse(context.Background(), bytes.NewReader(out), mailtext.DefaultLimits())
	if !strings.Contains(m.Text, "password-protected ZIP file") || !strings.Contains(m.Text, "sent to you in a separate message") {
		t.Errorf("notice missing: %q", m.Text)
	}
	zp := zipOf(t, out, res.ZipName)
	o, _ := run(t, "7z", "l", "-slt", "-p"+res.Password, zp)
	if strings.Count(o, "Method = AES-256 Deflate") != len(japaneseAtts) {
		t.Errorf("7z does not see AES-256:\n%s", o)
	}
	if o, err := run(t, "7z", "t", "-pnot-it-at-all", zp); err == nil {
		t.Errorf("7z accepted a wrong password:\n%s", o)
	}
	dir := t.TempDir()
	if o, err := run(t, "7z", "x", "-p"+res.Password, "-o"+dir, zp); err != nil {
		t.Fatalf("7z: %v\n%s", err, o)
	}
	sameFiles(t, "7z", extracted(t, dir), japaneseAtts)
}

func TestUTF8Names(t *testing.T) {
	need(t, "unzip")
	out, res := rewriteMsg(t, message(japaneseAtts...), Options{Names: NamesUTF8, Password: "abcdefgh"})
	zp := zipOf(t, out, res.ZipName)
	zr, err := zip.OpenReader(zp)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for i, f := range zr.File {
		if f.Flags&0x800 == 0 || f.Name != japaneseAtts[i].name {
			t.Errorf("%d: flags %#x name %q", i, f.Flags, f.Name)
		}
	}
	dir := t.TempDir()
	if o, err := run(t, "unzip", "-P", "abcdefgh", "-d", dir, zp); err != nil {
		t.Fatalf("unzip: %v\n%s", err, o)
	}
	sameFiles(t, "unzip", extracted(t, dir), japaneseAtts)
}

func TestNoAttachmentCopiesMessage(t *testing.T) {
	in := message()
	out, res := rewriteMsg(t, in, Options{})
	if res.Zipped || !bytes.Equal(out, in) {
		t.Fatalf("zipped=%v, changed=%v", res.Zipped, !bytes.Equal(out, in))
	}
}

func TestHostileNames(t *testing.T) {
	need(t, "unzip")
	atts := []att{
		{"../../etc/passwd", "text/plain", []byte("a")},
		{`C:\Windows\evil.exe`, "application/octet-stream", []byte("b")},
		{"invoice\u202Efdp.exe", "application/octet-stream", []byte("c")},
		{"dup.txt", "text/plain", []byte("d")},
		{"DUP.txt", "text/plain", []byte("e")},
		{"a<b>:c?.txt", "text/plain", []byte("f")},
		{"😀.txt", "text/plain", []byte("g")},
	}
	out, res := rewriteMsg(t, message(atts...), Options{Password: "abcdefgh"})
	want := []string{"passwd", "evil.exe", "invoicefdp.exe", "dup.txt", "DUP (2).txt", "a_b__c_.txt", "😀.txt"}
	if strings.Join(res.Files, "|") != strings.Join(want, "|") {
		t.Errorf("files %q, want %q", res.Files, want)
	}
	zp := zipOf(t, out, res.ZipName)
	dir := t.TempDir()
	if o, err := run(t, "unzip", "-P", "abcdefgh", "-d", dir, zp); err != nil {
		t.Fatalf("unzip: %v\n%s", err, o)
	}
	got := extracted(t, dir)
	if len(got) != len(atts) {
		t.Errorf("extracted %d files", len(got))
	}
	for n := range got {
		if strings.Contains(n, "/") {
			t.Errorf("entry outside the folder: %q", n)
		}
	}
	zr, _ := zip.OpenReader(zp)
	defer zr.Close()
	// An emoji has no CP932 code: the CP932 name says "_" and the Unicode
	// Path field the exact name.
	if n := zr.File[6].Name; n != "_.txt" {
		t.Errorf("CP932 name of the emoji file: %q", n)
	}
}

func TestThousandAttachments(t *testing.T) {
	need(t, "unzip")
	var atts []att
	for i := 0; i < 1000; i++ {
		atts = append(atts, att{fmt.Sprintf("file-%04d.txt", i), "text/plain", []byte(fmt.Sprintf("content %d", i))})
	}
	out, res := rewriteMsg(t, message(atts...), Options{Password: "abcdefgh"})
	if len(res.Files) != 1000 {
		t.Fatalf("%d files", len(res.Files))
	}
	zp := zipOf(t, out, res.ZipName)
	dir := t.TempDir()
	if o, err := run(t, "unzip", "-q", "-P", "abcdefgh", "-d", dir, zp); err != nil {
		t.Fatalf("unzip: %v\n%.500s", err, o)
	}
	sameFiles(t, "unzip", extracted(t, dir), atts)
}

// streamMessage is a message with one attachment of size bytes whose
// base64 body is generated as it is read, so the test holds none of it.
func streamMessage(size int64) io.Reader {
	head := "From: a@example.test\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nbig file\r\n--b\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Disposition: attachment; filename=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	pr, pw := io.Pipe()
	go func() {
		enc := base64.NewEncoder(base64.StdEncoding, &lineBreaker{w: pw})
		io.Copy(enc, io.LimitReader(pattern{}, size))
		enc.Close()
		pw.Write([]byte("\r\n--b--\r\n"))
		pw.Close()
	}()
	return io.MultiReader(strings.NewReader(head), pr)
}

// pattern is an endless, poorly compressible byte stream.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	var x uint32 = 2463534242
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
	return len(p), nil
}

type lineBreaker struct {
	w   io.Writer
	col int
}

func (l *lineBreaker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if l.col == 76 {
			if _, err := l.w.Write([]byte("\r\n")); err != nil {
				return 0, err
			}
			l.col = 0
		}
		k := min(len(p), 76-l.col)
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
		l.col += k
		p = p[k:]
	}
	return n, nil
}

func TestFiftyMegabyteAttachmentBoundedMemory(t *testing.T) {
	need(t, "unzip")
	const size = 50 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err := os.Create(filepath.Join(t.TempDir(), "out.eml"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	res, err := Rewrite(context.Background(), out, streamMessage(size), Options{Password: "abcdefgh", TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// Everything streams: the total allocated while rewriting stays far
	// below the attachment's size (a copy held anywhere would exceed it).
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/2 {
		t.Errorf("allocated %d MB for a %d MB attachment", alloc>>20, size>>20)
	}
	if !res.Zipped || res.Files[0] != "big.bin" {
		t.Fatalf("%+v", res)
	}
	msg, _ := os.ReadFile(out.Name())
	zp := zipOf(t, msg, res.ZipName)
	cmd := exec.Command("unzip", "-p", "-P", "abcdefgh", zp)
	pipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, pipe)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("unzip: %v", err)
	}
	w := sha256.New()
	io.Copy(w, io.LimitReader(pattern{}, size))
	if n != size || !bytes.Equal(h.Sum(nil), w.Sum(nil)) {
		t.Errorf("extracted %d bytes, digest differs: %v", n, !bytes.Equal(h.Sum(nil), w.Sum(nil)))
	}
}

// A ZIP bomb attached to an outbound message is put into the encrypted
// ZIP as it is: it is never unpacked, so it costs nothing.
func TestZipBombIsNotUnpacked(t *testing.T) {
	need(t, "unzip")
	var bomb bytes.Buffer
	zw := zip.NewWriter(&bomb)
	for i := 0; i < 4; i++ {
		w, _ := zw.Create(fmt.Sprintf("zeros-%d", i))
		io.Copy(w, io.LimitReader(zeros{}, 64<<20))
	}
	zw.Close()
	atts := []att{{"bomb.zip", "application/zip", bomb.Bytes()}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, res := rewriteMsg(t, message(atts...), Options{Password: "abcdefgh"})
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("allocated %d MB", alloc>>20)
	}
	zp := zipOf(t, out, "bomb.zip")
	dir := t.TempDir()
	if o, err := run(t, "unzip", "-P", "abcdefgh", "-d", dir, zp); err != nil {
		t.Fatalf("unzip: %v\n%s", err, o)
	}
	sameFiles(t, "unzip", extracted(t, dir), atts)
	if res.ZipName != "bomb.zip" {
		t.Errorf("zip name %q", res.ZipName)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A message too deep, with too many parts or too large to read whole is
// refused: it might hide an attachment.
func TestUnreadableFailsClosed(t *testing.T) {
	deep := "Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
	for i := 1; i <= 5; i++ {
		deep += fmt.Sprintf("--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i-1, i)
	}
	deep += "--b5\r\nContent-Type: application/pdf; name=x.pdf\r\n\r\nsecret\r\n--b5--\r\n"
	cases := map[string]struct {
		msg []byte
		lim mailtext.Limits
	}{
		"depth": {[]byte(deep), mailtext.Limits{MaxDepth: 3}},
		"parts": {message(japaneseAtts...), mailtext.Limits{MaxParts: 3}},
		"size":  {message(japaneseAtts...), mailtext.Limits{MaxDecodedBytes: 1000}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Rewrite(context.Background(), &out, bytes.NewReader(c.msg), Options{Limits: c.lim, TempDir: t.TempDir()})
			if !errors.Is(err, ErrUnreadable) {
				t.Fatalf("err = %v, want ErrUnreadable", err)
			}
		})
	}
}

// Broken MIME: an unterminated multipart, an attachment as the whole
// message, an attached message.
func TestAwkwardStructures(t *testing.T) {
	cases := map[string]struct {
		in    string
		files []string
	}{
		"unterminated": {"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: application/octet-stream; name=a.bin\r\n\r\nAAA\r\n", []string{"a.bin"}},
		"single part": {"Subject: s\r\nMIME-Version: 1.0\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=q.pdf\r\n\r\n%PDF\r\n", []string{"q.pdf"}},
		"attached message": {"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfwd\r\n" +
			"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Type: application/pdf; name=in.pdf\r\n\r\nX\r\n--c--\r\n--b--\r\n",
			[]string{"message-1.eml"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			out, res := rewriteMsg(t, []byte(c.in), Options{Password: "abcdefgh", Lang: "en"})
			if strings.Join(res.Files, "|") != strings.Join(c.files, "|") {
				t.Errorf("files %q, want %q", res.Files, c.files)
			}
			m, err := mailtext.Parse(context.Background(), bytes.NewReader(out), mailtext.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			var atts []string
			for _, p := range m.Parts {
				if p.IsAttachment {
					atts = append(atts, p.Filename)
				}
			}
			sort.Strings(atts)
			if len(atts) != 1 || !strings.HasSuffix(atts[0], ".zip") {
				t.Errorf("attachments after: %q\n%s", atts, out)
			}
			if !strings.Contains(m.Text, "password-protected ZIP") {
				t.Errorf("no notice: %q", m.Text)
			}
		})
	}
}

func TestPasswordGeneration(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		p, err := NewPassword(16, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 16 || strings.ContainsAny(p, "0O1lI") || seen[p] {
			t.Fatalf("password %q", p)
		}
		seen[p] = true
	}
	if p, err := NewPassword(10, "0123456789"); err != nil || strings.Trim(p, "0123456789") != "" {
		t.Errorf("digits: %q %v", p, err)
	}
	for _, bad := range []struct {
		n     int
		chars string
	}{{7, ""}, {65, ""}, {12, "abc"}, {12, "abcdefghij "}, {12, "あいうえおかきくけこ"}} {
		if _, err := NewPassword(bad.n, bad.chars); err == nil {
			t.Errorf("NewPassword(%d, %q) accepted", bad.n, bad.chars)
		}
	}
}

type mapSettings map[string]string

func (m mapSettings) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }

func TestConfigFrom(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	sealed, err := SealPassword(key, 3, "yamada@example.test", "my-fixed-pw")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ConfigFrom(mapSettings{
		KeyCipher: "AES256", KeyNames: "utf8", KeyPasswordLength: "20", KeyPasswordTo: "recipients",
		KeyPasswordDelay: "5m", KeyLang: "en", KeyExceptions: "partner.test, @group.test, boss@client.test",
		KeyFixedPassword: sealed,
	}, 3, "yamada@example.test", key)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cipher != AES256 || c.Names != NamesUTF8 || c.PasswordLength != 20 || c.PasswordTo != PasswordToRecipients ||
		c.PasswordDelay != 5*time.Minute || c.Lang != "en" || c.Password != "my-fixed-pw" {
		t.Errorf("config %+v", c)
	}
	for rcpt, want := range map[string]bool{
		"a@partner.test": true, "a@sub.partner.test": true, "a@notpartner.test": false, "x@group.test": true,
		"BOSS@client.test": true, "other@client.test": false,
	} {
		if c.Exempt(rcpt) != want {
			t.Errorf("Exempt(%s) = %v", rcpt, !want)
		}
	}
	// A sealed password moved to another user does not open.
	if _, err := ConfigFrom(mapSettings{KeyFixedPassword: sealed}, 3, "other@example.test", key); err == nil {
		t.Error("another user's sealed password opened")
	}
	for k, v := range map[string]string{
		KeyCipher: "des", KeyNames: "sjis", KeyPasswordLength: "4", KeyPasswordTo: "boss",
		KeyPasswordDelay: "soon", KeyLang: "fr", KeyPasswordChars: "abc", KeyFixedPassword: "plain",
	} {
		if _, err := ConfigFrom(mapSettings{k: v}, 3, "yamada@example.test", key); err == nil {
			t.Errorf("%s=%q accepted", k, v)
		}
	}
}

func TestPasswordMail(t *testing.T) {
	sent := time.Date(2027, 4, 1, 10, 30, 0, 0, time.FixedZone("JST", 9*3600))
	p := PasswordMail{Lang: "ja", From: "山田 <yamada@example.test>", To: []string{"yamada@example.test"}, ToSender: true,
		Subject: "見積書の送付\r\nBcc: evil@x.test", Recipients: []string{"client@customer.test"}, Sent: sent,
		ZipName: "見積書.zip", Files: []string{"見積書.pdf"}, Password: "Xy7pQ2rs"}
	b, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	m, err := mailtext.Parse(context.Background(), bytes.NewReader(b), mailtext.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.HeaderValues("Bcc")) != 0 {
		t.Fatal("header injected through the subject")
	}
	if !strings.HasPrefix(m.Subject, "[パスワード通知] 見積書の送付") {
		t.Errorf("subject %q", m.Subject)
	}
	for _, want := range []string{"パスワード: Xy7pQ2rs", "見積書.pdf", "client@customer.test", "2027-04-01 10:30 JST", "メール以外の方法"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	if v := m.HeaderValues(NoticeHeader); len(v) != 1 || v[0] != "zip-password" {
		t.Errorf("%s: %q", NoticeHeader, v)
	}
	p.Lang, p.ToSender = "en", false
	b, _ = p.Build()
	m, _ = mailtext.Parse(context.Background(), bytes.NewReader(b), mailtext.DefaultLimits())
	if !strings.Contains(m.Text, "Password: Xy7pQ2rs") || strings.Contains(m.Text, "another way") {
		t.Errorf("en text: %s", m.Text)
	}
}
