package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/scan/spam"
	"github.com/mailgate/mailgate/internal/testutil/jamail"
)

// evalMsg is one message prepared for in-process scoring: its features and
// rules as the spam check computes them when it arrives.
type evalMsg struct {
	spam   bool
	tokens []string
	rules  []spam.Rule
}

func prepare(ctx context.Context, raw []byte, isSpam bool, lim int) (evalMsg, error) {
	msg, err := mailtext.Parse(ctx, strings.NewReader(string(raw)), mailtext.DefaultLimits())
	if err != nil {
		return evalMsg{}, err
	}
	toks, rules := spam.Features(msg, nil, spam.MessageTime(msg, time.Now()), lim)
	return evalMsg{spam: isSpam, tokens: toks, rules: rules}, nil
}

// scoreWith is the percentage the spam check gives m under the
// classifier's base model (the model alone, as a site's own training is
// weighed).
func scoreWith(ctx context.Context, cl *spam.Classifier, m evalMsg) float64 {
	pct, _ := spam.Combine(spam.Evidence{Result: classifyWith(ctx, cl, m), Rules: m.rules}.Findings())
	return pct
}

func classifyWith(ctx context.Context, cl *spam.Classifier, m evalMsg) spam.Result {
	res, err := cl.ClassifyTokens(ctx, spam.GlobalModel, m.tokens)
	if err != nil {
		panic(err) // a memory store without a context deadline does not fail
	}
	return res
}

// rawScore is the classifier's uncalibrated log-odds as they enter the
// score (before Scale and the ±MaxLogit bound), plus the fixed rules'
// points: the ranking the constants are chosen by.
func rawScore(res spam.Result, rules []spam.Rule) float64 {
	v := res.Logit * res.Coverage
	for _, r := range rules {
		if r.Fixed {
			v += r.Points
		}
	}
	return v
}

func split2(ms []evalMsg, score func(evalMsg) float64) (sp, hm []float64) {
	for _, m := range ms {
		if m.spam {
			sp = append(sp, score(m))
		} else {
			hm = append(hm, score(m))
		}
	}
	return sp, hm
}

