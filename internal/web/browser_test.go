package web_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/browser"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// These tests drive the console in the system's headless Chromium as a
// person would: typing into the forms, clicking, reading what the page
// shows. They also watch what the browser does on the way: every request
// must stay on the console's own origin and no page may break the console's
// own Content-Security-Policy.

// tab is one browser tab on the console, failing its test on any error.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	mon  *browser.Monitor
	log  *consoleLog
}

func openTab(t *testing.T, b *browser.Browser, base string) *tab {
	t.Helper()
	ctx := b.NewTab(t)
	log := collectConsole(ctx)
	mon, err := browser.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &tab{t: t, ctx: ctx, base: base, mon: mon, log: log}
}

// consoleLog keeps everything the tab wrote to its console, including the
// browser's own log entries (CSP violations are reported there, with
// source "security", not through the console API).
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func collectConsole(ctx context.Context) *consoleLog {
	l := &consoleLog{}
	msgs := chromedp.Console(ctx) // subscribes now, before any page loads
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			l.mu.Lock()
			l.msgs = append(l.msgs, m)
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *consoleLog) all() []chromedp.ConsoleMessage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), l.msgs...)
}

// do runs actions in the tab.
func (p *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// goTo loads a console path and returns the HTTP status of the document.
func (p *tab) goTo(path string) int {
	p.t.Helper()
	resp, err := chromedp.Run(p.ctx, chromedp.NavigateResponse(p.base+path))
	if err != nil {
		p.t.Fatalf("navigate %s: %v", path, err)
	}
	return int(resp.Status)
}

// submit clicks a button that submits a form and waits for the next page;
// it returns that page's HTTP status.
func (p *tab) submit(sel string) int {
	p.t.Helper()
	resp, err := chromedp.RunResponse(p.ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.t.Fatalf("submit %s: %v", sel, err)
	}
	return int(resp.Status)
}

// fill types v into the input sel, as a person would.
func (p *tab) fill(sel, v string) {
	p.t.Helper()
	p.do("type into "+sel, chromedp.Clear(chromedp.CSS(sel)), typeInto(sel, v))
}

// typeInto focuses sel and types v as key events: what chromedp.SendKeys
// does for a text field, without its unlocked read of the node's
// attributes (a data race with the tab's DOM events under -race).
func typeInto(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := chromedp.Focus(chromedp.CSS(sel), chromedp.NodeVisible)(ctx, t); err != nil {
			return err
		}
		_, err := chromedp.KeyEvent(v)(ctx, t)
		return err
	})
}

func (p *tab) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// frameText is the text of the body of the iframe sel, once it has one.
func (p *tab) frameText(sel string) string {
	p.t.Helper()
	for i := 0; ; i++ {
		nodes, err := chromedp.Run(p.ctx, chromedp.Nodes(chromedp.CSS(sel), chromedp.NodeVisible))
		if err != nil {
			p.t.Fatalf("frame %s: %v", sel, err)
		}
		if doc := nodes[0].ContentDocument; doc != nil {
			s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS("body"), chromedp.FromNode(doc)))
			if err != nil {
				p.t.Fatalf("frame %s body: %v", sel, err)
			}
			return s
		}
		if i == 50 {
			p.t.Fatalf("frame %s has no document", sel)
		}
		p.do("wait for the frame", chromedp.Sleep(100*time.Millisecond))
	}
}

func (p *tab) location() string {
	p.t.Helper()
	u, err := chromedp.Run(p.ctx, chromedp.Location())
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimPrefix(u, p.base)
}

func (p *tab) shot(name string) { p.t.Helper(); browser.Screenshot(p.ctx, p.t, name) }

// rawKey matches a message ID shown instead of its translation (the
// translator falls back to the ID): lower-case words joined by "_" that are
// not part of a dotted policy key.
var rawKey = regexp.MustCompile(`(?:^|[^.\w@])((?:nav|webmail|m|ml|v|q|role|scope|kind|sort|msg|link|login|totp|error|lang|domain|pf|pv|policy|band)_[a-z0-9_]+)\b`)

// checkTranslated fails when the visible page shows a raw message ID.
func (p *tab) checkTranslated(page string) {
	p.t.Helper()
	body, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		p.t.Fatal(err)
	}
	if m := rawKey.FindAllStringSubmatch(body, -1); m != nil {
		var ids []string
		for _, x := range m {
			ids = append(ids, x[1])
		}
		p.t.Errorf("%s shows untranslated message IDs %q", page, ids)
	}
}

