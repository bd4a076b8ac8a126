// Package consoletest starts a mailgate node with its web console and API
// for tests, with two tenants and a login of every role, and gives an HTTP
// client that logs in (password and TOTP) and sends the CSRF token the way a
// browser does.
package consoletest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/web"
)

// Password is every fixture account's password.
const Password = "correct horse battery"

// Logins of the fixture accounts.
const (
	Operator = "root"
	AdminA   = "it@example.test"    // tenant acme (example.test)
	UserA    = "alice@example.test" // end user of acme
	AdminB   = "boss@other.test"    // tenant other (other.test)
	UserB    = "carol@other.test"   // end user of other
)

// Env is a running node with its console.
type Env struct {
	*mgtest.Node
	Web     *web.Server
	URL     string
	TenantB store.Tenant
	// TOTP secrets of accounts that enrolled (filled by Client.Login).
	Secrets map[string]string
	// lastCode is when each login's last TOTP code was made: the console
	// refuses a time step twice, so the next login uses a later step.
	lastCode map[string]time.Time
	mu       sync.Mutex
	// Tokens: API token secrets by name: "op" (operator, write), "a-write",
	// "a-read" (tenant acme, both with archive access), "b-write" (tenant
	// other).
	Tokens map[string]string
}

// Options adjust the environment.
type Options struct {
	Config func(*config.Config)
	Mg     mgtest.Options
}

// Start builds the environment. Tenant acme has example.test (alice, bob),
// tenant other has other.test (carol, dave).
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	mo := o.Mg
	prev := mo.Config
	mo.Config = func(c *config.Config) {
		c.HTTP.RequireTOTP = true
		if prev != nil {
			prev(c)
		}
		if o.Config != nil {
			o.Config(c)
		}
	}
	n := mgtest.Start(t, mo)
	ctx := context.Background()
	e := &Env{Node: n, Secrets: map[string]string{}, Tokens: map[string]string{}, lastCode: map[string]time.Time{}}
	st := n.Store
	var err error
	if e.TenantB, err = st.CreateTenant(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	db, err := st.CreateDomain(ctx, e.TenantB.ID, "other.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetRoutes(ctx, e.TenantB.ID, db.ID, []store.Route{{Priority: 10, Target: "smtp://" + n.Down.Addr(), TLS: "opportunistic"}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"carol@other.test", "dave@other.test"} {
		if _, err := st.CreateUser(ctx, e.TenantB.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	hash, err := passwd.Hash(Password)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, a := range []store.Account{
		{Login: Operator, Role: store.RoleOperator},
		{Login: AdminA, Role: store.RoleAdmin, TenantID: n.Tenant.ID},
		{Login: UserA, Role: store.RoleUser, TenantID: n.Tenant.ID},
		{Login: AdminB, Role: store.RoleAdmin, TenantID: e.TenantB.ID},
		{Login: UserB, Role: store.RoleUser, TenantID: e.TenantB.ID},
	} {
		a.Hash, a.Created = hash, now
		if _, err := st.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for name, tk := range map[string]store.APIToken{
		"op":      {Scope: "write"},
		"a-write": {TenantID: n.Tenant.ID, Scope: "write"},
		"a-read":  {TenantID: n.Tenant.ID, Scope: "read"},
		"b-write": {TenantID: e.TenantB.ID, Scope: "write"},
	} {
		secret, h := web.NewAPISecret()
		tk.Name, tk.Hash, tk.Created, tk.CreatedBy = name, h, now, "test"
		if _, err := st.CreateAPIToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
		e.Tokens[name] = secret
	}
	// Tenant acme's administrator and tokens may see its audit archive
	// (tenant other's administrator and token may not see theirs).
	for _, who := range []string{AdminA, "api:a-write", "api:a-read"} {
		if err := st.SetArchiveAccess(ctx, n.Tenant.ID, who, true); err != nil {
			t.Fatal(err)
		}
	}
	if e.Web, err = n.App.Web(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Web)
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

// Client is a browser-like HTTP client: cookies, no automatic redirects.
type Client struct {
	t    testing.TB
	e    *Env
	HTTP *http.Client
	CSRF string
}

// NewClient makes a client with an empty cookie jar.
func (e *Env) NewClient(t testing.TB) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{t: t, e: e, HTTP: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
var secretRe = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)

// Get fetches a path and returns status and body.
func (c *Client) Get(path string) (int, string) {
	c.t.Helper()
	resp, err := c.HTTP.Get(c.e.URL + path)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRe.FindSubmatch(b); m != nil {
		c.CSRF = string(m[1])
	}
	return resp.StatusCode, string(b)
}

// Post sends a form with the session's CSRF token (unless form sets
// "csrf" itself) and returns status, Location and body.
func (c *Client) Post(path string, form url.Values) (int, string, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok && c.CSRF != "" {
		form.Set("csrf", c.CSRF)
	}
	resp, err := c.HTTP.PostForm(c.e.URL+path, form)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// Login logs in with password and TOTP (enrolling on first login) and
// fails the test unless it ends on a logged-in page.
func (c *Client) Login(login string) {
	c.t.Helper()
	if st, loc := c.LoginStatus(login, Password); st != http.StatusSeeOther || strings.HasPrefix(loc, "/login") {
		c.t.Fatalf("login %s: status %d location %q", login, st, loc)
	}
	// Pick up the session's CSRF token.
	c.Get("/account")
}

// LoginStatus runs the login and returns the final status and Location
// without failing.
func (c *Client) LoginStatus(login, password string) (int, string) {
	c.t.Helper()
	c.Get("/login")
	st, loc, _ := c.Post("/login", url.Values{"login": {login}, "password": {password}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/login/totp") {
		return st, loc
	}
	_, body := c.Get("/login/totp")
	secret := c.e.Secrets[login]
	if m := secretRe.FindStringSubmatch(body); m != nil {
		secret = m[1]
	}
	if secret == "" {
		c.t.Fatalf("login %s: TOTP asked but no secret known", login)
	}
	code, err := totp.GenerateCode(secret, c.e.codeTime(login))
	if err != nil {
		c.t.Fatal(err)
	}
	st, loc, _ = c.Post("/login/totp", url.Values{"code": {code}})
	if st == http.StatusSeeOther {
		c.e.Secrets[login] = secret
	}
	return st, loc
}

// codeTime picks the time to make a TOTP code for: now, or the next 30 s
// step after the last one used (one step ahead is within the allowed skew;
// beyond that it waits).
func (e *Env) codeTime(login string) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	at := now
	if last, ok := e.lastCode[login]; ok && at.Unix()/30 <= last.Unix()/30 {
		at = last.Add(30 * time.Second)
	}
	if d := at.Sub(now); d > 25*time.Second {
		time.Sleep(d - 25*time.Second)
	}
	e.lastCode[login] = at
	return at
}

// API calls /api/v1 with a token and decodes the JSON answer into out (if
// not nil). It returns the status.
func (e *Env) API(t testing.TB, token, method, path string, body any, out any) int {
	t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	st, _, b := e.RawAPI(t, auth, method, path, body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: status %d, body %q: %v", method, path, st, b, err)
		}
	}
	return st
}

// RawAPI calls /api/v1 with an Authorization header value as given (""
// for none) and a JSON body, and returns the answer undecoded.
func (e *Env) RawAPI(t testing.TB, auth, method, path string, body any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, e.URL+"/api/v1"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
