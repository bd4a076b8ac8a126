package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSmtplibInternational sends a Japanese business mail as a mail client
// would: UTF-8 display names under SMTPUTF8 (RFC 6531/6532) and an
// ISO-2022-JP subject (RFC 2047) and body. The gateway must pass every byte
// through unchanged.
func TestSmtplibInternational(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{})
	tag := "intl-3b7e"
	res := runPy(t, "intl", "--port", portOf(t, g.inAddr), "--tag", tag, "--from", "taro@remote.test",
		"--to", "alice@example.test", "--to", "bob@example.test")
	if len(res.Refused) != 0 {
		t.Fatalf("recipients refused: %v", res.Refused)
	}
	if !contains(res.ESMTP, "smtputf8") {
		t.Errorf("SMTPUTF8 not advertised: %v", res.ESMTP)
	}
	if d := res.step("data"); len(d) != 1 || d[0].Code != 250 || len(queueIDs("250 "+d[0].Msg)) != 1 {
		t.Fatalf("DATA replies %v, want one '250 2.0.0 OK queued as ID'", d)
	}
	m := waitMessage(t, g.sink, tag+"@client.e2e.test")
	for _, want := range []string{
		"To: アリス <alice@example.test>, Bob Müller <bob@example.test>\r\n",
		"From: 山田太郎 <taro@remote.test>\r\n",
		"Subject: " + res.SubjectHeader + "\r\n",
		"Content-Type: text/plain; charset=ISO-2022-JP\r\n",
	} {
		if !bytes.Contains(m.Data, []byte(want)) {
			t.Errorf("delivered message lacks %q:\n%s", want, m.Data)
		}
	}
	body, err := base64.StdEncoding.DecodeString(res.BodyB64)
	if err != nil {
		t.Fatal(err)
	}
	if _, b, ok := bytes.Cut(m.Data, []byte("\r\n\r\n")); !ok || !bytes.Equal(b, body) {
		t.Errorf("ISO-2022-JP body changed in transit: got %q, want %q", b, body)
	}
	got := append([]string(nil), m.To...)
	if strings.Join(got, ",") != "alice@example.test,bob@example.test" && strings.Join(got, ",") != "bob@example.test,alice@example.test" {
		t.Errorf("envelope recipients at sink: %v", m.To)
	}
}

// TestSmtplibManyOnOneConnection sends 50 messages over one SMTP connection
// (RSET-free back-to-back transactions, as a mail client flushing its outbox).
func TestSmtplibManyOnOneConnection(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{})
	const n = 50
	tag := "bulk-61f0"
	res := runPy(t, "bulk", "--port", portOf(t, g.inAddr), "--tag", tag, "--count", fmt.Sprint(n),
		"--from", "newsletter@remote.test", "--to", "alice@example.test")
	data := res.step("data")
	if len(data) != n {
		t.Fatalf("%d DATA replies, want %d", len(data), n)
	}
	ids := map[string]bool{}
	for _, r := range data {
		q := queueIDs(fmt.Sprintf("%d %s", r.Code, r.Msg))
		if len(q) != 1 {
			t.Fatalf("DATA reply %v, want '250 2.0.0 OK queued as ID'", r)
		}
		ids[q[0]] = true
	}
	if len(ids) != n {
		t.Errorf("%d distinct queue IDs for %d messages", len(ids), n)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("%d messages at the sink", n), func() bool {
		return len(messagesWith(g.sink, tag)) >= n
	})
	for i := 0; i < n; i++ {
		mid := fmt.Sprintf("<%s.%d@client.e2e.test>", tag, i)
		if c := len(messagesWith(g.sink, mid)); c != 1 {
			t.Errorf("message %s delivered %d times", mid, c)
		}
	}
}

// TestSmtplibRelayForms tries the address forms that turn a careless MX into
// an open relay (RFC 5321 3.6.1 source routes, % and ! hacks, quoted local
// parts, address literals, a trailing root dot). Each must be refused at RCPT
// while the same mailbox in plain form is accepted.
func TestSmtplibRelayForms(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{})
	// "user" exists, so a refusal below is about the form, not an unknown user.
	g.cli("user", "add", "user@example.test")
	forms := []string{
		"user%other.test@example.test",
		"other.test!user@example.test",
		`"user@other.test"@example.test`,
		"user@[127.0.0.1]",
		"user@example.test.",
		"@example.test:user@other.test",
	}
	tag := "relay-2d44"
	args := []string{"relay", "--port", portOf(t, g.inAddr), "--tag", tag, "--from", "spammer@remote.test"}
	for _, f := range forms {
		args = append(args, "--to", f)
	}
	args = append(args, "--to", "user@example.test") // control: the plain form is delivered
	res := runPy(t, args...)
	rcpts := res.step("rcpt")
	if len(rcpts) != len(forms)+1 {
		t.Fatalf("%d RCPT replies, want %d: %v", len(rcpts), len(forms)+1, res.Replies)
	}
	for i, f := range forms {
		r := rcpts[i]
		t.Logf("RCPT TO:<%s> -> %d %s", f, r.Code, r.Msg)
		if r.Code < 500 || r.Code > 599 {
			t.Errorf("RCPT TO:<%s> answered %d %s, want a permanent refusal", f, r.Code, r.Msg)
		}
	}
	if c := rcpts[len(forms)]; c.Code != 250 {
		t.Fatalf("control RCPT TO:<user@example.test> answered %v", c)
	}
	waitMessage(t, g.sink, fmt.Sprintf("Message %d of test %s", len(forms), tag))
	if n := len(messagesWith(g.sink, tag)); n != 1 {
		t.Errorf("sink got %d messages, want only the control message", n)
	}
	if n := g.smart.Count(); n != 0 {
		t.Errorf("smart host got %d messages: a routing form was relayed", n)
	}
	g.waitQueueEmpty()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// TestSmtplibUTF8Downstream checks that a message accepted with SMTPUTF8
// (raw UTF-8 in its header) is passed on with SMTPUTF8 too: RFC 6531 3.4
// forbids relaying it to the next hop as if it were plain ASCII mail.
func TestSmtplibUTF8Downstream(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{})
	rec := startRecorder(t)
	g.cli("route", "set", "example.test", "smtp://"+rec.addr)
	res := runPy(t, "intl", "--port", portOf(t, g.inAddr), "--tag", "intl-down-5a5a", "--from", "taro@remote.test",
		"--to", "alice@example.test", "--to", "bob@example.test")
	if d := res.step("data"); len(d) != 1 || d[0].Code != 250 {
		t.Fatalf("message not accepted: %v", res.Replies)
	}
	waitFor(t, 15*time.Second, "the message at the recording downstream", func() bool { return len(rec.received()) > 0 })
	got := rec.received()
	if len(got) != 1 {
		t.Fatalf("downstream got %d transactions, want 1: %+v", len(got), got)
	}
	if !got[0].UTF8 {
		t.Errorf("downstream MAIL FROM:<%s> without SMTPUTF8 (body %q), although the client sent SMTPUTF8 and the header holds raw UTF-8", got[0].From, got[0].Body)
	}
}
