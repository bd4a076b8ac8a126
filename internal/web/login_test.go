package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/fakeidp"
)

func setTenant(t *testing.T, e *consoletest.Env, tid int64, kv map[string]string) {
	t.Helper()
	for k, v := range kv {
		if err := e.Store.SetSetting(context.Background(), store.Setting{TenantID: tid, Scope: store.ScopeTenant, Key: k, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
}

// follow walks the OIDC redirect chain with the client's cookies (the
// console's /login/oidc pages and the identity provider) and returns the
// status and location of the first answer that leaves it: a redirect into
// the console proper, or a page.
func follow(t *testing.T, c *consoletest.Client, start string) (int, string) {
	t.Helper()
	u := start
	for i := 0; i < 10; i++ {
		resp, err := c.HTTP.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
			return resp.StatusCode, loc
		}
		base, _ := url.Parse(u)
		ref, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		if ref.Host == "" && !strings.HasPrefix(ref.Path, "/login/oidc") {
			return resp.StatusCode, loc
		}
		u = base.ResolveReference(ref).String()
	}
	t.Fatal("redirect loop")
	return 0, ""
}

func TestOIDCLoginCreatesUserSession(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	idp := fakeidp.Start(t, fakeidp.WithRedirectURIs(e.URL+"/login/oidc/callback"))
	setTenant(t, e, e.Tenant.ID, map[string]string{
		"login.method": "oidc", "login.oidc_provider": "generic", "login.oidc_issuer": idp.Issuer(),
		"login.oidc_client_id": idp.ClientID(), "login.oidc_client_secret": idp.ClientSecret(),
	})
	idp.SetUser("bob@example.test", "Bob")
	c := e.NewClient(t)
	st, loc := follow(t, c, e.URL+"/login/oidc?email=bob@example.test")
	if st != http.StatusSeeOther || loc != "/" {
		t.Fatalf("OIDC flow ended with %d %q", st, loc)
	}
	if st, _ := c.Get("/quarantine"); st != http.StatusOK {
		t.Fatalf("bob's quarantine after OIDC login: %d", st)
	}
	a, err := e.Store.AccountByLogin(context.Background(), "bob@example.test")
	if err != nil || a.Role != store.RoleUser || a.TenantID != e.Tenant.ID || a.Hash != "" {
		t.Fatalf("account: %+v %v", a, err)
	}

	// An identity of another organisation gets no session.
	idp.SetUser("carol@other.test", "Carol")
	c2 := e.NewClient(t)
	if st, _ := follow(t, c2, e.URL+"/login/oidc?email=bob@example.test"); st == http.StatusSeeOther {
		t.Fatal("an identity outside the tenant's domains logged in")
	}
	if st, _ := c2.Get("/quarantine"); st != http.StatusSeeOther {
		t.Fatalf("no session expected: %d", st)
	}
	// A tampered state is refused.
	c3 := e.NewClient(t)
	idp.SetUser("bob@example.test", "Bob")
	resp, err := c3.HTTP.Get(e.URL + "/login/oidc?email=bob@example.test")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authz := resp.Header.Get("Location")
	r2, err := c3.HTTP.Get(authz)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	cb, _ := url.Parse(r2.Header.Get("Location"))
	q := cb.Query()
	q.Set("state", "forged")
	cb.RawQuery = q.Encode()
	r3, err := c3.HTTP.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged state: %d", r3.StatusCode)
	}
}

func TestIPAllowListBlocksAdminLogin(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	c.Login(consoletest.AdminA) // enrols TOTP while allowed
	setTenant(t, e, e.Tenant.ID, map[string]string{"console.admin_ips": "192.0.2.0/24"})
	// The running session is cut off at its next request...
	if st, _ := c.Get("/dashboard"); st != http.StatusForbidden {
		t.Fatalf("session from a network not allowed: %d", st)
	}
	// ...and a new login is refused before any session exists.
	c2 := e.NewClient(t)
	if st, _ := c2.LoginStatus(consoletest.AdminA, consoletest.Password); st != http.StatusForbidden {
		t.Fatalf("login from a network not allowed: %d", st)
	}
	// Users are governed by their own list.
	u := e.NewClient(t)
	u.Login(consoletest.UserA)
	if st, _ := u.Get("/quarantine"); st != http.StatusOK {
		t.Fatalf("user: %d", st)
	}
	setTenant(t, e, e.Tenant.ID, map[string]string{"console.admin_ips": "127.0.0.1"})
	if st, _ := c.Get("/dashboard"); st != http.StatusOK {
		t.Fatalf("allowed again: %d", st)
	}
}

func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	a := e.NewClient(t)
	a.Login(consoletest.UserA)
	b := e.NewClient(t)
	b.Login(consoletest.UserA)
	a.Get("/account")
	if st, loc, _ := a.Post("/account/password", url.Values{"current": {consoletest.Password}, "password": {"a new long password"}}); st != http.StatusSeeOther {
		t.Fatalf("change: %d %s", st, loc)
	}
	if st, _ := a.Get("/quarantine"); st != http.StatusOK {
		t.Fatalf("the browser that changed it stays logged in: %d", st)
	}
	if st, _ := b.Get("/quarantine"); st != http.StatusSeeOther {
		t.Fatalf("the other session must end: %d", st)
	}
	if st, _ := e.NewClient(t).LoginStatus(consoletest.UserA, consoletest.Password); st != http.StatusUnauthorized {
		t.Fatalf("old password: %d", st)
	}
}

func TestJapaneseBrowserGetsJapanese(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	req, _ := http.NewRequest("GET", e.URL+"/login", nil)
	req.Header.Set("Accept-Language", "ja,en;q=0.5")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(sb.String(), "ログイン") || !strings.Contains(sb.String(), `lang="ja"`) {
		t.Fatal("a Japanese browser gets the Japanese login page")
	}
}

// The own account page makes a mail app password, shows it once and
// removes it; operators, who have no mailbox, are not offered one.
func TestOwnAppPassword(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	if _, body := c.Get("/account"); !strings.Contains(body, `id="app-password"`) || strings.Contains(body, `id="new-app-password"`) {
		t.Fatalf("account page:\n%s", body)
	}
	st, _, body := c.Post("/account/app-password", url.Values{})
	m := regexp.MustCompile(`<code id="new-app-password">([a-z0-9]{16})</code>`).FindStringSubmatch(body)
	if st != http.StatusOK || m == nil {
		t.Fatalf("new app password: %d\n%s", st, body)
	}
	a, err := e.Store.AccountByLogin(ctx, consoletest.AdminA)
	if err != nil || passwd.MustNew(passwd.Options{}).Verify(ctx, a.AppHash, m[1]) != nil {
		t.Fatalf("stored: %+v %v", a, err)
	}
	if _, body := c.Get("/account"); strings.Contains(body, m[1]) {
		t.Fatal("the app password is shown again")
	}
	if st, _, _ := c.Post("/account/app-password/remove", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("remove: %d", st)
	}
	if a, _ = e.Store.AccountByLogin(ctx, consoletest.AdminA); a.AppHash != "" {
		t.Fatalf("not removed: %+v", a)
	}
	op := e.NewClient(t)
	op.Login(consoletest.Operator)
	if _, body := op.Get("/account"); strings.Contains(body, `id="app-password"`) {
		t.Fatal("an operator is offered a mail app password")
	}
	if st, _, _ := op.Post("/account/app-password", url.Values{}); st != http.StatusBadRequest {
		t.Fatalf("operator's app password: %d", st)
	}
}
