package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"slices"
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
	fp     string
	tokens []string
	rules  []spam.Rule
}

func prepare(ctx context.Context, raw []byte, isSpam bool, lim int) (evalMsg, error) {
	msg, err := mailtext.Parse(ctx, strings.NewReader(string(raw)), mailtext.DefaultLimits())
	if err != nil {
		return evalMsg{}, err
	}
	toks, rules := spam.Features(msg, nil, spam.MessageTime(msg, time.Now()), lim)
	return evalMsg{spam: isSpam, fp: spam.Fingerprint(msg), tokens: toks, rules: rules}, nil
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
// candidate, every fold is scored by a model trained on the other folds,
// and the candidate with the best objective on the pooled fold scores wins:
// the mean spam recall when 1, 2, ... 12 of the folds' ham may be flagged
// (about 0.04 % to 0.46 % false positives), steadier than one point of
// the curve. It then reports, for the chosen constants, the figures of
// the model trained on the whole training set on the test set and on the
// Japanese corpus (held-out mail: these are reported, never used to
// choose).
func cmdTune(ctx context.Context, fs *flag.FlagSet, args []string) error {
	data := fs.String("corpus", "", "corpus data directory (holds easy-ham-1, spam-1, ...)")
	folds := fs.Int("folds", 5, "cross-validation folds")
	seed := fs.Uint64("seed", 1, "fold assignment seed")
	strengths := fs.String("strength", "0.1,0.25,0.5,1,2", "candidate values of Params.Strength")
	devs := fs.String("min-deviation", "0.1,0.2,0.3,0.4", "candidate values of Params.MinDeviation")
	limits := fs.String("max-tokens", "600", "candidate values of Params.MaxTokens")
	minClues := fs.String("min-clues", "10", "candidate values of Params.MinClues (a design choice, not tuned by default: see spam.Params)")
	mixes := fs.String("linear-mix", "-1,4,8,16,32,64", "candidate values of Params.LinearMix (-1: the counting half alone)")
	epochs := fs.String("linear-epochs", "10,20", "candidate values of Params.LinearEpochs")
	rates := fs.String("linear-rate", "0.25,0.5,1,2", "candidate values of Params.LinearRate")
	hamMargins := fs.String("linear-ham-margin", "1", "candidate values of Params.LinearHamMargin")
	// The default threshold must flag at most 0.1 % of held-out ham, and
	// the folds only estimate that rate: 2,625 ham, of the training
	// period. The threshold is therefore put where the folds flag few
	// enough ham that the rate's one-sided upper confidence bound
	// (Clopper-Pearson, -confidence) is still within the goal: with 2,625
	// ham and 90 %, none may be flagged (one flagged gives a bound of
	// 0.15 %). Flagging half the goal's ham on the folds (one of 2,625)
	// was too little margin: held-out mail of another period then had
	// 0.13 %.
	fpGoal := fs.Float64("fp-goal", 0.001, "false-positive rate the default threshold must keep on mail it was not chosen on")
	conf := fs.Float64("confidence", 0.9, "confidence that the folds' false-positive rate at the default threshold is within -fp-goal")
	// Every fold scored by a model of the four others measures how well a
	// model judges mail of its own period; it cannot see a model falling
	// behind newer mail, which is what the time split (and a shipped
	// model) meets. Forward chaining scores fold k by a model of the
	// folds before it only. With -forward the objective is the mean of
	// the two, measured on the fewer spam of the forward folds.
	forward := fs.Bool("forward", false, "objective: the mean of the cross-validation objective and the same measured by forward chaining (fold k >= 1 scored by a model of the folds before it only); the default threshold is still set on every fold's scores")
	heldOut := fs.Bool("held-out", true, "score the test set and the Japanese corpus with the chosen constants, for the record (false: fold figures only, while trying candidates)")
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
		p             spam.Params
		obj, rec, thr float64
		ok            bool
	}
	var cands []cand
	nSpam := 0 // the spam the objective is measured on
	for _, lim := range floats(*limits) {
		train, err := prep(sp.train, int(lim))
		if err != nil {
			return err
		}
		for _, ep := range floats(*epochs) {
			for _, rate := range floats(*rates) {
				for _, hm := range floats(*hamMargins) {
					learnP := spam.Params{MaxTokens: int(lim), LinearEpochs: int(ep), LinearRate: rate, LinearHamMargin: hm}
					// cv[k] learns every fold but k; fwd[k] (-forward) only the
					// folds before k, so fold 0 has none.
					cv := make([]*spam.Model, *folds)
					fwd := make([]*spam.Model, *folds)
					for k := range *folds {
						if cv[k], err = learnModel(ctx, train, func(i int) bool { return sp.fold[i] != k }, learnP); err != nil {
							return err
						}
						if *forward && k > 0 {
							if fwd[k], err = learnModel(ctx, train, func(i int) bool { return sp.fold[i] < k }, learnP); err != nil {
								return err
							}
						}
					}
					for _, s := range floats(*strengths) {
						for _, d := range floats(*devs) {
							for _, mc := range floats(*minClues) {
								for _, mix := range floats(*mixes) {
									p := spam.Params{Strength: s, MinDeviation: d, MaxTokens: int(lim), MinClues: int(mc),
										LinearMix: mix, LinearEpochs: int(ep), LinearRate: rate, LinearHamMargin: hm}
									spS, hmS := foldScores(ctx, train, sp.fold, cv, p)
									c := cand{p: p, obj: meanRecall(spS, hmS, 12)}
									objCV := c.obj
									nSpam = len(spS)
									fwdNote := ""
									if *forward {
										fS, fH := foldScores(ctx, train, sp.fold, fwd, p)
										objFwd := meanRecall(fS, fH, 12)
										c.obj, nSpam = (objCV+objFwd)/2, len(fS)
										fwdNote = fmt.Sprintf("objective %.2f%%; forward: mean recall at 1-12 ham flagged %.2f%%; ", 100*c.obj, 100*objFwd)
									}
									// The default threshold is set on every fold's scores: the
									// forward folds hold too few ham for the goal.
									if k := allowedFP(len(hmS), *fpGoal, *conf); k < 0 {
										// No number of flagged ham is within the goal at this confidence.
									} else if t, ok := spam.ThresholdFor(spS, hmS, (float64(k)+0.5)/float64(len(hmS))); ok {
										c.rec, c.thr, c.ok = spam.RatesAt(spS, hmS, t).Recall, t, true
									}
									cands = append(cands, c)
									fmt.Printf("cv: max-tokens=%d strength=%g min-deviation=%g min-clues=%d linear-mix=%g linear-epochs=%d linear-rate=%g linear-ham-margin=%g: %s"+
										"mean recall at 1-12 ham flagged %.2f%%; recall %.2f%% at log-odds %.2f (%d ham flagged: FP <= %g%% at %g%% confidence)\n",
										int(lim), s, d, int(mc), mix, int(ep), rate, hm, fwdNote, 100*objCV, 100*c.rec, c.thr, allowedFP(len(hmS), *fpGoal, *conf), 100**fpGoal, 100**conf)
								}
							}
						}
					}
				}
			}
		}
	}
	idx, top, se, near := oneSE(cands, func(c cand) float64 { return c.obj }, func(c cand) spam.Params { return c.p }, nSpam)
	best := cands[idx]
	fmt.Printf("best on the folds: mean recall %.2f%%; standard error %.2f points; %d candidates within it\n", 100*top, 100*se, near)
	// Scale puts the operating point at the default threshold: the
	// classifier's say there (MaxLogit·tanh(Scale·log-odds/MaxLogit), see
	// spam.Params) is logit(90 %).
	target := math.Log(spam.DefaultTagAt / (100 - spam.DefaultTagAt))
	if best.ok && best.thr > 0 {
		best.p.Scale = spam.MaxLogit * math.Atanh(target/spam.MaxLogit) / best.thr
	}
	fmt.Printf("chosen on the training folds: max-tokens=%d strength=%g min-deviation=%g min-clues=%d linear-mix=%g linear-epochs=%d linear-rate=%g linear-ham-margin=%g scale=%.4f "+
		"(objective %.2f%%; recall %.2f%% at log-odds %.2f)\n",
		best.p.MaxTokens, best.p.Strength, best.p.MinDeviation, best.p.MinClues, best.p.LinearMix, best.p.LinearEpochs, best.p.LinearRate,
		best.p.LinearHamMargin, best.p.Scale, 100*best.obj, 100*best.rec, best.thr)
	if !*heldOut {
		return nil
	}

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
	base, err := learnModel(ctx, train, func(int) bool { return true }, best.p)
	if err != nil {
		return err
	}
	full := spam.NewClassifier(spam.NewMemoryStore(), best.p, spam.Options{Base: base})
	score := func(e evalMsg) float64 { return scoreWith(ctx, full, e) }
	tS, tH := split2(test, score)
	jS, jH := split2(ja, score)
	rep := func(name string, s, h []float64, t float64) {
		r := spam.RatesAt(s, h, t)
		fmt.Printf("  %s at %.2f%%: FP %d/%d (%.3f%%), recall %d/%d (%.2f%%)\n", name, t, r.FP, r.Ham, 100*r.FPRate, r.Caught, r.Spam, 100*r.Recall)
	}
	fmt.Println("held-out figures of the chosen constants (model trained on the whole training set):")
	rep("test set, default threshold", tS, tH, spam.DefaultTagAt)
	rep("japanese corpus, default threshold", jS, jH, spam.DefaultTagAt)
	fmt.Printf("  test set, recall when k ham may be flagged:%s\n", recallCurve(tS, tH, 12))
	return nil
}

