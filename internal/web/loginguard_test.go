package web_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// answer is one login attempt's outcome.
type answer struct {
	status     int
	retryAfter string
	body       string
}

// postLogin posts the login form with the client's cookies and token; xff,
// when set, is sent as X-Forwarded-For. Safe to call from goroutines.
func postLogin(c *consoletest.Client, base, login, password, xff string) (answer, error) {
	form := url.Values{"csrf": {c.CSRF}, "login": {login}, "password": {password}}
	req, err := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}, nil
}

// flood sends n login attempts at once and returns their answers.
func flood(t *testing.T, c *consoletest.Client, base string, n int, attempt func(i int) (login, xff string)) []answer {
	t.Helper()
	out := make([]answer, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			login, xff := attempt(i)
			out[i], errs[i] = postLogin(c, base, login, "wrong password "+strconv.Itoa(i), xff)
		}()
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// budgetOf makes a verifier whose memory budget holds n hashes of the
// default parameters.
func budgetOf(n uint32, before func()) *passwd.Verifier {
	return passwd.MustNew(passwd.Options{Budget: n * passwd.DefaultParams.Memory, BeforeHash: before})
}

// Sixty concurrent wrong passwords for one login from one address: the
// throttle's allowance is reserved before the slow hash, so at most that
// many are checked (401) and the rest are refused with 429 and Retry-After;
// no more hashes ever run at once than the memory budget holds.
func TestLoginFloodIsThrottled(t *testing.T) {
	v := budgetOf(2, nil)
	e := consoletest.Start(t, consoletest.Options{Mg: mgtest.Options{Passwords: v}})
	c := e.NewClient(t)
	c.Get("/login")
	const n = 60
	got := flood(t, c, e.URL, n, func(int) (string, string) { return consoletest.AdminA, "" })
	var n401, n429 int
	for _, a := range got {
		switch a.status {
		case http.StatusUnauthorized:
			n401++
		case http.StatusTooManyRequests:
			n429++
			if s, err := strconv.Atoi(a.retryAfter); err != nil || s < 1 {
				t.Errorf("429 with Retry-After %q", a.retryAfter)
			}
		default:
			t.Errorf("unexpected answer %d", a.status)
		}
	}
	if n401 < 1 || n401 > loginlimit.DefaultBurst || n401+n429 != n {
		t.Fatalf("%d × 401 and %d × 429 of %d attempts; want at most %d × 401, the rest 429", n401, n429, n, loginlimit.DefaultBurst)
	}
	st := v.Stats()
	if st.PeakChecks > 2 || st.PeakKiB > v.Budget() || st.Checks != int64(n401) {
		t.Fatalf("verifier %+v: peak above the bound of 2, or checks not matching the %d × 401", st, n401)
	}
	// Attempts refused as busy were given back; once the allowance is used
	// up, the right password is refused too.
	for i := n401; i < loginlimit.DefaultBurst; i++ {
		if a, err := postLogin(c, e.URL, consoletest.AdminA, "wrong again", ""); err != nil || a.status != http.StatusUnauthorized {
			t.Fatalf("rest of the allowance: %d %v", a.status, err)
		}
	}
	if a, err := postLogin(c, e.URL, consoletest.AdminA, consoletest.Password, ""); err != nil || a.status != http.StatusTooManyRequests {
		t.Fatalf("right password during the lock-out: %+v %v", a.status, err)
	}
}

// A flood spread over many addresses and unknown logins is not stopped by
// the per-address throttle, but the memory budget still bounds the hashes
// running at once: each attempt is checked (401) or refused (429), and
// every unknown login costs a dummy check.
func TestLoginFloodStaysInsidePasswordBudget(t *testing.T) {
	v := budgetOf(2, nil)
	e := consoletest.Start(t, consoletest.Options{
		Config: func(c *config.Config) { c.HTTP.TrustedProxy = []string{"127.0.0.0/8"} },
		Mg:     mgtest.Options{Passwords: v},
	})
	c := e.NewClient(t)
	c.Get("/login")
	const n = 40
	got := flood(t, c, e.URL, n, func(i int) (string, string) {
		return fmt.Sprintf("nobody%d@example.test", i), fmt.Sprintf("198.51.100.%d", i+1)
	})
	var n401, n429 int
	for _, a := range got {
		switch a.status {
		case http.StatusUnauthorized:
			n401++
		case http.StatusTooManyRequests:
			n429++
			if a.retryAfter != "1" {
				t.Errorf("busy answer with Retry-After %q", a.retryAfter)
			}
		default:
			t.Errorf("unexpected answer %d", a.status)
		}
	}
	st := v.Stats()
	if st.PeakChecks > 2 || st.PeakKiB > v.Budget() {
		t.Fatalf("peak %d checks / %d KiB above the budget of %d KiB", st.PeakChecks, st.PeakKiB, v.Budget())
	}
	if st.Checks != int64(n401) || st.Busy != int64(n429) || st.Dummies != n {
		t.Fatalf("verifier %+v for %d × 401, %d × 429 of %d unknown logins", st, n401, n429, n)
	}
}

// gate holds the first password check inside the memory budget until
// released.
type gate struct {
	hold    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	g.hold.Store(true)
	return g
}

func (g *gate) before() {
	if g.hold.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		<-g.release
	}
}

