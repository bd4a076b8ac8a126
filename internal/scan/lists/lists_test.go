package lists

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
)

// TestFieldModeKind covers every field × mode × kind with a value that
// matches and a near miss that must not.
func TestFieldModeKind(t *testing.T) {
	t.Parallel()
	raw := rawMsg(
		`From: "Taro Yamada" <Taro.Yamada@Sub.Example.co.jp>`,
		"To: hanako@example.jp",
		"Subject: Quarterly Report for April",
	)
	const mailFrom = "Bounce@Mail.Example.COM"
	type pair struct{ hit, miss string }
	cases := map[string]map[string]pair{
		FieldEnvFrom: {
			ModeExact:    {"bounce@mail.example.com", "ounce@mail.example.com"},
			ModeContains: {"@MAIL.exa", "@mail.examplex"},
			ModePrefix:   {"bounce@", "ounce@"},
			ModeSuffix:   {"example.com", "example.co"},
			ModeRegex:    {`^bounce@[a-z.]+\.com$`, `^mail@`},
		},
		FieldFromAddr: {
			ModeExact:    {"taro.yamada@sub.example.co.jp", "taro@sub.example.co.jp"},
			ModeContains: {"yamada@", "yamada@example"},
			ModePrefix:   {"TARO.", "yamada"},
			ModeSuffix:   {".co.jp", ".com"},
			ModeRegex:    {`yamada@.*\.jp$`, `^yamada`},
		},
		FieldFromDomain: {
			ModeExact:    {"sub.example.co.jp", "example.co.jp"},
			ModeContains: {"example", "examples"},
			ModePrefix:   {"sub.", "example"},
			ModeSuffix:   {"example.co.jp", "ample.co.jp"}, // label boundary
			ModeRegex:    {`^sub\.`, `^example`},
		},
		FieldSubject: {
			ModeExact:    {"quarterly report for april", "quarterly report"},
			ModeContains: {"REPORT", "reports"},
			ModePrefix:   {"Quarterly", "report"},
			ModeSuffix:   {"april", "report"},
			ModeRegex:    {`report\s+for`, `^report`},
		},
	}
	for field, modes := range cases {
		fid, _ := fieldID(field)
		for mode, p := range modes {
			for _, kind := range []string{KindAllow, KindDeny} {
				for _, miss := range []bool{false, true} {
					v := p.hit
					if miss {
						v = p.miss
					}
					name := field + "/" + mode + "/" + kind + "/" + v
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						e := Entry{Scope: ScopeAddress, Owner: "hanako@example.jp", Kind: kind, Field: field, Mode: mode, Value: v}
						c, _ := newCheck(newSource(e))
						fs := run(t, c, message(mailFrom, raw, rcpt("hanako@example.jp")), nil)
						got := outcome(t, fs, "hanako@example.jp")
						want := ""
						switch {
						case miss:
						case kind == KindAllow:
							want = "ALLOW_" + fieldSymbol(fid) + " allow"
						default:
							want = "DENY_" + fieldSymbol(fid) + " discard"
						}
						if got != want {
							t.Errorf("got %q, want %q", got, want)
						}
					})
				}
			}
		}
	}
}

func TestFromDomainSuffixMatchesItselfAndSubdomains(t *testing.T) {
	t.Parallel()
	e := Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldFromDomain, Mode: ModeSuffix, Value: "@Spam.Example"}
	c, _ := newCheck(newSource(e))
	for from, want := range map[string]string{
		"a@spam.example":       "DENY_FROM_DOMAIN discard",
		"a@mx1.SPAM.example":   "DENY_FROM_DOMAIN discard",
		"a@spam.example.":      "DENY_FROM_DOMAIN discard",
		"a@nospam.example":     "",
		"a@spam.example.other": "",
	} {
		fs := run(t, c, message("", rawMsg("From: "+from, "Subject: x"), rcpt("u@example.jp")), nil)
		if got := outcome(t, fs, "u@example.jp"); got != want {
			t.Errorf("From %s: got %q, want %q", from, got, want)
		}
	}
}

