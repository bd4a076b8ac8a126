package spam

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/jamail"
)

func TestTokenScript(t *testing.T) {
	cases := map[string]script{
		"meeting": scriptLatin, "click here": scriptLatin, "subject:free": scriptLatin, "from-name:taro": scriptLatin,
		"会議": scriptCJK, "subject:請求": scriptCJK, "from-name:山田": scriptCJK, "ーセ": scriptCJK,
		"회의": scriptHangul, "привет": scriptCyrillic, "charset:iso-2022-jp": scriptCJK, "charset:Shift_JIS": scriptCJK,
		"charset:ks_c_5601-1987": scriptHangul, "charset:us-ascii": scriptLatin, "charset:utf-8": scriptNone,
		"num:dd": scriptNone, "url-host:example.co.jp": scriptNone, "header:x-mailer": scriptNone, "subject:num:d": scriptNone,
		"2nd": scriptLatin, "1234": scriptNone,
	}
	for tok, want := range cases {
		if got := tokenScript(tok); got != want {
			t.Errorf("tokenScript(%q) = %s, want %s", tok, scriptNames[got], scriptNames[want])
		}
	}
}

// A model that has seen Japanese only in spam (English ham, Japanese and
// English spam, as the public corpora are) must not flag ordinary
// Japanese business mail: its Japanese words are neutral, and the
// classifier's say shrinks to the share of the text it can read. The same
// model blind to scripts flags most of that mail.
func TestScriptNeutrality(t *testing.T) {
	ctx := context.Background()
	var train []labeled
	for _, class := range []string{"spam", "ham"} {
		files, _ := filepath.Glob(filepath.Join("testdata/corpus", class, "*.eml"))
		for _, f := range files {
			m := parseFile(t, f)
			japanese := strings.ContainsAny(m.Subject+m.Text, "のをにはがです")
			if class == "ham" && japanese {
				continue // the model knows no Japanese ham
			}
			train = append(train, labeled{name: f, spam: class == "spam", msg: m})
		}
	}
	for _, m := range jamail.Generate(7, 0, 40) {
		train = append(train, labeled{name: m.Name, spam: true, msg: parseMsg(t, m.Raw)})
	}
	model := NewModel()
	for _, l := range train {
		ex := NewExample(l.msg, "")
		model.apply(countsOf(ex.Tokens, l.spam), TokenCount{Spam: b2i(l.spam), Ham: b2i(!l.spam)})
	}
	if c := model.Tokens["script:cjk"]; c.Ham != 0 || c.Spam < 40 {
		t.Fatalf("script:cjk counts %+v: the set-up needs Japanese spam and no Japanese ham", c)
	}
	score := func(p Params) (flagged int, worst float64) {
		chk := &Check{Classifier: NewClassifier(NewMemoryStore(), p, Options{Base: model})}
		for _, m := range jamail.Generate(8, 150, 0) {
			msg := parseMsg(t, m.Raw)
			at := MessageTime(msg, time.Now())
			chk.Now = func() time.Time { return at }
			ev, err := chk.EvaluateParsed(ctx, msg, nil)
			if err != nil {
				t.Fatal(err)
			}
			pct, _ := Combine(ev.Findings())
			if pct >= DefaultTagAt {
				flagged++
			}
			worst = max(worst, pct)
			if p.MinScriptMessages >= 0 {
				if !ev.Result.Trained || ev.Result.Coverage > 0.5 || ev.Result.Points > 2 {
					t.Errorf("%s: classifier %+.2f points, coverage %.2f, neutral %v; want a small say", m.Name, ev.Result.Points, ev.Result.Coverage, ev.Result.Neutral)
				}
				if pct >= 80 {
					t.Errorf("%s (%s, %s): %.2f%%, rules %v", m.Name, m.Kind, m.Charset, pct, ev.Rules)
				}
			}
		}
		return flagged, worst
	}
	if flagged, worst := score(Params{}); flagged != 0 {
		t.Errorf("%d of 150 Japanese ham flagged (highest %.2f%%)", flagged, worst)
	}
	if flagged, _ := score(Params{MinScriptMessages: -1}); flagged < 75 {
		t.Errorf("without per-script handling only %d of 150 Japanese ham flagged: the set-up does not show the bias it guards against", flagged)
	}
}
