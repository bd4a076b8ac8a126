package spam

import (
	"bytes"
	"context"
	"flag"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/mailgate/mailgate/internal/mailtext"
)

var updateTokens = flag.Bool("update", false, "rewrite golden token files")

func parseMsg(tb testing.TB, raw []byte) *mailtext.Message {
	tb.Helper()
	m, err := mailtext.Parse(context.Background(), bytes.NewReader(raw), mailtext.DefaultLimits())
	if err != nil {
		tb.Fatalf("parse: %v", err)
	}
	return m
}

func parseFile(tb testing.TB, name string) *mailtext.Message {
	tb.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	return parseMsg(tb, b)
}

// TestTokenizeGolden compares the tokens of each testdata/tokens/*.eml
// with its .tokens file (one token per line); -update rewrites them.
func TestTokenizeGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/tokens/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			got := strings.Join(Tokenize(parseFile(t, f), 0), "\n") + "\n"
			golden := strings.TrimSuffix(f, ".eml") + ".tokens"
			if *updateTokens {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("tokens differ from %s:\n%s", golden, diffLines(string(want), got))
			}
		})
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	return b.String()
}

// has reports which of want are missing from toks.
func missing(toks []string, want ...string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(toks, w) {
			out = append(out, w)
		}
	}
	return out
}

func TestTokenizeFixturesHaveFeatures(t *testing.T) {
	cases := map[string][]string{
		"japanese.eml": {"会議", "見積", "積書", "キャ", "ャン", "ンペ", "ペー", "ーン", "subject:会議", "subject:お知", "subject:知ら",
			"from-domain:mail.example.jp", "from-domain:example.jp", "charset:iso-2022-jp", "x-mailer:becky",
			"received:example.jp", "received-ip:192.0", "received-hops:1", "num:dd,ddd", "content-type:text/plain"},
		"chinese.eml": {"明天", "开会", "发票", "subject:会议", "charset:gb2312"},
		"korean.eml":  {"안녕", "회의", "견적", "subject:회의", "subject:일정"},
		"latin.eml": {"invoice", "dear", "dear bob", "grüße", "münchen", "don't", "e-mail", "money:d,ddd.dd", "num:dddd",
			"subject:free", "subject:invoice", "reply-to-domain:example.net", "reply-to:differs", "attachment-ext:zip",
			"content-type:application/zip", "has-attachment", "x-mailer:thunderbird", "rcpt-count:2", "charset:windows-1252"},
		"urls.eml": {"url-host:shop.deals.example.co.uk", "url-host:example.co.uk", "url-path:offers", "url-path:spring", "url-path:sale",
			"url-host:www.example.com", "url-host:ip", "url:port", "url:userinfo", "url-host:evil.example.net",
			"email-domain:mail.deals.example.biz", "email-domain:example.biz", "詳細", "ご覧", "link-count:4"},
		"html.eml": {"has-html-only", "content-type:text/html", "url-host:login.bank-secure.example.net",
			"url-path:verify", "email-domain:support.example.org", "verify your", "今す", "link-count:2"},
	}
	for name, want := range cases {
		toks := Tokenize(parseFile(t, filepath.Join("testdata/tokens", name)), 0)
		if m := missing(toks, want...); len(m) > 0 {
			t.Errorf("%s: missing %q", name, m)
		}
	}
	// Things that must not appear: style text, the local part of addresses,
	// unfolded half-width forms, single letters.
	toks := Tokenize(parseFile(t, "testdata/tokens/html.eml"), 0)
	for _, bad := range []string{"color", "red", "help"} {
		if slices.Contains(toks, bad) {
			t.Errorf("html.eml: unexpected token %q", bad)
		}
	}
	toks = Tokenize(parseFile(t, "testdata/tokens/japanese.eml"), 0)
	for _, tok := range toks {
		if strings.ContainsAny(tok, "ｷｬﾝﾍﾟｰ１２") {
			t.Errorf("japanese.eml: unfolded token %q", tok)
		}
	}
}

func TestTokenizeTextFolding(t *testing.T) {
	pairs := [][2]string{
		{"ｷｬﾝﾍﾟｰﾝ実施中", "キャンペーン実施中"},  // half-width katakana, voiced marks composed
		{"ＦＲＥＥ　ＭＯＮＥＹ", "free money"}, // full-width ASCII and space
		{"ＵＲＬ：ｈｔｔｐｓ：／／ｅｘａｍｐｌｅ．ｃｏｍ／ｘ", "url: https://example.com/x"},
		{"Ｖｉａｇｒａ １００％", "viagra 100%"},
	}
	for _, p := range pairs {
		a, b := TokenizeText(p[0]), TokenizeText(p[1])
		if !slices.Equal(a, b) {
			t.Errorf("TokenizeText(%q) = %q, want same as %q = %q", p[0], a, p[1], b)
		}
	}
}