func TestJapaneseSubjectISO2022JP(t *testing.T) {
	t.Parallel()
	ad := fixture(t, "unsolicited_ad_iso2022jp.eml")
	sale := fixture(t, "fullwidth_sale_iso2022jp.eml")

	m := message("info@ads.example.net", ad, rcpt("taro@example.jp"))
	p, err := m.Parsed(context.Background())
	if err != nil || !strings.Contains(p.Subject, "未承諾広告") || !strings.Contains(p.Subject, "ｾｰﾙ") {
		t.Fatalf("fixture subject decoded as %q (%v)", p.Subject, err)
	}

	cases := []struct {
		name, value string
		raw         []byte
		match       bool
	}{
		{"kanji in encoded-word", "未承諾広告", ad, true},
		{"full-width entry, half-width subject", "セール開催", ad, true},
		{"half-width entry, half-width subject", "ｾｰﾙ", ad, true},
		{"not in subject", "無料", ad, false},
		{"ASCII entry, full-width subject", "sale", sale, true},
		{"full-width entry, full-width subject", "ｓａｌｅ", sale, true},
		{"mixed widths and space", "SALE 最大50%off", sale, true},
		{"full-width space entry", "ＳＡＬＥ　最大", sale, true},
		{"kanji absent", "未承諾広告", sale, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeContains, Value: tc.value}
			c, _ := newCheck(newSource(e))
			fs := run(t, c, message("x@example.net", tc.raw, rcpt("taro@example.jp")), nil)
			got := outcome(t, fs, "taro@example.jp")
			if want := map[bool]string{true: "DENY_SUBJECT discard", false: ""}[tc.match]; got != want {
				t.Errorf("entry %q: got %q, want %q", tc.value, got, want)
			}
		})
	}
}

// An address allow and a domain deny both match: the priority setting
// decides which list speaks.
func TestPrioritySwitch(t *testing.T) {
	t.Parallel()
	src := newSource(
		Entry{Scope: ScopeAddress, Owner: "taro@example.jp", Kind: KindAllow, Field: FieldFromAddr, Mode: ModeExact, Value: "info@ads.example.net"},
		Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeContains, Value: "未承諾広告"},
	)
	c, _ := newCheck(src)
	raw := fixture(t, "unsolicited_ad_iso2022jp.eml")
	for prio, want := range map[string]string{
		"":        "ALLOW_FROM_ADDR allow", // default: address first (seed)
		"address": "ALLOW_FROM_ADDR allow",
		"domain":  "DENY_SUBJECT discard",
		"Domain":  "DENY_SUBJECT discard",
		"bogus":   "ALLOW_FROM_ADDR allow",
	} {
		s := policy.MapSettings{}
		if prio != "" {
			s["lists.priority"] = prio
		}
		fs := run(t, c, message("info@ads.example.net", raw, rcpt("taro@example.jp")), s)
		if got := outcome(t, fs, "taro@example.jp"); got != want {
			t.Errorf("priority %q: got %q, want %q", prio, got, want)
		}
	}
	// The reverse pairing: address deny, domain allow.
	src.set(
		Entry{Scope: ScopeAddress, Owner: "taro@example.jp", Kind: KindDeny, Field: FieldEnvFrom, Mode: ModeSuffix, Value: "@ads.example.net"},
		Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindAllow, Field: FieldFromDomain, Mode: ModeExact, Value: "ads.example.net"},
	)
	c.Invalidate(tenant)
	for prio, want := range map[string]string{"address": "DENY_ENV_FROM discard", "domain": "ALLOW_FROM_DOMAIN allow"} {
		fs := run(t, c, message("info@ads.example.net", raw, rcpt("taro@example.jp")), policy.MapSettings{"lists.priority": prio})
		if got := outcome(t, fs, "taro@example.jp"); got != want {
			t.Errorf("reverse, priority %q: got %q, want %q", prio, got, want)
		}
	}
}

