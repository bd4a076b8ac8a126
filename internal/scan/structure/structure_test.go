package structure

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/policy"
)

func msg(raw string) *policy.Message {
	return &policy.Message{Env: &policy.Envelope{}, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(raw)), nil }}
}

func nested(depth int) string {
	var b strings.Builder
	b.WriteString("Subject: deep\r\nMIME-Version: 1.0\r\n")
	for i := 0; i < depth; i++ {
		b.WriteString("Content-Type: multipart/mixed; boundary=\"b" + strings.Repeat("x", 1) + itoa(i) + "\"\r\n\r\n--b" + "x" + itoa(i) + "\r\n")
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nhello\r\n")
	return b.String()
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}

func many(parts int) string {
	var b strings.Builder
	b.WriteString("Subject: many\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"z\"\r\n\r\n")
	for i := 0; i < parts; i++ {
		b.WriteString("--z\r\nContent-Type: text/plain\r\n\r\nx\r\n")
	}
	b.WriteString("--z--\r\n")
	return b.String()
}

func TestUnscannableIsQuarantinedByDefault(t *testing.T) {
	for name, raw := range map[string]string{"depth 150": nested(150), "12000 parts": many(12000),
		"2 MiB header": "Subject: " + strings.Repeat("a", 2<<20) + "\r\n\r\nbody\r\n"} {
		fs, err := Check{}.Check(context.Background(), msg(raw), policy.MapSettings{})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) == 0 || fs[0].Symbol != "MIME_UNSCANNABLE" || fs[0].Action != policy.Quarantine || fs[0].Overridable {
			t.Fatalf("%s: findings %+v", name, fs)
		}
	}
	fs, _ := Check{}.Check(context.Background(), msg(many(12000)), policy.MapSettings{"structure.unscannable_action": "reject"})
	if fs[0].Action != policy.Reject {
		t.Fatalf("configured action ignored: %s", fs[0].Action)
	}
	// An unsafe setting cannot turn it into a plain delivery.
	fs, _ = Check{}.Check(context.Background(), msg(many(12000)), policy.MapSettings{"structure.unscannable_action": "allow"})
	if fs[0].Action != policy.Quarantine {
		t.Fatalf("allow accepted as unscannable action: %s", fs[0].Action)
	}
}

func TestReadableMessagesGiveFactsOnly(t *testing.T) {
	raw := "From: a@example.net\r\nFrom: b@bank.example\r\nSubject: x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n"
	fs, err := Check{}.Check(context.Background(), msg(raw), policy.MapSettings{})
	if err != nil {
		t.Fatal(err)
	}
	syms := map[string]bool{}
	for _, f := range fs {
		if f.Action != policy.Continue {
			t.Fatalf("readable message got action %s from %s", f.Action, f.Symbol)
		}
		syms[f.Symbol] = true
	}
	if !syms["MIME_DUPLICATE_HEADER"] || !syms["MIME_BROKEN_ENCODING"] {
		t.Fatalf("facts %v", syms)
	}
	if fs, _ := (Check{}).Check(context.Background(), msg("Subject: fine\r\n\r\nhello\r\n"), policy.MapSettings{}); len(fs) != 0 {
		t.Fatalf("clean message findings %+v", fs)
	}
}
