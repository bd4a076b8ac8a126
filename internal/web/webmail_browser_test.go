package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/text/encoding/japanese"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/browser"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// isoHTMLMail is a Japanese HTML mail as an old Japanese mail program
// writes it: subject, sender name and HTML body in ISO-2022-JP, with an
// inline image named by cid:.
func isoHTMLMail(t *testing.T, to, msgID string) string {
	t.Helper()
	enc := func(s string) string {
		out, err := japanese.ISO2022JP.NewEncoder().String(s)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	word := func(s string) string {
		return "=?ISO-2022-JP?B?" + base64.StdEncoding.EncodeToString([]byte(enc(s))) + "?="
	}
	html := "<html><body><p>" + enc("来週の会議の資料です。ご確認ください。") + "</p><p><img src=\"cid:logo@example.net\" alt=\"logo\"></p></body></html>"
	return "From: " + word("佐藤") + " <sato@example.net>\n" +
		"To: " + to + "\nSubject: " + word("来週の会議について") + "\n" +
		"Message-ID: " + msgID + "\nDate: " + time.Now().Format(time.RFC1123Z) + "\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/related; boundary=\"rel\"\n\n" +
		"--rel\nContent-Type: text/html; charset=ISO-2022-JP\nContent-Transfer-Encoding: 7bit\n\n" + html + "\n" +
		"--rel\nContent-Type: image/png\nContent-ID: <logo@example.net>\nContent-Disposition: inline; filename=\"logo.png\"\n" +
		"Content-Transfer-Encoding: base64\n\n" + base64.StdEncoding.EncodeToString(onePNG) + "\n--rel--\n"
}

// phone makes the tab a 375-px-wide phone screen.
func (p *tab) phone() {
	p.t.Helper()
	p.do("phone viewport", chromedp.EmulateViewport(375, 812))
}

// checkFits fails when the page is wider than the screen (a phone user
// would have to scroll sideways).
func (p *tab) checkFits(page string) {
	p.t.Helper()
	w, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, window.innerWidth]`))
	if err != nil {
		p.t.Fatal(err)
	}
	if w[0] > w[1] {
		p.t.Errorf("%s is %d px wide on a %d-px screen", page, w[0], w[1])
	}
}

// TestBrowserWebmail: during an outage (example.test in emergency mode) a
// user on a phone-sized screen logs in, sees the new Japanese mail
// (ISO-2022-JP, HTML with an inline image) in the inbox with its unread
// count, reads it (the image shown from the message, nothing fetched from
// outside), replies with an attachment, and the reply reaches the outside
// over SMTP with standard headers and lands in Sent; search finds 会議; a
// draft survives logging out. Every page fits the screen and is
// translated, in Japanese and English.
func TestBrowserWebmail(t *testing.T) {
	b := browser.Launch(t)
	dns := dnstest.Start(t)
	dns.Add(`example.net. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`)
	e := consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) { c.DNS.Resolver = dns.Addr() }})
	ctx := context.Background()
	if _, err := e.Continuity.Switch(ctx, e.Domain, store.ModeEmergency, "it@example.test", "outage"); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.SetSetting(ctx, store.Setting{TenantID: e.Tenant.ID, Scope: store.ScopeTenant, Key: "webmail.time_zone", Value: "Asia/Tokyo"}); err != nil {
		t.Fatal(err)
	}
	if err := sendSMTP(t, e.InboundAddr(), "sato@example.net", []string{consoletest.UserA}, isoHTMLMail(t, consoletest.UserA, "<orig-9@example.net>")); err != nil {
		t.Fatal(err)
	}
	inbox := folderID(t, e, e.Tenant.ID, consoletest.UserA, "INBOX")
	mgtest.WaitFor(t, 20*time.Second, "the mail in alice's inbox", func() bool { return len(folderMsgs(t, e, e.Tenant.ID, inbox)) == 1 })

	p := openTab(t, b, e.URL)
	p.phone()
	p.loginAs(consoletest.UserA, false)
	if n, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#lang-ja").length`)); err == nil && n == 1 {
		p.submit("#lang-ja")
	}

	// The inbox: the new mail, unread, with the folder's count.
	p.do("open the webmail", chromedp.Click(chromedp.CSS("#nav-mail"), chromedp.NodeVisible), chromedp.WaitVisible(chromedp.CSS("#mail-list")))
	if got := p.text(".mail-folder.current .mail-unseen"); got != "1" {
		t.Errorf("inbox unread count %q", got)
	}
	if row := p.text("#mail-list .mail-row.unseen"); !strings.Contains(row, "来週の会議について") || !strings.Contains(row, "佐藤") {
		t.Errorf("inbox row %q", row)
	}
	p.checkTranslated("inbox (ja)")
	p.checkFits("inbox (ja)")
	p.shot("webmail-inbox-ja")

	// Reading: the decoded HTML in the sandboxed frame, its image from the
	// message itself, the real sender address.
	if st := p.submit("#mail-list .mail-row a.mail-link"); st != http.StatusOK {
		t.Fatalf("open the message: %d", st)
	}
	if body := p.frameText("#mail-frame"); !strings.Contains(body, "来週の会議の資料です。") {
		t.Errorf("frame text %q", body)
	}
	nodes, err := chromedp.Run(p.ctx, chromedp.Nodes(chromedp.CSS("#mail-frame"), chromedp.NodeVisible))
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := chromedp.Run(p.ctx, chromedp.Nodes(chromedp.CSS("img"), chromedp.FromNode(nodes[0].ContentDocument)))
	if err != nil || len(imgs) != 1 || !strings.HasPrefix(imgs[0].AttributeValue("src"), "data:image/png;base64,") {
		t.Errorf("inline image in the frame: %v %d", err, len(imgs))
	}
	if meta := p.text("#mail-meta"); !strings.Contains(meta, "sato@example.net") || !strings.Contains(meta, "佐藤") {
		t.Errorf("read page header %q", meta)
	}
	p.checkTranslated("message (ja)")
	p.checkFits("message (ja)")
	p.shot("webmail-read-ja")

	// Reply with an attachment.
	if st := p.submit("#mail-reply"); st != http.StatusOK {
		t.Fatalf("reply form: %d", st)
	}
	subj, err := chromedp.Run(p.ctx, chromedp.Value(chromedp.CSS("#c-subject")))
	if err != nil || subj != "Re: 来週の会議について" {
		t.Errorf("reply subject %q %v", subj, err)
	}
	file := filepath.Join(t.TempDir(), "議事録.txt")
	if err := os.WriteFile(file, []byte("議事録: 3 月の予定\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.do("write the reply", chromedp.Focus(chromedp.CSS("#c-body")), chromedp.Evaluate[chromedp.Void](`document.getElementById("c-body").setSelectionRange(0, 0)`),
		typeInto("#c-body", "佐藤様\n承知しました。議事録を添付します。"),
		chromedp.SetUploadFiles(chromedp.CSS("#c-attach"), []string{file}))
	p.checkTranslated("reply (ja)")
	p.checkFits("reply (ja)")
	p.shot("webmail-reply-ja")
	if st := p.submit("#c-send"); st != http.StatusOK || !strings.Contains(p.location(), "msg=webmail_sent") {
		t.Fatalf("send: %d at %s", st, p.location())
	}

	// The reply at the outside, standard and threaded.
	mgtest.WaitFor(t, 20*time.Second, "the reply at the outside", func() bool { return len(received(t, e.Internet, "sato@example.net")) == 1 })
	var raw []byte
	for _, m := range e.Internet.Messages() {
		if len(m.To) == 1 && m.To[0] == "sato@example.net" {
			raw = m.Data
		}
	}
	out := received(t, e.Internet, "sato@example.net")[0]
	if got := mailtext.DecodeHeader(out.Header.Get("Subject")); got != "Re: 来週の会議について" || !strings.HasPrefix(out.Header.Get("Subject"), "=?ISO-2022-JP?B?") {
		t.Errorf("subject %q (%q)", got, out.Header.Get("Subject"))
	}
	if out.Header.Get("In-Reply-To") != "<orig-9@example.net>" || out.Header.Get("References") != "<orig-9@example.net>" ||
		!strings.HasSuffix(out.Header.Get("Date"), "+0900") || out.Header.Get("Message-Id") == "" {
		t.Errorf("headers: %v", out.Header)
	}
	pm, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.From) != 1 || pm.From[0].Addr != consoletest.UserA || !hasAttachment(pm, "議事録.txt") || !strings.Contains(pm.Text, "承知しました。") ||
		!strings.Contains(pm.Text, "> 来週の会議の資料です。") {
		t.Errorf("reply: from %+v, text %q", pm.From, pm.Text)
	}
	if !bytes.Contains(raw, []byte("charset=ISO-2022-JP")) && !bytes.Contains(raw, []byte("charset=iso-2022-jp")) {
		t.Errorf("reply text not in ISO-2022-JP:\n%s", raw)
	}

	// In Sent, and the original marked answered.
	sent := folderID(t, e, e.Tenant.ID, consoletest.UserA, `\Sent`)
	p.goTo(fmt.Sprintf("/mail/f/%d", sent))
	if row := p.text("#mail-list"); !strings.Contains(row, "Re: 来週の会議について") || !strings.Contains(row, "sato@example.net") && !strings.Contains(row, "佐藤") {
		t.Errorf("Sent %q", row)
	}
	if m := folderMsgs(t, e, e.Tenant.ID, inbox)[0]; !m.HasFlag(`\Answered`) || !m.HasFlag(`\Seen`) {
		t.Errorf("original flags %v", m.Flags)
	}

	// Search finds the two-character word in both.
	p.fill("#mail-q", "会議")
	if st := p.submit("#mail-search-go"); st != http.StatusOK {
		t.Fatalf("search: %d", st)
	}
	if n, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#mail-list .mail-row").length`)); err != nil || n != 2 {
		t.Errorf("search 会議: %d rows (%v)", n, err)
	}
	p.shot("webmail-search-ja")

	// A draft survives logging out.
	p.do("compose", chromedp.Click(chromedp.CSS("#mail-compose"), chromedp.NodeVisible), chromedp.WaitVisible(chromedp.CSS("#c-to")))
	p.fill("#c-to", "bob@example.test")
	p.fill("#c-subject", "下書きの件")
	p.do("type the draft", typeInto("#c-body", "あとで書きます"))
	if st := p.submit("#c-save"); st != http.StatusOK || !strings.Contains(p.location(), "draft=") {
		t.Fatalf("save draft: %d at %s", st, p.location())
	}
	p.submit("#logout")
	p.loginAs(consoletest.UserA, false)
	p.goTo(fmt.Sprintf("/mail/f/%d", folderID(t, e, e.Tenant.ID, consoletest.UserA, `\Drafts`)))
	if row := p.text("#mail-list"); !strings.Contains(row, "下書きの件") {
		t.Errorf("Drafts after logging in again: %q", row)
	}
	if st := p.submit("#mail-list .mail-row a.mail-link"); st != http.StatusOK {
		t.Fatalf("open the draft: %d", st)
	}
	if body, err := chromedp.Run(p.ctx, chromedp.Value(chromedp.CSS("#c-body"))); err != nil || !strings.Contains(body, "あとで書きます") {
		t.Errorf("draft body %q %v", body, err)
	}

	// The same pages in English.
	p.goTo("/mail")
	p.submit("#lang-en")
	for _, pg := range []struct{ name, path string }{
		{"inbox", fmt.Sprintf("/mail/f/%d", inbox)},
		{"read", fmt.Sprintf("/mail/f/%d/m/%d", inbox, folderMsgs(t, e, e.Tenant.ID, inbox)[0].UID)},
		{"compose", "/mail/compose"},
		{"sent", fmt.Sprintf("/mail/f/%d", sent)},
	} {
		if st := p.goTo(pg.path); st != http.StatusOK {
			t.Fatalf("%s: %d", pg.name, st)
		}
		p.checkTranslated(pg.name + " (en)")
		p.checkLayout(pg.name + " (en)")
		p.checkFits(pg.name + " (en)")
		p.shot("webmail-" + pg.name + "-en")
	}
	p.checkClean()
}

