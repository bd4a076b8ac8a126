package mailtext

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// Attachments and attached messages are taken in order, the message is
// kept byte for byte (epilogue included), and a bound that could hide an
// attachment is reported.
func TestTakeAttachments(t *testing.T) {
	msg := strings.ReplaceAll(`From: a@example.net
Subject: x
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

body
--b
Content-Type: application/pdf; name=a.pdf
Content-Disposition: attachment; filename=a.pdf
Content-Transfer-Encoding: base64

JVBERi0=
--b
Content-Type: message/rfc822

Subject: inner
Content-Type: multipart/mixed; boundary=c

--c
Content-Disposition: attachment; filename=inner.txt

not taken apart
--c--
--b--
epilogue
`, "\n", "\r\n")
	var kept bytes.Buffer
	var got []string
	found, err := TakeAttachments(context.Background(), strings.NewReader(msg), &kept, DefaultLimits(), func(n *Node, i int, body io.Reader) error {
		b, _ := io.ReadAll(body)
		got = append(got, strings.Join([]string{string(rune('0' + i)), n.Filename, n.MediaType, strings.SplitN(string(b), "\r\n", 2)[0]}, "|"))
		return nil
	})
	if err != nil || found.Problem != "" {
		t.Fatalf("%+v %v", found, err)
	}
	want := []string{"1|a.pdf|application/pdf|%PDF-", "2||message/rfc822|Subject: inner"}
	if strings.Join(got, ";") != strings.Join(want, ";") || len(found.Paths) != 2 {
		t.Fatalf("got %q (paths %v), want %q", got, found.Paths, want)
	}
	if kept.String() != msg {
		t.Fatalf("kept %q", kept.String())
	}

	deep := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + strings.Repeat("Content-Type: message/rfc822\r\n\r\n", 3) + "x\r\n--b--\r\n"
	lim := DefaultLimits()
	lim.MaxParts = 1
	found, err = TakeAttachments(context.Background(), strings.NewReader(deep+deep), io.Discard, lim, func(*Node, int, io.Reader) error { return nil })
	if err != nil || found.Problem == "" {
		t.Fatalf("a part bound gave no problem: %+v %v", found, err)
	}
}
