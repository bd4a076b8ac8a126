package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/attachlink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/browser"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

func sentLink(t *testing.T, e *consoletest.Env, id, sender, subject string) attachlink.StoreRecords {
	t.Helper()
	recs := attachlink.StoreRecords{S: e.Store.(store.AttachLinkStore)}
	now := time.Now()
	if err := recs.Create(context.Background(), attachlink.Link{ID: id, TenantID: e.Tenant.ID, Sender: sender, Rcpts: []string{"sato@customer.example"},
		Subject: subject, Files: []attachlink.File{{Name: "見積書.pdf", Size: 4}}, Created: now, Expires: now.Add(time.Hour), MaxDownloads: 5}); err != nil {
		t.Fatal(err)
	}
	return recs
}

// A sender sees the links of their own sent mail with the download log and
// revokes one; another user's links are neither listed nor reachable; the
// administrator sees every link of the tenant.
func TestSentLinksPages(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	recs := sentLink(t, e, "lnkalice", consoletest.UserA, "見積のご送付")
	sentLink(t, e, "lnkbob", "bob@example.test", "BOB-ONLY")
	if _, err := recs.Count(ctx, e.Tenant.ID, "lnkalice", attachlink.Download{At: time.Now(), File: "見積書.pdf", From: "198.51.100.7"}); err != nil {
		t.Fatal(err)
	}
	user := e.NewClient(t)
	user.Login(consoletest.UserA)
	st, body := user.Get("/links")
	if st != http.StatusOK || !strings.Contains(body, "見積のご送付") || !strings.Contains(body, "1 / 5") || strings.Contains(body, "BOB-ONLY") {
		t.Fatalf("user's links: %d\n%s", st, body)
	}
	if st, body = user.Get("/links/lnkalice"); st != http.StatusOK || !strings.Contains(body, "198.51.100.7") || !strings.Contains(body, "見積書.pdf") {
		t.Fatalf("own link's log: %d\n%s", st, body)
	}
	if st, _ = user.Get("/links/lnkbob"); st != http.StatusNotFound {
		t.Fatalf("another user's link: %d, want 404", st)
	}
	if st, _, _ = user.Post("/links/lnkbob/revoke", url.Values{}); st != http.StatusNotFound {
		t.Fatalf("revoking another user's link: %d, want 404", st)
	}
	if l, _ := recs.Get(ctx, e.Tenant.ID, "lnkbob"); l.Revoked {
		t.Fatal("bob's link revoked by alice")
	}
	if st, loc, _ := user.Post("/links/lnkalice/revoke", url.Values{}); st != http.StatusSeeOther || !strings.HasPrefix(loc, "/links/lnkalice") {
		t.Fatalf("revoke own link: %d %s", st, loc)
	}
	if l, _ := recs.Get(ctx, e.Tenant.ID, "lnkalice"); !l.Revoked {
		t.Fatal("own link not revoked")
	}
	es, _ := e.Store.AuditLog(ctx, store.AuditFilter{TenantID: e.Tenant.ID})
	found := false
	for _, a := range es {
		found = found || a.Action == "link.revoke" && a.Target == "lnkalice" && a.Actor == consoletest.UserA
	}
	if !found {
		t.Fatal("the revocation is not audited")
	}
	adm := e.NewClient(t)
	adm.Login(consoletest.AdminA)
	if _, body = adm.Get("/links"); !strings.Contains(body, "BOB-ONLY") || !strings.Contains(body, "見積のご送付") || !strings.Contains(body, "revoked") {
		t.Fatalf("administrator's links:\n%s", body)
	}
	if _, body = adm.Get("/links?sender=bob@example.test"); strings.Contains(body, "見積のご送付") || !strings.Contains(body, "BOB-ONLY") {
		t.Fatalf("filtered by sender:\n%s", body)
	}
}

// The links page in the browser, in Japanese, on a phone-sized screen.
func TestBrowserSentLinks(t *testing.T) {
	b := browser.Launch(t)
	e := consoletest.Start(t, consoletest.Options{})
	sentLink(t, e, "lnkalice", consoletest.UserA, "見積のご送付")
	p := openTab(t, b, e.URL)
	p.loginAs(consoletest.UserA, false)
	p.submit("#lang-ja")
	if st := p.goTo("/links"); st != http.StatusOK {
		t.Fatalf("links page: %d", st)
	}
	if s := p.text(`tr[data-link="lnkalice"]`); !strings.Contains(s, "有効") || !strings.Contains(s, "見積書.pdf") {
		t.Fatalf("link row %q", s)
	}
	p.checkTranslated("links (ja)")
	p.shot("console-links-ja")
	p.checkClean()
}