// oneSE picks a candidate by the one-standard-error rule: the objective
// (obj, a mean recall over the folds' nSpam spam) has a binomial sampling
// error of about a point, so of the candidates within one standard error
// of the best, the one whose linear model learns least aggressively
// (lowest LinearRate, then fewest LinearEpochs) wins, and among those the
// best objective; ties keep the candidates' order. More grid points, and
// larger steps, would otherwise win by the noise of the folds. It returns
// the chosen index, the best objective, the standard error and how many
// candidates were within it.
func oneSE[C any](cands []C, obj func(C) float64, params func(C) spam.Params, nSpam int) (idx int, top, se float64, near int) {
	top = math.Inf(-1)
	for _, c := range cands {
		top = max(top, obj(c))
	}
	se = math.Sqrt(top * (1 - top) / float64(max(nSpam, 1)))
	idx = -1
	for i, c := range cands {
		if obj(c) < top-se {
			continue
		}
		near++
		if idx < 0 {
			idx = i
			continue
		}
		a, b := params(c), params(cands[idx])
		switch {
		case a.LinearRate != b.LinearRate:
			if a.LinearRate < b.LinearRate {
				idx = i
			}
		case a.LinearEpochs != b.LinearEpochs:
			if a.LinearEpochs < b.LinearEpochs {
				idx = i
			}
		case obj(c) > obj(cands[idx]):
			idx = i
		}
	}
	return idx, top, se, near
}

