package spam

import (
	"slices"
	"strings"
	"testing"
)

func TestShape(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Sun, 06 May 2001 17:08:21 -0500", "W2, d2 W2 d4 d2:d2:d2 -d4"},
		{"<200208212035.QAA14776@", "<d8.x8@"},
		{"<00000e256af3$000032f9$00000b75@", "<h8$h8$h8@"},
		{"----=_NextPart_000_0000_01C24A9B.12345678", "----=_x8_d2_d4_h8.d8"},
		{"abc  \t def", "a2 a2"},
		{"日本語のメール", "u"},
		{"a", "a"},
	} {
		if got := shape(c.in, 64); got != c.want {
			t.Errorf("shape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := shape(strings.Repeat("a-", 100), 10); len(got) > 10 {
		t.Errorf("shape not bounded: %q", got)
	}
}

func TestTokenizeHeaderShapes(t *testing.T) {
	raw := "Received: from mail.example.net (mail.example.net [192.0.2.1]) by mx.example.org with ESMTP; Tue, 3 Sep 2002 15:02:38 -0500\r\n" +
		"Received: from [10.0.0.2] (unknown [198.51.100.7]) by mail.example.net with SMTP; Tue, 3 Sep 2002 15:02:30 -0500\r\n" +
		"Received: from bulk (host.other.example [203.0.113.9]) by mail.example.net; Tue, 3 Sep 2002 15:02:20 -0500\r\n" +
		"Message-ID: <0000682a174f$0000534d$00005445@210.104.41.3>\r\n" +
		"Date: Tue, 03 Sep 2002 09:04:31 -0830\r\n" +
		"From: bob123@example.net\r\n" +
		"To: undisclosed-recipients:;\r\n" +
		"Content-Type: multipart/alternative; boundary=\"=_abc123XYZ\"\r\n\r\n" +
		"--=_abc123XYZ\r\nContent-Type: text/plain\r\n\r\nhello there\r\n--=_abc123XYZ--\r\n"
	toks := Tokenize(parseMsg(t, []byte(raw)), 0)
	want := []string{
		"mid-shape:<h8$h8$d8@", "mid:ip-host", "date-shape:W2, d2 W2 d4 d2:d2:d2 -d4",
		"date-zone:-0830", "date-zone:odd", "date-skew:hours", "mime:no-version",
		"boundary-shape:=_x8", "from-shape:x4", "from-name:none", "to:undisclosed",
		"rcvd-with:esmtp", "rcvd-with:smtp", "rcvd-helo:rdns-same", "rcvd-helo:ip-literal", "rcvd-helo:bare",
	}
	if m := missing(toks, want...); len(m) > 0 {
		t.Errorf("missing %q in %q", m, toks)
	}
}

func TestReceivedHopForms(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"from mail.a.example (mail.a.example [192.0.2.1]) by mx", "rcvd-helo:rdns-same"},
		{"from smtp.a.example (out7.a.example [192.0.2.1]) by mx", "rcvd-helo:rdns-org"},
		{"from www.bank.example (dsl-7.isp.example [192.0.2.1]) by mx", "rcvd-helo:rdns-other"},
		{"from www.bank.example (unknown [192.0.2.1]) by mx", "rcvd-helo:no-rdns"},
		{"from www.bank.example ([192.0.2.1]) by mx", "rcvd-helo:no-rdns"},
		{"from 192.0.2.1 (host.example [192.0.2.1]) by mx", "rcvd-helo:ip-literal"},
		{"from desktop (host.example [192.0.2.1]) by mx", "rcvd-helo:bare"},
		{"by mx.example with local", "rcvd:no-from"},
	} {
		tk := newTokenizer(0)
		tk.receivedHop(c.in)
		if !slices.Contains(tk.out, c.want) {
			t.Errorf("%q gives %q, want %q", c.in, tk.out, c.want)
		}
	}
}