func TestPerRecipientOutcomes(t *testing.T) {
	t.Parallel()
	src := newSource(
		Entry{Scope: ScopeAddress, Owner: "Taro@Example.JP", Kind: KindDeny, Field: FieldSubject, Mode: ModeContains, Value: "invoice"},
		Entry{Scope: ScopeDomain, Owner: "other.example", Kind: KindAllow, Field: FieldEnvFrom, Mode: ModeExact, Value: "billing@vendor.example"},
		Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldFromAddr, Mode: ModeExact, Value: "nobody@nowhere.example"},
	)
	c, _ := newCheck(src)
	raw := rawMsg("From: Billing <billing@vendor.example>", "Subject: Your Invoice #42")
	rcpts := []policy.Rcpt{rcpt("taro@example.jp"), rcpt("jiro@other.example"), rcpt("hanako@example.jp"), rcpt("x@unlisted.example")}
	settings := policy.PerRcpt{
		Message: policy.MapSettings{},
		Rcpt:    map[string]policy.Settings{"taro@example.jp": policy.MapSettings{"lists.deny_action": "reject"}},
	}
	fs := run(t, c, message("billing@vendor.example", raw, rcpts...), settings)
	want := map[string]string{
		"taro@example.jp":    "DENY_SUBJECT reject",
		"jiro@other.example": "ALLOW_ENV_FROM allow",
		"hanako@example.jp":  "",
		"x@unlisted.example": "",
	}
	for addr, w := range want {
		if got := outcome(t, fs, addr); got != w {
			t.Errorf("%s: got %q, want %q", addr, got, w)
		}
	}
	for _, f := range fs {
		if f.Action == policy.Reject && (f.Code != 550 || f.Enhanced != "5.7.1" || f.Public == "" || strings.Contains(f.Public, "invoice")) {
			t.Errorf("reject finding: code %d %s public %q", f.Code, f.Enhanced, f.Public)
		}
	}
	// Resolve: the deny list discards or rejects only its own recipient.
	vs := policy.Resolve(rcpts, fs)
	if vs[0].Action != policy.Reject || vs[1].Action != policy.Allow || vs[2].Action != policy.Continue {
		t.Errorf("verdicts: %v %v %v", vs[0].Action, vs[1].Action, vs[2].Action)
	}
}

// Recipients with the same outcome share one finding; different outcomes
// stay apart.
func TestSameOutcomeShared(t *testing.T) {
	t.Parallel()
	c, _ := newCheck(newSource(Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldEnvFrom, Mode: ModeContains, Value: "spam"}))
	fs := run(t, c, message("spam@x.example", rawMsg("Subject: hi"), rcpt("a@example.jp"), rcpt("b@example.jp"), rcpt("c@other.example")), nil)
	if len(fs) != 1 || strings.Join(fs[0].Rcpts, ",") != "a@example.jp,b@example.jp" {
		t.Fatalf("findings %+v", fs)
	}
}

