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

// TestBrowserListAdministrator: alice, an end user named administrator of
// one list, manages it in the browser in English and Japanese, on a
// desktop and on a phone-sized screen, and sees no other list.
func TestBrowserListAdministrator(t *testing.T) {
	b := browser.Launch(t)
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	mk := func(address, description string) store.MailingList {
		l, err := e.Store.CreateMailingList(ctx, store.MailingList{TenantID: e.Tenant.ID, DomainID: e.Domain.ID, Address: address,
			Name: strings.Split(address, "@")[0], Description: description, Posting: store.PostMembers, SubjectSerial: true}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	sales := mk("sales@example.test", "営業部")
	mk("board@example.test", "BOARD-SECRET")
	if err := e.Store.SetListAdmins(ctx, e.Tenant.ID, sales.ID, []string{consoletest.UserA}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.AddListMembers(ctx, e.Tenant.ID, sales.ID, []store.ListMember{{Address: "sato@customer.example", Comment: "佐藤様"}}, false); err != nil {
		t.Fatal(err)
	}

	p := openTab(t, b, e.URL)
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
	if st := p.goTo("/ml/" + strconv.FormatInt(sales.ID+1, 10)); st != http.StatusForbidden {
		t.Errorf("another list: %d", st)
	}
	p.checkClean()
}
