package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

func TestLoginEnrolsTOTPThenRequiresIt(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	a, err := e.Store.AccountByLogin(context.Background(), consoletest.AdminA)
	if err != nil || a.TOTPSecret == "" {
		t.Fatalf("TOTP not enrolled: %+v %v", a, err)
	}
	if st, body := c.Get("/dashboard"); st != 200 || !strings.Contains(body, "acme") {
		t.Fatalf("dashboard: %d", st)
	}
	// A second browser must give the code; a wrong one is refused.
	c2 := e.NewClient(t)
	c2.Get("/login")
	st, loc, _ := c2.Post("/login", url.Values{"login": {consoletest.AdminA}, "password": {consoletest.Password}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/login/totp") {
		t.Fatalf("second login: %d %q", st, loc)
	}
	if st, loc := c2.Get("/dashboard"); st != http.StatusSeeOther {
		t.Fatalf("dashboard before TOTP: %d %q", st, loc)
	}
	c2.Get("/login/totp")
	if st, _, _ := c2.Post("/login/totp", url.Values{"code": {"000000"}}); st != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", st)
	}
	// Logging out ends the session.
	if st, _, _ := c.Post("/logout", nil); st != http.StatusSeeOther {
		t.Fatalf("logout: %d", st)
	}
	if st, _ := c.Get("/dashboard"); st != http.StatusSeeOther {
		t.Fatalf("dashboard after logout: %d", st)
	}
}

func TestLoginThrottled(t *testing.T) {
	// The clock stands still: on a loaded machine five password checks can
	// take longer than the limiter needs to give a token back.
	e := consoletest.Start(t, consoletest.Options{Mg: mgtest.Options{Clock: clock.NewFake(time.Now())}})
	c := e.NewClient(t)
	for i := 0; i < 5; i++ {
		if st, _ := c.LoginStatus(consoletest.UserA, "wrong password!"); st != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, st)
		}
	}
	if st, _ := c.LoginStatus(consoletest.UserA, consoletest.Password); st != http.StatusTooManyRequests {
		t.Fatalf("after 5 failures the right password must wait too: %d", st)
	}
}

func TestCSRFRequired(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	if st, _, _ := c.Post("/domains", url.Values{"name": {"new.test"}, "csrf": {"forged"}}); st != http.StatusForbidden {
		t.Fatalf("forged CSRF: %d", st)
	}
	// An administrator's new domain is an unverified claim of the tenant.
	if cs, _ := e.Store.DomainClaims(context.Background(), e.Tenant.ID); len(cs) != 0 {
		t.Fatal("domain added despite a forged token")
	}
	if st, loc, _ := c.Post("/domains", url.Values{"name": {"new.test"}, "route": {"mx"}}); st != http.StatusSeeOther {
		t.Fatalf("add domain: %d %s", st, loc)
	}
	if cs, err := e.Store.DomainClaims(context.Background(), e.Tenant.ID); err != nil || len(cs) != 1 || cs[0].Name != "new.test" {
		t.Fatalf("domain not added to the tenant: %+v %v", cs, err)
	}
	es, _ := e.Store.AuditLog(context.Background(), store.AuditFilter{TenantID: e.Tenant.ID})
	found := false
	for _, a := range es {
		found = found || (a.Action == "domain.add" && a.Target == "new.test" && a.Actor == consoletest.AdminA && a.IP == "127.0.0.1")
	}
	if !found {
		t.Fatalf("no audit entry for the change: %+v", es)
	}
}

// Hostile text from mail (subject, sender) is shown escaped in the console.
func TestHostileMailTextEscaped(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	msg := "From: \"<img src=x onerror=alert(1)>\" <evil@attacker.example>\r\nTo: alice@example.test\r\n" +
		"Subject: <script>alert('x')</script> hi\r\n\r\nbody\r\n"
	if err := plainSend(e.InboundAddr(), "evil@attacker.example", "alice@example.test", msg); err != nil {
		t.Fatal(err)
	}
	var body string
	for i := 0; i < 100; i++ {
		_, body = c.Get("/tracking?sender=attacker.example")
		if strings.Contains(body, "attacker.example</td>") {
			break
		}
	}
	if !strings.Contains(body, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; hi") {
		t.Fatalf("subject not shown escaped:\n%s", body)
	}
	if strings.Contains(body, "<script>alert") {
		t.Fatal("raw script tag from a subject reached the page")
	}
}

// A TOTP code works once: replaying it in another browser is refused.
func TestTOTPCodeNotReplayable(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	e.NewClient(t).Login(consoletest.AdminA)
	secret := e.Secrets[consoletest.AdminA]
	// The next time step: within the allowed skew, and not used by the
	// enrolment.
	code, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	login := func() int {
		c := e.NewClient(t)
		c.Get("/login")
		c.Post("/login", url.Values{"login": {consoletest.AdminA}, "password": {consoletest.Password}})
		c.Get("/login/totp")
		st, _, _ := c.Post("/login/totp", url.Values{"code": {code}})
		return st
	}
	if st := login(); st != http.StatusSeeOther {
		t.Fatalf("first use: %d", st)
	}
	if st := login(); st != http.StatusUnauthorized {
		t.Fatalf("replayed code: %d", st)
	}
}

// A user sees their quarantine's capacity: the default, then the value an
// administrator set for the address.
func TestUserSeesQuarantineCapacity(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	c.Login(consoletest.UserA)
	if _, body := c.Get("/quarantine"); !strings.Contains(body, `id="usage"`) || !strings.Contains(body, "5.0 MB") {
		t.Fatalf("no default capacity shown:\n%s", body)
	}
	if err := e.Store.SetSetting(context.Background(), store.Setting{TenantID: e.Tenant.ID, Scope: store.ScopeAddress,
		Owner: consoletest.UserA, Key: "quarantine.quota_mb", Value: "50"}); err != nil {
		t.Fatal(err)
	}
	if _, body := c.Get("/quarantine"); !strings.Contains(body, "50 MB") {
		t.Fatal("the address's own capacity is not shown")
	}
}
