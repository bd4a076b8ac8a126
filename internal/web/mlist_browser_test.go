package web_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/browser"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// TestBrowserListAdministrator: in the browser, the tenant administrator
// creates a list and names alice, an end user, its administrator; alice
// manages it in English and Japanese, on a desktop and on a phone-sized
// screen, and sees no other list.
func TestBrowserListAdministrator(t *testing.T) {
	b := browser.Launch(t)
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	board, err := e.Store.CreateMailingList(ctx, store.MailingList{TenantID: e.Tenant.ID, DomainID: e.Domain.ID, Address: "board@example.test",
		Name: "board", Description: "BOARD-SECRET", Posting: store.PostMembers}, 0)
	if err != nil {
		t.Fatal(err)
	}

	// The tenant administrator creates the list and names alice its
	// administrator.
	p := openTab(t, b, e.URL)
	p.loginAs(consoletest.AdminA, false)
	if st := p.goTo("/ml"); st != http.StatusOK {
		t.Fatalf("administrator's lists page: %d", st)
	}
	if s := p.text("#ml-count"); s != "1 of 10 mailing lists" {
		t.Errorf("list count %q", s)
	}
	p.fill("#ml-address", "sales@example.test")
	p.fill("#ml-description", "営業部")
	p.do("posting and serial", chromedp.SetValue(chromedp.ID("ml-posting"), "domain"), chromedp.Click(chromedp.ID("ml-serial")))
	p.checkTranslated("lists (administrator)")
	p.checkLayout("lists (administrator)")
	p.shot("console-ml-admin-en")
	if st := p.submit("#ml-create-submit"); st != http.StatusOK || !strings.HasPrefix(p.location(), "/ml/") {
		t.Fatalf("create: %d at %s", st, p.location())
	}
	ls, err := e.Store.MailingListsByAddress(ctx, []string{"sales@example.test"})
	if err != nil || len(ls) != 1 || ls[0].Posting != store.PostDomain || !ls[0].SubjectSerial || ls[0].Description != "営業部" {
		t.Fatalf("created %+v %v", ls, err)
	}
	sales := ls[0]
	p.fill(`#ml-admins input[name="admins"]`, consoletest.UserA)
	if st := p.submit("#ml-admins button"); st != http.StatusOK {
		t.Fatalf("admins: %d", st)
	}
	p.fill("#ml-member-address", "sato@customer.example")
	p.fill("#ml-member-comment", "佐藤様")
	if st := p.submit("#ml-member-submit"); st != http.StatusOK {
		t.Fatalf("add member: %d", st)
	}
	p.checkTranslated("list (administrator)")
	p.checkLayout("list (administrator)")
	p.shot("console-ml-admin-list-en")
	p.submit("#logout")

	// Alice, an end user, manages that list only.
	p.loginAs(consoletest.UserA, false)
	if st := p.goTo("/ml"); st != http.StatusOK {
		t.Fatalf("lists page: %d", st)
	}
	if s := p.text("#ml-lists"); !strings.Contains(s, "sales@example.test") || strings.Contains(s, "board@") {
		t.Fatalf("alice's lists: %q", s)
	}
	if n, _ := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#ml-create").length`)); n != 0 {
		t.Error("a list administrator is offered list creation")
	}
	p.checkTranslated("lists (list administrator)")
	p.checkLayout("lists (list administrator)")
	p.shot("console-ml-lists-en")

	p.do("open the list", chromedp.Click(chromedp.CSS(`#ml-lists a`), chromedp.NodeVisible))
	page := "/ml/" + strconv.FormatInt(sales.ID, 10)
	p.fill("#ml-member-address", "Yamada@Customer.example")
	p.fill("#ml-member-comment", "山田様 (株式会社例)")
	if st := p.submit("#ml-member-submit"); st != http.StatusOK || !strings.HasPrefix(p.location(), page) {
		t.Fatalf("add member: %d at %s", st, p.location())
	}
	if s := p.text("#ml-members"); !strings.Contains(s, "yamada@customer.example") || !strings.Contains(s, "山田様 (株式会社例)") || !strings.Contains(s, "佐藤様") {
		t.Fatalf("members after adding: %q", s)
	}
	if s := p.text("#ml-total"); !strings.HasPrefix(s, "2 ") {
		t.Errorf("member count %q", s)
	}
	if n, _ := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#ml-delete, #ml-admins").length`)); n != 0 {
		t.Error("a list administrator is offered deleting the list or naming its administrators")
	}
	p.checkTranslated("list (list administrator)")
	p.checkLayout("list (list administrator)")
	p.shot("console-ml-list-en")

	p.submit("#lang-ja")
	if p.location() != page && !strings.HasPrefix(p.location(), page+"?") {
		t.Errorf("language switch moved to %s", p.location())
	}
	if h := p.text("h1"); h != "メーリングリスト sales@example.test" {
		t.Errorf("Japanese heading %q", h)
	}
	p.checkTranslated("list (ja)")
	p.shot("console-ml-list-ja")

	// The page on a phone-sized screen, for the screenshots.
	p.do("phone viewport", chromedp.EmulateViewport(375, 812))
	p.goTo(page)
	p.shot("console-ml-list-ja-phone")

	// Another list of the tenant stays closed to her.
	if st := p.goTo("/ml/" + strconv.FormatInt(board.ID, 10)); st != http.StatusForbidden {
		t.Errorf("another list: %d", st)
	}
	p.checkClean()
}