// When the memory budget is taken, a login is refused with 429 and
// Retry-After without checking anything, and the refusal does not count
// against the throttle.
func TestLoginWhilePasswordBudgetFullAnswers429(t *testing.T) {
	g := newGate()
	v := budgetOf(1, g.before)
	e := consoletest.Start(t, consoletest.Options{Mg: mgtest.Options{Passwords: v}})
	c1 := e.NewClient(t)
	c1.Get("/login")
	first := make(chan answer, 1)
	go func() {
		a, _ := postLogin(c1, e.URL, consoletest.AdminA, "wrong password", "")
		first <- a
	}()
	<-g.entered
	c2 := e.NewClient(t)
	c2.Get("/login")
	for i := range loginlimit.DefaultBurst + 1 {
		a, err := postLogin(c2, e.URL, consoletest.UserA, consoletest.Password, "")
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusTooManyRequests || a.retryAfter != "1" || !strings.Contains(a.body, "Too many logins are being checked") {
			t.Fatalf("attempt %d while the budget is full: %d Retry-After %q", i+1, a.status, a.retryAfter)
		}
	}
	close(g.release)
	if a := <-first; a.status != http.StatusUnauthorized {
		t.Fatalf("the check that held the budget: %d", a.status)
	}
	// Six refusals from this address did not use up its five attempts.
	if st, loc := c2.LoginStatus(consoletest.UserA, consoletest.Password); st != http.StatusSeeOther || loc != "/" {
		t.Fatalf("login after the flood: %d %q", st, loc)
	}
}

// An unknown login, a login without a local password and a disabled
// account cost one password check each, like a wrong password for a real
// one: the time of the answer does not tell which logins exist.
func TestUnknownLoginsCostAPasswordCheck(t *testing.T) {
	v := passwd.MustNew(passwd.Options{})
	fake := clock.NewFake(time.Now())
	e := consoletest.Start(t, consoletest.Options{Mg: mgtest.Options{Passwords: v, Clock: fake}})
	ctx := context.Background()
	carol, err := e.Store.AccountByLogin(ctx, consoletest.UserB)
	if err != nil {
		t.Fatal(err)
	}
	carol.Disabled = true
	if err := e.Store.UpdateAccount(ctx, carol); err != nil {
		t.Fatal(err)
	}
	c := e.NewClient(t)
	for _, tc := range []struct {
		login           string
		checks, dummies int64
	}{
		{consoletest.AdminA, 1, 0},    // known, wrong password
		{"nobody@example.test", 1, 1}, // served domain, no such user
		{"bob@example.test", 1, 1},    // a user, but no login and no delegated method
		{"ghost", 1, 1},               // not even an address
		{consoletest.UserB, 1, 0},     // disabled: its own hash is still checked
	} {
		before := v.Stats()
		if st, _ := c.LoginStatus(tc.login, "a wrong password"); st != http.StatusUnauthorized {
			t.Fatalf("%s: %d", tc.login, st)
		}
		after := v.Stats()
		if after.Checks-before.Checks != tc.checks || after.Dummies-before.Dummies != tc.dummies {
			t.Errorf("%s: %d checks, %d dummies; want %d, %d", tc.login,
				after.Checks-before.Checks, after.Dummies-before.Dummies, tc.checks, tc.dummies)
		}
	}
	fake.Advance(time.Minute) // this address has used its five attempts
	if st, _ := e.NewClient(t).LoginStatus(consoletest.UserB, consoletest.Password); st != http.StatusUnauthorized {
		t.Fatalf("disabled account with the right password: %d", st)
	}
}