func TestGroupLists(t *testing.T) {
	t.Parallel()
	src := newSource(
		Entry{Scope: ScopeGroup, Owner: "Sales", Kind: KindDeny, Field: FieldSubject, Mode: ModePrefix, Value: "[ad]"},
		Entry{Scope: ScopeGroup, Owner: "partners", Kind: KindAllow, Field: FieldFromDomain, Mode: ModeSuffix, Value: "vendor.example"},
		Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindAllow, Field: FieldSubject, Mode: ModeContains, Value: "offer"},
		Entry{Scope: ScopeAddress, Owner: "boss@example.jp", Kind: KindAllow, Field: FieldEnvFrom, Mode: ModeSuffix, Value: "vendor.example"},
	)
	c, _ := newCheck(src)
	raw := rawMsg("From: news@mail.vendor.example", "Subject: [AD] special offer")
	rcpts := []policy.Rcpt{
		rcpt("a@example.jp", "sales"),             // group deny beats domain allow
		rcpt("b@example.jp"),                      // domain allow only
		rcpt("c@example.jp", "sales", "partners"), // one level: deny beats allow
		rcpt("d@example.jp", "partners", "sales"), // group order does not matter
		rcpt("e@example.jp", "partners"),          // group allow
		rcpt("boss@example.jp", "sales"),          // address allow beats group deny
	}
	want := []string{"DENY_SUBJECT discard", "ALLOW_SUBJECT allow", "DENY_SUBJECT discard", "DENY_SUBJECT discard", "ALLOW_FROM_DOMAIN allow", "ALLOW_ENV_FROM allow"}
	fs := run(t, c, message("news@mail.vendor.example", raw, rcpts...), nil)
	for i, r := range rcpts {
		if got := outcome(t, fs, r.Addr); got != want[i] {
			t.Errorf("%s %v: got %q, want %q", r.Addr, r.Groups, got, want[i])
		}
	}
	// Under domain first, the domain allow decides before the group deny.
	fs = run(t, c, message("news@mail.vendor.example", raw, rcpts[0]), policy.MapSettings{"lists.priority": "domain"})
	if got := outcome(t, fs, "a@example.jp"); got != "ALLOW_SUBJECT allow" {
		t.Errorf("domain first: got %q", got)
	}
}

func TestWithinOneListDenyAndStrongestActionWin(t *testing.T) {
	t.Parallel()
	src := newSource(
		Entry{ID: 1, Scope: ScopeDomain, Owner: "example.jp", Kind: KindAllow, Field: FieldEnvFrom, Mode: ModeExact, Value: "a@b.example"},
		Entry{ID: 2, Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeContains, Value: "win", Action: ActionQuarantine},
		Entry{ID: 3, Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeContains, Value: "prize", Action: ActionReject},
		Entry{ID: 4, Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeContains, Value: "free"},
	)
	c, _ := newCheck(src)
	m := func(subj string) *policy.Message {
		return message("a@b.example", rawMsg("From: a@b.example", "Subject: "+subj), rcpt("u@example.jp"))
	}
	for subj, want := range map[string]string{
		"hello":             "ALLOW_ENV_FROM allow",
		"you win":           "DENY_SUBJECT quarantine",
		"win a prize":       "DENY_SUBJECT reject",
		"free win":          "DENY_SUBJECT discard", // setting default discard > quarantine
		"free prize, win!!": "DENY_SUBJECT reject",
	} {
		fs := run(t, c, m(subj), nil)
		if got := outcome(t, fs, "u@example.jp"); got != want {
			t.Errorf("subject %q: got %q, want %q", subj, got, want)
		}
	}
	// The entry's own action wins over the setting; the setting fills in.
	fs := run(t, c, m("free win"), policy.MapSettings{"lists.deny_action": "quarantine"})
	if got := outcome(t, fs, "u@example.jp"); got != "DENY_SUBJECT quarantine" {
		t.Errorf("setting quarantine: got %q", got)
	}
	fs = run(t, c, m("free"), policy.MapSettings{"lists.deny_action": "reject"})
	if got := outcome(t, fs, "u@example.jp"); got != "DENY_SUBJECT reject" {
		t.Errorf("setting reject: got %q", got)
	}
}

