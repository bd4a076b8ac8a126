package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

var errorText = regexp.MustCompile(`(?s)<p class="error"[^>]*>(.*?)</p>`)

// A tenant administrator learns nothing about other tenants' domains or
// about other tenants' and the operators' logins from the answers to what
// they add.
func TestAdministratorsCannotEnumerateOtherTenants(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	a := newAPIClient(t, e)

	// Domains: a name tenant other serves is accepted like a free one, as
	// an unverified domain of acme's; other.test stays other's.
	type domainOut struct {
		Name     string `json:"name"`
		Verified bool   `json:"verified"`
		Record   *struct{ Name, Type, Value string }
	}
	var taken, free domainOut
	a.want(http.StatusCreated, "a-write", "POST", "/domains", map[string]any{"name": "other.test"}, &taken)
	a.want(http.StatusCreated, "a-write", "POST", "/domains", map[string]any{"name": "never-seen.test"}, &free)
	if taken.Verified || free.Verified || taken.Record == nil || free.Record == nil {
		t.Fatalf("answers differ: %+v %+v", taken, free)
	}
	if d, err := e.Store.DomainByName(t.Context(), "other.test"); err != nil || d.TenantID != e.TenantB.ID {
		t.Fatalf("other.test: %+v %v", d, err)
	}

	// Logins: the operator's login, another tenant's administrator, an
	// address of another tenant's domain that has no login, and a name
	// outside every domain get one and the same answer.
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	var status int
	var text string
	for i, login := range []string{consoletest.Operator, consoletest.AdminB, "nobody@other.test", "nobody", consoletest.UserA} {
		st, _, body := c.Post("/accounts", url.Values{"login": {login}, "role": {"admin"}, "password": {consoletest.Password}})
		m := errorText.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("%s: %d without an error text", login, st)
		}
		if i == 0 {
			status, text = st, m[1]
			if st != http.StatusBadRequest {
				t.Fatalf("%s: %d %q", login, st, m[1])
			}
			continue
		}
		if st != status || m[1] != text {
			t.Errorf("%s: %d %q, unlike %d %q for %s", login, st, m[1], status, text, consoletest.Operator)
		}
	}
}
