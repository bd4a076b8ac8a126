package smtpin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// relay sends one message through the outbound listener from the
// registered network with the go-smtp client and returns the reply to DATA
// (or to MAIL).
func relay(t *testing.T, n *mgtest.Node, from, header string) *smtp.SMTPError {
	t.Helper()
	c, err := smtp.Dial(n.OutboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.SendMail(from, []string{"partner@external.test"}, strings.NewReader(header+"Subject: author\r\n\r\nbody\r\n"))
	if err == nil {
		return nil
	}
	se, ok := err.(*smtp.SMTPError)
	if !ok {
		t.Fatalf("send: %v", err)
	}
	return se
}

// The outbound relay holds every message to its author: the From field's
// mailboxes must be in the tenant's domains (subdomains included), for the
// null sender too, unless the tenant allows foreign authors. A message
// without From claims no author and passes.
func TestOutboundAuthorCheck(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	ctx := context.Background()
	t2, _ := n.Store.CreateTenant(ctx, "other")
	n.Store.CreateDomain(ctx, t2.ID, "other.test")
	n.Store.CreateDomain(ctx, t2.ID, "sub.example.test") // served on its own, by someone else

	cases := []struct {
		name, from, header string
		code               int
		enhanced           string
	}{
		{"own author", "alice@example.test", "From: Alice <alice@example.test>\r\n", 0, ""},
		{"folded, encoded display name", "alice@example.test", "From: =?UTF-8?B?5bGx55Sw?=\r\n <Alice@EXAMPLE.test>\r\n", 0, ""},
		{"bounce from a customer's MTA", "", "From: Mail Delivery System <MAILER-DAEMON@mail.example.test>\r\n", 0, ""},
		{"bounce with a foreign author", "", "From: ceo@bank.test\r\n", 550, "5.7.1"},
		{"foreign author", "alice@example.test", "From: \"Alice\" <ceo@bank.test>\r\n", 550, "5.7.1"},
		{"another tenant's domain", "alice@example.test", "From: x@other.test\r\n", 550, "5.7.1"},
		{"another tenant's subdomain", "alice@example.test", "From: x@sub.example.test\r\n", 550, "5.7.1"},
		{"look-alike domain", "alice@example.test", "From: x@notexample.test\r\n", 550, "5.7.1"},
		{"one of two authors foreign", "alice@example.test", "From: alice@example.test, ceo@bank.test\r\nSender: alice@example.test\r\n", 550, "5.7.1"},
		{"two From fields", "alice@example.test", "From: alice@example.test\r\nFrom: ceo@bank.test\r\n", 550, "5.6.0"},
		{"no From field claims no author", "alice@example.test", "To: partner@external.test\r\n", 0, ""},
		{"no address", "alice@example.test", "From: Alice\r\n", 550, "5.6.0"},
	}
	accepted := 0
	for _, tc := range cases {
		se := relay(t, n, tc.from, tc.header)
		switch {
		case tc.code == 0 && se != nil:
			t.Errorf("%s: refused: %v", tc.name, se)
		case tc.code == 0:
			accepted++
		case se == nil:
			t.Errorf("%s: accepted, want %d %s", tc.name, tc.code, tc.enhanced)
		case se.Code != tc.code || se.EnhancedCode != parseEnhanced(tc.enhanced):
			t.Errorf("%s: %d %v %s, want %d %s", tc.name, se.Code, se.EnhancedCode, se.Message, tc.code, tc.enhanced)
		}
	}
	mgtest.WaitFor(t, 10*time.Second, "accepted mail relayed", func() bool { return n.Internet.Count() == int64(accepted) })
	for _, m := range n.Internet.Messages() {
		if b := string(m.Data); strings.Contains(b, "bank.test") || strings.Contains(b, "other.test") {
			t.Fatalf("a refused message was relayed:\n%s", b)
		}
	}

	// The inbound listener does not care who the author is.
	r := greet(t, n.InboundAddr())
	if c := sendOneFrom(t, r, "From: ceo@bank.test\r\n"); c != 250 {
		t.Fatalf("inbound: %d %s", c, r.last)
	}

	// A tenant that relays forwarded mail allows foreign authors.
	if err := n.Store.SetSetting(ctx, store.Setting{TenantID: n.Tenant.ID, Scope: store.ScopeTenant, Key: "relay.foreign_from", Value: "allow"}); err != nil {
		t.Fatal(err)
	}
	if se := relay(t, n, "alice@example.test", "From: friend@bank.test\r\n"); se != nil {
		t.Fatalf("foreign author with relay.foreign_from=allow: %v", se)
	}
	// The envelope sender is still checked.
	if se := relay(t, n, "someone@bank.test", "From: friend@bank.test\r\n"); se == nil || se.Code != 553 {
		t.Fatalf("foreign envelope sender: %v, want 553", se)
	}
}

func sendOneFrom(t *testing.T, r *raw, header string) int {
	t.Helper()
	r.expect("MAIL FROM:<s@example.net>", 250)
	r.expect("RCPT TO:<alice@example.test>", 250)
	r.expect("DATA", 354)
	r.send(header + "Subject: x\r\n\r\nbody\r\n.\r\n")
	return r.reply()
}

func parseEnhanced(s string) smtp.EnhancedCode {
	var ec smtp.EnhancedCode
	if s != "" {
		for i, p := range strings.SplitN(s, ".", 3) {
			for _, c := range p {
				ec[i] = ec[i]*10 + int(c-'0')
			}
		}
	}
	return ec
}
