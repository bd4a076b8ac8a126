package web_test

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// A TOTP code given by several sessions at the same moment (a replay
// racing the real login, perhaps through another node) logs in one of
// them only.
func TestTOTPCodeNotReplayableConcurrently(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	e.NewClient(t).Login(consoletest.AdminA)
	code, err := totp.GenerateCode(e.Secrets[consoletest.AdminA], time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var clients []*consoletest.Client
	for range 4 {
		c := e.NewClient(t)
		c.Get("/login")
		if st, _, _ := c.Post("/login", url.Values{"login": {consoletest.AdminA}, "password": {consoletest.Password}}); st != http.StatusSeeOther {
			t.Fatalf("password step: %d", st)
		}
		c.Get("/login/totp")
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	in := 0
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, _, _ := c.Post("/login/totp", url.Values{"code": {code}}); st == http.StatusSeeOther {
				mu.Lock()
				in++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if in != 1 {
		t.Fatalf("%d sessions logged in with one code, want 1", in)
	}
}
