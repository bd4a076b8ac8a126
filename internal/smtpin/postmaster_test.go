package smtpin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// RCPT TO:<Postmaster> without a domain (RFC 5321 4.5.1) reaches the
// postmaster of the served domain the host name is in, or the configured
// address; it never leads outside the served domains.
func TestBarePostmaster(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		hostname   string
		postmaster string
		want       int
		to         string // where the message arrives
	}{
		{"host name in a served domain", "mx.example.test", "", 250, "postmaster@example.test"},
		{"configured address, not a listed user", "mx.mailgate.test", "ops@example.test", 250, "ops@example.test"},
		{"configured outside the served domains", "mx.mailgate.test", "ops@elsewhere.test", 451, ""},
		{"nothing served matches", "mx.mailgate.test", "", 451, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) {
				c.Hostname, c.Postmaster = tc.hostname, tc.postmaster
			}})
			r := greet(t, n.InboundAddr())
			r.expect("MAIL FROM:<reporter@example.net>", 250)
			got := r.cmd("RCPT TO:<Postmaster>")
			if got != tc.want {
				t.Fatalf("RCPT TO:<Postmaster> = %d %s, want %d", got, r.last, tc.want)
			}
			if tc.want != 250 {
				if !strings.HasPrefix(r.last, "4.3.5") {
					t.Fatalf("reply %q, want 4.3.5", r.last)
				}
				return
			}
			r.expect("RCPT TO:<POSTMASTER> NOTIFY=NEVER", 250) // case-insensitive, accepted once
			r.expect("DATA", 354)
			r.send("From: reporter@example.net\r\nSubject: abuse report\r\n\r\nhello\r\n.\r\n")
			if c := r.reply(); c != 250 {
				t.Fatalf("DATA: %d %s", c, r.last)
			}
			mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return n.Down.Count() == 1 })
			if to := n.Down.Messages()[0].To; len(to) != 1 || to[0] != tc.to {
				t.Fatalf("delivered to %v, want %s", to, tc.to)
			}
			if n.Internet.Count() != 0 {
				t.Fatal("mail to <Postmaster> left for the internet")
			}
		})
	}
}

// postmaster@ every served domain is accepted and delivered even when it
// is not a listed user (RFC 5321 4.5.1).
func TestPostmasterOfServedDomain(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<reporter@example.net>", 250)
	r.expect("RCPT TO:<PostMaster@Example.Test>", 250)
	r.expect("DATA", 354)
	r.send("From: reporter@example.net\r\nSubject: hi\r\n\r\nhello\r\n.\r\n")
	if c := r.reply(); c != 250 {
		t.Fatalf("DATA: %d %s", c, r.last)
	}
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return n.Down.Count() == 1 })
	// The outbound relay has no postmaster of its own: <Postmaster> there is
	// not an address.
	o := dialRaw(t, n.OutboundAddr(), "127.0.0.1")
	o.reply()
	o.expect("EHLO relay.example.test", 250)
	o.expect("MAIL FROM:<alice@example.test>", 250)
	if c := o.cmd("RCPT TO:<Postmaster>"); c/100 != 5 {
		t.Fatalf("outbound <Postmaster>: %d %s", c, o.last)
	}
}
