package bec

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/policy"
)

var brands = policy.MapSettings{"bec.brands": "microsoft.com, paypal.com,amazon.co.jp apple.com"}

// check runs one message through a checker without History.
func check(t *testing.T, s policy.Settings, headers ...string) []policy.Finding {
	t.Helper()
	c := newChecker(t, exampleDir(), nil, nil)
	fs, err := c.Check(context.Background(), msg("", headers...), s)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestDisplayName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		from string
		want bool
	}{
		{"romanised name from free mail", `"Yamada Taro" <yamada.taro.ceo@gmail.com>`, true},
		{"kanji name encoded", `=?UTF-8?B?5bGx55Sw44CA5aSq6YOO?= <boss@gmail.com>`, true}, // 山田　太郎
		{"kanji with honorific", `"山田太郎様" <office@outlook.jp>`, true},
		{"Last, First", `"Suzuki, Hanako" <hanako@yahoo.co.jp>`, true},
		{"First Last", `Hanako Suzuki <hanako@yahoo.co.jp>`, true},
		{"tenant address shown as name", `"taro.yamada@example.co.jp" <x@mailer.example.net>`, true},
		{"real person, own domain", `"山田 太郎" <taro.yamada@example.co.jp>`, false},
		{"real person, own subdomain", `"山田 太郎" <taro.yamada@mail.example.co.jp>`, false},
		{"real person, second own domain", `"佐藤花子" <sato@example-group.com>`, false},
		{"stranger", `"田中 次郎" <jiro@gmail.com>`, false},
		{"surname only", `"山田" <x@gmail.com>`, false},
		{"no display name", `yamada.taro@gmail.com`, false},
	} {
		fs := check(t, nil, "From: "+tc.from)
		if got := has(fs, SymDisplayName); got != tc.want {
			t.Errorf("%s: From %s: BEC_DISPLAY_NAME = %v, want %v (%v)", tc.name, tc.from, got, tc.want, symbols(fs))
		}
	}
}

func TestLookalikeDomain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		headers []string
		want    bool
		reason  string
	}{
		{"digit for letter", []string{"From: PayPal <service@paypa1.com>"}, true, "brand paypal.com"},
		{"rn for m", []string{"From: Microsoft <account@rnicrosoft.com>"}, true, "brand microsoft.com"},
		{"tenant domain rn for m", []string{"From: <keiri@exarnple.co.jp>"}, true, "tenant domain example.co.jp"},
		{"tenant domain transposed", []string{"From: <keiri@exmaple.co.jp>"}, true, "tenant domain example.co.jp"},
		{"Cyrillic in punycode", []string{"From: Apple <id@xn--pple-43d.com>"}, true, "brand apple.com"},
		{"Reply-To look-alike", []string{"From: <a@partner.example>", "Reply-To: <a@exarnple.co.jp>"}, true, "Reply-To domain exarnple.co.jp"},
		{"the real brand", []string{"From: PayPal <service@paypal.com>"}, false, ""},
		{"the real brand, other country", []string{"From: Amazon <order@amazon.com>"}, false, ""},
		{"own domain", []string{"From: <keiri@example.co.jp>"}, false, ""},
		{"unrelated", []string{"From: <news@gmail.com>"}, false, ""},
	} {
		fs := check(t, brands, tc.headers...)
		if got := has(fs, SymLookalike); got != tc.want {
			t.Errorf("%s: BEC_LOOKALIKE_DOMAIN = %v, want %v (%v)", tc.name, got, tc.want, symbols(fs))
			continue
		}
		for _, f := range fs {
			if f.Symbol == SymLookalike && !strings.Contains(f.Reason, tc.reason) {
				t.Errorf("%s: reason %q lacks %q", tc.name, f.Reason, tc.reason)
			}
		}
	}
	// Without the brand configured, paypa1.com imitates nothing.
	if fs := check(t, nil, "From: <service@paypa1.com>"); len(fs) != 0 {
		t.Errorf("no brands: got %v", symbols(fs))
	}
}

func TestIDNMixedScript(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		from string
		want bool
	}{
		{"<id@xn--pple-43d.com>", true},         // аpple.com, Cyrillic а
		{"<id@xn--80ak6aa92e.com>", true},       // аррӏе.com, all Cyrillic
		{"<info@xn--r8jz45g.jp>", false},        // 例え.jp
		{"<info@xn--e1afmkfd.xn--p1ai>", false}, // пример.рф
	} {
		fs := check(t, nil, "From: "+tc.from)
		if got := has(fs, SymIDNMixedScript); got != tc.want {
			t.Errorf("From %s: BEC_IDN_MIXED_SCRIPT = %v, want %v (%v)", tc.from, got, tc.want, symbols(fs))
		}
	}
}

func TestReplyToMismatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		headers   []string
		wantScore float64 // 0: no finding
	}{
		{"another org", []string{"From: <billing@vendor.co.jp>", "Reply-To: <billing.dept@gmail.com>"}, ScoreReplyTo},
		{"with display name", []string{`From: "山田 太郎" <ceo@gmail.com>`, "Reply-To: <pay@fastmail.example>"}, ScoreReplyToCombined},
		{"own From, outside Reply-To", []string{"From: <ceo@example.co.jp>", "Reply-To: <ceo.private@gmail.com>"}, ScoreReplyTo},
		{"same org", []string{"From: <news@vendor.co.jp>", "Reply-To: <support@help.vendor.co.jp>"}, 0},
		{"to the tenant", []string{"From: <news@vendor.co.jp>", "Reply-To: <keiri@example.co.jp>"}, 0},
		{"none", []string{"From: <news@vendor.co.jp>"}, 0},
	} {
		fs := check(t, nil, tc.headers...)
		var got float64
		for _, f := range fs {
			if f.Symbol == SymReplyTo {
				got = f.Score
			}
		}
		if got != tc.wantScore {
			t.Errorf("%s: BEC_REPLYTO_MISMATCH score %v, want %v (%v)", tc.name, got, tc.wantScore, symbols(fs))
		}
	}
}

