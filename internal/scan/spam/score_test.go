package spam

import (
	"context"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/policy"
)

func TestCombineAndBands(t *testing.T) {
	if p, _ := Combine(nil); p != 50 {
		t.Fatalf("no evidence: %v", p)
	}
	strong := []policy.Finding{{Check: Name, Symbol: "BAYES_SPAM", Score: 60}, {Check: "spf", Symbol: "SPF_FAIL", Score: 30}}
	p, syms := Combine(strong)
	if p < 99.5 || !strings.HasPrefix(syms[0], "BAYES_SPAM") {
		t.Fatalf("strong spam: %v %v", p, syms)
	}
	ham := []policy.Finding{{Check: Name, Symbol: "BAYES_HAM", Score: -60}, {Check: "spf", Symbol: "SPF_FAIL", Score: 30}}
	if p, _ := Combine(ham); p > 5 {
		t.Fatalf("a confident ham model outweighs one SPF failure: %v", p)
	}
	if got := FormatPercent(99.999); got != "99.99%" {
		t.Fatalf("format %s", got)
	}
	if got := FormatPercent(98); got != "98.00%" {
		t.Fatalf("format %s", got)
	}

	m := &policy.Message{Env: &policy.Envelope{Rcpts: []policy.Rcpt{{Addr: "a@x.test"}, {Addr: "b@x.test"}, {Addr: "c@x.test"}}}}
	s := policy.PerRcpt{Message: policy.MapSettings{}, Rcpt: map[string]policy.Settings{
		"a@x.test": policy.MapSettings{},
		"b@x.test": policy.MapSettings{"spam.quarantine_at": "95", "spam.tag": "[MEIWAKU!!]"},
		"c@x.test": policy.MapSettings{"spam.tag_at": "100"},
	}}
	fs := Post{}.Findings(context.Background(), m, strong, s)
	if fs[0].Headers[0].Value != "99.99%" && !strings.HasSuffix(fs[0].Headers[0].Value, "%") {
		t.Fatalf("header %v", fs[0].Headers)
	}
	if fs[0].Headers[1].Value != "yes" {
		t.Fatalf("verdict header %v", fs[0].Headers[1])
	}
	vs := policy.Resolve(m.Env.Rcpts, append(strong, fs...))
	if vs[0].Action != policy.Tag || vs[0].TagText != "[SPAM!!]" {
		t.Errorf("a: %s %q", vs[0].Action, vs[0].TagText)
	}
	if vs[1].Action != policy.Quarantine {
		t.Errorf("b: %s", vs[1].Action)
	}
	if vs[2].Action != policy.Header || vs[2].TagText != "" {
		t.Errorf("c (100%% only): %s", vs[2].Action)
	}
}

// The classifier's symbol names its say in the score, not its raw
// probability: a message it can read 2 % of gets BAYES_50 however sure the
// raw verdict on the few tokens it read.
func TestBayesSymbolIsTheClassifiersSay(t *testing.T) {
	for _, c := range []struct {
		res    Result
		symbol string
		reason string
	}{
		{Result{Trained: true, Prob: 0.99999, Points: 0.03, Coverage: 0.02}, "BAYES_50", "classifier 0.5075"},
		{Result{Trained: true, Prob: 0.99999, Points: 1.37, Coverage: 1}, "BAYES_60", "classifier 0.7974"},
		{Result{Trained: true, Prob: 0.99999, Points: 2.5, Coverage: 1}, "BAYES_90", "classifier 0.9241"},
		{Result{Trained: true, Prob: 1, Points: MaxLogit, Coverage: 1, Label: LabelSpam}, "BAYES_99", "classifier 0.9997"},
		{Result{Trained: true, Prob: 0.00001, Points: -3, Coverage: 1}, "BAYES_05", "classifier 0.0474"},
		{Result{Trained: true, Prob: 0, Points: -MaxLogit, Coverage: 1}, "BAYES_00", "classifier 0.0003"},
	} {
		fs := Evidence{Result: c.res}.Findings()
		if len(fs) != 1 || fs[0].Symbol != c.symbol || !strings.Contains(fs[0].Reason, c.reason) {
			t.Errorf("points %+.2f (raw %v): %+v, want %s and %q", c.res.Points, c.res.Prob, fs, c.symbol, c.reason)
		}
		if want := c.res.Points * 10; fs[0].Score != want {
			t.Errorf("points %+.2f: score %v, want %v", c.res.Points, fs[0].Score, want)
		}
	}
}
