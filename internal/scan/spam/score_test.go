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
