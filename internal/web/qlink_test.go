package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
)

// quarantineCopy stores a held copy of raw for rcpt and returns its ID.
func quarantineCopy(t *testing.T, e *consoletest.Env, rcpt, raw string) string {
	t.Helper()
	ctx, now := context.Background(), time.Now()
	id := store.NewMessageID(now)
	w, err := e.QSpool.Create(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, raw)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	it := store.QuarantineItem{ID: id, TenantID: e.Tenant.ID, Rcpt: rcpt, BlobKey: w.Key(), MailFrom: "phish@example.net",
		FromHdr: "Bank <phish@example.net>", Subject: "links", Size: w.Size(), Score: 99, Reasons: "spam", Created: now,
		Expires: now.Add(24 * time.Hour), State: store.QHeld}
	if err := e.Store.AddQuarantine(ctx, it, store.Event{MessageID: id, TenantID: e.Tenant.ID, At: now, Kind: "quarantined", Rcpt: rcpt}); err != nil {
		t.Fatal(err)
	}
	return id
}

const linkMail = "From: Bank <phish@example.net>\r\nTo: alice@example.test\r\nSubject: links\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n\r\n" +
	`<p><a href="https://xn--pypal-4ve.com/signin">https://www.paypal.com/signin</a> <a href="https://example.jp/ok">example.jp</a></p>` + "\r\n"

// Links of a previewed copy lead to the console's link page, which names
// the real target in full and warns; only the copy's own links are shown.
func TestQuarantineLinkPage(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	c := e.NewClient(t)
	c.Login(consoletest.UserA)
	id := quarantineCopy(t, e, consoletest.UserA, linkMail)
	target := "https://xn--pypal-4ve.com/signin"
	page := "/quarantine/" + id + "/link?u=" + url.QueryEscape(target)

	resp, err := c.HTTP.Get(e.URL + "/quarantine/" + id + "/body")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox allow-popups allow-popups-to-escape-sandbox;") {
		t.Errorf("frame CSP %q", csp)
	}
	if !strings.Contains(string(body), `href="`+strings.ReplaceAll(page, "&", "&amp;")+`"`) {
		t.Errorf("the frame's link does not lead to the link page:\n%s", body)
	}

	st, html := c.Get(page)
	if st != http.StatusOK {
		t.Fatalf("link page: %d\n%s", st, html)
	}
	for _, want := range []string{
		`<code id="l-target">https://xn--pypal-4ve.com/signin</code>`,
		`<dd id="l-host">xn--pypal-4ve.com</dd>`,
		`<dd id="l-idn">pаypal.com`,
		`id="l-mismatch"`, "www.paypal.com",
		`id="l-go" href="https://xn--pypal-4ve.com/signin" rel="noopener noreferrer nofollow" referrerpolicy="no-referrer"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("link page lacks %s:\n%s", want, html)
		}
	}
	// A target the copy does not show is not described.
	if st, _ := c.Get("/quarantine/" + id + "/link?u=" + url.QueryEscape("https://evil.example/")); st != http.StatusNotFound {
		t.Errorf("foreign target: %d, want 404", st)
	}
	// Without a target: the copy's links, each through the page.
	if st, html := c.Get("/quarantine/" + id + "/link"); st != http.StatusOK || !strings.Contains(html, url.QueryEscape("https://example.jp/ok")) {
		t.Errorf("link list: %d\n%s", st, html)
	}
	// Another user's copy is not found.
	bob := quarantineCopy(t, e, "bob@example.test", linkMail)
	if st, _ := c.Get("/quarantine/" + bob + "/link?u=" + url.QueryEscape(target)); st != http.StatusNotFound {
		t.Errorf("another user's copy: %d, want 404", st)
	}
	// Japanese.
	c.Post("/account/lang", url.Values{"lang": {"ja"}})
	if _, html := c.Get(page); !strings.Contains(html, "リンクを開く") || !strings.Contains(html, "実際のリンク先は") {
		t.Errorf("Japanese link page:\n%s", html)
	}
}
