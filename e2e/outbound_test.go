package e2e

import (
	"strings"
	"testing"
)

// TestOutboundRelay drives the outbound listener (the customers' smart host):
// relay by registered network, by SMTP AUTH after STARTTLS, and the refusals
// for unknown networks, foreign senders and wrong passwords.
func TestOutboundRelay(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{outbound: true})
	if out, err := g.cliIn("s3cret-pw\n", "relay", "login", "acme", "relayuser"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "relayuser") {
		t.Errorf("relay login output: %q", out)
	}
	port := portOf(t, g.outAddr)

	t.Run("registered network", func(t *testing.T) {
		res := runPy(t, "session", "--port", port, "--tag", "out-net-11aa", "--from", "alice@example.test", "--to", "partner@external.test")
		if d := res.step("data"); len(d) != 1 || d[0].Code != 250 {
			t.Fatalf("want the message accepted, replies: %v", res.Replies)
		}
		m := waitMessage(t, g.smart, "out-net-11aa")
		if m.From != "alice@example.test" || strings.Join(m.To, ",") != "partner@external.test" {
			t.Errorf("smart host envelope: from %q to %v", m.From, m.To)
		}
		if !strings.Contains(string(m.Data), "by mailgate.test (mailgate) with ESMTP id") {
			t.Errorf("relayed message lacks mailgate's Received header:\n%s", m.Data)
		}
	})

	t.Run("unregistered network", func(t *testing.T) {
		res := runPy(t, "session", "--port", port, "--source", "127.0.0.2", "--tag", "out-unreg-22bb",
			"--from", "alice@example.test", "--to", "partner@external.test")
		mail := res.step("mail")
		if len(mail) != 1 || mail[0].Code != 530 {
			t.Fatalf("MAIL from 127.0.0.2 without AUTH: %v, want 530", res.Replies)
		}
		if len(res.step("data")) != 0 {
			t.Errorf("transaction went on after 530: %v", res.Replies)
		}
	})

	t.Run("foreign sender", func(t *testing.T) {
		res := runPy(t, "session", "--port", port, "--tag", "out-foreign-33cc", "--from", "ceo@bank.test", "--to", "partner@external.test")
		mail := res.step("mail")
		if len(mail) != 1 || mail[0].Code != 553 {
			t.Fatalf("MAIL FROM:<ceo@bank.test> from the tenant's network: %v, want 553", res.Replies)
		}
	})

	t.Run("auth after starttls", func(t *testing.T) {
		res := runPy(t, "session", "--port", port, "--source", "127.0.0.2", "--starttls", "--auth", "relayuser:s3cret-pw",
			"--tag", "out-auth-44dd", "--from", "bob@example.test", "--to", "partner@external.test")
		if res.StartTLS == nil || res.StartTLS.Code != 220 {
			t.Fatalf("STARTTLS: %v", res.StartTLS)
		}
		if res.Auth == nil || res.Auth.Code != 235 {
			t.Fatalf("AUTH PLAIN with the right password: %v", res.Auth)
		}
		if d := res.step("data"); len(d) != 1 || d[0].Code != 250 {
			t.Fatalf("want the message accepted, replies: %v", res.Replies)
		}
		m := waitMessage(t, g.smart, "out-auth-44dd")
		if !strings.Contains(string(m.Data), "from client.e2e.test ([127.0.0.2])") ||
			!strings.Contains(string(m.Data), "by mailgate.test (mailgate) with ESMTPSA id") {
			t.Errorf("want a Received header for 127.0.0.2 with ESMTPSA (RFC 3848):\n%s", m.Data)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		res := runPy(t, "session", "--port", port, "--source", "127.0.0.2", "--starttls", "--auth", "relayuser:not-the-password",
			"--tag", "out-badpw-55ee", "--from", "bob@example.test", "--to", "partner@external.test")
		if res.Auth == nil || res.Auth.Code != 535 {
			t.Fatalf("AUTH PLAIN with a wrong password: %v, want 535", res.Auth)
		}
		if mail := res.step("mail"); len(mail) != 1 || mail[0].Code != 530 {
			t.Errorf("MAIL after failed AUTH: %v, want 530", res.Replies)
		}
	})

}
