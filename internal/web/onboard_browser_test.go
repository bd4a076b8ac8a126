package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/testutil/browser"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// The onboarding wizard end to end, in English and in Japanese: a tenant
// administrator adds a domain and follows every step while the domain's
// DNS (a loopback fake) changes between the steps as the administrator's
// DNS provider would; each check says what differs until it is fixed.
func TestBrowserOnboardingWizard(t *testing.T) {
	b := browser.Launch(t)
	dns := dnstest.Start(t)
	dns.Add(`mx.mailgate.test. 60 IN A 192.0.2.25`)
	e := consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) { c.DNS.Resolver = dns.Addr() }})
	p := openTab(t, b, e.URL)
	if loc := p.loginAs(consoletest.AdminA, false); loc != "/dashboard" {
		t.Fatalf("after login: %s", loc)
	}
	for _, tc := range []struct {
		lang, domain string
		want         map[string]string // texts expected on the way, by what they show
	}{
		{"en", "newco.test", map[string]string{
			"verify":  "No TXT record was found at _mailgate.newco.test",
			"google":  "Reject all mail not from gateway IPs",
			"spf":     "The SPF record does not include mailgate (mx.mailgate.test)",
			"dmarc":   "No DMARC record",
			"ttl":     "The MX TTL is 3600 s",
			"mx":      "The MX still points to mail.newco.test",
			"mta-sts": "before the switch add the line shown",
		}},
		{"ja", "nihon.test", map[string]string{
			"verify":  "_mailgate.nihon.test",
			"google":  "ゲートウェイ IP 以外からのメールをすべて拒否する",
			"spf":     "SPF レコードに mailgate（mx.mailgate.test）が含まれていません",
			"dmarc":   "DMARC レコードがありません",
			"ttl":     "MX の TTL が 3600 秒です",
			"mx":      "MX はまだ mail.nihon.test を指しています",
			"mta-sts": "切り替えの前に",
		}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			p.t = t
			d := tc.domain
			p.goTo("/dashboard")
			if tc.lang == "ja" {
				p.submit("#lang-ja")
			}
			// The domain's DNS before onboarding: the primary service's MX
			// with a long TTL, an SPF record without mailgate, an MTA-STS
			// policy.
			dns.Add(d + `. 3600 IN MX 10 mail.` + d + `.`)
			dns.Add(d + `. 3600 IN TXT "v=spf1 include:_spf.google.com ~all"`)
			dns.Add(`_mta-sts.` + d + `. 3600 IN TXT "v=STSv1; id=1"`)

			p.goTo("/domains")
			p.fill("#domain-name", d)
			p.fill("#domain-route", "smtp://"+e.Down.Addr())
			if st := p.submit("#domain-submit"); st != http.StatusOK {
				t.Fatalf("add domain: %d", st)
			}
			p.goTo("/dashboard")
			pending := `#onboarding-pending li[data-domain="` + d + `"]`
			if !strings.Contains(p.text(pending), "1.") {
				t.Fatalf("dashboard: %q", p.text(pending))
			}
			p.checkTranslated("dashboard with onboarding")
			p.submit(pending + " a")

			// 1. Ownership.
			if got := p.attr("#onboard-step", "data-step"); got != "1" {
				t.Fatalf("wizard opens at step %s", got)
			}
			value := p.text("#onboard-step .record-value")
			if st := p.submit("#onboard-verify"); st != http.StatusBadRequest || !strings.Contains(p.text("main"), tc.want["verify"]) {
				t.Fatalf("verify without the record: %d %q", st, p.text("main"))
			}
			dns.Add(`_mailgate.` + d + `. 60 IN TXT "` + value + `"`)
			p.submit("#onboard-verify")

			// 2. The primary service.
			if got := p.attr("#onboard-step", "data-step"); got != "2" {
				t.Fatalf("after verification: step %s: %q", got, p.text("main"))
			}
			p.do("choose Google Workspace", chromedp.Click(chromedp.CSS(`#service-form input[value="google"]`), chromedp.NodeVisible))
			p.submit("#service-save")
			ins := p.text("#instructions")
			for _, want := range []string{tc.want["google"], "192.0.2.25", "^X-Mailgate-Spam: yes$", "mx.mailgate.test"} {
				if !strings.Contains(ins, want) {
					t.Errorf("Google Workspace steps lack %q: %q", want, ins)
				}
			}
			p.checkTranslated("wizard: service")
			p.checkLayout("wizard: service")
			p.shot("console-onboard-service-" + tc.lang)
			p.submit("#step-done")

			// 3. SPF, DKIM, DMARC: SPF fixed at the DNS provider, then checked again.
			if got := p.attr("#onboard-step", "data-step"); got != "3" {
				t.Fatalf("step %s", got)
			}
			if p.attr("#check-spf", "data-status") != "fail" || !strings.Contains(p.text("#check-spf"), tc.want["spf"]) ||
				!strings.Contains(p.text("#check-spf"), `"v=spf1 a:mx.mailgate.test include:_spf.google.com ~all"`) {
				t.Fatalf("SPF before: %q", p.text("#check-spf"))
			}
			if !strings.Contains(p.text("#check-dmarc"), tc.want["dmarc"]) {
				t.Fatalf("DMARC before: %q", p.text("#check-dmarc"))
			}
			p.shot("console-onboard-auth-" + tc.lang)
			dns.Remove(d+".", 16)
			dns.Add(d + `. 300 IN TXT "v=spf1 a:mx.mailgate.test include:_spf.google.com ~all"`)
			dns.Add(`_dmarc.` + d + `. 300 IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@` + d + `"`)
			p.submit("#check-again")
			if p.attr("#check-spf", "data-status") != "ok" || p.attr("#check-dmarc", "data-status") != "warn" {
				t.Fatalf("after publishing: SPF %q DMARC %q", p.text("#check-spf"), p.text("#check-dmarc"))
			}
			p.checkTranslated("wizard: auth")
			p.submit("#step-done")

			// 4. MX TTL: lowered at the DNS provider.
			if p.attr("#check-mx_ttl", "data-status") != "fail" || !strings.Contains(p.text("#check-mx_ttl"), tc.want["ttl"]) {
				t.Fatalf("TTL before: %q", p.text("#check-mx_ttl"))
			}
			dns.Remove(d+".", 15)
			dns.Add(d + `. 300 IN MX 10 mail.` + d + `.`)
			p.submit("#check-again")
			if p.attr("#check-mx_ttl", "data-status") != "ok" {
				t.Fatalf("TTL after: %q", p.text("#check-mx_ttl"))
			}
			p.submit("#step-done")

			// 5. A test message through mailgate to the domain's route.
			before := e.Down.Count()
			p.fill("#test-rcpt", "postmaster@"+d)
			if st := p.submit("#test-send"); st != http.StatusOK || p.attr("#onboard-step", "data-step") != "5" {
				t.Fatalf("send test: %d %q", st, p.text("main"))
			}
			mgtest.WaitFor(t, 20*time.Second, "the test message downstream", func() bool { return e.Down.Count() == before+1 })
			mgtest.WaitFor(t, 20*time.Second, "the delivery on the page", func() bool {
				p.submit("#check-again")
				return p.attr("#test-result", "data-delivered") == "true"
			})
			if !strings.Contains(p.text("#test-result"), "postmaster@"+d) {
				t.Fatalf("test result: %q", p.text("#test-result"))
			}
			p.checkTranslated("wizard: test")
			p.shot("console-onboard-test-" + tc.lang)
			p.submit("#step-done")

			// 6. The MX switch: refused until the resolver sees mailgate.
			if got := p.attr("#onboard-step", "data-step"); got != "6" {
				t.Fatalf("step %s", got)
			}
			if !strings.Contains(p.text("#mx-records"), d+". 300 IN MX 10 mx.mailgate.test.") || !strings.Contains(p.text("#check-mx"), tc.want["mx"]) ||
				!strings.Contains(p.text("#check-mta_sts"), "mx: mx.mailgate.test") || !strings.Contains(p.text("#check-mta_sts"), tc.want["mta-sts"]) {
				t.Fatalf("step 6: %q", p.text("#onboard-step"))
			}
			if st := p.submit("#step-done"); st != http.StatusBadRequest || !strings.Contains(p.text("p.error"), tc.want["mx"]) {
				t.Fatalf("finish before the switch: %d %q", st, p.text("main"))
			}
			dns.Remove(d+".", 15)
			dns.Add(d + `. 300 IN MX 10 mx.mailgate.test.`)
			if st := p.submit("#step-done"); st != http.StatusOK || p.attr("#check-mx", "data-status") != "ok" || p.text("#onboard-finished") == "" {
				t.Fatalf("finish after the switch: %d %q", st, p.text("main"))
			}
			if !strings.Contains(p.text("#recipient-check"), map[string]string{"en": "recipient verification", "ja": "ユーザ存在確認"}[tc.lang]) {
				t.Errorf("recipient verification pointer: %q", p.text("#recipient-check"))
			}
			if href := p.attr("#onboard-recipients-link", "href"); href != "/domains/"+d+"/directory" {
				t.Errorf("recipient verification link %q", href)
			}
			p.checkTranslated("wizard: finished")
			p.checkLayout("wizard: finished")
			p.shot("console-onboard-done-" + tc.lang)
			p.goTo("/dashboard")
			if n, _ := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll('#onboarding-pending li[data-domain="`+d+`"]').length`)); n != 0 {
				t.Errorf("the finished domain is still on the dashboard")
			}
			p.checkClean()
		})
	}
}

// attr is the attribute name of the element sel ("" without one).
func (p *tab) attr(sel, name string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(document.querySelector(`+jsString(sel)+`) || {getAttribute: () => ""}).getAttribute(`+jsString(name)+`) || ""`))
	if err != nil {
		p.t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return v
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// The wizard through the API: a token reads a domain's steps and chooses
// its primary service; an unknown action and another tenant's domain are
// refused.
func TestOnboardingAPI(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	a := newAPIClient(t, e)
	var wz struct {
		Domain  string `json:"domain"`
		Service string `json:"service"`
		Step    int    `json:"step"`
		Steps   []struct {
			N    int  `json:"n"`
			Done bool `json:"done"`
		} `json:"steps"`
	}
	a.want(http.StatusOK, "a-read", "GET", "/domains/example.test/onboarding", nil, &wz)
	if wz.Domain != "example.test" || len(wz.Steps) != 6 || wz.Service != "" {
		t.Fatalf("wizard %+v", wz)
	}
	a.want(http.StatusOK, "a-write", "POST", "/domains/example.test/onboarding", map[string]any{"action": "service", "service": "google"}, &wz)
	if wz.Service != "google" || wz.Step != 2 {
		t.Fatalf("after choosing the service: %+v", wz)
	}
	a.want(http.StatusForbidden, "a-read", "POST", "/domains/example.test/onboarding", map[string]any{"action": "service", "service": "m365"}, nil)
	a.want(http.StatusBadRequest, "a-write", "POST", "/domains/example.test/onboarding", map[string]any{"action": "launch"}, nil)
	a.want(http.StatusNotFound, "a-write", "GET", "/domains/other.test/onboarding", nil, nil)
}
