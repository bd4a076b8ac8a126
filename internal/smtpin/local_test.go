package smtpin_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/smtpin"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// The webmail's submissions go through the submission session's rules and
// the outbound path, without a listener: the user's own address only,
// the size limit, and out through the smart host.
func TestSubmitLocal(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) { c.Limits.MaxMessageBytes = 64 << 10 }})
	ctx := context.Background()
	submit := func(address, from string, rcpts []string, extra string) (string, error) {
		body := "From: " + from + "\r\nTo: <" + rcpts[0] + ">\r\nSubject: webmail\r\nMessage-ID: <x@example.test>\r\n\r\nsent from the browser" + extra + "\r\n"
		return n.SubmitWebmail(ctx, smtpin.Local{TenantID: n.Tenant.ID, Address: address, Rcpts: rcpts, Body: strings.NewReader(body), ClientIP: "192.0.2.7"})
	}
	refused := func(err error, code int) bool {
		var se *smtp.SMTPError
		return errors.As(err, &se) && se.Code == code
	}
	id, err := submit("alice@example.test", "Alice <alice@example.test>", []string{"friend@example.net"}, "")
	if err != nil || id == "" {
		t.Fatalf("own address: %q %v", id, err)
	}
	mgtest.WaitFor(t, 15*time.Second, "delivery to the internet", func() bool { return len(n.Internet.Messages()) == 1 })
	got := n.Internet.Messages()[0]
	data := string(got.Data)
	if got.From != "alice@example.test" || !strings.Contains(data, "from webmail ([192.0.2.7])") || !strings.Contains(data, "with HTTP id "+id) {
		t.Fatalf("delivered: from %q\n%s", got.From, data)
	}
	// Someone else's From, another tenant's domain, too large, no login.
	if _, err := submit("alice@example.test", "Boss <bob@example.test>", []string{"friend@example.net"}, ""); !refused(err, 550) {
		t.Fatalf("foreign From: %v", err)
	}
	if _, err := submit("carol@elsewhere.test", "carol@elsewhere.test", []string{"friend@example.net"}, ""); !refused(err, 553) {
		t.Fatalf("address outside the tenant's domains: %v", err)
	}
	if _, err := submit("alice@example.test", "alice@example.test", []string{"friend@example.net"}, strings.Repeat("x", 70<<10)); !refused(err, 552) {
		t.Fatalf("too large: %v", err)
	}
	if _, err := n.SubmitWebmail(ctx, smtpin.Local{Address: "alice@example.test", Rcpts: []string{"a@example.net"}, Body: strings.NewReader("x")}); !refused(err, 530) {
		t.Fatalf("without a tenant: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if k := len(n.Internet.Messages()); k != 1 {
		t.Fatalf("%d messages went out, want only the accepted one", k)
	}
}