// splitWords lists the words of table headers and buttons that the layout
// broke across lines ("Recei|ved"): each word must sit in one line box.
const splitWords = `(() => {
  const out = [];
  for (const el of document.querySelectorAll("th, button")) {
    if (!el.offsetParent) continue;
    const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      for (const m of n.data.matchAll(/\S+/g)) {
        const r = document.createRange();
        r.setStart(n, m.index);
        r.setEnd(n, m.index + m[0].length);
        if (r.getClientRects().length > 1) out.push(m[0]);
      }
    }
  }
  return out;
})()`

// checkLayout fails when a header or button word is split over two lines
// (English pages: Japanese text may break between any two characters).
func (p *tab) checkLayout(page string) {
	p.t.Helper()
	words, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](splitWords))
	if err != nil {
		p.t.Fatal(err)
	}
	if len(words) > 0 {
		p.t.Errorf("%s: words broken across lines: %q", page, words)
	}
}

// checkClean fails on requests that left the console's origin, script
// exceptions, dialogs and CSP violations.
func (p *tab) checkClean() {
	p.t.Helper()
	if out := p.mon.RequestsOutside(p.base + "/"); len(out) > 0 {
		p.t.Errorf("requests left %s: %q", p.base, out)
	}
	if ex := p.mon.Exceptions(); len(ex) > 0 {
		p.t.Errorf("script exceptions: %q", ex)
	}
	if d := p.mon.Dialogs(); len(d) > 0 {
		p.t.Errorf("unexpected dialogs: %q", d)
	}
	for _, m := range p.log.all() {
		if m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") || m.IsException() {
			p.t.Errorf("console: %s (%s)", m, m.URL)
		}
	}
	for _, u := range p.mon.Requests() {
		if !strings.HasPrefix(u, "http://127.0.0.1:") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "about:") {
			p.t.Errorf("request not to 127.0.0.1: %s", u)
		}
	}
}