// TestBrowserWebmailHostile: the quarantine preview's hostile-HTML corpus,
// delivered into a user's mailbox and opened in the webmail reader in
// Chromium (remote images blocked, then allowed by the reader): no script
// runs, no dialog opens, nothing is fetched outside the console, and a
// trap server the messages point at is never reached over HTTP.
func TestBrowserWebmailHostile(t *testing.T) {
	b := browser.Launch(t)
	var trapSeen atomic.Int64
	trap := httptestServer(t, &trapSeen)
	e := consoletest.Start(t, consoletest.Options{})
	files, err := filepath.Glob(filepath.Join("preview", "testdata", "hostile", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.ReplaceAll(raw, []byte("trap.invalid"), []byte(trap))
		deliverTo(t, e, consoletest.UserA, fmt.Sprintf("h%d", i), string(raw))
	}
	inbox := folderID(t, e, e.Tenant.ID, consoletest.UserA, "INBOX")
	msgs := folderMsgs(t, e, e.Tenant.ID, inbox)
	if len(msgs) != len(files) {
		t.Fatalf("%d of %d messages delivered", len(msgs), len(files))
	}
	// One tab logs in; each message is opened in a tab of its own (the
	// browser's cookies are shared), watched from its first request.
	openTab(t, b, e.URL).loginAs(consoletest.UserA, false)
	for _, m := range msgs {
		t.Run(fmt.Sprintf("uid%d", m.UID), func(t *testing.T) {
			p := openTab(t, b, e.URL)
			for _, q := range []string{"", "?images=1"} {
				path := fmt.Sprintf("/mail/f/%d/m/%d%s", inbox, m.UID, q)
				if st := p.goTo(path); st != http.StatusOK {
					t.Fatalf("%s (%s): %d", path, m.Subject, st)
				}
				p.frameText("#mail-frame")
				p.do("settle", chromedp.Sleep(200*time.Millisecond))
			}
			for _, c := range p.mon.Console() {
				if strings.Contains(c, "PAYLOAD") {
					t.Errorf("%s: payload ran: %s", m.Subject, c)
				}
			}
			if d := p.mon.Dialogs(); len(d) > 0 {
				t.Errorf("%s: dialogs: %q", m.Subject, d)
			}
			// With images allowed by the reader, https: images may be
			// tried (the trap speaks no TLS); nothing else leaves the
			// console.
			if out := p.mon.RequestsOutside(p.base+"/", "https:"); len(out) > 0 {
				t.Errorf("%s: requests outside the console: %q", m.Subject, out)
			}
		})
	}
	if n := trapSeen.Load(); n != 0 {
		t.Errorf("the trap served %d requests", n)
	}
}

// TestBrowserPhoneWidth: on a 375-px-wide phone screen no console page is
// wider than the screen, in Japanese and English: the webmail's list and
// reader and administration pages, for a tenant administrator with a long
// address (whose mailbox the webmail shows) and for the operator, whose
// header chooses among tenants with long names. Tables and the folder row
// scroll inside the page; the page itself never scrolls sideways.
func TestBrowserPhoneWidth(t *testing.T) {
	b := browser.Launch(t)
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	if _, err := e.Continuity.Switch(ctx, e.Domain, store.ModeEmergency, consoletest.AdminA, "outage"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateTenant(ctx, "kabushiki-gaisha-nihon-international-trading-holdings-tokyo"); err != nil {
		t.Fatal(err)
	}
	admin := "yamada.taro.international-sales-department@example.test"
	hash, err := passwd.Hash(consoletest.Password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateAccount(ctx, store.Account{Login: admin, Role: store.RoleAdmin, TenantID: e.Tenant.ID, Hash: hash, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateUser(ctx, e.Tenant.ID, admin); err != nil {
		t.Fatal(err)
	}
	deliverTo(t, e, admin, "q-phone", japaneseHTMLMail(admin, "<phone-1@partner.example>"))
	inbox := folderID(t, e, e.Tenant.ID, admin, "INBOX")
	read := fmt.Sprintf("/mail/f/%d/m/%d", inbox, folderMsgs(t, e, e.Tenant.ID, inbox)[0].UID)

	for _, who := range []struct {
		login, shot string
		pages       []string
	}{
		{admin, "admin-domains", []string{fmt.Sprintf("/mail/f/%d", inbox), read, "/mailboxes", "/domains"}},
		{consoletest.Operator, "operator-account", []string{"/tenants", "/account"}},
	} {
		p := openTab(t, b, e.URL)
		// A phone: the layout viewport is the device's width.
		p.do("phone viewport", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
		p.loginAs(who.login, false)
		for _, lang := range []string{"ja", "en"} {
			if n, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#lang-`+lang+`").length`)); err == nil && n == 1 {
				p.submit("#lang-" + lang)
			}
			for _, path := range who.pages {
				if st := p.goTo(path); st != http.StatusOK {
					t.Fatalf("%s %s: %d", who.login, path, st)
				}
				w, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
				if err != nil {
					t.Fatal(err)
				}
				if w > 375 {
					t.Errorf("%s %s (%s) is %d px wide on a 375-px screen", who.login, path, lang, w)
				}
			}
			p.shot("phone-" + who.shot + "-" + lang)
		}
	}
}
