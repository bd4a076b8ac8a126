package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dirsync/dirsynctest"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// TestConsoleDirectory: from the domains page a tenant administrator
// reaches the domain's recipient verification (English and Japanese),
// sets the directory, synchronises it and sees its addresses; a list the
// source returns empty is held with the explanation and applied only by
// the confirmation button; the API shows the same.
func TestConsoleDirectory(t *testing.T) {
	g := dirsynctest.NewGraph(t)
	e := consoletest.Start(t, consoletest.Options{Mg: mgtest.Options{Config: func(c *config.Config) {
		c.Continuity.GraphURL, c.Continuity.GraphLoginURL = g.URL, g.URL
	}}})
	admin := e.NewClient(t)
	admin.Login(consoletest.AdminA)
	setLang(t, admin, "en")
	if _, body := admin.Get("/domains"); !strings.Contains(body, `href="/domains/example.test/directory"`) {
		t.Fatalf("domains page without the link:\n%s", body)
	}
	if st, _, _ := admin.Post("/continuity/credentials", url.Values{"provider": {"graph"}, "credentials": {string(g.Credentials())}}); st != http.StatusSeeOther {
		t.Fatalf("credentials: %d", st)
	}
	if st, loc, _ := admin.Post("/domains/example.test/recipient-check", url.Values{"mode": {"directory"}, "source": {"graph"}}); st != http.StatusSeeOther ||
		!strings.HasPrefix(loc, "/domains/example.test/directory") {
		t.Fatalf("set: %d %s", st, loc)
	}
	g.Set([]dirsynctest.GraphObject{{DisplayName: "佐藤 一郎", Mail: "ichiro@example.test", ProxyAddresses: []string{"SMTP:ichiro@example.test", "smtp:sato@example.test"}}},
		[]dirsynctest.GraphObject{{DisplayName: "Sales", Mail: "sales@example.test"}})
	if st, _, _ := admin.Post("/domains/example.test/directory/sync", nil); st != http.StatusSeeOther {
		t.Fatalf("sync: %d", st)
	}
	st, body := admin.Get("/domains/example.test/directory")
	if st != http.StatusOK || !strings.Contains(body, "Addresses: 3") || !strings.Contains(body, "<td>sato@example.test</td><td>Alias</td><td>ichiro@example.test</td><td>佐藤 一郎</td>") ||
		!strings.Contains(body, "<td>sales@example.test</td><td>Group</td>") || !strings.Contains(body, `<option value="directory" selected>`) {
		t.Fatalf("page: %d\n%s", st, body)
	}
	setLang(t, admin, "ja")
	if _, body = admin.Get("/domains/example.test/directory"); !strings.Contains(body, "ユーザ存在確認") || !strings.Contains(body, "<td>エイリアス</td>") ||
		!strings.Contains(body, "アドレス数: 3") {
		t.Fatalf("ja page:\n%s", body)
	}

	// The source answers nothing: held, explained, the list stays.
	g.Set(nil, nil)
	admin.Post("/domains/example.test/directory/sync", nil)
	_, body = admin.Get("/domains/example.test/directory")
	if !strings.Contains(body, `id="directory-confirm"`) || !strings.Contains(body, "以前の一覧を引き続き使用しています") || !strings.Contains(body, "アドレス数: 3") {
		t.Fatalf("held page:\n%s", body)
	}
	// The source fails: recorded and shown.
	g.Fail(http.StatusServiceUnavailable)
	if st, _, _ := admin.Post("/domains/example.test/directory/sync", nil); st != http.StatusSeeOther {
		t.Fatalf("failing sync: %d", st)
	}
	if _, body = admin.Get("/domains/example.test/directory"); !strings.Contains(body, `id="directory-error"`) || !strings.Contains(body, "503") {
		t.Fatalf("failure not shown:\n%s", body)
	}
	g.Fail(0)
	admin.Post("/domains/example.test/directory/sync", url.Values{"confirm": {"1"}})
	if _, body = admin.Get("/domains/example.test/directory"); !strings.Contains(body, "アドレス数: 0") || strings.Contains(body, "sato@example.test") {
		t.Fatalf("after confirming:\n%s", body)
	}

	// The API.
	a := newAPIClient(t, e)
	compact := func(b []byte) string {
		var out bytes.Buffer
		json.Compact(&out, b)
		return out.String()
	}
	g.Set([]dirsynctest.GraphObject{{Mail: "ichiro@example.test"}}, nil)
	if st, _, b := a.do(e.Tokens["a-write"], http.MethodPost, "/domains/example.test/directory/sync", map[string]any{}); st != http.StatusOK ||
		!strings.Contains(compact(b), `"applied":true`) {
		t.Fatalf("API sync: %d %s", st, b)
	}
	if st, _, b := a.do(e.Tokens["a-read"], http.MethodGet, "/domains/example.test/directory", nil); st != http.StatusOK ||
		!strings.Contains(compact(b), `"address":"ichiro@example.test"`) || !strings.Contains(compact(b), `"mode":"directory"`) {
		t.Fatalf("API directory: %d %s", st, b)
	}
	if st, _, b := a.do(e.Tokens["a-write"], http.MethodPut, "/domains/example.test/recipient-check", map[string]any{"mode": "sometimes"}); st != http.StatusBadRequest {
		t.Fatalf("API bad mode: %d %s", st, b)
	}
}