// loginAs logs in through the login form, enrolling TOTP when the console
// asks for it, and returns the path it lands on.
func (p *tab) loginAs(login string, shots bool) string {
	p.t.Helper()
	if st := p.goTo("/login"); st != http.StatusOK {
		p.t.Fatalf("login page: %d", st)
	}
	if shots {
		p.shot("console-login")
	}
	p.fill("#login", login)
	p.fill("#password", consoletest.Password)
	if st := p.submit("#login-submit"); st != http.StatusOK {
		p.t.Fatalf("login %s: status %d at %s", login, st, p.location())
	}
	if !strings.HasPrefix(p.location(), "/login/totp") {
		return p.location()
	}
	secret := strings.TrimSpace(p.text("#totp-secret"))
	if n, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("nav.side").length`)); err != nil || n != 0 {
		p.t.Errorf("TOTP page shows the console menu before the second factor (%d, %v)", n, err)
	}
	if shots {
		p.checkTranslated("totp enrolment")
		p.shot("console-totp")
	}
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		p.t.Fatalf("secret %q from the page: %v", secret, err)
	}
	p.fill("#totp-code", code)
	if st := p.submit("#totp-submit"); st != http.StatusOK {
		p.t.Fatalf("TOTP: status %d at %s", st, p.location())
	}
	return p.location()
}

// sendSMTP sends one message to the node's inbound listener with net/smtp.
// The error of a refused message is a *textproto.Error with the reply.
func sendSMTP(t *testing.T, addr, from string, to []string, msg string) error {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c, err := smtp.NewClient(conn, "mx.mailgate.test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(strings.ReplaceAll(msg, "\n", "\r\n"))); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// message builds a small message with a UTF-8 encoded-word subject
// (RFC 2047), as Japanese mail clients send it.
func message(to, subject, body string) string {
	return "From: 佐藤 <sato@example.net>\n" +
		"To: " + to + "\n" +
		"Subject: " + mime.BEncoding.Encode("UTF-8", subject) + "\n" +
		"Message-ID: <" + fmt.Sprintf("%d", time.Now().UnixNano()) + "@example.net>\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=UTF-8\n\n" + body + "\n"
}

// received returns the downstream's messages for rcpt, parsed.
func received(t *testing.T, s *sink.Sink, rcpt string) []*mail.Message {
	t.Helper()
	var out []*mail.Message
	for _, m := range s.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, rcpt) {
				pm, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(string(m.Data))))
				if err != nil {
					t.Fatalf("downstream message for %s: %v", rcpt, err)
				}
				out = append(out, pm)
			}
		}
	}
	return out
}

func decodedSubject(t *testing.T, m *mail.Message) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject %q: %v", m.Header.Get("Subject"), err)
	}
	return s
}

// quarantineDeny makes messages to rcpt whose Subject contains word go to
// the recipient's quarantine (an address-scope deny entry, through the API).
func quarantineDeny(t *testing.T, e *consoletest.Env, rcpt, word string) {
	t.Helper()
	body := map[string]string{"Scope": "address", "Owner": rcpt, "Kind": "deny", "Field": "subject",
		"Mode": "contains", "Value": word, "Action": "quarantine"}
	if st := e.API(t, e.Tokens["a-write"], http.MethodPost, "/lists", body, nil); st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("add list entry for %s: %d", rcpt, st)
	}
}

// held waits until rcpt has n held quarantine copies and returns them.
func held(t *testing.T, e *consoletest.Env, rcpt string, n int) []store.QuarantineItem {
	t.Helper()
	var items []store.QuarantineItem
	mgtest.WaitFor(t, 15*time.Second, fmt.Sprintf("%d quarantined for %s", n, rcpt), func() bool {
		var err error
		items, _, err = e.Store.SearchQuarantine(context.Background(), store.QuarantineFilter{TenantID: e.Tenant.ID, Rcpt: rcpt, State: store.QHeld, Limit: 50})
		return err == nil && len(items) >= n
	})
	return items
}

// listIndexRefresh is how long a new list entry may take to reach the
// inbound check (the index is rebuilt at most once a second).
const listIndexRefresh = 1100 * time.Millisecond

// TestBrowserAdminFlow walks an administrator through the console: first
// login with TOTP enrolment, a new domain with its route and a new user
// (then mail to that user is accepted and delivered over that route), a
// policy change that refuses the next message of one address, tracking a
// Japanese subject to its delivery, a quarantined copy, reports, and the
// language switch.
func TestBrowserAdminFlow(t *testing.T) {
	b := browser.Launch(t)
	dns := dnstest.Start(t)
	dns.Add(`example.net. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`)
	e := consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) { c.DNS.Resolver = dns.Addr() }})
	ctx := context.Background()
	quarantineDeny(t, e, consoletest.UserA, "隔離")
	p := openTab(t, b, e.URL)

	// Login and TOTP enrolment land on the dashboard.
	if loc := p.loginAs(consoletest.AdminA, true); loc != "/dashboard" {
		t.Fatalf("after login: %s, want /dashboard", loc)
	}
	if a, err := e.Store.AccountByLogin(ctx, consoletest.AdminA); err != nil || a.TOTPSecret == "" {
		t.Fatalf("TOTP not enrolled through the page: %v", err)
	}
	if h := p.text("h1"); h != "Dashboard" {
		t.Errorf("dashboard heading %q", h)
	}
	p.checkTranslated("dashboard")
	p.checkLayout("dashboard")
	p.shot("console-dashboard")

	// A new domain with a route to the downstream server. It is not
	// served until the TXT record the page shows is found in DNS.
	p.goTo("/domains")
	p.fill("#domain-name", "newco.test")
	p.fill("#domain-route", "smtp://"+e.Down.Addr())
	if st := p.submit("#domain-submit"); st != http.StatusOK || !strings.HasPrefix(p.location(), "/domains") {
		t.Fatalf("add domain: %d at %s", st, p.location())
	}
	row := `tbody[data-domain="newco.test"]`
	recName, recValue := p.text(row+" .record-name"), p.text(row+" .record-value")
	if recName != "_mailgate.newco.test" || !strings.HasPrefix(recValue, "mailgate-verify=") || !strings.Contains(p.text(row), "Unverified") {
		t.Fatalf("unverified domain row: %q (record %q %q)", p.text(row), recName, recValue)
	}
	p.checkTranslated("domains (unverified)")
	p.checkLayout("domains (unverified)")
	p.shot("console-domains-unverified")
	if st := p.submit(row + " button.verify"); st != http.StatusBadRequest || !strings.Contains(p.text("main"), "No TXT record was found at _mailgate.newco.test") {
		t.Fatalf("verify without the record: %d %q", st, p.text("main"))
	}
	dns.Add(`_mailgate.newco.test. 60 IN TXT "` + recValue + `"`)
	p.goTo("/domains")
	if st := p.submit(row + " button.verify"); st != http.StatusOK || !strings.Contains(p.text(row), "Verified") || !strings.Contains(p.text("main"), "Ownership confirmed") {
		t.Fatalf("verify with the record: %d %q", st, p.text("main"))
	}
	routes, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("table input[name=route]")).map(i => i.value).join(" ")`))
	if err != nil || !strings.Contains(p.text("table"), "newco.test") || !strings.Contains(routes, e.Down.Addr()) {
		t.Fatalf("domain list after adding: %q, routes %q (%v)", p.text("table"), routes, err)
	}
	p.checkTranslated("domains")
	p.checkLayout("domains")
	p.shot("console-domains")

	// A new user of that domain.
	p.goTo("/users")
	p.fill("#user-address", "hanako@newco.test")
	p.fill("#user-name", "山田 花子")
	if st := p.submit("#user-submit"); st != http.StatusOK {
		t.Fatalf("add user: %d", st)
	}
	if tb := p.text("table"); !strings.Contains(tb, "hanako@newco.test") || !strings.Contains(tb, "山田 花子") {
		t.Fatalf("user list after adding: %q", tb)
	}
	p.checkTranslated("users")
	p.checkLayout("users")
	p.shot("console-users")

	// Before the policy change bob gets his mail.
	if err := sendSMTP(t, e.InboundAddr(), "sato@example.net", []string{"bob@example.test"}, message("bob@example.test", "定例会議", "before")); err != nil {
		t.Fatalf("message to bob before the policy change: %v", err)
	}
	// Refuse everything for bob: a spam score is never below 0 %.
	p.goTo("/policy")
	p.do("choose scope", chromedp.SetValue(chromedp.ID("policy-scope"), "address"))
	p.fill("#policy-owner", "bob@example.test")
	p.fill("#policy-key", "spam.reject_at")
	p.fill("#policy-value", "0")
	if st := p.submit("#policy-submit"); st != http.StatusOK {
		t.Fatalf("policy: %d", st)
	}
	if s := p.text("#settings"); !strings.Contains(s, "spam.reject_at") || !strings.Contains(s, "bob@example.test") {
		t.Fatalf("settings after saving: %q", s)
	}
	p.checkTranslated("policy")
	p.checkLayout("policy")
	p.shot("console-policy")
	err = sendSMTP(t, e.InboundAddr(), "sato@example.net", []string{"bob@example.test"}, message("bob@example.test", "定例会議", "after"))
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 550 || !strings.Contains(te.Msg, "5.7.1") {
		t.Fatalf("message to bob after spam.reject_at=0: %v, want 550 5.7.1", err)
	}

	// Mail to the new user travels over the route typed into the console.
	const subject = "請求書のご案内（七月分）"
	if err := sendSMTP(t, e.InboundAddr(), "sato@example.net", []string{"hanako@newco.test"}, message("山田 花子 <hanako@newco.test>", subject, "添付をご確認ください。")); err != nil {
		t.Fatalf("message to the new user: %v", err)
	}
	// And a copy for alice that her deny entry quarantines.
	if err := sendSMTP(t, e.InboundAddr(), "sato@example.net", []string{consoletest.UserA}, message(consoletest.UserA, "隔離される案内", "q")); err != nil {
		t.Fatalf("message to alice: %v", err)
	}
	mgtest.WaitFor(t, 15*time.Second, "delivery to hanako", func() bool { return len(received(t, e.Down, "hanako@newco.test")) == 1 })
	if got := decodedSubject(t, received(t, e.Down, "hanako@newco.test")[0]); got != subject {
		t.Errorf("delivered subject %q, want %q", got, subject)
	}
	if n := len(received(t, e.Down, "bob@example.test")); n != 1 {
		t.Errorf("bob received %d messages, want only the one before the policy change", n)
	}
	held(t, e, consoletest.UserA, 1)
	// The delivered event is written once the downstream's reply is back.
	mgtest.WaitFor(t, 10*time.Second, "the delivered event", func() bool {
		ms, _ := e.Store.FindMessages(ctx, e.Tenant.ID, "七月分", 10)
		if len(ms) != 1 {
			return false
		}
		evs, _ := e.Store.Events(ctx, e.Tenant.ID, ms[0].ID)
		for _, ev := range evs {
			if ev.Kind == "delivered" {
				return true
			}
		}
		return false
	})

	// Tracking by a Japanese word of the subject, then the timeline.
	p.goTo("/tracking")
	p.fill("#track-subject", "請求書")
	p.submit("#track-submit")
	if r := p.text("#track-results"); !strings.Contains(r, subject) || !strings.Contains(r, "hanako@newco.test") || strings.Contains(r, "定例会議") {
		t.Fatalf("tracking results for 請求書: %q", r)
	}
	p.checkTranslated("tracking")
	p.checkLayout("tracking")
	p.shot("console-tracking")
	if st := p.submit("#track-results td:nth-child(4) a"); st != http.StatusOK || !strings.HasPrefix(p.location(), "/tracking/") {
		t.Fatalf("open message: %d at %s", st, p.location())
	}
	ev := p.text("#timeline .ev-delivered")
	li, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.querySelector("#timeline .ev-delivered").closest("li").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	downHost, _, _ := net.SplitHostPort(e.Down.Addr())
	if ev != "delivered" || !strings.Contains(li, "hanako@newco.test") || !strings.Contains(li, "250 2.0.0") || !strings.Contains(li, downHost) {
		t.Errorf("delivery event on the timeline: %q", li)
	}
	if lr := p.text("main table tbody td:nth-child(4)"); !strings.HasPrefix(lr, "250 2.0.0 ") {
		t.Errorf("last reply column %q, want the downstream's reply once", lr)
	}
	p.checkTranslated("message")
	p.checkLayout("message")
	p.shot("console-message")

	// Japanese and back, on the page the person is on.
	msgPath := p.location()
	p.submit("#lang-ja")
	if p.location() != msgPath {
		t.Errorf("language switch moved from %s to %s", msgPath, p.location())
	}
	if nav := p.text("nav.side"); !strings.Contains(nav, "ダッシュボード") || !strings.Contains(nav, "隔離メール") {
		t.Errorf("Japanese navigation: %q", nav)
	}
	if lang, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.documentElement.lang`)); lang != "ja" {
		t.Errorf("html lang %q", lang)
	}
	p.checkTranslated("message (ja)")
	p.shot("console-message-ja")
	p.goTo("/dashboard")
	p.checkTranslated("dashboard (ja)")
	p.shot("console-dashboard-ja")
	p.submit("#lang-en")
	if nav := p.text("nav.side"); !strings.Contains(nav, "Dashboard") || strings.Contains(nav, "ダッシュボード") {
		t.Errorf("English navigation after switching back: %q", nav)
	}

	// The administrator sees alice's quarantined copy and can open it.
	p.goTo("/quarantine")
	if l := p.text("#q-list"); !strings.Contains(l, "隔離される案内") || !strings.Contains(l, consoletest.UserA) {
		t.Errorf("administrator's quarantine list: %q", l)
	}
	p.checkTranslated("quarantine list")
	p.checkLayout("quarantine list")
	p.shot("console-quarantine")
	if st := p.submit("#q-list .q-open"); st != http.StatusOK {
		t.Fatalf("open quarantined copy: %d", st)
	}
	if s := p.text("#q-subject"); s != "隔離される案内" {
		t.Errorf("quarantine view subject %q", s)
	}
	p.checkTranslated("quarantine view")
	p.checkLayout("quarantine view")
	p.shot("console-quarantine-view")

	p.goTo("/reports")
	if r := p.text("#r-table"); !strings.Contains(r, time.Now().In(e.Zone()).Format("2006-01-02")) {
		t.Errorf("reports table has no row for today: %q", r)
	}
	p.checkTranslated("reports")
	p.checkLayout("reports")
	p.shot("console-reports")

	p.checkClean()
}

// TestBrowserUserQuarantine: an end user (no TOTP) finds her quarantined
// Japanese mail, opens it in the sandboxed preview, releases it to her
// mailbox, and cannot open another user's copy by its URL.
func TestBrowserUserQuarantine(t *testing.T) {
	b := browser.Launch(t)
	e := consoletest.Start(t, consoletest.Options{})
	quarantineDeny(t, e, consoletest.UserA, "至急")
	quarantineDeny(t, e, "bob@example.test", "至急")
	time.Sleep(listIndexRefresh)
	const subject = "【至急】お支払い確認のお願い"
	if err := sendSMTP(t, e.InboundAddr(), "sato@example.net", []string{consoletest.UserA, "bob@example.test"},
		message("alice@example.test, bob@example.test", subject, "本日中にご確認ください。")); err != nil {
		t.Fatalf("send: %v", err)
	}
	alice := held(t, e, consoletest.UserA, 1)[0]
	bob := held(t, e, "bob@example.test", 1)[0]
	if e.Down.Count() != 0 {
		t.Fatalf("quarantined mail reached the downstream: %d", e.Down.Count())
	}

	p := openTab(t, b, e.URL)
	if loc := p.loginAs(consoletest.UserA, false); loc != "/quarantine" {
		t.Fatalf("end user landed on %s, want /quarantine (no TOTP)", loc)
	}
	list := p.text("#q-list")
	if !strings.Contains(list, subject) {
		t.Fatalf("quarantine list: %q", list)
	}
	ids, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#q-list tr[data-id]")).map(r => r.dataset.id)`))
	if err != nil || len(ids) != 1 || ids[0] != alice.ID {
		t.Fatalf("alice sees rows %q (%v), want only %s", ids, err, alice.ID)
	}
	p.checkTranslated("user quarantine list")
	p.checkLayout("user quarantine list")
	p.shot("console-user-quarantine")

	if st := p.submit("#q-list .q-open"); st != http.StatusOK || p.location() != "/quarantine/"+alice.ID {
		t.Fatalf("open: %d at %s", st, p.location())
	}
	if s := p.text("#q-subject"); s != subject {
		t.Errorf("subject shown %q", s)
	}
	// No script, no same-origin access: a link may only open the console's
	// link page in a new tab.
	sb, err := chromedp.Run(p.ctx, chromedp.AttributeValue(chromedp.ID("q-frame"), "sandbox"))
	if err != nil || !sb.Exists || sb.Value != "allow-popups allow-popups-to-escape-sandbox" {
		t.Errorf("preview frame sandbox attribute: %+v (%v), want only popups that escape the sandbox", sb, err)
	}
	// A one-line mail gets a frame sized to it, not most of the window.
	if h, err := chromedp.Run(p.ctx, chromedp.Evaluate[float64](`document.getElementById("q-frame").getBoundingClientRect().height`)); err != nil || h > 250 || h < 100 {
		t.Errorf("preview frame is %v px high (%v), want it sized to a one-line mail", h, err)
	}
	// The body really is in the frame (it loaded under its own policy). The
	// frame's origin is opaque (sandbox), so read it through the DOM domain.
	if fb := p.frameText("#q-frame"); !strings.Contains(fb, "本日中にご確認ください") {
		t.Errorf("preview frame shows %q", fb)
	}
	p.checkTranslated("user quarantine view")
	p.checkLayout("user quarantine view")
	p.shot("console-user-quarantine-view")

	if st := p.submit("#q-release"); st != http.StatusOK || !strings.HasPrefix(p.location(), "/quarantine") {
		t.Fatalf("release: %d at %s", st, p.location())
	}
	if n := p.text(".notice"); n == "" {
		t.Errorf("no notice after release")
	}
	mgtest.WaitFor(t, 15*time.Second, "the released copy downstream", func() bool { return len(received(t, e.Down, consoletest.UserA)) == 1 })
	got := received(t, e.Down, consoletest.UserA)[0]
	if h := got.Header.Get("X-Mailgate-Released"); !strings.HasPrefix(h, alice.ID) {
		t.Errorf("X-Mailgate-Released = %q, want it to name %s", h, alice.ID)
	}
	if s := decodedSubject(t, got); s != subject {
		t.Errorf("released subject %q", s)
	}
	if len(received(t, e.Down, "bob@example.test")) != 0 {
		t.Error("bob's copy was delivered by alice's release")
	}
	if l := p.text("#q-list"); strings.Contains(l, subject) {
		t.Errorf("released copy still listed as held: %q", l)
	}

	// Bob's copy by URL: not found, and nothing of it shown.
	for _, path := range []string{"/quarantine/" + bob.ID, "/quarantine/" + bob.ID + "/body"} {
		if st := p.goTo(path); st != http.StatusNotFound {
			t.Errorf("alice opening %s: status %d, want 404", path, st)
		}
		body, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if strings.Contains(body, subject) || strings.Contains(body, "本日中") {
			t.Errorf("%s shows bob's message: %q", path, body)
		}
	}
	p.shot("console-user-notfound")
	if href, err := chromedp.Run(p.ctx, chromedp.AttributeValue(chromedp.CSS("a[data-back]"), "href")); err != nil || strings.HasPrefix(href.Value, "javascript:") {
		t.Errorf("back link href %q (%v): a javascript: URL is refused by the console's CSP", href.Value, err)
	}
	p.submit("a[data-back]")
	if loc := p.location(); loc != "/quarantine/"+bob.ID {
		t.Errorf("back link went to %s, want the previous page", loc)
	}
	if it, err := e.Store.QuarantineItem(context.Background(), e.Tenant.ID, bob.ID); err != nil || it.State != store.QHeld {
		t.Errorf("bob's copy after alice's attempts: %+v %v", it, err)
	}

	p.checkClean()
}

