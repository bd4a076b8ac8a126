package av

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/av/clamd"
)

// TestTextOnlyMessages checks which messages are given to clamd. The
// checker's clamd does not exist, so a message that is scanned fails with
// ErrUnavailable and one that is not gets the text-only clean finding.
func TestTextOnlyMessages(t *testing.T) {
	t.Parallel()
	c := New(Config{Client: &clamd.Client{Network: "unix", Address: filepath.Join(t.TempDir(), "absent.sock"),
		DialTimeout: time.Second, ScanTimeout: time.Second}})
	html := func(s string) part {
		return part{header: []string{"Content-Type: text/html; charset=utf-8"}, body: s}
	}
	jis := part{header: []string{"Content-Type: text/plain; charset=ISO-2022-JP", "Content-Transfer-Encoding: 7bit"},
		body: "\x1b$B$3$s$K$A$O\x1b(B\r\n"}
	cases := []struct {
		name    string
		raw     []byte
		scanned bool
	}{
		{"plain text", message("plain", textPart("Hello,\r\nthe minutes are below.\r\n")), false},
		{"ISO-2022-JP text", message("jis", jis), false},
		{"plain and HTML alternatives with links and images", message("alt", multipart("alternative", "a1",
			textPart("See https://example.com/offer"),
			html(`<p>See <a href="https://example.com/offer">the offer</a><img src="https://example.com/logo.png"></p>`))), false},
		{"text that only mentions begin", message("begin", textPart("We begin 2 weeks from now.\r\nbegin here\r\n")), false},

		{"uuencoded file in the text", message("uu", textPart("See the file:\r\n\r\nbegin 644 invoice.exe\r\nM35J0``,````$````__\\``+@`````````0```````````````````````````\r\n`\r\nend\r\n")), true},
		{"yEnc file in the text", message("yenc", textPart("=ybegin line=128 size=10 name=a.exe\r\nxyz\r\n=yend size=10\r\n")), true},
		{"BinHex file in the text", message("binhex", textPart("(This file must be converted with BinHex 4.0)\r\n:abc:\r\n")), true},
		{"EICAR test string in the text", message("eicar", textPart("test EICAR-STANDARD-ANTIVIRUS-TEST-FILE")), true},
		{"HTML with a script", message("script", html(`<p>Hi</p><script>alert(1)</script>`)), true},
		{"HTML with an iframe", message("iframe", html(`<iframe src="https://example.net/x"></iframe>`)), true},
		{"HTML with an embedded object", message("object", html(`<object data="x.swf"></object>`)), true},
		{"HTML with a script link split by a tab", message("jslink", html("<a href=\" java\tscript:alert(1)\">open</a>")), true},
		{"HTML with a data: link", message("datalink", html(`<a href="DATA:text/html;base64,PHNjcmlwdD4=">open</a>`)), true},
		{"an executable sent as text", message("mz", part{header: []string{"Content-Type: text/plain", "Content-Transfer-Encoding: base64"},
			body: b64([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00"))}), true},
		{"a PDF sent as HTML", message("pdf", html("%PDF-1.4\n%\xe2\xe3\n1 0 obj")), true},
		{"an attachment", message("att", multipart("mixed", "m1", textPart("attached"), attachment("a.pdf", "application/pdf", []byte("%PDF-1.4")))), true},
		{"a text attachment", message("txtatt", multipart("mixed", "m2", textPart("attached"), attachment("notes.txt", "text/plain", []byte("notes")))), true},
		{"a calendar part", message("cal", multipart("mixed", "m3", textPart("invite"),
			part{header: []string{"Content-Type: text/calendar; method=REQUEST"}, body: "BEGIN:VCALENDAR\r\nEND:VCALENDAR"})), true},
		{"an unterminated multipart", []byte("From: a@example.net\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\nhello\r\n"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs, err := c.Check(context.Background(), policyMessage(tc.raw), nil)
			if tc.scanned {
				if !errors.Is(err, clamd.ErrUnavailable) {
					t.Fatalf("not given to clamd: findings %s, err %v", describe(fs), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("given to clamd: %v", err)
			}
			f := only(t, fs, SymbolClean)
			if f.Action != policy.Header || len(f.Headers) != 1 || f.Headers[0].Value != "clean (text only)" {
				t.Fatalf("text-only finding %+v", f)
			}
			// The setting gives clamd every message.
			_, err = c.Check(context.Background(), policyMessage(tc.raw), policy.MapSettings{KeyScanTextMessages: "true"})
			if !errors.Is(err, clamd.ErrUnavailable) {
				t.Fatalf("%s=true: not given to clamd (err %v)", KeyScanTextMessages, err)
			}
		})
	}
	if !strings.HasPrefix(KeyScanTextMessages, "av.") {
		t.Fatal("setting key outside the av namespace")
	}
}
