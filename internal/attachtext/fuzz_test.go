package attachtext_test

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/attachtext"
)

// FuzzRead: whatever an attachment holds, under whatever declared type,
// reading it gives one result per attachment, valid UTF-8 text within the
// kept length, and no panic; the bounds (PDF timeout included) hold.
func FuzzRead(f *testing.F) {
	f.Add(byte(0), []byte("plain text\r\n"))
	f.Add(byte(1), []byte("<html><body><p>見積書</p></body></html>"))
	f.Add(byte(2), wordDoc(f, "社外秘", " report"))
	f.Add(byte(3), archive(f, member{name: "inner.zip", data: archive(f, member{name: "a.txt", data: []byte("deep")})}))
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte("BT /F1 12 Tf (pdf text) Tj ET"))
	zw.Close()
	f.Add(byte(4), []byte(fmt.Sprintf("%%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"+
		"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"+
		"3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n"+
		"4 0 obj << /Length %d /Filter /FlateDecode >> stream\n%s\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%%%EOF\n", z.Len(), z.Bytes())))
	types := []string{"text/plain", "text/html", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
		"application/zip", "application/pdf", "application/octet-stream"}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		if len(data) > 256<<10 {
			return
		}
		lim := attachtext.DefaultLimits()
		lim.MaxTextBytes = 4 << 10
		as := read(t, lim, file{name: "f.bin", ctype: types[int(kind)%len(types)], data: data})
		if len(as) != 1 {
			t.Fatalf("%d results for one attachment", len(as))
		}
		if !utf8.ValidString(as[0].Text) {
			t.Fatalf("text not UTF-8: %q", as[0].Text)
		}
		if int64(len(as[0].Text)) > lim.MaxTextBytes {
			t.Fatalf("%d bytes of text kept, limit %d", len(as[0].Text), lim.MaxTextBytes)
		}
	})
}