// rowTexts returns the text of every body row of the table sel.
func (p *tab) rowTexts(sel string) []string {
	p.t.Helper()
	rows, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(`+fmt.Sprintf("%q", sel+" tbody tr")+`)).map(r => r.innerText)`))
	if err != nil {
		p.t.Fatalf("rows of %s: %v", sel, err)
	}
	return rows
}

// numbered returns the numbers of the "NAME NNN" labels in rows (in order).
func numbered(rows []string, name string) []int {
	re := regexp.MustCompile(regexp.QuoteMeta(name) + ` (\d{3})`)
	var out []int
	for _, r := range rows {
		if m := re.FindStringSubmatch(r); m != nil {
			var n int
			fmt.Sscanf(m[1], "%d", &n)
			out = append(out, n)
		}
	}
	return out
}

// TestBrowserPagingFollowsLinks pages through the quarantine, message
// tracking and the audit log by clicking their next/older links, with a
// search filter that must survive the page change, and downloads the report
// CSV through the link the reports page shows after choosing filters.
func TestBrowserPagingFollowsLinks(t *testing.T) {
	b := browser.Launch(t)
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	tid := e.Tenant.ID
	// 60 tracked messages, each with a quarantined copy for alice, one
	// minute apart: number 060 is the newest. Another 5 that the filter
	// leaves out prove the filter is kept on page 2.
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	const label = "ページ送り 件"
	for i := 1; i <= 65; i++ {
		subject := fmt.Sprintf("%s %03d", label, i)
		if i > 60 {
			subject = fmt.Sprintf("別件 %03d", i)
		}
		at := base.Add(time.Duration(i) * time.Minute)
		id := fmt.Sprintf("page%03d", i)
		m := store.Message{ID: id, TenantID: tid, Direction: store.Inbound, MailFrom: "sato@example.net", ReceivedAt: at, Subject: subject, Done: true}
		if _, err := e.Store.Enqueue(ctx, m, []store.Recipient{{Addr: consoletest.UserA, State: store.Quarantined}}, nil); err != nil {
			t.Fatal(err)
		}
		it := store.QuarantineItem{ID: "q" + id, TenantID: tid, Rcpt: consoletest.UserA, MessageID: id, BlobKey: "none-" + id,
			MailFrom: "sato@example.net", FromHdr: "sato@example.net", Subject: subject, Size: 100, Score: 90, Reasons: "test",
			Created: at, Expires: at.Add(30 * 24 * time.Hour), State: store.QHeld}
		if err := e.Store.AddQuarantine(ctx, it, store.Event{MessageID: id, TenantID: tid, At: at, Kind: "quarantined", Rcpt: it.Rcpt}); err != nil {
			t.Fatal(err)
		}
	}
	p := openTab(t, b, e.URL)
	p.loginAs(consoletest.AdminA, false)

	// Quarantine: a search, then next and previous.
	p.goTo("/quarantine")
	p.fill("#q-search", label)
	if st := p.submit("#q-submit"); st != http.StatusOK {
		t.Fatalf("quarantine search: %d", st)
	}
	first := numbered(p.rowTexts("#q-list"), label)
	if len(first) != 50 || first[0] != 60 || first[49] != 11 {
		t.Fatalf("quarantine page 1 shows %v, want 060 down to 011", first)
	}
	href, err := chromedp.Run(p.ctx, chromedp.AttributeValue(chromedp.ID("q-next"), "href"))
	if err != nil || !strings.Contains(href.Value, "offset=50") {
		t.Fatalf("next link %q (%v): want a query with offset=50", href.Value, err)
	}
	if st := p.submit("#q-next"); st != http.StatusOK {
		t.Fatalf("next: %d", st)
	}
	second := numbered(p.rowTexts("#q-list"), label)
	if len(second) != 10 || second[0] != 10 || second[9] != 1 {
		t.Fatalf("quarantine page 2 shows %v (at %s), want 010 down to 001", second, p.location())
	}
	if v, _ := chromedp.Run(p.ctx, chromedp.Value(chromedp.ID("q-search"))); v != label {
		t.Errorf("search box on page 2 holds %q, want %q", v, label)
	}
	if n, _ := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#q-next").length`)); n != 0 {
		t.Errorf("the last page offers a next link")
	}
	p.checkTranslated("quarantine page 2")
	p.shot("console-quarantine-page2")
	if st := p.submit("#q-prev"); st != http.StatusOK {
		t.Fatalf("prev: %d", st)
	}
	if back := numbered(p.rowTexts("#q-list"), label); len(back) != 50 || back[0] != 60 {
		t.Fatalf("previous page shows %v, want page 1 again", back)
	}

	// Message tracking: a subject search, then older.
	p.goTo("/tracking")
	p.fill("#track-subject", label)
	if st := p.submit("#track-submit"); st != http.StatusOK {
		t.Fatalf("tracking search: %d", st)
	}
	first = numbered(p.rowTexts("#track-results"), label)
	if len(first) != 50 || first[0] != 60 || first[49] != 11 {
		t.Fatalf("tracking page 1 shows %v, want 060 down to 011", first)
	}
	if st := p.submit("#track-older"); st != http.StatusOK {
		t.Fatalf("older: %d", st)
	}
	second = numbered(p.rowTexts("#track-results"), label)
	if len(second) != 10 || second[0] != 10 || second[9] != 1 {
		t.Fatalf("tracking page 2 shows %v (at %s), want 010 down to 001", second, p.location())
	}
	if v, _ := chromedp.Run(p.ctx, chromedp.Value(chromedp.ID("track-subject"))); v != label {
		t.Errorf("subject box on page 2 holds %q", v)
	}

	// The audit log: 210 entries of one action, 200 a page.
	for i := 1; i <= 210; i++ {
		if err := e.Store.AddAudit(ctx, store.AuditEntry{TenantID: tid, At: base.Add(time.Duration(i) * time.Second), Actor: "pager",
			Action: "test.page", Target: fmt.Sprintf("entry %03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	p.goTo("/audit?actor=pager")
	first = numbered(p.rowTexts("#audit"), "entry")
	if len(first) != 200 || first[0] != 210 {
		t.Fatalf("audit page 1: %d rows from %v", len(first), first[:min(3, len(first))])
	}
	if st := p.submit("#audit-older"); st != http.StatusOK {
		t.Fatalf("audit older: %d", st)
	}
	if second = numbered(p.rowTexts("#audit"), "entry"); len(second) != 10 || second[0] != 10 || second[9] != 1 {
		t.Fatalf("audit page 2 shows %v (at %s), want entries 010 down to 001", second, p.location())
	}

	// Reports: choose filters, then the CSV link downloads those.
	day := base.In(e.Zone()).Format("2006-01-02")
	p.goTo("/reports")
	p.do("choose report filters",
		chromedp.SetValue(chromedp.CSS(`#r-form input[name=from]`), day),
		chromedp.SetValue(chromedp.CSS(`#r-form input[name=to]`), day),
		chromedp.SetValue(chromedp.CSS(`#r-form select[name=by]`), "address"))
	p.fill(`#r-form input[name=domain]`, "example.test")
	if st := p.submit("#r-form button"); st != http.StatusOK {
		t.Fatalf("reports: %d", st)
	}
	csvHref, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.querySelector("#r-csv").href`))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(csvHref)
	if err != nil || u.Path != "/reports.csv" || u.Query().Get("by") != "address" || u.Query().Get("domain") != "example.test" ||
		u.Query().Get("from") != day || u.Query().Get("to") != day {
		t.Fatalf("CSV link %q: want the chosen filters as its query", csvHref)
	}
	// Follow the link with the tab's session, as the download does.
	csvText, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](
		`(async () => { const r = await fetch(document.querySelector("#r-csv").href); return r.status + " " + r.headers.get("content-type") + "\n" + await r.text(); })()`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	status, csvBody, _ := strings.Cut(csvText, "\n")
	if !strings.HasPrefix(status, "200 text/csv") {
		t.Fatalf("CSV download: %q", status)
	}
	recs, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("CSV %q: %v", csvBody, err)
	}
	for _, rec := range recs[1:] {
		if rec[0] != day || rec[1] != "example.test" || rec[2] != consoletest.UserA {
			t.Errorf("CSV row %q outside the chosen filters (day %s, domain example.test, by address)", rec, day)
		}
	}
	p.checkClean()
}
