package web_test

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

var outLinkRE = regexp.MustCompile(`/o/link\?t=(\S+)`)

// Outbound protection in the console: an administrator writes a rule in
// the form and tests a pasted message; the sender sees their held
// messages (in Japanese) and cancels one; the approver's mailed link
// shows a confirmation page and approves with one click, after which the
// message is delivered once and the link changes nothing more.
func TestOutboundConsole(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	if err := e.Store.SetSetting(ctx, store.Setting{TenantID: e.Tenant.ID, Scope: store.ScopeTenant, Key: "outbound.approvers", Value: "bob@example.test"}); err != nil {
		t.Fatal(err)
	}
	admin := e.NewClient(t)
	admin.Login(consoletest.AdminA)
	st, loc, body := admin.Post("/outbound/rules", url.Values{"name": {"顧客リスト"}, "enabled": {"1"}, "scope": {"tenant"}, "action": {"hold"},
		"conditions": {"body contains 顧客リスト\nrcpt outside"}, "reason_ja": {"顧客情報の送信"}, "reason": {"customer data"}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/outbound/rules") {
		t.Fatalf("add rule: %d %q %.300s", st, loc, body)
	}
	if st, _, body := admin.Post("/outbound/rules", url.Values{"name": {"bad"}, "action": {"hold"}, "conditions": {"body frobs x"}}); st != http.StatusBadRequest ||
		!strings.Contains(body, "frobs") {
		t.Fatalf("bad rule: %d %.300s", st, body)
	}
	st, page := admin.Get("/outbound/rules")
	if st != http.StatusOK || !strings.Contains(page, "body contains 顧客リスト") || !strings.Contains(page, "Hold for approval") {
		t.Fatalf("rules page: %d", st)
	}
	rs, _ := e.Store.OutboundRules(ctx, e.Tenant.ID)
	if st, page := admin.Get("/outbound/rules/" + strconv.FormatInt(rs[0].ID, 10)); st != http.StatusOK || !strings.Contains(page, "顧客情報の送信") {
		t.Fatalf("edit page: %d", st)
	}
	msg := "From: alice@example.test\r\nTo: x@partner.test\r\nSubject: 名簿\r\n\r\n顧客リストを添付します\r\n"
	st, _, page = admin.Post("/outbound/test", url.Values{"message": {strings.ReplaceAll(msg, "\r\n", "\n")}})
	if st != http.StatusOK || !regexp.MustCompile(`id="out-test-outcome">Outcome: held for approval`).MatchString(page) {
		t.Fatalf("test page: %d %.500s", st, page)
	}

	for _, s := range []string{"名簿 1", "名簿 2"} {
		if err := sendSMTP(t, e.OutboundAddr(), consoletest.UserA, []string{"x@partner.test"}, strings.ReplaceAll(strings.Replace(msg, "名簿", s, 1), "\r\n", "\n")); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := e.Store.OutboundHolds(ctx, store.HoldFilter{TenantID: e.Tenant.ID})
	if err != nil || len(hs) != 2 {
		t.Fatalf("holds: %d %v", len(hs), err)
	}
	first, second := hs[1], hs[0] // newest first

	// The sender's view, in Japanese: both waiting, cancel offered, approve not.
	user := e.NewClient(t)
	user.Login(consoletest.UserA)
	u, _ := url.Parse(e.URL + "/")
	user.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: "mg_lang", Value: "ja", Path: "/"}})
	st, page = user.Get("/outbound/holds")
	if st != http.StatusOK || strings.Count(page, "<td>待機中</td>") != 2 || !strings.Contains(page, "名簿 1") || !strings.Contains(page, "送信を取り消す") || strings.Contains(page, "/approve") {
		t.Fatalf("user's holds: %d %.2000s", st, page)
	}
	if st, _, _ := user.Post("/outbound/holds/"+first.MessageID+"/approve", nil); st != http.StatusForbidden {
		t.Fatalf("the sender approving: %d", st)
	}
	if st, _, _ := user.Post("/outbound/holds/"+second.MessageID+"/cancel", url.Values{"note": {"宛先誤り"}}); st != http.StatusSeeOther {
		t.Fatalf("cancel: %d", st)
	}
	if h, _ := e.Store.OutboundHold(ctx, e.Tenant.ID, second.MessageID); h.State != store.HoldCancelled || h.Note != "宛先誤り" {
		t.Fatalf("cancelled hold: %+v", h)
	}
	if st, _ := admin.Get("/outbound/holds/" + first.MessageID); st != http.StatusOK {
		t.Fatalf("admin's view: %d", st)
	}
	// The approver (a user) sees the pending approval, with approve and
	// reject but not cancel, and not the sender's cancelled one.
	hash, err := passwd.Hash(consoletest.Password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateAccount(ctx, store.Account{Login: "bob@example.test", Role: store.RoleUser, TenantID: e.Tenant.ID, Hash: hash, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	bob := e.NewClient(t)
	bob.Login("bob@example.test")
	st, page = bob.Get("/outbound/holds")
	if st != http.StatusOK || !strings.Contains(page, first.MessageID+"/approve") || !strings.Contains(page, first.MessageID+"/reject") ||
		strings.Contains(page, first.MessageID+"/cancel") || strings.Contains(page, second.MessageID) {
		t.Fatalf("approver's holds: %d %.3000s", st, page)
	}
	if st, _ := e.NewClient(t).Get("/outbound/holds/" + first.MessageID); st != http.StatusSeeOther {
		t.Fatalf("anonymous: %d", st)
	}

	// The approver's link.
	var link string
	mgtest.WaitFor(t, 20*time.Second, "approval request", func() bool {
		for _, m := range e.Down.Messages() {
			if len(m.To) == 1 && m.To[0] == "bob@example.test" {
				for _, x := range outLinkRE.FindAllStringSubmatch(decodeBody(t, m.Data), -1) {
					if l, _ := url.QueryUnescape(x[1]); link == "" {
						link = l
					}
				}
			}
		}
		return link != ""
	})
	anon := e.NewClient(t)
	st, page = anon.Get("/o/link?t=" + url.QueryEscape(link))
	if st != http.StatusOK || !strings.Contains(page, `id="out-link-confirm"`) || !strings.Contains(page, "Approve this message?") {
		t.Fatalf("link page: %d %.500s", st, page)
	}
	if h, _ := e.Store.OutboundHold(ctx, e.Tenant.ID, first.MessageID); h.State != store.HoldPending {
		t.Fatalf("a GET of the link decided: %+v", h)
	}
	st, _, page = anon.Post("/o/link", url.Values{"t": {link}})
	if st != http.StatusOK || !strings.Contains(page, "Approved: the message is on its way.") {
		t.Fatalf("link post: %d %.500s", st, page)
	}
	mgtest.WaitFor(t, 20*time.Second, "approved message delivered", func() bool { return len(e.Internet.Messages()) == 1 })
	if st, _, page := anon.Post("/o/link", url.Values{"t": {link}}); st != http.StatusOK || !strings.Contains(page, "already decided") {
		t.Fatalf("second post: %d %.300s", st, page)
	}
	if st, _ := anon.Get("/o/link?t=" + url.QueryEscape(link+"x")); st != http.StatusBadRequest {
		t.Fatalf("tampered link: %d", st)
	}
}

// decodeBody is a notice's decoded text.
func decodeBody(t *testing.T, raw []byte) string {
	t.Helper()
	m, err := mailtext.Parse(context.Background(), bytes.NewReader(raw), mailtext.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return m.Text
}
