package extspam

import (
	"bytes"
	"io"
	"net/netip"
	"strings"

	"github.com/mailgate/mailgate/internal/policy"
)

// gtube returns SpamAssassin's Generic Test for Unsolicited Bulk Email
// string, assembled here so the whole string never sits in the source.
func gtube() string {
	return strings.Join([]string{"XJS*C4JDBQADN1.NSBN3*2IDNEN*", "GTUBE-STANDARD-ANTI-UBE-", "TEST-EMAIL*C.34X"}, "")
}

const hamText = "From: Alice Example <alice@example.com>\r\n" +
	"To: bob@example.org\r\n" +
	"Subject: lunch tomorrow\r\n" +
	"Date: Sat, 22 Nov 2025 13:00:00 +0000\r\n" +
	"Message-ID: <20251122130000.1234@mail.example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Shall we have lunch tomorrow at noon? The usual place.\r\n" +
	"Alice\r\n"

func spamText() string {
	return "From: Promo <promo@example.net>\r\n" +
		"To: bob@example.org\r\n" +
		"Subject: test\r\n" +
		"Date: Sat, 22 Nov 2025 13:00:00 +0000\r\n" +
		"Message-ID: <20251122130001.5678@mail.example.net>\r\n" +
		"\r\n" +
		"This is the GTUBE test.\r\n" + gtube() + "\r\n"
}

type nopCloser struct{ io.Reader }

func (nopCloser) Close() error { return nil }

// newMessage builds a message with a realistic envelope; Size is set.
func newMessage(raw string, rcpts ...string) *policy.Message {
	if len(rcpts) == 0 {
		rcpts = []string{"bob@example.org"}
	}
	env := &policy.Envelope{
		ClientIP: netip.MustParseAddr("198.51.100.7"),
		Helo:     "mail.example.com",
		MailFrom: "alice@example.com",
	}
	for _, r := range rcpts {
		env.Rcpts = append(env.Rcpts, policy.Rcpt{Addr: r, Domain: r[strings.IndexByte(r, '@')+1:]})
	}
	data := []byte(raw)
	return &policy.Message{Env: env, Size: int64(len(data)),
		Open: func() (io.ReadCloser, error) { return nopCloser{bytes.NewReader(data)}, nil }}
}

// rcptSettings gives per-recipient settings over a message-level map.
func rcptSettings(msg policy.MapSettings, per map[string]policy.MapSettings) policy.RcptSettings {
	p := policy.PerRcpt{Message: msg, Rcpt: map[string]policy.Settings{}}
	for k, v := range per {
		p.Rcpt[k] = v
	}
	return p
}

func findSymbol(fs []policy.Finding, sym string) *policy.Finding {
	for i := range fs {
		if fs[i].Symbol == sym {
			return &fs[i]
		}
	}
	return nil
}

var netipZero netip.Addr

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