func TestFirstTimeSender(t *testing.T) {
	t.Parallel()
	h := newHistory()
	c := newChecker(t, exampleDir(), h, nil)
	ctx := context.Background()

	fs, err := c.Check(ctx, msg("bounce@vendor.co.jp", "From: Vendor <Sales@Vendor.CO.JP>"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Symbol != SymFirstTime || fs[0].Score != ScoreFirstTime || fs[0].Action != policy.Header {
		t.Fatalf("first message: %+v", fs)
	}
	if got := fs[0].Headers; len(got) != 1 || got[0].Value != "score=5; symbols=BEC_FIRST_TIME_SENDER" {
		t.Errorf("header %+v", got)
	}
	if !slices.Equal(h.records, []string{"sales@vendor.co.jp"}) {
		t.Errorf("recorded %q", h.records)
	}

	fs, err = c.Check(ctx, msg("bounce@vendor.co.jp", "From: Vendor <sales@vendor.co.jp>"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 0 {
		t.Errorf("second message: %v", symbols(fs))
	}
	if len(h.records) != 2 {
		t.Errorf("every checked message is recorded: %q", h.records)
	}

	// Own-domain senders are recorded but never reported as new.
	fs, _ = c.Check(ctx, msg("", "From: <new.hire@example.co.jp>"), nil)
	if has(fs, SymFirstTime) || !h.seen[tenantID]["new.hire@example.co.jp"] {
		t.Errorf("own sender: %v, recorded %v", symbols(fs), h.seen[tenantID]["new.hire@example.co.jp"])
	}

	// Without From the envelope sender counts.
	fs, _ = c.Check(ctx, msg("Notify@Service.example", "To: <a@example.co.jp>"), nil)
	if !has(fs, SymFirstTime) || !h.seen[tenantID]["notify@service.example"] {
		t.Errorf("MAIL FROM fallback: %v", symbols(fs))
	}

	// Another tenant has its own history.
	m := msg("", "From: Vendor <sales@vendor.co.jp>")
	m.Env.TenantID = tenantID + 1
	fs, _ = c.Check(ctx, m, nil)
	if !has(fs, SymFirstTime) {
		t.Errorf("other tenant: %v", symbols(fs))
	}

	// With another signal the first-time score rises.
	fs, _ = c.Check(ctx, msg("", `From: "Yamada Taro" <new.attacker@gmail.com>`), nil)
	for _, f := range fs {
		if f.Symbol == SymFirstTime && f.Score != ScoreFirstTimeCombined {
			t.Errorf("combined first-time score %v", f.Score)
		}
	}
	if !has(fs, SymFirstTime) {
		t.Errorf("combined: %v", symbols(fs))
	}
}

func TestHistoryFailureDropsOnlyThatSignal(t *testing.T) {
	t.Parallel()
	h := newHistory()
	h.err = errDown
	c := newChecker(t, exampleDir(), h, nil)
	fs, err := c.Check(context.Background(), msg("", `From: "山田 太郎" <boss@gmail.com>`), nil)
	if err != nil {
		t.Fatalf("history failure must not fail the check: %v", err)
	}
	if !slices.Equal(symbols(fs), []string{SymDisplayName}) {
		t.Errorf("got %v", symbols(fs))
	}
}

func TestActionAndBanner(t *testing.T) {
	t.Parallel()
	from := "From: \"山田\u202e 太郎\" <boss@gmail.com>" // a bidi override hidden in the name
	replyTo := "Reply-To: <pay@fastmail.example>"

	fs := check(t, nil, from, replyTo)
	if !slices.Equal(symbols(fs), []string{SymDisplayName, SymReplyTo}) {
		t.Fatalf("symbols %v", symbols(fs))
	}
	for i, f := range fs {
		if f.Check != "bec" || !f.Overridable || f.Rcpts != nil || f.Action != policy.Tag || f.Reason == "" {
			t.Errorf("finding %d: %+v", i, f)
		}
		if i > 0 && (len(f.Headers) != 0 || f.Banner != "") {
			t.Errorf("finding %d repeats header or banner", i)
		}
	}
	f := fs[0]
	if f.TagText != DefaultTag {
		t.Errorf("tag %q", f.TagText)
	}
	if want := "score=90; symbols=BEC_DISPLAY_NAME,BEC_REPLYTO_MISMATCH"; len(f.Headers) != 1 ||
		f.Headers[0].Name != HeaderName || f.Headers[0].Value != want {
		t.Errorf("headers %+v, want %q", f.Headers, want)
	}
	for _, want := range []string{
		"This message claims to come from 山田 太郎 but was sent from an outside address (boss@gmail.com).",
		"このメールは「山田 太郎」を名乗っていますが、組織外のアドレス (boss@gmail.com) から送信されています。",
		"pay@fastmail.example",
	} {
		if !strings.Contains(f.Banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, f.Banner)
		}
	}
	if strings.ContainsRune(f.Banner, '\u202e') {
		t.Error("banner carries a bidi override from the message")
	}

	// Settings change the action, the tag and the banner.
	fs = check(t, policy.MapSettings{"bec.action": "quarantine", "bec.banner": "off"}, from)
	if fs[0].Action != policy.Quarantine || fs[0].Banner != "" || fs[0].TagText != "" {
		t.Errorf("quarantine/no banner: %+v", fs[0])
	}
	fs = check(t, policy.MapSettings{"bec.tag": "[要注意]"}, from)
	if fs[0].TagText != "[要注意]" {
		t.Errorf("tag %q", fs[0].TagText)
	}
	fs = check(t, policy.MapSettings{"bec.action": "reject"}, from)
	if fs[0].Action != policy.Reject || fs[0].Code != 550 || fs[0].Public == "" || strings.Contains(fs[0].Public, "山田") {
		t.Errorf("reject: %+v", fs[0])
	}
	// Unknown action and allow fall back to tag; a bad threshold to 50.
	for _, s := range []policy.MapSettings{{"bec.action": "explode"}, {"bec.action": "allow"}, {"bec.threshold": "x"}} {
		if fs = check(t, s, from); fs[0].Action != policy.Tag {
			t.Errorf("%v: action %v", s, fs[0].Action)
		}
	}
	// Below the threshold: header only, no banner.
	fs = check(t, policy.MapSettings{"bec.threshold": "61"}, from)
	if fs[0].Action != policy.Header || fs[0].Banner != "" || fs[0].TagText != "" || len(fs[0].Headers) != 1 {
		t.Errorf("below threshold: %+v", fs[0])
	}
	// Exactly at the threshold acts.
	fs = check(t, policy.MapSettings{"bec.threshold": "60"}, from)
	if fs[0].Action != policy.Tag {
		t.Errorf("at threshold: %v", fs[0].Action)
	}
}

func TestResolveWithAllowList(t *testing.T) {
	t.Parallel()
	fs := check(t, nil, `From: "山田 太郎" <boss@gmail.com>`)
	rcpts := []policy.Rcpt{{Addr: "keiri@example.co.jp", Domain: "example.co.jp"}}
	v := policy.Resolve(rcpts, fs)[0]
	if v.Action != policy.Tag || v.TagText != DefaultTag || v.Banner == "" || len(v.Headers) != 1 {
		t.Errorf("verdict %+v", v)
	}
	allow := policy.Finding{Check: "lists", Symbol: "ALLOW_SENDER", Action: policy.Allow}
	v = policy.Resolve(rcpts, append([]policy.Finding{allow}, fs...))[0]
	if v.Action != policy.Allow || v.TagText != "" || len(v.Headers) != 1 {
		t.Errorf("allow-listed verdict %+v", v)
	}
}

func TestDirectoryCache(t *testing.T) {
	t.Parallel()
	dir := exampleDir()
	clk := clock.NewFake(time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC))
	c := newChecker(t, dir, nil, clk)
	ctx := context.Background()
	run := func() ([]policy.Finding, error) {
		return c.Check(ctx, msg("", `From: "山田 太郎" <boss@gmail.com>`), nil)
	}
	for range 3 {
		if _, err := run(); err != nil {
			t.Fatal(err)
		}
	}
	if n := dir.loadCount(); n != 1 {
		t.Errorf("loads within TTL = %d, want 1", n)
	}
	// A person added to the directory shows up after the TTL.
	dir.mu.Lock()
	dir.people[tenantID] = append(dir.people[tenantID], Person{Name: "田中 次郎", Addr: "tanaka@example.co.jp"})
	dir.mu.Unlock()
	fs, _ := c.Check(ctx, msg("", `From: "田中 次郎" <x@gmail.com>`), nil)
	if has(fs, SymDisplayName) {
		t.Error("new person seen before the TTL expired")
	}
	clk.Advance(time.Minute)
	fs, _ = c.Check(ctx, msg("", `From: "田中 次郎" <x@gmail.com>`), nil)
	if !has(fs, SymDisplayName) || dir.loadCount() != 2 {
		t.Errorf("after TTL: %v, loads %d", symbols(fs), dir.loadCount())
	}
	// A failing refresh keeps the previous copy.
	dir.setErr(errDown)
	clk.Advance(time.Minute)
	fs, err := run()
	if err != nil || !has(fs, SymDisplayName) {
		t.Errorf("stale copy: %v, %v", symbols(fs), err)
	}
	// Without any copy the check cannot judge.
	m := msg("", `From: "山田 太郎" <boss@gmail.com>`)
	m.Env.TenantID = 99
	if _, err := c.Check(ctx, m, nil); !errors.Is(err, errDown) {
		t.Errorf("no copy: err = %v, want %v", err, errDown)
	}
}

func TestCacheDisabled(t *testing.T) {
	t.Parallel()
	dir := exampleDir()
	c, err := New(Config{Directory: dir, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Check(context.Background(), msg("", "From: <a@b.example>"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := dir.loadCount(); n != 2 {
		t.Errorf("loads = %d, want 2", n)
	}
}

func TestNewNeedsDirectory(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); err == nil {
		t.Error("New without Directory succeeded")
	}
}

func TestOutboundSkipped(t *testing.T) {
	t.Parallel()
	h := newHistory()
	c := newChecker(t, exampleDir(), h, nil)
	m := msg("", `From: "山田 太郎" <boss@gmail.com>`)
	m.Env.Outbound = true
	fs, err := c.Check(context.Background(), m, nil)
	if err != nil || len(fs) != 0 || len(h.records) != 0 {
		t.Errorf("outbound: %v %v %q", symbols(fs), err, h.records)
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	c := newChecker(t, exampleDir(), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Check(ctx, msg("", "From: <a@b.example>"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

// TestFixture runs a CEO-fraud message as a Japanese mail client writes it:
// ISO-2022-JP encoded-words in From, a Reply-To to a third party.
func TestFixture(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/ceo-fraud-iso2022jp.eml")
	if err != nil {
		t.Fatal(err)
	}
	h := newHistory()
	c := newChecker(t, exampleDir(), h, nil)
	fs, err := c.Check(context.Background(), rawMsg("ceo.office@gmail.com", raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{SymDisplayName, SymReplyTo, SymFirstTime}
	if !slices.Equal(symbols(fs), want) {
		t.Fatalf("symbols %v, want %v", symbols(fs), want)
	}
	if v := fs[0].Headers[0].Value; v != "score=105; symbols=BEC_DISPLAY_NAME,BEC_REPLYTO_MISMATCH,BEC_FIRST_TIME_SENDER" {
		t.Errorf("header %q", v)
	}
	if !strings.Contains(fs[0].Banner, "山田 太郎") {
		t.Errorf("banner %q", fs[0].Banner)
	}
}

func TestHostileHeaders(t *testing.T) {
	t.Parallel()
	c := newChecker(t, exampleDir(), newHistory(), nil)
	for _, from := range []string{
		"From: \x00\x01 <\x00@\x00>",
		"From: " + strings.Repeat("山田太郎", 5000) + " <a@gmail.com>",
		"From: <a@" + strings.Repeat("x", 300) + ".com>",
		"From: <@>",
		"From: \"unterminated <a@b.example>",
		"From: =?UTF-8?B?////?= <a@xn--.com>",
		"From: <a@xn--zzzz-zzzz.com>, <b@[192.0.2.1]>",
		"Reply-To: " + strings.Repeat("<a@b.example>,", 2000),
	} {
		if _, err := c.Check(context.Background(), msg("", from), brands); err != nil {
			t.Errorf("%.40q: %v", from, err)
		}
	}
}

func TestConcurrentChecks(t *testing.T) {
	t.Parallel()
	h := newHistory()
	c := newChecker(t, exampleDir(), h, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := msg("", `From: "山田 太郎" <boss@gmail.com>`)
			m.Env.TenantID = int64(i % 3)
			if _, err := c.Check(context.Background(), m, brands); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
