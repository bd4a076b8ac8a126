package smtpin_test

import (
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// A line longer than limits.max_line_bytes inside DATA is a permanent
// refusal of that message (a 4xx would make the sender retry it for days),
// and the session stays usable: the rest of the message is read to its end.
func TestLongLineInDataIsPermanent(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<s@example.net>", 250)
	r.expect("RCPT TO:<alice@example.test>", 250)
	r.expect("DATA", 354)
	r.send("Subject: long\r\n\r\nfirst line\r\n" + strings.Repeat("x", 2<<20) + "\r\nmore text\r\n.\r\n")
	if c := r.reply(); c != 554 || !strings.HasPrefix(r.last, "5.6.0") {
		t.Fatalf("2 MB line: %d %s, want 554 5.6.0", c, r.last)
	}
	// Still in step with the client: the next transaction works.
	r.expect("MAIL FROM:<s@example.net>", 250)
	r.expect("RCPT TO:<alice@example.test>", 250)
	r.expect("DATA", 354)
	r.send("Subject: short\r\n\r\nok\r\n.\r\n")
	if c := r.reply(); c != 250 {
		t.Fatalf("next message: %d %s", c, r.last)
	}
	if c := countMessages(t, n); c != 1 {
		t.Fatalf("%d messages queued, want 1", c)
	}
}
