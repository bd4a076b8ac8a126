package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/scan/spam"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/browser"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

func storedSetting(t *testing.T, e *consoletest.Env, scope, owner, key string) (string, bool) {
	t.Helper()
	ss, err := e.Store.Settings(context.Background(), e.Tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Scope == scope && s.Owner == owner && s.Key == key {
			return s.Value, true
		}
	}
	return "", false
}

// The structured forms show what applies at a scope (the tenant's value
// for a domain), write checked values, and refuse a whole form for one
// bad value.
func TestPolicyForms(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	ctx := context.Background()
	if err := e.Store.SetSetting(ctx, store.Setting{TenantID: e.Tenant.ID, Scope: store.ScopeTenant, Key: "spam.tag_at", Value: "85"}); err != nil {
		t.Fatal(err)
	}
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	st, body := c.Get("/policy?scope=domain&owner=example.test")
	if st != http.StatusOK {
		t.Fatalf("policy page: %d", st)
	}
	for _, want := range []string{`id="sec-spam"`, `id="sec-av"`, `id="sec-auth"`, `id="sec-bec"`, `id="sec-quarantine"`, `id="sec-lists"`,
		`name="v.spam.tag_at" id="f-spam.tag_at" inputmode="decimal" size="6" value="" placeholder="85"`,
		`Without a value here: 85 (tenant)`, `Without a value here: 7 (default)`,
		`class="band-tag" data-from="85" data-to="100"`} {
		if !strings.Contains(body, want) {
			t.Errorf("domain form lacks %s", want)
		}
	}

	// One bad value: the form is refused and nothing changes.
	st, _, _ = c.Post("/policy/section", url.Values{"scope": {"domain"}, "owner": {"example.test"}, "section": {"spam"},
		"v.spam.tag_at": {"70"}, "v.spam.quarantine_at": {"very high"}})
	if st != http.StatusBadRequest {
		t.Fatalf("a form with a bad score: %d, want 400", st)
	}
	if v, ok := storedSetting(t, e, store.ScopeDomain, "example.test", "spam.tag_at"); ok {
		t.Fatalf("spam.tag_at stored from a refused form: %q", v)
	}
	st, loc, _ := c.Post("/policy/section", url.Values{"scope": {"domain"}, "owner": {"example.test"}, "section": {"spam"},
		"v.spam.tag_at": {"70%"}, "v.spam.quarantine_at": {"95"}, "v.spam.reject_at": {""}, "v.spam.tag": {"[迷惑]"},
		"v.bec.action": {"reject"}}) // not a field of this section: ignored
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/policy?owner=example.test&scope=domain") {
		t.Fatalf("spam form: %d %s", st, loc)
	}
	for k, want := range map[string]string{"spam.tag_at": "70", "spam.quarantine_at": "95", "spam.tag": "[迷惑]"} {
		if v, _ := storedSetting(t, e, store.ScopeDomain, "example.test", k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if _, ok := storedSetting(t, e, store.ScopeDomain, "example.test", "bec.action"); ok {
		t.Error("a key outside the submitted section was written")
	}
	_, body = c.Get(loc)
	for _, want := range []string{`class="band-deliver" data-from="0" data-to="70"`, `class="band-tag" data-from="70" data-to="95"`, `class="band-quarantine" data-from="95" data-to="100"`} {
		if !strings.Contains(body, want) {
			t.Errorf("bands after saving lack %s", want)
		}
	}
	// Emptying a field removes the domain's value: the tenant's applies again.
	if st, _, _ := c.Post("/policy/section", url.Values{"scope": {"domain"}, "owner": {"example.test"}, "section": {"spam"}, "v.spam.tag_at": {""}}); st != http.StatusSeeOther {
		t.Fatalf("emptying: %d", st)
	}
	if v, ok := storedSetting(t, e, store.ScopeDomain, "example.test", "spam.tag_at"); ok {
		t.Fatalf("spam.tag_at still set for the domain: %q", v)
	}
	// Another tenant's domain is not ours to set.
	if st, _, _ := c.Post("/policy/section", url.Values{"scope": {"domain"}, "owner": {"other.test"}, "section": {"spam"}, "v.spam.tag_at": {"1"}}); st != http.StatusNotFound && st != http.StatusForbidden {
		t.Fatalf("another tenant's domain: %d", st)
	}
}

// In the browser an administrator sets the virus action of a domain with
// the form's select and reads the page in Japanese.
func TestBrowserPolicyForms(t *testing.T) {
	b := browser.Launch(t)
	e := consoletest.Start(t, consoletest.Options{})
	p := openTab(t, b, e.URL)
	p.loginAs(consoletest.AdminA, false)
	if st := p.goTo("/policy?scope=domain&owner=example.test"); st != http.StatusOK {
		t.Fatalf("policy page: %d", st)
	}
	p.do("choose the virus action", chromedp.SetValue(chromedp.CSS(`[id="f-av.infected_body_action"]`), "quarantine"))
	p.fill(`[id="f-quarantine.retention_days"]`, "3")
	if st := p.submit("#save-av"); st != http.StatusOK {
		t.Fatalf("save viruses: %d", st)
	}
	if v, _ := storedSetting(t, e, store.ScopeDomain, "example.test", "av.infected_body_action"); v != "quarantine" {
		t.Fatalf("av.infected_body_action = %q after the form", v)
	}
	// Only the submitted section's form is written.
	if v, ok := storedSetting(t, e, store.ScopeDomain, "example.test", "quarantine.retention_days"); ok {
		t.Fatalf("quarantine.retention_days written by another section's button: %q", v)
	}
	if got := chosen(p, "f-av.infected_body_action"); got != "quarantine" {
		t.Errorf("the page after saving shows %q chosen", got)
	}
	p.checkTranslated("policy forms")
	p.checkLayout("policy forms")
	p.shot("console-policy-forms-en")
	p.submit("#lang-ja")
	if st := p.goTo("/policy?scope=domain&owner=example.test"); st != http.StatusOK {
		t.Fatalf("policy page (ja): %d", st)
	}
	if h := p.text("#sec-av h2"); h != "ウイルス" {
		t.Errorf("Japanese section heading %q", h)
	}
	if got := chosen(p, "f-av.infected_body_action"); got != "隔離" {
		t.Errorf("Japanese choice %q", got)
	}
	p.checkTranslated("policy forms (ja)")
	p.checkLayout("policy forms (ja)")
	p.shot("console-policy-forms-ja")
	p.checkClean()
}

// chosen is the text of the option chosen in the select with this id.
func chosen(p *tab, id string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById(`+strconv.Quote(id)+`).selectedOptions[0].textContent`))
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// The dry-run button of a form shows, without saving, which archived
// inbound mail the typed values would treat differently.
func TestPolicyDryRunPage(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) {
		c.Checks.Enabled = []string{"structure", "spam"}
		c.Archive.Interval = config.D(20 * time.Millisecond)
	}})
	ctx := context.Background()
	if err := e.Store.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: e.Tenant.ID, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := sendSMTP(t, e.InboundAddr(), "promo@spam.example", []string{consoletest.UserA}, message(consoletest.UserA, "今だけの特別価格", spam.GTUBE)); err != nil {
		t.Fatal(err)
	}
	if err := sendSMTP(t, e.InboundAddr(), "sato@example.net", []string{consoletest.UserA}, message(consoletest.UserA, "議事録", "本日の会議の議事録です。")); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 15*time.Second, "archived", func() bool {
		es, _ := e.Store.ArchiveEntries(ctx, e.Tenant.ID, 0, 10)
		return len(es) == 2
	})
	c := e.NewClient(t)
	c.Login(consoletest.AdminA)
	var body string
	mgtest.WaitFor(t, 15*time.Second, "indexed", func() bool {
		var st int
		st, _, body = c.Post("/policy/dry-run", url.Values{"scope": {"domain"}, "owner": {"example.test"}, "section": {"spam"},
			"v.spam.quarantine_at": {"100"}, "v.spam.tag_at": {""}, "days": {"7"}})
		if st != http.StatusOK {
			t.Fatalf("dry run: %d %s", st, body)
		}
		return strings.Contains(body, "2 messages (2 recipients)")
	})
	for _, want := range []string{`<dd id="dryrun-changed">1</dd>`, "tag → quarantine", "今だけの特別価格", "<code>spam.quarantine_at=100</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("dry-run page lacks %q", want)
		}
	}
	if strings.Contains(body, "議事録") {
		t.Error("the page lists a message whose outcome does not change")
	}
	if _, ok := storedSetting(t, e, store.ScopeDomain, "example.test", "spam.quarantine_at"); ok {
		t.Fatal("the dry run saved the value")
	}
}
