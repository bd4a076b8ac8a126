package spam

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
)

func rules(t *testing.T, raw string, rcpts ...string) map[string]bool {
	t.Helper()
	m, err := mailtext.Parse(context.Background(), strings.NewReader(raw), mailtext.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	env := &policy.Envelope{}
	for _, r := range rcpts {
		env.Rcpts = append(env.Rcpts, policy.Rcpt{Addr: r})
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	out := map[string]bool{}
	for _, r := range Heuristics(m, env, now) {
		out[r.Symbol] = true
	}
	return out
}

func TestHeuristics(t *testing.T) {
	clean := "Date: Sun, 22 Nov 2026 11:00:00 +0000\r\nMessage-ID: <a@b.example>\r\nFrom: Alice <alice@example.net>\r\nTo: bob@example.test\r\nSubject: Meeting tomorrow\r\n\r\nSee you at 10.\r\n"
	if got := rules(t, clean, "bob@example.test"); len(got) != 0 {
		t.Fatalf("clean mail fired %v", got)
	}
	spammy := "From: \"support@paypal.com\" <x@evil.example>\r\nSubject: URGENT ACCOUNT VERIFICATION NEEDED!!!\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n" +
		"<a href=\"http://192.0.2.7/login\">https://www.paypal.com/</a> <a href=\"https://bit.ly/x\">here</a><img src=cid:p1>\r\n" +
		"--b\r\nContent-Type: image/png\r\nContent-ID: <p1>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\r\nMZ\r\n--b--\r\n"
	got := rules(t, spammy, "bob@example.test")
	for _, want := range []string{"MISSING_DATE", "MISSING_MID", "MISSING_TO", "FROM_NAME_OTHER_ADDR", "SUBJECT_ALL_CAPS",
		"SUBJECT_EXCLAIM", "HTML_ONLY", "IMAGE_ONLY", "URL_IP_HOST", "URL_SHORTENER", "LINK_TEXT_MISMATCH", "RISKY_ATTACHMENT"} {
		if !got[want] {
			t.Errorf("%s did not fire (fired: %v)", want, got)
		}
	}
	bcc := strings.Replace(clean, "To: bob@example.test", "To: undisclosed-recipients:;", 1)
	if got := rules(t, bcc, "bob@example.test"); !got["MISSING_TO"] && !got["BCC_ONLY"] {
		t.Fatalf("Bcc-only not noticed: %v", got)
	}
	future := strings.Replace(clean, "22 Nov 2026 11:00:00", "25 Dec 2026 11:00:00", 1)
	if got := rules(t, future, "bob@example.test"); !got["DATE_IN_FUTURE"] {
		t.Fatalf("future date: %v", got)
	}
	jp := "Date: Sun, 22 Nov 2026 11:00:00 +0900\r\nMessage-ID: <j@x.jp>\r\nFrom: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <yamada@example.jp>\r\nTo: bob@example.test\r\nSubject: =?ISO-2022-JP?B?GyRCMnFLRBsoQg==?=\r\n\r\nhello\r\n"
	if got := rules(t, jp, "bob@example.test"); len(got) != 0 {
		t.Fatalf("ordinary Japanese mail fired %v", got)
	}
}
