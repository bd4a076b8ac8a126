package web_test

import (
	"context"
	"mime"
	"net/http"
	"net/smtp"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/browser"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

var linkRe = regexp.MustCompile(`https?://[^"'\s<>]+/q/link\?t=[A-Za-z0-9_.\-]+`)

// The quarantine seen from a user's mailbox: spam sent over SMTP is
// quarantined, the 09:00 digest reaches alice's mailbox, and the release
// link in it, opened and confirmed in a real browser, delivers the message
// with the release header. Tampered and expired links are refused.
func TestDigestReleaseLinkInBrowser(t *testing.T) {
	jst := time.FixedZone("JST", 9*3600)
	clk := clock.NewFake(time.Date(2026, 11, 20, 8, 40, 0, 0, jst))
	e := consoletest.Start(t, consoletest.Options{Mg: mgtest.Options{Clock: clk}})
	ctx := context.Background()
	// The tenant quarantines anything its spam engine scores at 1% or more.
	setTenant(t, e, e.Tenant.ID, map[string]string{"spam.quarantine_at": "1"})

	subject := "【重要】当選のお知らせ FREE MONEY"
	msg := "From: Winner <lottery@prize.example>\r\nTo: alice@example.test\r\nSubject: " +
		mime.BEncoding.Encode("UTF-8", subject) + "\r\nMessage-ID: <spam1@prize.example>\r\n\r\n" +
		"Click here to claim your FREE prize money now!!! http://prize.example/claim\r\n"
	if err := plainSend(e.InboundAddr(), "lottery@prize.example", "alice@example.test", msg); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	var items []store.QuarantineItem
	mgtest.WaitFor(t, 10*time.Second, "quarantined copy", func() bool {
		items, _, _ = e.Store.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: e.Tenant.ID, Rcpt: "alice@example.test", State: store.QHeld})
		return len(items) == 1
	})

	lc, err := e.NewLifecycle(ctx, app.LifecycleOptions{BaseURL: e.URL, Zone: jst})
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Date(2026, 11, 20, 9, 2, 0, 0, jst))
	if err := lc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	var digest string
	mgtest.WaitFor(t, 15*time.Second, "digest in alice's mailbox", func() bool {
		for _, m := range e.Down.Messages() {
			if len(m.To) == 1 && m.To[0] == "alice@example.test" && strings.Contains(string(m.Data), "/q/link?t=") {
				digest = decodeQP(string(m.Data))
				return true
			}
		}
		return false
	})
	key, err := signedlink.LoadKey(ctx, e.Store)
	if err != nil {
		t.Fatal(err)
	}
	var release string
	for _, u := range linkRe.FindAllString(digest, -1) {
		tok := u[strings.Index(u, "t=")+2:]
		if l, err := signedlink.Verify(key, tok, clk.Now()); err == nil && l.Action == signedlink.Release && l.ItemID == items[0].ID {
			release = u
		}
	}
	if release == "" {
		t.Fatalf("no release link for %s in the digest:\n%s", items[0].ID, digest)
	}

	b := browser.Launch(t)
	tab := b.NewTab(t)
	mon, err := browser.Watch(tab)
	if err != nil {
		t.Fatal(err)
	}
	if err := browser.Navigate(tab, release); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS("#link-confirm"))); err != nil {
		t.Fatal(err)
	}
	page, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS("main"), chromedp.NodeVisible))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page, subject) {
		t.Errorf("confirmation page does not name the message: %q", page)
	}
	browser.Screenshot(tab, t, "quarantine-link-confirm")
	// Opening the link changed nothing: scanners that fetch links in mail
	// must not release it.
	if it, _ := e.Store.QuarantineItem(ctx, e.Tenant.ID, items[0].ID); it.State != store.QHeld {
		t.Fatalf("GET of the link changed the copy to %s", it.State)
	}
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#link-confirm"), chromedp.NodeVisible), chromedp.WaitVisible(chromedp.CSS("#link-done"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(tab, t, "quarantine-link-done")
	mgtest.WaitFor(t, 15*time.Second, "released copy downstream", func() bool {
		for _, m := range e.Down.Messages() {
			if len(m.To) == 1 && m.To[0] == "alice@example.test" && strings.Contains(string(m.Data), "X-Mailgate-Released: "+items[0].ID) &&
				strings.Contains(string(m.Data), "spam1@prize.example") {
				return true
			}
		}
		return false
	})
	if out := mon.RequestsOutside(e.URL); len(out) > 0 {
		t.Errorf("the browser fetched outside the console: %v", out)
	}

	// A tampered token and an expired one are refused, and act on nothing.
	tok := release[strings.Index(release, "t=")+2:]
	bad := tok[:len(tok)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(tok, "AA")]
	if st := getStatus(t, e.URL+"/q/link?t="+bad); st != http.StatusBadRequest {
		t.Errorf("tampered link: %d", st)
	}
	expired := signedlink.Sign(key, signedlink.Link{Action: signedlink.Release, TenantID: e.Tenant.ID, ItemID: items[0].ID,
		Rcpt: "alice@example.test", Expires: clk.Now().Add(-time.Minute)})
	if st := getStatus(t, e.URL+"/q/link?t="+expired); st != http.StatusGone {
		t.Errorf("expired link: %d", st)
	}
	st, _, _ := e.NewClient(t).Post("/q/link", map[string][]string{"t": {expired}})
	if st != http.StatusGone {
		t.Errorf("expired link POST: %d", st)
	}
}

func getStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// decodeQP undoes quoted-printable soft line breaks and =3D so links can be
// found in the raw mail.
func decodeQP(s string) string {
	s = strings.ReplaceAll(s, "=\r\n", "")
	return strings.ReplaceAll(s, "=3D", "=")
}

// plainSend submits one message without STARTTLS (the test node's
// certificate is self-signed).
func plainSend(addr, from, to, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
