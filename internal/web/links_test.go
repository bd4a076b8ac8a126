package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// Digest links for "release and allow" and "block sender" whose copy was
// released or deleted by other means change nothing: the page says so (in
// English and Japanese), offers no confirmation, and a POST of the link adds
// no list entry and writes no audit entry.
func TestDigestLinkForGoneCopyChangesNothing(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	quarantineDeny(t, e, consoletest.UserA, "連絡")
	time.Sleep(listIndexRefresh)
	for _, s := range []string{"連絡 1", "連絡 2"} {
		if err := sendSMTP(t, e.InboundAddr(), "spam@sender.example", []string{consoletest.UserA}, message(consoletest.UserA, s, "x")); err != nil {
			t.Fatal(err)
		}
	}
	items := held(t, e, consoletest.UserA, 2)
	admin := e.NewClient(t)
	admin.Login(consoletest.AdminA)
	if st, _, _ := admin.Post("/quarantine/"+items[0].ID+"/release", nil); st != http.StatusSeeOther {
		t.Fatalf("release: %d", st)
	}
	if st, _, _ := admin.Post("/quarantine/"+items[1].ID+"/delete", nil); st != http.StatusSeeOther {
		t.Fatalf("delete: %d", st)
	}
	before, err := e.Store.ListEntries(ctx, e.Tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	key, err := signedlink.LoadKey(ctx, e.Store)
	if err != nil {
		t.Fatal(err)
	}
	anon := e.NewClient(t)
	for _, it := range items {
		for _, a := range []signedlink.Action{signedlink.ReleaseAllow, signedlink.BlockSender} {
			tok := signedlink.Sign(key, signedlink.Link{Action: a, TenantID: it.TenantID, ItemID: it.ID, Rcpt: it.Rcpt, Expires: time.Now().Add(time.Hour)})
			st, page := anon.Get("/q/link?t=" + tok)
			if st != http.StatusOK || !strings.Contains(page, "already released or deleted, so this link changed nothing") || strings.Contains(page, `id="link-confirm"`) {
				t.Errorf("GET %s link of a gone copy: %d, want the already-done page without a confirm button", a, st)
			}
			st, _, page = anon.Post("/q/link", url.Values{"t": {tok}})
			if st != http.StatusOK || !strings.Contains(page, "changed nothing") {
				t.Errorf("POST %s link of a gone copy: %d %q", a, st, page)
			}
		}
	}
	after, _ := e.Store.ListEntries(ctx, e.Tenant.ID)
	if len(after) != len(before) {
		t.Errorf("links of gone copies changed the lists: %d entries, then %d: %+v", len(before), len(after), after)
	}
	au, _ := e.Store.AuditLog(ctx, store.AuditFilter{TenantID: e.Tenant.ID, Limit: 1000})
	for _, x := range au {
		if strings.HasPrefix(x.Actor, "link:") {
			t.Errorf("audit entry for a link that changed nothing: %+v", x)
		}
	}
	// In Japanese too.
	tok := signedlink.Sign(key, signedlink.Link{Action: signedlink.BlockSender, TenantID: items[1].TenantID, ItemID: items[1].ID, Rcpt: items[1].Rcpt, Expires: time.Now().Add(time.Hour)})
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/q/link?t="+tok, nil)
	req.Header.Set("Accept-Language", "ja")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "このリンクでは何も変更していません") {
		t.Errorf("Japanese page lacks the already-done notice")
	}
}
