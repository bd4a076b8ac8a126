package mailtext

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchMessage is a 1 MB mail of the usual shape: a multipart/alternative
// body in Japanese and English, a base64 attachment and a forwarded message.
func benchMessage() []byte {
	var b strings.Builder
	b.WriteString("From: =?UTF-8?B?5bGx55Sw?= <yamada@example.jp>\r\nTo: b@example.jp\r\nSubject: =?ISO-2022-JP?B?GyRCMnFEOxsoQg==?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=mix\r\n\r\n")
	b.WriteString("--mix\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	for i := 0; i < 400; i++ {
		b.WriteString("=E4=BC=9A=E8=AD=B0=E3=81=AE=E8=B3=87=E6=96=99 meeting notes line\r\n")
	}
	b.WriteString("--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>")
	for i := 0; i < 400; i++ {
		b.WriteString("<p>会議の資料 <a href=\"https://example.jp/x\">link</a></p>\r\n")
	}
	b.WriteString("</body></html>\r\n--alt--\r\n")
	b.WriteString("--mix\r\nContent-Type: application/pdf; name=\"=?UTF-8?B?6LOH5paZLnBkZg==?=\"\r\nContent-Disposition: attachment; filename*=UTF-8''%E8%B3%87%E6%96%99.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("%PDF-1.4 binary\x00\x01\x02"), 700<<10/18))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	b.WriteString("--mix\r\nContent-Type: message/rfc822\r\n\r\nSubject: fwd\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n\r\n\x1b$B$3$s$K$A$O\x1b(B\r\n--mix--\r\n")
	return []byte(b.String())
}

// BenchmarkParse parses the fixtures (one op = every file) and a 1 MB
// message with an attachment.
func BenchmarkParse(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	var msgs [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, raw)
	}
	b.Run("fixtures", func(b *testing.B) {
		for b.Loop() {
			for _, m := range msgs {
				if _, err := Parse(context.Background(), bytes.NewReader(m), Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	big := benchMessage()
	b.Run("mixed-1MB", func(b *testing.B) {
		b.SetBytes(int64(len(big)))
		for b.Loop() {
			if _, err := Parse(context.Background(), bytes.NewReader(big), Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