// recallAt returns the recall when the k highest-scoring ham may be
// flagged (the threshold just above the (k+1)-th).
func recallAt(sp, hm []float64, k int) float64 {
	h := slices.Clone(hm)
	slices.Sort(h)
	slices.Reverse(h)
	if k >= len(h) {
		return 1
	}
	n := 0
	for _, s := range sp {
		if s > h[k] {
			n++
		}
	}
	return float64(n) / float64(len(sp))
}

// meanRecall is the mean of recallAt for k = 1..maxK.
func meanRecall(sp, hm []float64, maxK int) float64 {
	sum := 0.0
	for k := 1; k <= maxK; k++ {
		sum += recallAt(sp, hm, k)
	}
	return sum / float64(maxK)
}

// foldScores scores every training message of fold k with models[k]
// (nil: fold k is not scored) as the spam check's raw log-odds, spam and
// ham apart.
func foldScores(ctx context.Context, train []evalMsg, fold []int, models []*spam.Model, p spam.Params) (sp, hm []float64) {
	for k, m := range models {
		if m == nil {
			continue
		}
		cl := spam.NewClassifier(spam.NewMemoryStore(), p, spam.Options{Base: m})
		for i, e := range train {
			if fold[i] != k {
				continue
			}
			v := rawScore(classifyWith(ctx, cl, e), e.rules)
			if e.spam {
				sp = append(sp, v)
			} else {
				hm = append(hm, v)
			}
		}
	}
	return sp, hm
}

