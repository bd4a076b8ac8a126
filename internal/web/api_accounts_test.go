package web_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// The API manages console logins and mailboxes as the console pages do:
// the same rules, and never a password hash in an answer.
func TestAPIManagesLoginsAndMailboxes(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	a := newAPIClient(t, e)
	type account struct {
		ID          int64  `json:"id"`
		Login       string `json:"login"`
		Role        string `json:"role"`
		Password    bool   `json:"password"`
		AppPassword bool   `json:"app_password"`
	}
	find := func(login string) *account {
		t.Helper()
		var as []account
		a.want(http.StatusOK, "a-write", "GET", "/accounts", nil, &as)
		for _, x := range as {
			if x.Login == login {
				return &x
			}
		}
		return nil
	}

	var dora account
	a.want(http.StatusCreated, "a-write", "POST", "/accounts", map[string]string{"login": "Dora@example.test", "role": "user", "password": consoletest.Password}, &dora)
	if dora.Login != "dora@example.test" || dora.Role != "user" || !dora.Password || dora.AppPassword {
		t.Fatalf("created %+v", dora)
	}
	// A tenant token makes no operator, no login outside the tenant's
	// domains, and a read token nothing at all.
	a.want(http.StatusForbidden, "a-write", "POST", "/accounts", map[string]string{"login": "root2", "role": "operator", "password": consoletest.Password}, nil)
	a.want(http.StatusBadRequest, "a-write", "POST", "/accounts", map[string]string{"login": "eve@other.test", "role": "user", "password": consoletest.Password}, nil)
	a.want(http.StatusForbidden, "a-read", "POST", "/accounts", map[string]string{"login": "fay@example.test", "role": "user"}, nil)
	_, _, raw := a.do(e.Tokens["a-write"], "GET", "/accounts", nil)
	if strings.Contains(string(raw), "argon2") || strings.Contains(string(raw), "totp_secret") {
		t.Fatalf("a secret in the listing: %s", raw)
	}

	id := strconv.FormatInt(dora.ID, 10)
	var app struct {
		Login       string `json:"login"`
		AppPassword string `json:"app_password"`
	}
	a.want(http.StatusCreated, "a-write", "POST", "/accounts/"+id+"/app-password", nil, &app)
	if app.Login != "dora@example.test" || len(app.AppPassword) != 16 {
		t.Fatalf("app password %+v", app)
	}
	if d := find("dora@example.test"); d == nil || !d.AppPassword {
		t.Fatalf("after making an app password: %+v", d)
	}
	a.want(http.StatusNoContent, "a-write", "DELETE", "/accounts/"+id+"/app-password", nil, nil)
	if d := find("dora@example.test"); d == nil || d.AppPassword {
		t.Fatalf("after removing the app password: %+v", d)
	}
	a.want(http.StatusBadRequest, "a-write", "PUT", "/accounts/"+id+"/password", map[string]string{"password": "short"}, nil)
	a.want(http.StatusNoContent, "a-write", "PUT", "/accounts/"+id+"/password", map[string]string{"password": consoletest.Password + "2"}, nil)
	a.want(http.StatusNoContent, "a-write", "POST", "/accounts/"+id+"/totp-reset", nil, nil)
	a.want(http.StatusNoContent, "a-write", "DELETE", "/accounts/"+id, nil, nil)
	if find("dora@example.test") != nil {
		t.Fatal("deleted login still listed")
	}
	a.want(http.StatusNotFound, "a-write", "DELETE", "/accounts/"+id, nil, nil)

	type mailboxes struct {
		ContractMB int64 `json:"contract_mb"`
		Mailboxes  []struct {
			Address string `json:"address"`
			QuotaMB int64  `json:"quota_mb"`
		} `json:"mailboxes"`
	}
	quota := func(addr string) int64 {
		var mv mailboxes
		a.want(http.StatusOK, "a-write", "GET", "/mailboxes", nil, &mv)
		for _, m := range mv.Mailboxes {
			if m.Address == addr {
				return m.QuotaMB
			}
		}
		t.Fatalf("%s not listed: %+v", addr, mv)
		return 0
	}
	a.want(http.StatusNoContent, "a-write", "PUT", "/mailboxes/"+consoletest.UserA+"/quota", map[string]int{"quota_mb": 123}, nil)
	if q := quota(consoletest.UserA); q != 123 {
		t.Fatalf("quota %d, want 123", q)
	}
	a.want(http.StatusBadRequest, "a-write", "PUT", "/mailboxes/"+consoletest.UserA+"/quota", map[string]int{"quota_mb": -1}, nil)
	a.want(http.StatusBadRequest, "a-write", "PUT", "/mailboxes/"+consoletest.UserA+"/quota", map[string]string{}, nil)
	a.want(http.StatusNoContent, "a-write", "PUT", "/mailboxes/"+consoletest.UserA+"/password", map[string]string{"password": consoletest.Password}, nil)
}
