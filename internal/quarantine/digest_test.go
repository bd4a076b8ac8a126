package quarantine

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
)

var testKey = []byte("digest-test-key-32-bytes-long!!!")

func newDigests(f *fixture) *Digests {
	return &Digests{Manager: f.m, BaseURL: "https://console.example.test/", Key: testKey, Zone: time.FixedZone("JST", 9*3600)}
}

// linksIn returns every href of the HTML part, parsed as HTML.
func linksIn(t *testing.T, h string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(h))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "script" {
			t.Fatal("digest HTML contains a script element")
		}
		if n.Type == html.ElementNode && n.Data == "a" {
			for _, a := range n.Attr {
				if a.Key == "href" {
					out = append(out, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

func verifyURL(t *testing.T, u string, now time.Time) signedlink.Link {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if p.Scheme != "https" || p.Host != "console.example.test" || p.Path != "/q/link" {
		t.Fatalf("link %q does not point at the console", u)
	}
	l, err := signedlink.Verify(testKey, p.Query().Get("t"), now)
	if err != nil {
		t.Fatalf("link %q: %v", u, err)
	}
	return l
}

const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"`

func TestDigestContent(t *testing.T) {
	for _, lang := range []string{"ja", "en"} {
		t.Run(lang, func(t *testing.T) {
			f := newFixture(t)
			d := newDigests(f)
			ctx := context.Background()
			var items []store.QuarantineItem
			for i := range 60 {
				raw := spamMsg
				if i == 0 {
					raw = "From: \"<b>Evil</b>\" <evil@sender.test>\r\nSubject: x\r\n\r\n"
				}
				it := f.hold(t, 1, "alice@example.test", raw, 0, 7)
				it.Subject = "件名 " + it.ID
				if i == 0 {
					it.Subject = hostile
				}
				items = append(items, it)
				f.clk.Advance(time.Minute)
			}
			now := f.clk.Now()
			raw := string(d.Build(ctx, DigestSpec{Lang: lang, To: []string{"alice@example.test"}, Items: items, Total: 75, Now: now}))
			mr, subj := readMail(t, raw)
			wantSubj := map[string]string{"ja": "[mailgate] 隔離メールのお知らせ (75 件)", "en": "[mailgate] Quarantine digest: 75 held messages"}[lang]
			if subj != wantSubj {
				t.Fatalf("subject %q, want %q", subj, wantSubj)
			}
			if ct, _, _ := mr.Header.ContentType(); ct != "multipart/alternative" {
				t.Fatalf("content type %s", ct)
			}
			if lang == "ja" && !strings.Contains(raw, "Subject: =?utf-8?b?") {
				t.Fatalf("subject not an encoded word:\n%s", raw[:300])
			}
			text, h := textOf(t, mr)
			if text == "" || h == "" {
				t.Fatal("missing text or HTML part")
			}
			labels := map[string][]string{"ja": {"受信する", "差出人を拒否", "管理画面で開く", "ほかに 25 件"}, "en": {"Release", "Block sender", "Open in console", "25 more"}}[lang]
			for _, w := range labels {
				if !strings.Contains(h, w) || !strings.Contains(text, w) {
					t.Fatalf("%q missing from the %s digest", w, lang)
				}
			}
			if strings.Contains(h, "<script") || strings.Contains(h, "<img") || strings.Contains(h, "<b>Evil") {
				t.Fatal("hostile values not escaped in HTML")
			}
			if !strings.Contains(h, "&lt;script&gt;") || !strings.Contains(h, "&lt;b&gt;Evil&lt;/b&gt;") {
				t.Fatal("hostile subject and name not shown escaped")
			}
			if !strings.Contains(text, hostile) {
				t.Fatal("text part lost the subject")
			}
			if !strings.Contains(h, "山田太郎") || !strings.Contains(h, "taro@sender.test") {
				t.Fatal("decoded sender name missing")
			}
			// 50 entries × 4 links + the console link.
			hrefs := linksIn(t, h)
			if len(hrefs) != DigestMax*4+1 {
				t.Fatalf("%d links, want %d", len(hrefs), DigestMax*4+1)
			}
			byItem := map[string]map[signedlink.Action]bool{}
			for _, u := range hrefs[:len(hrefs)-1] {
				l := verifyURL(t, u, now)
				if l.TenantID != 1 || l.Rcpt != "alice@example.test" {
					t.Fatalf("link %+v", l)
				}
				if byItem[l.ItemID] == nil {
					byItem[l.ItemID] = map[signedlink.Action]bool{}
				}
				byItem[l.ItemID][l.Action] = true
				if !l.Expires.Equal(f.st.items[l.ItemID].Expires.Truncate(time.Second)) {
					t.Fatalf("link expires %v, copy %v", l.Expires, f.st.items[l.ItemID].Expires)
				}
			}
			if len(byItem) != DigestMax {
				t.Fatalf("links for %d items", len(byItem))
			}
			for id, acts := range byItem {
				if len(acts) != 4 {
					t.Fatalf("item %s has actions %v", id, acts)
				}
			}
			// The text part carries the same links.
			if n := len(regexp.MustCompile(`https://console\.example\.test/q/link\?t=[A-Za-z0-9_.-]+`).FindAllString(text, -1)); n != DigestMax*4 {
				t.Fatalf("%d links in the text part", n)
			}
		})
	}
}

func sentTo(msgs []sent, rcpt string) []sent {
	var out []sent
	for _, m := range msgs {
		for _, r := range m.rcpts {
			if r == rcpt {
				out = append(out, m)
			}
		}
	}
	return out
}

// Digests go out at the configured hours in the report zone, once per
// hour slot, listing only copies new since the previous digest; admins get
// the tenant-wide one.
func TestDigestSchedule(t *testing.T) {
	f := newFixture(t)
	d := newDigests(f)
	ctx := context.Background()
	jst := d.Zone
	f.st.settings = []store.Setting{
		{TenantID: 1, Scope: store.ScopeTenant, Key: KeyAdminDigest, Value: "admin@example.test, bad, boss@example.test"},
		{TenantID: 1, Scope: store.ScopeAddress, Owner: "bob@example.test", Key: KeyDigestHours, Value: "off"},
		{TenantID: 1, Scope: store.ScopeAddress, Owner: "carol@example.test", Key: KeyDigestLang, Value: "en"},
	}
	f.clk.Set(time.Date(2026, 11, 20, 7, 0, 0, 0, jst))
	a1 := f.hold(t, 1, "alice@example.test", spamMsg, 0, 7)
	f.hold(t, 1, "bob@example.test", spamMsg, 0, 7)
	f.hold(t, 1, "carol@example.test", spamMsg, 0, 7)

	f.clk.Set(time.Date(2026, 11, 20, 8, 59, 0, 0, jst))
	if n, err := d.Run(ctx); err != nil || n != 0 {
		t.Fatalf("before 9:00: sent %d, %v", n, err)
	}
	f.clk.Set(time.Date(2026, 11, 20, 9, 3, 0, 0, jst))
	n, err := d.Run(ctx)
	if err != nil || n != 3 {
		t.Fatalf("at 9:03: sent %d, %v; want alice, carol, admins", n, err)
	}
	msgs := f.q.all()
	if len(sentTo(msgs, "bob@example.test")) != 0 {
		t.Fatal("bob turned digests off")
	}
	alice := sentTo(msgs, "alice@example.test")
	if len(alice) != 1 || !strings.Contains(alice[0].body, "=E9=9A=94=E9=9B=A2") && !strings.Contains(alice[0].body, "quarantine") {
		t.Fatalf("alice: %+v", alice)
	}
	_, subj := readMail(t, alice[0].body)
	if !strings.Contains(subj, "隔離メール") {
		t.Fatalf("alice's digest (default ja): %q", subj)
	}
	_, subj = readMail(t, sentTo(msgs, "carol@example.test")[0].body)
	if !strings.Contains(subj, "Quarantine digest") {
		t.Fatalf("carol's digest (en): %q", subj)
	}
	admin := sentTo(msgs, "boss@example.test")
	if len(admin) != 1 || len(admin[0].rcpts) != 2 || admin[0].rcpts[0] != "admin@example.test" {
		t.Fatalf("admin digest: %+v", admin)
	}
	mr, _ := readMail(t, admin[0].body)
	_, h := textOf(t, mr)
	for _, r := range []string{"alice@example.test", "bob@example.test", "carol@example.test"} {
		if !strings.Contains(h, r) {
			t.Fatalf("admin digest lacks %s", r)
		}
	}
	mr, _ = readMail(t, alice[0].body)
	_, h = textOf(t, mr)
	if l := verifyURL(t, linksIn(t, h)[0], f.clk.Now()); l.ItemID != a1.ID {
		t.Fatalf("alice's link names %s, want %s", l.ItemID, a1.ID)
	}

	// Same slot again (another node, a later tick): nothing.
	f.clk.Set(time.Date(2026, 11, 20, 9, 30, 0, 0, jst))
	if n, err := d.Run(ctx); err != nil || n != 0 {
		t.Fatalf("9:30: sent %d, %v", n, err)
	}
	// A new copy at 10:00 is reported at 17:00, alone.
	f.clk.Set(time.Date(2026, 11, 20, 10, 0, 0, 0, jst))
	a2 := f.hold(t, 1, "alice@example.test", spamMsg, 0, 7)
	f.clk.Set(time.Date(2026, 11, 20, 16, 59, 0, 0, jst))
	if n, _ := d.Run(ctx); n != 0 {
		t.Fatalf("16:59: sent %d", n)
	}
	f.clk.Set(time.Date(2026, 11, 20, 17, 0, 0, 0, jst))
	before := len(f.q.all())
	n, err = d.Run(ctx)
	if err != nil || n != 2 {
		t.Fatalf("17:00: sent %d, %v; want alice and admins", n, err)
	}
	alice = sentTo(f.q.all()[before:], "alice@example.test")
	if len(alice) != 1 {
		t.Fatalf("alice at 17:00: %d", len(alice))
	}
	mr, _ = readMail(t, alice[0].body)
	_, h = textOf(t, mr)
	hrefs := linksIn(t, h)
	if len(hrefs) != 5 || verifyURL(t, hrefs[0], f.clk.Now()).ItemID != a2.ID {
		t.Fatalf("17:00 digest should list only the new copy: %d links", len(hrefs))
	}
	if len(sentTo(f.q.all()[before:], "carol@example.test")) != 0 {
		t.Fatal("carol had nothing new")
	}
}

// A digest that cannot be queued is tried again at the next run.
func TestDigestRetriedAfterSubmitFailure(t *testing.T) {
	f := newFixture(t)
	d := newDigests(f)
	ctx := context.Background()
	f.clk.Set(time.Date(2026, 11, 20, 8, 0, 0, 0, d.Zone))
	f.hold(t, 1, "alice@example.test", spamMsg, 0, 7)
	f.clk.Set(time.Date(2026, 11, 20, 9, 0, 0, 0, d.Zone))
	f.q.fail = errors.New("disk full")
	if n, err := d.Run(ctx); err == nil || n != 0 {
		t.Fatalf("sent %d, err %v", n, err)
	}
	f.q.fail = nil
	f.clk.Advance(5 * time.Minute)
	if n, err := d.Run(ctx); err != nil || n != 1 {
		t.Fatalf("retry: sent %d, %v", n, err)
	}
}

func TestLastSlot(t *testing.T) {
	jst := time.FixedZone("JST", 9*3600)
	cases := []struct {
		now  time.Time
		want time.Time
	}{
		{time.Date(2026, 11, 20, 10, 0, 0, 0, jst), time.Date(2026, 11, 20, 9, 0, 0, 0, jst)},
		{time.Date(2026, 11, 20, 17, 0, 0, 0, jst), time.Date(2026, 11, 20, 17, 0, 0, 0, jst)},
		{time.Date(2026, 11, 20, 8, 0, 0, 0, jst), time.Date(2026, 11, 19, 17, 0, 0, 0, jst)},
		// 00:30 UTC is 09:30 JST.
		{time.Date(2026, 11, 20, 0, 30, 0, 0, time.UTC), time.Date(2026, 11, 20, 9, 0, 0, 0, jst)},
	}
	for _, c := range cases {
		if got := lastSlot(c.now, []int{9, 17}, jst); !got.Equal(c.want) {
			t.Errorf("lastSlot(%v) = %v, want %v", c.now, got, c.want)
		}
	}
}