func TestTokenizeTextCJK(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"会議室", []string{"会議", "議室"}},
		{"株", []string{"株"}},
		{"株 と 債券", []string{"と", "株", "債券"}},
		{"안녕하세요", []string{"녕하", "세요", "안녕", "하세"}},
		// A Latin word splits a CJK run; the lone trailing character gives
		// itself.
		{"セール中ですSALE中", []string{"sale", "セー", "ール", "ル中", "中", "中で", "です"}},
	}
	for _, c := range cases {
		want := slices.Clone(c.want)
		slices.Sort(want)
		if got := TokenizeText(c.in); !slices.Equal(got, want) {
			t.Errorf("TokenizeText(%q) = %q, want %q", c.in, got, want)
		}
	}
}

func TestTokenizeTextNumbersAndWords(t *testing.T) {
	got := TokenizeText("Only $19.95 today, ¥3,000 off, call 0120-123-456 in 2024. A b")
	for _, w := range []string{"money:dd.dd", "money:d,ddd", "num:dddd-ddd-ddd", "num:dddd", "only", "today", "only today"} {
		if !slices.Contains(got, w) {
			t.Errorf("missing %q in %q", w, got)
		}
	}
	for _, bad := range []string{"a", "b", "19.95", "2024"} {
		if slices.Contains(got, bad) {
			t.Errorf("unexpected %q in %q", bad, got)
		}
	}
	long := strings.Repeat("x", 100)
	got = TokenizeText(long)
	if len(got) != 1 || len(got[0]) != maxWordBytes {
		t.Errorf("long word: %q", got)
	}
	// A multi-byte word is cut on a rune boundary.
	got = TokenizeText(strings.Repeat("é", 40))
	if len(got) != 1 || !utf8.ValidString(got[0]) || len(got[0]) > maxWordBytes {
		t.Errorf("long multi-byte word: %q", got)
	}
}

func TestTokenizeBound(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@sender.example.com\r\nSubject: hello\r\nContent-Type: text/plain\r\n\r\n")
	for i := range 20000 {
		b.WriteString("w" + strconv.Itoa(i) + "x ")
	}
	msg := parseMsg(t, []byte(b.String()))
	for _, lim := range []int{1, 10, 500, 3000} {
		toks := Tokenize(msg, lim)
		if len(toks) != lim {
			t.Errorf("lim %d: %d tokens", lim, len(toks))
		}
		// The link count is always kept, header evidence before body words.
		if !slices.Contains(toks, "link-count:0") {
			t.Errorf("lim %d: link-count missing", lim)
		}
		if lim >= 500 {
			if m := missing(toks, "from-domain:sender.example.com", "subject:hello"); len(m) > 0 {
				t.Errorf("lim %d: missing %q", lim, m)
			}
		}
	}
	if n := len(Tokenize(msg, 0)); n != DefaultMaxTokens {
		t.Errorf("default bound: %d tokens", n)
	}
	if Tokenize(nil, 0) != nil {
		t.Error("nil message gave tokens")
	}
}

func TestTokenizeIsSortedSet(t *testing.T) {
	toks := Tokenize(parseFile(t, "testdata/tokens/urls.eml"), 0)
	for i := 1; i < len(toks); i++ {
		if toks[i-1] >= toks[i] {
			t.Fatalf("not a sorted set at %d: %q, %q", i, toks[i-1], toks[i])
		}
	}
}

// Features (tokens and rule tokens) are a sorted set too, so the
// classifier needs no map to drop duplicates.
func TestFeaturesAreASortedSet(t *testing.T) {
	msg := parseMsg(t, []byte("From: a@example.net\r\nSubject: HELLO THERE FRIEND!!!\r\n\r\nhttp://192.0.2.1/x and more words\r\n"))
	toks, rules := Features(msg, nil, time.Now(), 0)
	if len(rules) < 3 {
		t.Fatalf("want several rules, got %v", rules)
	}
	for i := 1; i < len(toks); i++ {
		if toks[i-1] >= toks[i] {
			t.Fatalf("not a sorted set at %d: %q, %q", i, toks[i-1], toks[i])
		}
	}
	if m := missing(toks, "rule:missing_date", "rule:subject_all_caps"); len(m) > 0 {
		t.Errorf("missing %q in %q", m, toks)
	}
}

