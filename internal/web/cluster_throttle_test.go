package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// secondNode serves the console and API of another node on e's
// PostgreSQL store, with the same clock.
func secondNode(t *testing.T, e *consoletest.Env, clk clock.Clock) string {
	t.Helper()
	cfg := e.App.Config
	cfg.DataDir, cfg.NodeID = t.TempDir(), "node-2"
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	h, err := a.Web()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Password guesses spread over two nodes count against one budget, and
// so do API calls with one token.
func TestThrottlesHoldAcrossNodes(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := consoletest.Start(t, consoletest.Options{Mg: mgtest.Options{Postgres: true, Clock: clk}})
	other := secondNode(t, e, clk)

	c := e.NewClient(t)
	for i := range 3 {
		if st, _ := c.LoginStatus(consoletest.UserA, "wrong password!"); st != http.StatusUnauthorized {
			t.Fatalf("node 1 attempt %d: %d", i, st)
		}
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := func(password string) int {
		resp, err := hc.Get(other + "/login")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := csrfField.FindSubmatch(body)
		if m == nil {
			t.Fatalf("no CSRF field on node 2's login page:\n%s", body)
		}
		resp, err = hc.PostForm(other+"/login", url.Values{"csrf": {string(m[1])}, "login": {consoletest.UserA}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 2 {
		if st := login("wrong again!"); st != http.StatusUnauthorized {
			t.Fatalf("node 2 attempt %d: %d", i, st)
		}
	}
	if st := login(consoletest.Password); st != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt, on node 2, with the right password: %d, want 429", st)
	}

	// The API: 100 calls a token may burst, whichever node answers them.
	api := func(base string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/domains", nil)
		req.Header.Set("Authorization", "Bearer "+e.Tokens["a-read"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 100 {
		base := e.URL
		if i%2 == 1 {
			base = other
		}
		if st := api(base); st != http.StatusOK {
			t.Fatalf("call %d: %d", i, st)
		}
	}
	for _, base := range []string{e.URL, other} {
		if st := api(base); st != http.StatusTooManyRequests {
			t.Fatalf("call 101 at %s: %d, want 429", base, st)
		}
	}
}
