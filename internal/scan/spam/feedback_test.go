package spam

import (
	"strings"
	"testing"
)

func TestExtractForwarded(t *testing.T) {
	inner := "From: promo@spam.example\r\nSubject: =?UTF-8?B?5pyq5om/6Ku+5bqD5ZGK?=\r\n\r\nbuy now\r\n"
	fwd := "From: alice@example.test\r\nTo: spam@example.test\r\nSubject: Fwd: junk\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nthis is spam\r\n" +
		"--x\r\nContent-Type: message/rfc822\r\n\r\n" + inner + "--x\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"RnJvbTogYkBleGFtcGxlLm5ldA0KU3ViamVjdDogc2Vjb25kDQoNCmhpDQo=\r\n--x--\r\n"
	got := ExtractForwarded(strings.NewReader(fwd), 10, 1<<20)
	if len(got) != 2 || !strings.HasPrefix(string(got[0]), "From: promo@spam.example") || !strings.Contains(string(got[1]), "Subject: second") {
		t.Fatalf("extracted %q", got)
	}
	if got := ExtractForwarded(strings.NewReader("Subject: plain\r\n\r\nno attachment\r\n"), 10, 1<<20); len(got) != 0 {
		t.Fatalf("plain mail yielded %d messages", len(got))
	}
	if got := ExtractForwarded(strings.NewReader(fwd), 1, 1<<20); len(got) != 1 {
		t.Fatalf("limit ignored: %d", len(got))
	}
	if got := ExtractForwarded(strings.NewReader("\x00\x01garbage"), 10, 1<<20); len(got) != 0 {
		t.Fatal("garbage yielded messages")
	}
}