func TestSeveralFromOrSubjectFields(t *testing.T) {
	t.Parallel()
	src := newSource(
		Entry{Scope: ScopeAddress, Owner: "u@example.jp", Kind: KindAllow, Field: FieldFromAddr, Mode: ModeExact, Value: "ceo@example.jp"},
		Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldFromDomain, Mode: ModeExact, Value: "evil.example"},
		Entry{Scope: ScopeAddress, Owner: "v@example.jp", Kind: KindAllow, Field: FieldSubject, Mode: ModeExact, Value: "weekly"},
		Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeExact, Value: "wire money"},
	)
	c, _ := newCheck(src)
	cases := []struct {
		name string
		raw  []byte
		u, v string
	}{
		{"one From", rawMsg(`From: "CEO" <ceo@example.jp>`, "Subject: weekly"), "ALLOW_FROM_ADDR allow", "ALLOW_SUBJECT allow"},
		{"second From field denied", rawMsg(`From: "CEO" <ceo@example.jp>`, "From: Boss <boss@evil.example>", "Subject: weekly"),
			"DENY_FROM_DOMAIN discard", "ALLOW_SUBJECT allow"}, // v's address list decides first
		{"second From field, allow ignored", rawMsg(`From: "CEO" <ceo@example.jp>`, "From: other@else.example", "Subject: x"), "", ""},
		{"two mailboxes in one field", rawMsg(`From: "CEO" <ceo@example.jp>, "X, Y" <x@evil.example>`, "Subject: x"),
			"DENY_FROM_DOMAIN discard", "DENY_FROM_DOMAIN discard"},
		{"second Subject denied", rawMsg("From: a@b.example", "Subject: weekly", "Subject: wire money"), "DENY_SUBJECT discard", "DENY_SUBJECT discard"},
		{"second Subject, allow ignored", rawMsg("From: a@b.example", "Subject: weekly", "Subject: other"), "", ""},
	}
	for _, tc := range cases {
		fs := run(t, c, message("", tc.raw, rcpt("u@example.jp"), rcpt("v@example.jp")), nil)
		if got := outcome(t, fs, "u@example.jp"); got != tc.u {
			t.Errorf("%s: u got %q, want %q", tc.name, got, tc.u)
		}
		if got := outcome(t, fs, "v@example.jp"); got != tc.v {
			t.Errorf("%s: v got %q, want %q", tc.name, got, tc.v)
		}
	}
}

func TestOwnerAndIDNSpellings(t *testing.T) {
	t.Parallel()
	src := newSource(
		Entry{Scope: ScopeDomain, Owner: "EXAMPLE.JP.", Kind: KindDeny, Field: FieldFromDomain, Mode: ModeSuffix, Value: "例え.jp"},
		Entry{Scope: ScopeDomain, Owner: "テスト.jp", Kind: KindDeny, Field: FieldEnvFrom, Mode: ModeExact, Value: "a@xn--r8jz45g.jp"},
	)
	c, _ := newCheck(src)
	fs := run(t, c, message("a@例え.jp", rawMsg("From: x@mail.xn--r8jz45g.jp", "Subject: x"), rcpt("u@example.jp"), rcpt("v@xn--zckzah.jp")), nil)
	if got := outcome(t, fs, "u@example.jp"); got != "DENY_FROM_DOMAIN discard" {
		t.Errorf("U-label entry vs A-label mail: got %q", got)
	}
	if got := outcome(t, fs, "v@xn--zckzah.jp"); got != "DENY_ENV_FROM discard" {
		t.Errorf("A-label entry vs U-label mail, U-label owner: got %q", got)
	}
}

func TestVersionChangePicksUpEdits(t *testing.T) {
	t.Parallel()
	deny := Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeContains, Value: "lottery"}
	src := newSource(deny)
	c, clk := newCheck(src)
	m := func() *policy.Message {
		return message("x@y.example", rawMsg("From: x@y.example", "Subject: Lottery results"), rcpt("u@example.jp"))
	}
	check := func(want string, wantVersions, wantLoads int) {
		t.Helper()
		if got := outcome(t, run(t, c, m(), nil), "u@example.jp"); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if v, l := src.counts(); v != wantVersions || l != wantLoads {
			t.Errorf("source calls: %d versions, %d loads; want %d, %d", v, l, wantVersions, wantLoads)
		}
	}
	check("DENY_SUBJECT discard", 1, 1)
	src.set(Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindAllow, Field: FieldSubject, Mode: ModeContains, Value: "lottery"})
	check("DENY_SUBJECT discard", 1, 1) // within the refresh interval: cached
	clk.Advance(999 * time.Millisecond)
	check("DENY_SUBJECT discard", 1, 1)
	clk.Advance(time.Millisecond)
	check("ALLOW_SUBJECT allow", 2, 2) // version changed: reloaded
	clk.Advance(5 * time.Second)
	check("ALLOW_SUBJECT allow", 3, 2) // version unchanged: not reloaded
	src.set()
	c.Invalidate(tenant)
	check("", 4, 3) // invalidated: asked at once
}