func recallCurve(sp, hm []float64, maxK int) string {
	var b strings.Builder
	for k := 0; k <= maxK; k++ {
		fmt.Fprintf(&b, " %d:%.1f%%", k, 100*recallAt(sp, hm, k))
	}
	return b.String()
}

// learnModel trains the examples keep selects into a fresh model, as
// "mailgate spam train" does (one Learn of them all, no base model), and
// returns it.
func learnModel(ctx context.Context, ms []evalMsg, keep func(i int) bool, p spam.Params) (*spam.Model, error) {
	var exs []spam.Example
	for i, e := range ms {
		if !keep(i) {
			continue
		}
		label := spam.LabelHam
		if e.spam {
			label = spam.LabelSpam
		}
		exs = append(exs, spam.Example{Fingerprint: e.fp, Tokens: e.tokens, Label: label})
	}
	st := spam.NewMemoryStore()
	if _, err := spam.NewClassifier(st, p, spam.Options{}).Learn(ctx, spam.GlobalModel, exs); err != nil {
		return nil, err
	}
	m := spam.NewModel()
	info, err := st.LoadModel(ctx, spam.GlobalModel, func(t string, c spam.TokenCount) { m.Tokens[t] = c }, nil)
	if err != nil {
		return nil, err
	}
	m.Spam, m.Ham = info.Spam, info.Ham
	return m, nil
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

// allowedFP returns how many of n ham the folds may flag at the default
// threshold: the largest k whose one-sided Clopper-Pearson upper bound at
// confidence conf on the false-positive rate is at most goal, or -1 when
// not even k = 0 is (n too small for the goal).
func allowedFP(n int, goal, conf float64) int {
	k := -1
	for k+1 <= n && fpUpperBound(k+1, n, conf) <= goal {
		k++
	}
	return k
}

// fpUpperBound is the rate p at which k or fewer of n ham flagged has
// probability 1-conf: the binomial CDF is decreasing in p, so bisect.
func fpUpperBound(k, n int, conf float64) float64 {
	lo, hi := 0.0, 1.0
	for range 100 {
		mid := (lo + hi) / 2
		if binomCDF(k, n, mid) > 1-conf {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// binomCDF is P(X <= k) for X ~ Binomial(n, p), summed in log space.
func binomCDF(k, n int, p float64) float64 {
	if p <= 0 {
		return 1
	}
	if p >= 1 {
		if k >= n {
			return 1
		}
		return 0
	}
	sum := 0.0
	ln1p := math.Log1p(-p)
	lp := math.Log(p)
	lgN, _ := math.Lgamma(float64(n + 1))
	for i := 0; i <= k && i <= n; i++ {
		a, _ := math.Lgamma(float64(i + 1))
		b, _ := math.Lgamma(float64(n - i + 1))
		sum += math.Exp(lgN - a - b + float64(i)*lp + float64(n-i)*ln1p)
	}
	return sum
}