func FuzzTokenize(f *testing.F) {
	files, _ := filepath.Glob("testdata/tokens/*.eml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("Subject: =?ISO-2022-JP?B?GyRC?=\r\n\r\nhttp://@:/ www. @@a.b ＠ｘ．ｙ $ ¥,,, ﾞﾟ"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, err := mailtext.Parse(context.Background(), bytes.NewReader(raw), mailtext.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		const lim = 200
		toks := Tokenize(msg, lim)
		if len(toks) > lim {
			t.Fatalf("%d tokens over bound %d", len(toks), lim)
		}
		for i, tok := range toks {
			if tok == "" || !utf8.ValidString(tok) {
				t.Fatalf("bad token %q", tok)
			}
			if len(tok) > 128 {
				t.Fatalf("token of %d bytes", len(tok))
			}
			if i > 0 && toks[i-1] >= tok {
				t.Fatalf("not a sorted set: %q, %q", toks[i-1], tok)
			}
		}
	})
}

// tenKB builds a typical ~10 KB business message with some links.
func tenKB() []byte {
	var b strings.Builder
	b.WriteString("Received: from mx.partner.example.com (mx.partner.example.com [198.51.100.7])\r\n\tby gw.example.co.jp; Mon, 4 Mar 2024 10:00:00 +0900\r\n")
	b.WriteString("From: \"Alice\" <alice@partner.example.com>\r\nTo: ken@example.co.jp\r\nSubject: Quarterly report and next meeting / 次回会議\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n")
	para := "The quarterly report shows revenue of $1,250,000, up 12% on last year; see https://reports.partner.example.com/q1/summary for details. " +
		"次回の会議は来週火曜日の午後三時から会議室Bで行います。見積書と請求書の確認をお願いいたします。 " +
		"Please review the attached figures before Thursday and send comments to finance@partner.example.com.\r\n"
	for b.Len() < 10*1024 {
		b.WriteString(para)
	}
	return []byte(b.String())
}

func BenchmarkTokenize(b *testing.B) {
	msg := parseMsg(b, tenKB())
	b.ReportAllocs()
	for b.Loop() {
		Tokenize(msg, 0)
	}
}

// fold's shortcut for text NFKC leaves alone gives what normalising does.
func TestFoldStableAgreesWithNFKC(t *testing.T) {
	for _, s := range []string{"次回の会議は来週火曜日の午後三時から", "「見積書」【重要】、確認。ー・々", "Ｆｕｌｌ幅", "ｶﾀｶﾅ", "①②", "ABCあいう", "ガ", "が", "\xff壊れ"} {
		want := strings.ToLower(norm.NFKC.String(strings.ToValidUTF8(s, "\uFFFD")))
		if got := fold(s); got != want {
			t.Errorf("fold(%q) = %q, want %q", s, got, want)
		}
	}
	if !foldStable("次回の会議は来週") || foldStable("ｶﾀｶﾅ") || foldStable("Ｆｕｌｌ") {
		t.Error("foldStable misjudges")
	}
}

// Fields the recipient's delivery agent or mail client writes after
// delivery are no evidence at a gateway: a training corpus kept in several
// mailboxes would otherwise teach which mailbox, not which class.
func TestTokenizeLeavesMailboxFieldsOut(t *testing.T) {
	raw := "Return-Path: <someone@sender.example.net>\r\nDelivery-Date: Tue Sep  3 15:02:41 2002\r\n" +
		"From: someone@sender.example.net\r\nTo: me@recipient.example\r\nSubject: plan\r\nX-Mailer: Pine 4.33\r\n" +
		"Date: Mon, 29 Jul 2002 11:28:30 +0100\r\nStatus: RO\r\nX-Status: \r\nX-Keywords: \r\nX-UID: 17\r\n" +
		"X-Mozilla-Status: 0001\r\n\r\nSee the plan.\r\n"
	toks := Tokenize(parseMsg(t, []byte(raw)), 0)
	if m := missing(toks, "header:x-mailer", "header:from", "plan"); len(m) > 0 {
		t.Errorf("missing %q in %q", m, toks)
	}
	for _, bad := range []string{"header:return-path", "header:delivery-date", "header:status", "header:x-status",
		"header:x-keywords", "header:x-uid", "header:x-mozilla-status"} {
		if slices.Contains(toks, bad) {
			t.Errorf("%q is written after delivery, but was tokenized: %q", bad, toks)
		}
	}
}

// sortTokens orders exactly as slices.Sort: tokens that differ only past
// their eighth byte, tokens that are prefixes of others, zero bytes.
func TestSortTokensAsSort(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	const alphabet = "\x00ab:\xff"
	for n := 0; n < 300; n++ {
		ss := make([]string, rng.Intn(60))
		for i := range ss {
			b := make([]byte, rng.Intn(12))
			for j := range b {
				b[j] = alphabet[rng.Intn(len(alphabet))]
			}
			ss[i] = string(b)
		}
		want := slices.Clone(ss)
		slices.Sort(want)
		sortTokens(ss)
		if !slices.Equal(ss, want) {
			t.Fatalf("case %d: %q, want %q", n, ss, want)
		}
	}
}