func TestSourceFailures(t *testing.T) {
	t.Parallel()
	src := newSource(Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldEnvFrom, Mode: ModeExact, Value: "x@y.example"})
	src.setErr(errStore)
	c, clk := newCheck(src)
	m := message("x@y.example", rawMsg("Subject: s"), rcpt("u@example.jp"))
	if _, err := c.Check(context.Background(), m, policy.MapSettings{}); !errors.Is(err, errStore) {
		t.Fatalf("first load with a failing store: err %v", err)
	}
	src.setErr(nil)
	if _, err := c.Check(context.Background(), m, policy.MapSettings{}); !errors.Is(err, errStore) {
		t.Fatalf("failure not remembered for the refresh interval: err %v", err)
	}
	if v, _ := src.counts(); v != 1 {
		t.Errorf("store asked %d times within the refresh interval", v)
	}
	clk.Advance(time.Second)
	if got := outcome(t, run(t, c, m, nil), "u@example.jp"); got != "DENY_ENV_FROM discard" {
		t.Fatalf("after recovery: %q", got)
	}
	src.setErr(errStore)
	clk.Advance(DefaultMaxStale - time.Second)
	if got := outcome(t, run(t, c, m, nil), "u@example.jp"); got != "DENY_ENV_FROM discard" {
		t.Errorf("stale index not used: %q", got)
	}
	clk.Advance(2 * time.Second)
	if _, err := c.Check(context.Background(), m, policy.MapSettings{}); !errors.Is(err, errStore) {
		t.Errorf("beyond MaxStale: err %v", err)
	}
}

func TestFirstLoadHonoursContext(t *testing.T) {
	t.Parallel()
	c, _ := newCheck(newSource())
	ts := c.state(tenant)
	ts.sem <- struct{}{} // a refresh in progress
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Index(ctx, tenant); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
}

func TestSkipsOutboundAndForeignRows(t *testing.T) {
	t.Parallel()
	src := newSource(Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldEnvFrom, Mode: ModeContains, Value: "spammer"})
	src.entries[tenant] = append(src.entries[tenant], Entry{ID: 99, TenantID: tenant + 1, Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldEnvFrom, Mode: ModeContains, Value: "a@b"})
	c, _ := newCheck(src)
	m := message("spammer@y.example", rawMsg("Subject: s"), rcpt("u@example.jp"))
	m.Env.Outbound = true
	if fs := run(t, c, m, nil); len(fs) != 0 {
		t.Errorf("outbound: %v", fs)
	}
	if fs := run(t, c, message("a@b.example", rawMsg("Subject: s"), rcpt("u@example.jp")), nil); len(fs) != 0 {
		t.Errorf("another tenant's row applied: %v", fs)
	}
	m.Env.Outbound = false
	if fs := run(t, c, m, nil); len(fs) != 1 {
		t.Errorf("own row not applied: %v", fs)
	}
}