// listenCounting accepts connections, counts them and closes them at once
// (an upstream that fails every check).
func listenCounting(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

// Settings naming a delegated login server in an internal network are
// refused when saved, whether the host is an IP literal or a name (resolved
// through the configured resolver), unless the operator allowed the network.
func TestLoginServerSettingsRefuseInternalTargets(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Add("imap.public.test. 60 IN A 1.1.1.1")
	dns.Add("idp.public.test. 60 IN A 1.0.0.1")
	dns.Add("intranet.test. 60 IN A 10.0.0.5")
	dns.Add("rebind.test. 60 IN A 1.1.1.1")
	dns.Add("rebind.test. 60 IN AAAA fd00::1")
	e := consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) {
		c.Auth.UpstreamAllow = []string{"192.168.7.0/24"}
		c.DNS.Resolver = dns.Addr()
	}})
	tok := e.Tokens["a-write"]
	put := func(key, value string) (int, string) {
		var out map[string]string
		st := e.API(t, tok, "PUT", "/policy", map[string]string{"scope": "tenant", "key": key, "value": value}, &out)
		return st, out["error"]
	}
	for _, kv := range [][2]string{
		{"login.imap", "imaps://127.0.0.1:993"},
		{"login.imap", "imap://[::1]:143"},
		{"login.imap", "imaps://localhost"},
		{"login.imap", "imaps://intranet.test"},
		{"login.imap", "imaps://rebind.test"},
		{"login.smtp", "smtps://169.254.169.254:465"},
		{"login.smtp", "smtp://10.1.2.3:25"},
		{"login.smtp", "smtp://[::ffff:127.0.0.1]:22"},
		{"login.smtp", "smtp://0.0.0.0:587"},
		{"login.oidc_issuer", "https://169.254.169.254/latest/meta-data"},
		{"login.oidc_issuer", "http://127.0.0.1:8080/"},
		{"login.oidc_issuer", "https://intranet.test/realms/x"},
	} {
		if st, msg := put(kv[0], kv[1]); st != http.StatusBadRequest || !strings.Contains(msg, "internal network") {
			t.Errorf("%s=%s: %d %q", kv[0], kv[1], st, msg)
		}
	}
	if st, msg := put("login.imap", "imaps://missing.test"); st != http.StatusBadRequest || !strings.Contains(msg, "cannot be resolved") {
		t.Errorf("unresolvable name: %d %q", st, msg)
	}
	for _, kv := range [][2]string{
		{"login.imap", "imaps://imap.public.test"},
		{"login.smtp", "smtp://1.1.1.1:587"},
		{"login.smtp", "smtp://192.168.7.25:587"}, // the operator's allowance
		{"login.oidc_issuer", "https://idp.public.test/"},
		{"spam.tag", "imaps://127.0.0.1"}, // other keys are not login servers
	} {
		if st, msg := put(kv[0], kv[1]); st != http.StatusNoContent {
			t.Errorf("%s=%s refused: %d %q", kv[0], kv[1], st, msg)
		}
	}

	// The console says it in the administrator's language.
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	c.Post("/account/lang", url.Values{"lang": {"ja"}})
	c.Get("/policy")
	st, _, body := c.Post("/policy", url.Values{"scope": {"tenant"}, "key": {"login.imap"}, "value": {"imaps://169.254.169.254"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "内部ネットワーク") {
		t.Fatalf("console refusal: %d", st)
	}
}

// A value that got past the check (written by the operator's CLI, or a
// name that resolves differently later) is still never connected to: the
// dialer refuses internal addresses at connect time.
func TestDelegatedLoginNeverConnectsToInternalNetworks(t *testing.T) {
	addr, accepted := listenCounting(t)
	e := consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) { c.Auth.UpstreamAllow = nil }})
	setTenant(t, e, e.Tenant.ID, map[string]string{"login.method": "imap", "login.imap": "imaps://" + addr})
	if st, _ := e.NewClient(t).LoginStatus("bob@example.test", "some password"); st != http.StatusServiceUnavailable {
		t.Fatalf("login against a loopback upstream: %d", st)
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the loopback upstream got %d connections", n)
	}
}

