package spam

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/mailgate/mailgate/internal/testutil/jamail"
)

// scoreRaw is the percentage the spam check gives a raw message under
// model (nil: no model at all).
func scoreRaw(t *testing.T, model *Model, raw string) (float64, Evidence) {
	t.Helper()
	chk := &Check{Classifier: NewClassifier(NewMemoryStore(), Params{}, Options{Base: model})}
	msg := parseMsg(t, []byte(raw))
	chk.Now = func() time.Time { return MessageTime(msg, time.Now()) }
	ev, err := chk.EvaluateParsed(context.Background(), msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	pct, _ := Combine(ev.Findings())
	return pct, ev
}

func hasRule(ev Evidence, sym string) bool {
	for _, r := range ev.Rules {
		if r.Symbol == sym {
			return true
		}
	}
	return false
}

// hamModel is a model that has learned msg's words as ham, strongly.
func hamModel(t *testing.T, raws ...string) *Model {
	m := NewModel()
	for _, raw := range raws {
		ex := NewExample(parseMsg(t, []byte(raw)), "")
		for range 20 {
			m.apply(countsOf(ex.Tokens, false), TokenCount{Ham: 1})
		}
	}
	m.apply(map[string]TokenCount{"unrelated": {Spam: 5}}, TokenCount{Spam: 5})
	return m
}

// GTUBE is certain spam: 100 % with or without a model, even one that
// has learned the rest of the message as ham, in a plain body, a
// multipart alternative, a base64 part and an HTML part.
func TestGTUBE(t *testing.T) {
	head := "From: a@example.net\r\nTo: b@example.test\r\nSubject: test\r\nDate: Mon, 4 Mar 2024 10:00:00 +0900\r\nMessage-ID: <g@example.net>\r\nMIME-Version: 1.0\r\n"
	cases := map[string]string{
		"plain": head + "\r\nThis is the GTUBE, the\r\n\tGeneric\r\n\tTest for\r\n\tUnsolicited\r\n\tBulk\r\n\tEmail\r\n\r\n" + GTUBE + "\r\n",
		"multipart": head + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
			"--b\r\nContent-Type: text/html\r\n\r\n<p>hello " + GTUBE + "</p>\r\n--b--\r\n",
		"base64": head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString([]byte("会議の件です。\n"+GTUBE+"\n")) + "\r\n--b--\r\n",
	}
	for name, raw := range cases {
		for _, model := range []*Model{nil, hamModel(t, raw)} {
			pct, ev := scoreRaw(t, model, raw)
			if pct != 100 || FormatPercent(pct) != "100.00%" || !hasRule(ev, "GTUBE") {
				t.Errorf("%s (model %v): %.4f%%, rules %v", name, model != nil, pct, ev.Rules)
			}
		}
	}
	if pct, ev := scoreRaw(t, nil, head+"\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD\r\n"); pct == 100 || hasRule(ev, "GTUBE") {
		t.Errorf("a partial GTUBE string scored %.2f%%", pct)
	}
}

func encWord(t *testing.T, cs, s string) string {
	t.Helper()
	var b []byte
	switch cs {
	case "ISO-2022-JP":
		b, _ = japanese.ISO2022JP.NewEncoder().Bytes([]byte(s))
	case "Shift_JIS":
		b, _ = japanese.ShiftJIS.NewEncoder().Bytes([]byte(s))
	default:
		b = []byte(s)
	}
	return "=?" + cs + "?B?" + base64.StdEncoding.EncodeToString(b) + "?="
}

// The 未承諾広告※ marker is recognised in every Japanese charset and in
// its usual spellings, weighs without any model, and ordinary subjects
// that mention advertising do not fire it.
func TestUnsolicitedAdMarker(t *testing.T) {
	msg := func(subject string) string {
		return "From: shop@example.net\r\nTo: b@example.test\r\nSubject: " + subject + "\r\nDate: Mon, 4 Mar 2024 10:00:00 +0900\r\n" +
			"Message-ID: <m@example.net>\r\n\r\nhello\r\n"
	}
	for _, cs := range []string{"ISO-2022-JP", "Shift_JIS", "UTF-8"} {
		for _, subj := range []string{"未承諾広告※健康食品のご案内", "※未承諾広告 期間限定", "【未承諾広告※】今だけ", "未承諾広告 ※ セール", "ＲＥ：未承諾広告※"} {
			pct, ev := scoreRaw(t, nil, msg(encWord(t, cs, subj)))
			if !hasRule(ev, "JP_UNSOLICITED_AD") || pct < DefaultTagAt {
				t.Errorf("%s %q: %.2f%%, rules %v", cs, subj, pct, ev.Rules)
			}
		}
	}
	for _, subj := range []string{"広告掲載のご相談", "未承諾の広告メールへの対策について", "Re: ad campaign"} {
		if _, ev := scoreRaw(t, nil, msg(encWord(t, "ISO-2022-JP", subj))); hasRule(ev, "JP_UNSOLICITED_AD") {
			t.Errorf("%q fired JP_UNSOLICITED_AD", subj)
		}
	}
}

func TestJPLookalikeHost(t *testing.T) {
	for host, want := range map[string]bool{
		"www.amazon.co.jp.example.xyz": true, "amazon-co-jp.example": true, "smbc.co.jp-secure.top": true,
		"rakuten.co.jp": false, "jp.fujitsu.com": false, "www.example.co.jp": false, "mail.example.com": false, "192.0.2.1": false,
	} {
		if got := jpLookalikeHost(host); got != want {
			t.Errorf("jpLookalikeHost(%q) = %v", host, got)
		}
	}
	b := jpBrands[5] // 楽天
	for host, want := range map[string]bool{"rakuten-card.example.top": true, "rakuten.example.xyz": true, "www.rakuten-card.co.jp": false,
		"rakutendo-seika.co.jp": false, "rakuten.co.jp": false} {
		if got := b.imitatedBy(host, hostParts(host)); got != want {
			t.Errorf("楽天 imitatedBy(%q) = %v", host, got)
		}
	}
}

// Japanese phishing is caught by its rules alone (no model), in every
// charset the generator uses; the real carriers' and card issuers'
// notices, which name the same brands and link to their own domains, are
// not.
func TestJapanesePhishingRules(t *testing.T) {
	caught, phish := map[string]int{}, map[string]int{}
	for _, m := range jamail.Generate(3, 400, 400) {
		pct, ev := scoreRaw(t, nil, string(m.Raw))
		switch {
		case !m.Spam:
			for _, r := range ev.Rules {
				if r.Fixed {
					t.Errorf("ham %s (%s): fixed rule %s fired: %s", m.Name, m.Kind, r.Symbol, r.Reason)
				}
			}
		case strings.HasPrefix(m.Kind, "phish-"):
			phish[m.Charset]++
			if pct >= DefaultTagAt {
				caught[m.Charset]++
			}
		case m.Kind == "ad-marked":
			if !hasRule(ev, "JP_UNSOLICITED_AD") {
				t.Errorf("%s: marker not recognised", m.Name)
			}
		}
	}
	for cs, n := range phish {
		if caught[cs]*10 < n*8 {
			t.Errorf("%s: %d of %d phishing messages reach %v%% without a model", cs, caught[cs], n, DefaultTagAt)
		}
	}
}