func TestHostileHeaders(t *testing.T) {
	t.Parallel()
	src := newSource(
		Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModePrefix, Value: "buy"},
		Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeRegex, Value: `(a+)+b`},
	)
	c, _ := newCheck(src)
	huge := "Subject: BUY " + strings.Repeat("a", 900_000)
	fs := run(t, c, message("", rawMsg("From: \x00@\x00", huge), rcpt("u@example.jp")), nil)
	if got := outcome(t, fs, "u@example.jp"); got != "DENY_SUBJECT discard" {
		t.Errorf("huge subject: %q", got)
	}
	fs = run(t, c, message("\xff\xfe@\x00", rawMsg("From: <<<>>>,,,\"", "Subject: \xfe\xffbuy"), rcpt("u@example.jp")), nil)
	if got := outcome(t, fs, "u@example.jp"); got != "" {
		t.Errorf("invalid UTF-8 matched a prefix through the sentinels: %q", got)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeContains, Value: "未承諾広告"}
	if err := Validate(ok); err != nil {
		t.Fatalf("valid entry: %v", err)
	}
	mod := func(f func(e *Entry)) Entry { e := ok; f(&e); return e }
	cases := []struct {
		name string
		e    Entry
		err  error
	}{
		{"scope", mod(func(e *Entry) { e.Scope = "tenant" }), ErrScope},
		{"owner empty", mod(func(e *Entry) { e.Owner = " " }), ErrOwner},
		{"address owner", mod(func(e *Entry) { e.Scope, e.Owner = ScopeAddress, "example.jp" }), ErrOwner},
		{"domain owner", mod(func(e *Entry) { e.Owner = "a@example.jp" }), ErrOwner},
		{"kind", mod(func(e *Entry) { e.Kind = "block" }), ErrKind},
		{"field", mod(func(e *Entry) { e.Field = "body" }), ErrField},
		{"mode", mod(func(e *Entry) { e.Mode = "glob" }), ErrMode},
		{"empty value", mod(func(e *Entry) { e.Value = "" }), ErrValue},
		{"blank value", mod(func(e *Entry) { e.Value = " \u3000 " }), ErrValue},
		{"domain dots only", mod(func(e *Entry) { e.Field, e.Value = FieldFromDomain, "@." }), ErrValue},
		{"long value", mod(func(e *Entry) { e.Value = strings.Repeat("x", MaxValueLen+1) }), ErrValue},
		{"control char", mod(func(e *Entry) { e.Value = "a\r\nb" }), ErrValue},
		{"bad UTF-8", mod(func(e *Entry) { e.Value = "a\xffb" }), ErrValue},
		{"bad regex", mod(func(e *Entry) { e.Mode, e.Value = ModeRegex, "a(b" }), ErrRegex},
		{"backreference (not RE2)", mod(func(e *Entry) { e.Mode, e.Value = ModeRegex, `(a)\1` }), ErrRegex},
		{"lookahead (not RE2)", mod(func(e *Entry) { e.Mode, e.Value = ModeRegex, `a(?=b)` }), ErrRegex},
		{"long regex", mod(func(e *Entry) { e.Mode, e.Value = ModeRegex, strings.Repeat("a", MaxRegexLen+1) }), ErrRegex},
		{"huge repetition", mod(func(e *Entry) { e.Mode, e.Value = ModeRegex, `((a{100}){100}){100}` }), ErrRegex},
		{"program over MaxRegexProgram", mod(func(e *Entry) { e.Mode, e.Value = ModeRegex, `(abc|def){700}` }), ErrRegex},
		{"allow with action", mod(func(e *Entry) { e.Kind, e.Action = KindAllow, ActionDiscard }), ErrAction},
		{"unknown action", mod(func(e *Entry) { e.Action = "bounce" }), ErrAction},
		{"long comment", mod(func(e *Entry) { e.Comment = strings.Repeat("c", MaxCommentLen+1) }), ErrValue},
	}
	for _, tc := range cases {
		if err := Validate(tc.e); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.err)
		}
	}
	for _, a := range []string{"", ActionDiscard, ActionReject, ActionQuarantine} {
		if err := Validate(mod(func(e *Entry) { e.Action = a })); err != nil {
			t.Errorf("action %q: %v", a, err)
		}
	}
}

func TestCompileSkipsInvalidAndExcessRegex(t *testing.T) {
	t.Parallel()
	var es []Entry
	for i := 0; i < MaxRegexPerTenant+3; i++ {
		es = append(es, Entry{ID: int64(i + 1), Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeRegex, Value: "^r" + strings.Repeat("x", i%5) + "$"})
	}
	es = append(es, Entry{ID: 1000, Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: "glob", Value: "x"})
	x := Compile(es)
	if x.Len() != MaxRegexPerTenant || len(x.Skipped()) != 4 {
		t.Errorf("len %d, skipped %d", x.Len(), len(x.Skipped()))
	}
	for _, e := range x.entries {
		if e.ID > MaxRegexPerTenant {
			t.Errorf("kept regex entry %d beyond the cap (lowest IDs must win)", e.ID)
		}
	}
}

