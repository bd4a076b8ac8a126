package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/continuity/continuitytest"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

func continuityEnv(t *testing.T) (*consoletest.Env, *continuitytest.Mailboxes) {
	mb := continuitytest.New(nil)
	e := consoletest.Start(t, consoletest.Options{Mg: mgtest.Options{Mailboxes: mb}})
	mb.Users = e.Store
	return e, mb
}

func setLang(t *testing.T, c *consoletest.Client, lang string) {
	t.Helper()
	if st, _, _ := c.Post("/lang", url.Values{"lang": {lang}, "next": {"/"}}); st != http.StatusSeeOther {
		t.Fatalf("language %s: %d", lang, st)
	}
}

// TestConsoleSwitch: the domains page has one switch button per domain,
// which leads to a confirmation page (English and Japanese) saying what
// the switch does; confirming switches, audits, and the domain's page
// shows the mode, the users' mailboxes and the log.
func TestConsoleSwitch(t *testing.T) {
	e, mb := continuityEnv(t)
	ctx := context.Background()
	admin := e.NewClient(t)
	admin.Login(consoletest.AdminA)
	setLang(t, admin, "en")
	_, body := admin.Get("/domains")
	if !strings.Contains(body, `action="/domains/example.test/continuity/switch"`) || !strings.Contains(body, "Switch to emergency mode") ||
		!strings.Contains(body, "Primary service") {
		t.Fatalf("domains page without the switch:\n%s", body)
	}
	// The button is a GET to the confirmation page: nothing happens yet.
	st, body := admin.Get("/domains/example.test/continuity/switch")
	if st != http.StatusOK || !strings.Contains(body, "Deliver the mail of example.test into mailgate&#39;s emergency mailboxes?") ||
		!strings.Contains(body, `name="mode" value="emergency"`) || !strings.Contains(body, "Every user of the domain gets a mailbox") {
		t.Fatalf("confirmation page: %d\n%s", st, body)
	}
	if m, _ := e.Store.DomainMode(ctx, e.Tenant.ID, e.Domain.ID); m.Mode != store.ModePrimary {
		t.Fatal("the button switched without confirmation")
	}
	st, loc, _ := admin.Post("/domains/example.test/continuity/switch", url.Values{"mode": {"emergency"}, "reason": {"M365 outage"}})
	if st != http.StatusSeeOther || loc != "/domains/example.test/continuity?msg=switched" {
		t.Fatalf("switch: %d %q", st, loc)
	}
	if m, _ := e.Store.DomainMode(ctx, e.Tenant.ID, e.Domain.ID); m.Mode != store.ModeEmergency || m.ChangedBy != consoletest.AdminA || m.Reason != "M365 outage" {
		t.Fatalf("mode: %+v", m)
	}
	if !mb.HasMailbox(e.Tenant.ID, "alice@example.test") {
		t.Fatal("no mailbox for alice")
	}
	_, body = admin.Get(loc)
	for _, want := range []string{"Switched.", `id="mode">Emergency mailboxes`, "Back to the primary service", "alice@example.test", "never", "M365 outage", "<td>Switch</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("domain page lacks %q", want)
		}
	}
	as, _ := e.Store.AuditLog(ctx, store.AuditFilter{TenantID: e.Tenant.ID, Action: "continuity.switch"})
	if len(as) != 1 || as[0].Actor != consoletest.AdminA || as[0].Before != "primary" || as[0].After != "emergency: M365 outage" {
		t.Fatalf("audit: %+v", as)
	}
	// The way back, in Japanese.
	setLang(t, admin, "ja")
	_, body = admin.Get("/domains/example.test/continuity/switch")
	if !strings.Contains(body, "example.test のメールを通常の配送先に戻しますか？") || !strings.Contains(body, `name="mode" value="primary"`) ||
		!strings.Contains(body, "緊急モード中に受信したメールを引き戻します") {
		t.Fatalf("Japanese confirmation page:\n%s", body)
	}
	_, body = admin.Get("/continuity")
	if !strings.Contains(body, "緊急用メールボックス") || !strings.Contains(body, "通常の配送先に戻す") || !strings.Contains(body, "引き戻し用の認証情報") {
		t.Fatalf("Japanese overview:\n%s", body)
	}
	if st, loc, _ := admin.Post("/domains/example.test/continuity/switch", url.Values{"mode": {"primary"}}); st != http.StatusSeeOther {
		t.Fatalf("switch back: %d %q", st, loc)
	}
	_, body = admin.Get("/domains/example.test/continuity")
	if !strings.Contains(body, "実行中") && !strings.Contains(body, "完了") {
		t.Fatalf("no hand-back on the domain page:\n%s", body)
	}
	// Switching to the mode it is in is refused with the reason.
	st, _, body = admin.Post("/domains/example.test/continuity/switch", url.Values{"mode": {"primary"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "already in primary mode") {
		t.Fatalf("same mode: %d\n%s", st, body)
	}
	// End users have no continuity pages.
	user := e.NewClient(t)
	user.Login(consoletest.UserA)
	if st, _ := user.Get("/continuity"); st != http.StatusForbidden {
		t.Fatalf("user: %d", st)
	}
}

// TestAPIContinuity: the API switches, reports, starts a hand-back and
// stores credentials (never showing the secret); every answer matches the
// description.
func TestAPIContinuity(t *testing.T) {
	e, mb := continuityEnv(t)
	a := newAPIClient(t, e)
	var res struct {
		Domain, From, To string
		Woken            int
		Created          int `json:"mailboxes_created"`
	}
	a.want(http.StatusOK, "a-write", "POST", "/domains/example.test/continuity", map[string]string{"mode": "emergency", "reason": "drill"}, &res)
	if res.Domain != "example.test" || res.From != "primary" || res.To != "emergency" || res.Created != 2 {
		t.Fatalf("switch: %+v", res)
	}
	a.want(http.StatusBadRequest, "a-write", "POST", "/domains/example.test/continuity", map[string]string{"mode": "emergency"}, nil)
	a.want(http.StatusBadRequest, "a-write", "POST", "/domains/example.test/continuity", map[string]string{"mode": "sideways"}, nil)
	a.want(http.StatusNotFound, "a-write", "POST", "/domains/other.test/continuity", map[string]string{"mode": "emergency"}, nil)
	a.want(http.StatusForbidden, "a-read", "POST", "/domains/example.test/continuity", map[string]string{"mode": "primary"}, nil)
	var st []struct {
		Domain, Mode string
		Reason       string
	}
	a.want(http.StatusOK, "a-read", "GET", "/continuity", nil, &st)
	if len(st) != 1 || st[0].Mode != "emergency" || st[0].Reason != "drill" {
		t.Fatalf("status: %+v", st)
	}
	var doms []struct{ Name, Mode string }
	a.want(http.StatusOK, "a-read", "GET", "/domains", nil, &doms)
	if doms[0].Mode != "emergency" {
		t.Fatalf("domains: %+v", doms)
	}
	var users []struct{ Address string }
	a.want(http.StatusOK, "a-read", "GET", "/domains/example.test/continuity/users", nil, &users)
	if len(users) != 2 {
		t.Fatalf("users: %+v", users)
	}
	mb.Deliver(context.Background(), e.Tenant.ID, "alice@example.test", strings.NewReader("Subject: x\r\n\r\nx\r\n"), deliverMeta("q1"))
	var hb struct {
		ID   int64
		Path string
	}
	a.want(http.StatusCreated, "a-write", "POST", "/domains/example.test/handback", map[string]string{"user": "alice@example.test"}, &hb)
	if hb.Path != "smtp" || hb.ID == 0 {
		t.Fatalf("hand-back: %+v", hb)
	}
	a.want(http.StatusBadRequest, "a-write", "POST", "/domains/example.test/handback", map[string]string{"user": "carol@other.test"}, nil)
	a.want(http.StatusOK, "a-read", "GET", "/domains/example.test/handback", nil, nil)
	a.want(http.StatusOK, "a-write", "POST", "/domains/example.test/handback/retry", nil, nil)
	var evs []struct{ Kind, Actor string }
	a.want(http.StatusOK, "a-read", "GET", "/domains/example.test/continuity/events?limit=10", nil, &evs)
	if len(evs) < 2 || evs[len(evs)-1].Kind != "switch" || evs[len(evs)-1].Actor != "api:a-write" {
		t.Fatalf("events: %+v", evs)
	}
	var cred struct {
		Provider   string
		Configured bool
		ID         string
	}
	a.want(http.StatusOK, "a-read", "GET", "/continuity/credentials?provider=graph", nil, &cred)
	if cred.Configured {
		t.Fatal("credentials before any were set")
	}
	a.want(http.StatusBadRequest, "a-write", "PUT", "/continuity/credentials", map[string]any{"provider": "graph", "credentials": map[string]string{"tenant": "t"}}, nil)
	st2, _, body := a.do(e.Tokens["a-write"], "PUT", "/continuity/credentials",
		map[string]any{"provider": "graph", "credentials": map[string]string{"tenant": "contoso", "client_id": "app-9", "client_secret": "hush-hush"}})
	if st2 != http.StatusOK || strings.Contains(string(body), "hush-hush") {
		t.Fatalf("set credentials: %d %s", st2, body)
	}
	a.want(http.StatusOK, "a-read", "GET", "/continuity/credentials?provider=graph", nil, &cred)
	if !cred.Configured || cred.ID != "app-9" {
		t.Fatalf("credentials: %+v", cred)
	}
	as, _ := e.Store.AuditLog(context.Background(), store.AuditFilter{TenantID: e.Tenant.ID, Action: "continuity.credentials"})
	if len(as) != 1 || strings.Contains(as[0].After+as[0].Before, "hush") {
		t.Fatalf("audit: %+v", as)
	}
	a.want(http.StatusNoContent, "a-write", "DELETE", "/continuity/credentials?provider=graph", nil, nil)
	a.want(http.StatusOK, "a-write", "POST", "/domains/example.test/continuity/purge", nil, nil)
	a.want(http.StatusOK, "op", "GET", "/continuity?tenant=other", nil, &st)
	if len(st) != 1 || st[0].Domain != "other.test" {
		t.Fatalf("operator's view of other: %+v", st)
	}
}

func deliverMeta(queueID string) delivery.DeliverMeta {
	return delivery.DeliverMeta{QueueID: queueID, MailFrom: "s@remote.test", Emergency: true}
}
