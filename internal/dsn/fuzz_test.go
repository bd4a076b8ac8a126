package dsn

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// FuzzBuild feeds hostile strings into every outside-controlled field and
// checks that the report is always well-formed, parses back, and never
// gains a header field, a recipient block or a MIME part.
func FuzzBuild(f *testing.F) {
	f.Add("550 5.1.1 no such user", "bob@example.com", "rfc822;bob@example.com", "mx.example.com", "alice@example.jp", "ENV1", sampleOriginal, false)
	f.Add("550\r\nBcc: x@example.com\r\n\r\nbody", "a@b\r\nCc: c@d", "rfc822;x\ny", "mx\r\nX: y", "s@x\r\nSubject: z", "id\r\nX: 1", "Subject: a\nb", true)
	f.Add(strings.Repeat("x", 3000), strings.Repeat("ü", 600), "utf-8;用户@例子.广告", "[192.0.2.1]", "送信者@例え.jp", "", "\r\r\n\n", true)
	f.Add("\x00\xff\xfe\u2028\u0085", "\\x{41}+=@x", ";", "", "<>", "\x00", "--=_", false)
	f.Fuzz(func(t *testing.T, diag, addr, orcpt, remote, to, envid, orig string, full bool) {
		r := sampleReport(Failure)
		r.Recipients = []Recipient{
			{FinalRecipient: addr, OriginalRecipient: orcpt, RemoteMTA: remote, DiagnosticCode: diag, Status: "5.1.1"},
			{FinalRecipient: "fixed@example.com", Status: "5.2.2", DiagnosticCode: "552 full"},
		}
		r.To, r.EnvelopeID, r.Original, r.ReturnFull = to, envid, strings.NewReader(orig), full
		r.MaxOriginal = 4096
		msg, err := Build(r)
		if cleanAddress(to) == "" || cleanAddress(addr) == "" {
			if err == nil {
				t.Fatal("Build accepted an empty address")
			}
			return
		}
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		checkWire(t, msg)
		checkTopHeader(t, msg)
		if got := partTypes(t, msg); len(got) != 3 {
			t.Fatalf("parts = %q", got)
		}
		blocks := statusBlocks(t, msg)
		if len(blocks) != 3 {
			t.Fatalf("status blocks = %q", blocks)
		}
		for _, b := range blocks[1:] {
			for _, k := range b {
				if !slices.Contains(fullRcptBlock, k) {
					t.Fatalf("injected field %q", k)
				}
			}
		}
		p, err := Parse(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if p.Kind != Failure || len(p.Recipients) != 2 {
			t.Fatalf("parsed kind %v with %d recipients", p.Kind, len(p.Recipients))
		}
		fixed := p.Recipients[1]
		if fixed.FinalRecipient != "fixed@example.com" || fixed.Status != "5.2.2" || fixed.DiagnosticCode != "552 full" {
			t.Fatalf("second recipient disturbed: %+v", fixed)
		}
		got := p.Recipients[0]
		if got.Status != "5.1.1" || got.Action != "failed" {
			t.Fatalf("first recipient %+v", got)
		}
		// Reasonable addresses survive exactly, utf-8 or not.
		if want := cleanAddress(addr); len(want) < 100 && got.FinalRecipient != want {
			t.Fatalf("final recipient %q, want %q", got.FinalRecipient, want)
		}
		if want := cleanText(diag); isASCII(want) && len(want) <= 200 && got.DiagnosticCode != want {
			t.Fatalf("diagnostic %q, want %q", got.DiagnosticCode, want)
		}
	})
}

// FuzzParse checks that Parse never panics and that what it accepts is
// consistent.
func FuzzParse(f *testing.F) {
	for _, k := range []Kind{Failure, Delay} {
		r := sampleReport(k)
		r.ReturnFull = k == Delay
		f.Add(mustBuild(f, r))
	}
	r := sampleReport(Delay)
	r.Language = "ja"
	f.Add(mustBuild(f, r))
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n" +
		"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n\r\n\r\nFinal-Recipient: utf-8; a\\x{FFFFFF}\\x{41}\r\nAction: Delayed\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/report; report-type=global-delivery-status; boundary=b\n\n--b\n" +
		"Content-Type: message/global-delivery-status\nContent-Transfer-Encoding: base64\n\nUmVwb3J0aW5nLU1UQTogZG5zOyB4DQoNCkFjdGlvbjogZmFpbGVkDQo=\n--b--\n"))
	f.Add([]byte("Subject: not a report\r\n\r\nhello\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(p.Recipients) == 0 {
			t.Fatal("Parse succeeded without recipients")
		}
		if p.Kind < Failure || p.Kind > Relayed {
			t.Fatalf("Parse returned kind %d", p.Kind)
		}
		if len(p.Original) > maxParseOriginal || len(p.Text) > maxParseText {
			t.Fatalf("unbounded part: original %d, text %d", len(p.Original), len(p.Text))
		}
	})
}