func TestCompileRegexProgramBudget(t *testing.T) {
	t.Parallel()
	const pat = `(abc|def|ghi){%d}x`
	n := 1
	for {
		if _, size, err := compileRegexSize(fmt.Sprintf(pat, n+1)); err != nil || size > MaxRegexProgram {
			break
		}
		n++
	}
	_, size, err := compileRegexSize(fmt.Sprintf(pat, n))
	if err != nil {
		t.Fatal(err)
	}
	var es []Entry
	fit := MaxRegexTotalProgram / size
	for i := 0; i < fit+3; i++ {
		es = append(es, Entry{ID: int64(i + 1), Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeRegex, Value: fmt.Sprintf(pat, n)})
	}
	x := Compile(es)
	if x.Len() != fit || len(x.Skipped()) != 3 {
		t.Errorf("size %d: kept %d (want %d), skipped %d", size, x.Len(), fit, len(x.Skipped()))
	}
}

func TestRegexStopsAtDeadline(t *testing.T) {
	t.Parallel()
	x := Compile([]Entry{{ID: 1, Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeRegex, Value: "a"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := x.match(ctx, textsOf([]string{"a"}, true), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"ABC xyz":      "abc xyz",
		"ＡＢＣ１２３":       "abc123",
		"ｾｰﾙ":          "セール",
		"ﾀﾞｲﾚｸﾄﾒｰﾙ":    "ダイレクトメール",
		"ＳＡＬＥ　５０％":     "sale 50%",
		"Straße":       "strasse",
		"ΣΊΣΥΦΟΣ":      "σίσυφοσ",
		"未承諾広告":        "未承諾広告",
		"a\xffb":       "a\ufffdb",
		"Ｔａｒｏ＠ｅｘ．ｊｐ":   "taro@ex.jp",
		"ｶﾞｷﾞｸﾞｹﾞｺﾞﾊﾟ": "ガギグゲゴパ",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExtractAddrs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`a@b.example`:                        "a@b.example",
		`"Doe, John" <john@x.example>`:       "john@x.example",
		`A <a@x.example>, b@y.example`:       "a@x.example|b@y.example",
		`team: a@x.example, "q" <b@y>;`:      "a@x.example|b@y",
		`undisclosed-recipients:;`:           "",
		`"tricky <no@x>" <yes@y.example>`:    "yes@y.example",
		`"esc \" , <no@x>" <yes@y.example>`:  "yes@y.example",
		`<<<>>>,,,"`:                         "",
		`Name <a@x.example> (comment), junk`: "a@x.example",
	} {
		if got := strings.Join(extractAddrs(in), "|"); got != want {
			t.Errorf("extractAddrs(%q) = %q, want %q", in, got, want)
		}
	}
}

// Concurrent checks while the lists change: every answer is one of the two
// versions' answers, never a mix or a failure (run with -race).
func TestConcurrentChecksDuringEdits(t *testing.T) {
	t.Parallel()
	deny := Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindDeny, Field: FieldSubject, Mode: ModeContains, Value: "promo"}
	allow := Entry{Scope: ScopeDomain, Owner: "example.jp", Kind: KindAllow, Field: FieldSubject, Mode: ModeContains, Value: "promo"}
	src := newSource(deny)
	c, clk := newCheck(src)
	raw := rawMsg("From: a@b.example", "Subject: promo")
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				fs, err := c.Check(context.Background(), message("", raw, rcpt("u@example.jp")), policy.MapSettings{})
				if err != nil || len(fs) != 1 || (fs[0].Symbol != "DENY_SUBJECT" && fs[0].Symbol != "ALLOW_SUBJECT") {
					errs <- fmt.Sprintf("%v %v", fs, err)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		if i%2 == 0 {
			src.set(allow)
		} else {
			src.set(deny)
		}
		clk.Advance(time.Second)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