// A failing upstream is asked once, not once per attempt, until the retry
// delay has passed; and every attempt against it counts for the throttle,
// so the login page is not a free probe of other servers.
func TestDelegatedUpstreamFailuresAreCachedAndThrottled(t *testing.T) {
	addr, accepted := listenCounting(t)
	fake := clock.NewFake(time.Now())
	e := consoletest.Start(t, consoletest.Options{Mg: mgtest.Options{Clock: fake}})
	setTenant(t, e, e.Tenant.ID, map[string]string{"login.method": "imap", "login.imap": "imaps://" + addr})
	c := e.NewClient(t)
	for i := range loginlimit.DefaultBurst {
		if st, _ := c.LoginStatus("bob@example.test", "some password"); st != http.StatusServiceUnavailable {
			t.Fatalf("attempt %d: %d", i+1, st)
		}
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections to the failing upstream for %d attempts, want 1", n, loginlimit.DefaultBurst)
	}
	if st, _ := c.LoginStatus("bob@example.test", "some password"); st != http.StatusTooManyRequests {
		t.Fatalf("attempt past the allowance: %d", st)
	}
	fake.Advance(31 * time.Second)
	if st, _ := c.LoginStatus("bob@example.test", "some password"); st != http.StatusServiceUnavailable {
		t.Fatalf("after the retry delay: %d", st)
	}
	if n := accepted.Load(); n != 2 {
		t.Fatalf("after the retry delay the upstream is asked again: %d connections", n)
	}
}

// The post-login target and the language switch's target stay on this
// site, whatever the link says.
func TestRedirectTargetsStayOnSite(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	for _, next := range []string{"/%09/evil.test/x", "//evil.test", "/\\evil.test", "/%2F%2Fevil.test", "/%5Cevil.test", "https://evil.test"} {
		_, body := c.Get("/login?next=" + url.QueryEscape(next))
		if !strings.Contains(body, `name="next" value="/"`) {
			t.Errorf("login page keeps next=%q", next)
		}
		st, loc, _ := c.Post("/lang", url.Values{"lang": {"en"}, "next": {next}})
		if st != http.StatusSeeOther || loc != "/" {
			t.Errorf("language switch with next=%q: %d %q", next, st, loc)
		}
	}
	st, loc, _ := c.Post("/login", url.Values{"login": {consoletest.UserA}, "password": {consoletest.Password}, "next": {"/%09/evil.test/x"}})
	if st != http.StatusSeeOther || loc != "/" {
		t.Fatalf("login with a hostile next: %d %q", st, loc)
	}
}

// The language switch is a form like any other: it needs the session's
// CSRF token, or without a session the double-submit token of the page.
func TestLanguageSwitchNeedsCSRFToken(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	form := func(csrf string) url.Values {
		return url.Values{"lang": {"ja"}, "next": {"/login"}, "csrf": {csrf}}
	}
	if st, _, _ := c.Post("/lang", url.Values{"lang": {"ja"}, "next": {"/login"}}); st != http.StatusForbidden {
		t.Fatalf("no token, no page visited: %d", st)
	}
	c.Get("/login")
	if st, _, _ := c.Post("/lang", form("forged")); st != http.StatusForbidden {
		t.Fatalf("forged token: %d", st)
	}
	if st, loc, _ := c.Post("/lang", form(c.CSRF)); st != http.StatusSeeOther || loc != "/login" {
		t.Fatalf("token of the login page: %d %q", st, loc)
	}
	if _, body := c.Get("/login"); !strings.Contains(body, `lang="ja"`) {
		t.Fatal("the language did not change")
	}
	// Logged in, the session's token is the one.
	c.Login(consoletest.UserA)
	if st, _, _ := c.Post("/lang", form("forged")); st != http.StatusForbidden {
		t.Fatalf("logged in, forged token: %d", st)
	}
	if st, loc, _ := c.Post("/lang", url.Values{"lang": {"en"}, "next": {"/quarantine"}}); st != http.StatusSeeOther || loc != "/quarantine" {
		t.Fatalf("logged in, session token: %d %q", st, loc)
	}
}

// Guessing the current password on "My account" is throttled like a login
// (a stolen session must not become an unlimited password oracle).
func TestCurrentPasswordGuessingIsThrottled(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	c.Login(consoletest.UserA)
	for i := range loginlimit.DefaultBurst {
		if st, _, _ := c.Post("/account/password", url.Values{"current": {"guess " + strconv.Itoa(i)}, "password": {"a new long password"}}); st != http.StatusBadRequest {
			t.Fatalf("guess %d: %d", i+1, st)
		}
	}
	if st, _, _ := c.Post("/account/password", url.Values{"current": {consoletest.Password}, "password": {"a new long password"}}); st != http.StatusTooManyRequests {
		t.Fatalf("after %d wrong guesses: %d", loginlimit.DefaultBurst, st)
	}
}
