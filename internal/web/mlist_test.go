package web_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// postFile sends a multipart form with a CSV file the way the console's
// import form does.
func postFile(t *testing.T, e *consoletest.Env, c *consoletest.Client, path, csv string, fields url.Values) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, vs := range fields {
		mw.WriteField(k, vs[0])
	}
	mw.WriteField("csrf", c.CSRF)
	fw, _ := mw.CreateFormFile("file", "members.csv")
	io.WriteString(fw, csv)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.URL+path, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestListConsole: an administrator creates a list and names alice its
// administrator; alice, an end user, then manages its members in
// Japanese and English, and sees no other list.
func TestListConsole(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	admin := e.NewClient(t)
	admin.Login(consoletest.AdminA)
	st, loc, _ := admin.Post("/ml", url.Values{"address": {"Sales@example.test"}, "description": {"営業部"}, "posting": {"members"}, "subject_serial": {"1"}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/ml/") {
		t.Fatalf("create: %d %q", st, loc)
	}
	page, _, _ := strings.Cut(loc, "?")
	if st, _, _ := admin.Post("/ml", url.Values{"address": {"other@example.test"}}); st != http.StatusSeeOther {
		t.Fatalf("second list: %d", st)
	}
	if st, _, _ := admin.Post(page+"/admins", url.Values{"admins": {"alice@example.test"}}); st != http.StatusSeeOther {
		t.Fatalf("admins: %d", st)
	}
	st, body := admin.Get("/ml")
	if st != 200 || !strings.Contains(body, "sales@example.test") || !strings.Contains(body, "other@example.test") || !strings.Contains(body, "[sales:00000]") {
		t.Fatalf("list page: %d\n%s", st, body)
	}

	alice := e.NewClient(t)
	alice.Login(consoletest.UserA)
	st, body = alice.Get("/ml")
	if st != 200 || !strings.Contains(body, "sales@example.test") || strings.Contains(body, "other@example.test") || strings.Contains(body, "ml-create") {
		t.Fatalf("alice's lists: %d\n%s", st, body)
	}
	if st, _, _ := alice.Post(page+"/members", url.Values{"address": {"yamada@customer.example"}, "comment": {"山田様 (株式会社例)"}}); st != http.StatusSeeOther {
		t.Fatalf("alice adds a member: %d", st)
	}
	if st, _ := postFile(t, e, alice, page+"/import", "address,comment\r\nsato@customer.example,佐藤様\r\n", nil); st != http.StatusSeeOther {
		t.Fatalf("alice imports: %d", st)
	}
	for _, lang := range []struct{ code, want string }{{"ja", "メーリングリスト"}, {"en", "Mailing list"}} {
		alice.Post("/lang", url.Values{"lang": {lang.code}, "next": {page}})
		st, body := alice.Get(page)
		if st != 200 || !strings.Contains(body, lang.want) || !strings.Contains(body, "山田様 (株式会社例)") || !strings.Contains(body, "sato@customer.example") {
			t.Fatalf("%s list page: %d\n%s", lang.code, st, body)
		}
		if strings.Contains(body, "ml-delete") || strings.Contains(body, `action="`+page+`/admins"`) {
			t.Fatalf("%s: a list administrator is offered tenant administration", lang.code)
		}
	}
	st, csv := alice.Get(page + "/members.csv")
	if st != 200 || csv != "address,comment,bounces,disabled\nsato@customer.example,佐藤様,0,false\nyamada@customer.example,山田様 (株式会社例),0,false\n" {
		t.Fatalf("export: %d %q", st, csv)
	}
	if st, _, _ := alice.Post(page+"/members/remove", url.Values{"address": {"sato@customer.example"}}); st != http.StatusSeeOther {
		t.Fatalf("remove: %d", st)
	}
	// The list alice does not administer, and list administration, are refused.
	ls, _ := e.Store.MailingLists(context.Background(), e.Tenant.ID)
	otherPage := "/ml/" + strconv.FormatInt(ls[0].ID, 10) // other@ sorts first
	if ls[0].Address != "other@example.test" {
		t.Fatalf("lists %+v", ls)
	}
	if st, _ := alice.Get(otherPage); st != http.StatusForbidden {
		t.Fatalf("alice opens another list: %d", st)
	}
	if st, _, _ := alice.Post(page+"/delete", nil); st != http.StatusForbidden {
		t.Fatalf("alice deletes her list: %d", st)
	}
	// A nesting loop is refused with a clear message.
	if st, _, _ := admin.Post(otherPage+"/members", url.Values{"address": {"sales@example.test"}}); st != http.StatusSeeOther {
		t.Fatalf("nest: %d", st)
	}
	st, _, body = admin.Post(page+"/members", url.Values{"address": {"other@example.test"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "sales@example.test → other@example.test → sales@example.test") {
		t.Fatalf("loop: %d\n%s", st, body)
	}
}

// TestListAPI drives the list routes through the API, every answer
// checked against openapi.json.
func TestListAPI(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	a := newAPIClient(t, e)
	var l struct {
		ID            int64
		Address       string
		BounceAddress string `json:"bounce_address"`
		Posting       string
		Admins        []string
	}
	a.want(http.StatusCreated, "a-write", "POST", "/mailing-lists", map[string]any{"address": "team@example.test", "posting": "domain", "reply_to_list": true}, &l)
	if l.Address != "team@example.test" || l.BounceAddress != "team-bounces@example.test" || l.Posting != "domain" {
		t.Fatalf("created %+v", l)
	}
	id := "/mailing-lists/" + strconv.FormatInt(l.ID, 10)
	a.want(http.StatusConflict, "a-write", "POST", "/mailing-lists", map[string]any{"address": "team@example.test"}, nil)
	a.want(http.StatusBadRequest, "a-write", "POST", "/mailing-lists", map[string]any{"address": "alice@example.test"}, nil)
	a.want(http.StatusForbidden, "a-read", "POST", "/mailing-lists", map[string]any{"address": "x@example.test"}, nil)
	a.want(http.StatusNoContent, "a-write", "PUT", id+"/members/partner@example.net", map[string]any{"comment": "Partner Inc."}, nil)
	a.want(http.StatusNoContent, "a-write", "PUT", id+"/members/bob@example.test", nil, nil)
	a.want(http.StatusOK, "a-write", "PUT", id+"/admins", map[string]any{"admins": []string{"bob@example.test"}}, &l)
	if len(l.Admins) != 1 || l.Admins[0] != "bob@example.test" {
		t.Fatalf("admins %+v", l)
	}
	var ms []struct {
		Address, Comment string
		Disabled         bool
	}
	a.want(http.StatusOK, "a-read", "GET", id+"/members", nil, &ms)
	if len(ms) != 2 || ms[1].Address != "partner@example.net" || ms[1].Comment != "Partner Inc." {
		t.Fatalf("members %+v", ms)
	}
	a.want(http.StatusOK, "a-write", "PUT", id, map[string]any{"posting": "members", "subject_serial": true}, &l)
	a.want(http.StatusBadRequest, "a-write", "PUT", id, map[string]any{"posting": "everybody"}, nil)
	a.want(http.StatusNoContent, "a-write", "POST", id+"/members/partner@example.net/enable", nil, nil)
	a.want(http.StatusNotFound, "a-write", "POST", id+"/members/nobody@example.net/enable", nil, nil)
	a.want(http.StatusNoContent, "a-write", "DELETE", id+"/members/partner@example.net", nil, nil)
	a.want(http.StatusNotFound, "b-write", "GET", id, nil, nil)
	var all []struct{ ID int64 }
	a.want(http.StatusOK, "a-read", "GET", "/mailing-lists", nil, &all)
	if len(all) != 1 {
		t.Fatalf("lists %+v", all)
	}
	a.want(http.StatusNoContent, "a-write", "DELETE", id, nil, nil)
	a.want(http.StatusNotFound, "a-read", "GET", id, nil, nil)
}
