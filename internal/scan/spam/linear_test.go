package spam

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
)

// examples: ham and spam with their own words, a boilerplate every ham
// and a few spam carry, and one token ("rule:x") on every spam.
func boilerplateExamples() []Example {
	var common []string
	for i := range 30 {
		common = append(common, fmt.Sprintf("common%02d", i))
	}
	var train []Example
	for i := range 60 {
		train = append(train, Example{Label: LabelHam, Tokens: append(slices.Clone(common), fmt.Sprintf("ham%d", i), fmt.Sprintf("hamword%d", i%7))})
	}
	for i := range 40 {
		train = append(train, Example{Label: LabelSpam, Tokens: []string{"rule:x", fmt.Sprintf("spam%d", i), fmt.Sprintf("spamword%d", i%5)}})
	}
	for range 4 {
		train = append(train, Example{Label: LabelSpam, Tokens: append(slices.Clone(common), "rule:x")})
	}
	for i := range train {
		train[i].Tokens = append(train[i].Tokens, ScriptTokenPrefix+"latin")
	}
	return train
}

// The classifier's log-odds are the counting half's plus LinearMix times
// the linear model's margin, and the linear model alone separates
// held-out mail of the synthetic corpus.
func TestLinearModelJoinsTheScore(t *testing.T) {
	ctx := context.Background()
	train, held := loadSynthetic(t)
	cl := NewClassifier(NewMemoryStore(), Params{}, Options{})
	var exs []Example
	for _, m := range train {
		exs = append(exs, NewExample(m.msg, map[bool]string{true: LabelSpam, false: LabelHam}[m.spam]))
	}
	if _, err := cl.Learn(ctx, GlobalModel, exs); err != nil {
		t.Fatal(err)
	}
	for _, m := range held {
		r := classify(t, cl, GlobalModel, m.msg)
		if m.spam != (r.Margin > 0) {
			t.Errorf("%s (spam=%v): margin %.3f", m.name, m.spam, r.Margin)
		}
		if want := r.Bayes + cl.Params().LinearMix*r.Margin; math.Abs(r.Logit-want) > 1e-9 {
			t.Errorf("%s: logit %g, want %g", m.name, r.Logit, want)
		}
	}
	off := NewClassifier(NewMemoryStore(), Params{LinearMix: -1}, Options{})
	if _, err := off.Learn(ctx, GlobalModel, exs); err != nil {
		t.Fatal(err)
	}
	if r := classify(t, off, GlobalModel, held[0].msg); r.Margin != 0 || r.Logit != r.Bayes {
		t.Errorf("linear model off: %+v", r)
	}
}

// The same messages give the same weights in whatever order they are
// given, and whether the global model or a tenant's learns them.
func TestLinearTrainingIsOrderFree(t *testing.T) {
	ctx := context.Background()
	train := boilerplateExamples()
	for i := range train {
		train[i].Fingerprint = fmt.Sprintf("fp%03d", i)
	}
	learn := func(tenant int64, exs []Example) map[string]TokenCount {
		s := NewMemoryStore()
		if _, err := NewClassifier(s, Params{}, Options{}).Learn(ctx, tenant, exs); err != nil {
			t.Fatal(err)
		}
		return snapshot(s)[tenant].Tokens
	}
	a := learn(GlobalModel, train)
	rev := slices.Clone(train)
	slices.Reverse(rev)
	if b := learn(GlobalModel, rev); !maps.Equal(a, b) {
		t.Error("another order gave other weights")
	}
	if b := learn(5, train); !maps.Equal(a, b) {
		t.Error("a tenant's training gave other weights than the global model's")
	}
	if a["rule:x"].Weight <= 0 {
		t.Errorf("the token on every spam has weight %d", a["rule:x"].Weight)
	}
}

// A model over another learns only what the one under it misses: a
// tenant's training of messages the global model already judges with
// room to spare leaves the tenant's weights alone.
func TestLinearModelLearnsOnTopOfTheOnesUnder(t *testing.T) {
	ctx := context.Background()
	train := boilerplateExamples()
	s := NewMemoryStore()
	cl := NewClassifier(s, Params{}, Options{})
	if _, err := cl.Learn(ctx, GlobalModel, train); err != nil {
		t.Fatal(err)
	}
	var judged []Example
	for _, ex := range train {
		r, err := cl.ClassifyTokens(ctx, 9, ex.Tokens)
		if err != nil {
			t.Fatal(err)
		}
		if y := map[string]float64{LabelSpam: 1, LabelHam: -1}[ex.Label]; y*r.Margin >= 1 {
			judged = append(judged, ex)
		}
	}
	if len(judged) < len(train)/2 {
		t.Fatalf("only %d of %d training messages judged with room to spare", len(judged), len(train))
	}
	if _, err := cl.Learn(ctx, 9, judged); err != nil {
		t.Fatal(err)
	}
	for tok, c := range snapshot(s)[9].Tokens {
		if c.Weight != 0 {
			t.Errorf("%s: weight %d in the tenant's model", tok, c.Weight)
		}
	}
}

// linearMargin trains one message alone into a fresh model with p and
// returns its margin afterwards.
func linearMargin(t *testing.T, p Params, label string) float64 {
	t.Helper()
	ctx := context.Background()
	toks := []string{"rule:a", "rule:b", "rule:c", "rule:d"} // no script: never neutral
	cl := NewClassifier(NewMemoryStore(), p, Options{})
	// One message of the other class, so the model is trained at all.
	other := map[string]string{LabelSpam: LabelHam, LabelHam: LabelSpam}[label]
	if _, err := cl.Learn(ctx, GlobalModel, []Example{{Tokens: toks, Label: label}, {Tokens: []string{"rule:other"}, Label: other}}); err != nil {
		t.Fatal(err)
	}
	r, err := cl.ClassifyTokens(ctx, GlobalModel, toks)
	if err != nil {
		t.Fatal(err)
	}
	return r.Margin
}

// The weights kept are the average over the training visits, not the
// last ones: a message alone, whose running margin reaches 1 in four
// steps of 0.25 (visits 1 to 4; visit 5 moves nothing and ends training),
// keeps the lesson 4u − u·(1+2+3+4)/5 = 2u, a margin of 0.5.
func TestLinearWeightsAreAveraged(t *testing.T) {
	p := Params{LinearRate: 0.25, LinearEpochs: 10, LinearHamMargin: 1}
	if m := linearMargin(t, p, LabelSpam); math.Abs(m-0.5) > 1e-6 {
		t.Errorf("spam margin %g, want 0.5 (the average, not the last weights' 1)", m)
	}
}

// Ham is pushed until its margin reaches LinearHamMargin on the ham side:
// with 2, eight steps of 0.25 (visit 9 ends training), an averaged lesson
// of 8u − u·36/9 = 4u, a margin of −1; with 1, −0.5.
func TestLinearHamMargin(t *testing.T) {
	for hm, want := range map[float64]float64{1: -0.5, 2: -1} {
		p := Params{LinearRate: 0.25, LinearEpochs: 20, LinearHamMargin: hm}
		if m := linearMargin(t, p, LabelHam); math.Abs(m-want) > 1e-6 {
			t.Errorf("LinearHamMargin %g: ham margin %g, want %g", hm, m, want)
		}
	}
}