// cmdTune chooses the classifier's corpus-tuned constants by
// cross-validation on the training folds of the time split only: for each
// candidate, every fold is scored by a model counted from the other folds,
// and the candidate with the best pooled spam recall at <= 0.1 % false
// positives wins. It then reports, for the chosen constants, the figures
// of the model counted from the whole training set on the test set and on
// the Japanese corpus (held-out mail: these are reported, never used to
// choose).
func cmdTune(ctx context.Context, fs *flag.FlagSet, args []string) error {
	data := fs.String("corpus", "", "corpus data directory (holds easy-ham-1, spam-1, ...)")
	folds := fs.Int("folds", 5, "cross-validation folds")
	seed := fs.Uint64("seed", 1, "fold assignment seed")
	strengths := fs.String("strength", "0.25,0.45,1,2,4", "candidate values of Params.Strength")
	devs := fs.String("min-deviation", "0.05,0.1,0.2,0.3,0.4", "candidate values of Params.MinDeviation")
	limits := fs.String("max-tokens", "400,600,1000,1500,3000", "candidate values of Params.MaxTokens")
	minClues := fs.String("min-clues", "10", "candidate values of Params.MinClues (a design choice, not tuned by default: see spam.Params)")
	maxFP := fs.Float64("max-fp", 0.001, "false-positive rate of the objective")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *folds < 2 {
		return fmt.Errorf("need -corpus and -folds >= 2")
	}
	files, err := listCorpus(*data)
	if err != nil {
		return err
	}
	sp, err := makeSplit(ctx, *data, files, *seed, 0, *folds)
	if err != nil {
		return err
	}
	fmt.Println(sp.summary())
	prep := func(list []corpusFile, lim int) ([]evalMsg, error) {
		out := make([]evalMsg, len(list))
		for i, c := range list {
			m, err := prepare(ctx, sp.raw[c.emlName()], c.spam, lim)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.emlName(), err)
			}
			out[i] = m
		}
		return out, nil
	}
	type cand struct {
		p           spam.Params
		recall, thr float64
		ok          bool
	}
	var cands []cand
	for _, lim := range floats(*limits) {
		train, err := prep(sp.train, int(lim))
		if err != nil {
			return err
		}
		foldModels := make([]*spam.Model, *folds)
		for k := range *folds {
			foldModels[k] = countExamples(train, func(i int) bool { return sp.fold[i] != k })
		}
		for _, s := range floats(*strengths) {
			for _, d := range floats(*devs) {
				for _, mc := range floats(*minClues) {
					p := spam.Params{Strength: s, MinDeviation: d, MaxTokens: int(lim), MinClues: int(mc)}
					var spS, hmS []float64
					for k := range *folds {
						cl := spam.NewClassifier(spam.NewMemoryStore(), p, spam.Options{Base: foldModels[k]})
						for i, e := range train {
							if sp.fold[i] != k {
								continue
							}
							v := rawScore(classifyWith(ctx, cl, e), e.rules)
							if e.spam {
								spS = append(spS, v)
							} else {
								hmS = append(hmS, v)
							}
						}
					}
					c := cand{p: p}
					if t, ok := spam.ThresholdFor(spS, hmS, *maxFP); ok {
						c.recall, c.thr, c.ok = spam.RatesAt(spS, hmS, t).Recall, t, true
					}
					cands = append(cands, c)
					fmt.Printf("cv: max-tokens=%d strength=%g min-deviation=%g min-clues=%d: recall %.2f%% at log-odds %.2f (<= %g%% FP)\n",
						int(lim), s, d, int(mc), 100*c.recall, c.thr, 100**maxFP)
				}
			}
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].recall > cands[j].recall })
	best := cands[0]
	// Scale puts the operating point at the default threshold: the
	// classifier's say there (MaxLogit·tanh(Scale·log-odds/MaxLogit), see
	// spam.Params) is logit(90 %).
	target := math.Log(spam.DefaultTagAt / (100 - spam.DefaultTagAt))
	if best.ok && best.thr > 0 {
		best.p.Scale = spam.MaxLogit * math.Atanh(target/spam.MaxLogit) / best.thr
	}
	fmt.Printf("chosen on the training folds: max-tokens=%d strength=%g min-deviation=%g min-clues=%d scale=%.3f (cv recall %.2f%% at log-odds %.2f)\n",
		best.p.MaxTokens, best.p.Strength, best.p.MinDeviation, best.p.MinClues, best.p.Scale, 100*best.recall, best.thr)

	train, err := prep(sp.train, best.p.MaxTokens)
	if err != nil {
		return err
	}
	test, err := prep(sp.test, best.p.MaxTokens)
	if err != nil {
		return err
	}
	var ja []evalMsg
	for _, m := range jamail.Generate(1, 1000, 400) {
		e, err := prepare(ctx, m.Raw, m.Spam, best.p.MaxTokens)
		if err != nil {
			return err
		}
		ja = append(ja, e)
	}
	full := spam.NewClassifier(spam.NewMemoryStore(), best.p, spam.Options{Base: countExamples(train, func(int) bool { return true })})
	score := func(e evalMsg) float64 { return scoreWith(ctx, full, e) }
	tS, tH := split2(test, score)
	jS, jH := split2(ja, score)
	rep := func(name string, s, h []float64, t float64) {
		r := spam.RatesAt(s, h, t)
		fmt.Printf("  %s at %.2f%%: FP %d/%d (%.3f%%), recall %d/%d (%.2f%%)\n", name, t, r.FP, r.Ham, 100*r.FPRate, r.Caught, r.Spam, 100*r.Recall)
	}
	fmt.Println("held-out figures of the chosen constants (model counted from the whole training set):")
	rep("test set, default threshold", tS, tH, spam.DefaultTagAt)
	rep("japanese corpus, default threshold", jS, jH, spam.DefaultTagAt)
	return nil
}

// countExamples counts the examples keep selects into a model.
func countExamples(ms []evalMsg, keep func(i int) bool) *spam.Model {
	m := spam.NewModel()
	for i, e := range ms {
		if !keep(i) {
			continue
		}
		one := spam.TokenCount{Ham: 1}
		if e.spam {
			one = spam.TokenCount{Spam: 1}
		}
		m.Spam += one.Spam
		m.Ham += one.Ham
		for _, t := range e.tokens {
			c := m.Tokens[t]
			c.Spam += one.Spam
			c.Ham += one.Ham
			m.Tokens[t] = c
		}
	}
	return m
}

func floats(s string) []float64 {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		var v float64
		if _, err := fmt.Sscan(strings.TrimSpace(f), &v); err == nil {
			out = append(out, v)
		}
	}
	return out
}
