package spam

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"sync"
)

// Params tune the classifier. A zero field takes its DefaultParams value.
//
// The method is Gary Robinson's: each token's spam probability f(w) is a
// Bayesian blend of what the counts say and a prior, and the probabilities
// of the most significant tokens are combined with Fisher's inverse
// chi-square method (as in SpamBayes), which gives a score in [0,1] that
// stays near 0.5 when the evidence is weak or mixed instead of jumping to an
// extreme.
type Params struct {
	// Strength is Robinson's s: how many messages' worth of weight the prior
	// has against a token's own counts.
	Strength float64
	// Prior is Robinson's x: the probability assumed for a token with no
	// evidence.
	Prior float64
	// MinDeviation keeps only significant tokens: |f(w)-0.5| >= MinDeviation.
	MinDeviation float64
	// MaxClues bounds the tokens combined: the most significant ones win.
	MaxClues int
	// MinClues is the least evidence Fisher's test is run on: a message
	// with fewer clues is combined as if neutral clues (0.5) made up the
	// rest, so a verdict resting on one or two words (a short "hello"
	// whose one known word happened to be in spam) stays moderate, while
	// messages with many clues are unaffected.
	MinClues int
	// LocalWeight multiplies the counts of the site's own models (the
	// global model trained with "spam train --global" and the tenants'
	// models) before they are added to the shipped base model's: mail
	// from the site's own users is the most specific evidence there is,
	// so one such message counts as two of the base. Global and tenant
	// training weigh the same, so the same messages give the same scores
	// whichever was trained.
	LocalWeight float64
	// MinScriptMessages is how many spam and how many ham messages of a
	// writing system (see Tokenize's script tokens) the models must hold
	// before that script's words count at all; until then they are
	// neutral, so mail in a language the training data lacked is judged
	// by everything else (links, structure, headers, rules). A negative
	// value turns the per-script handling off: every word is judged
	// against all messages, as a classifier blind to scripts would.
	MinScriptMessages int
	// Scale multiplies the classifier's log-odds (Result.Logit) before they
	// join the rules' points in the score: Fisher's method is
	// over-confident (or, with few strong clues, under-confident), and this
	// calibration puts the default tag threshold (90 %) where held-out
	// training mail has at most 0.1 % false positives.
	Scale float64
	// MaxTokens bounds the tokens taken from one message (Tokenize's lim).
	MaxTokens int
	// LinearMix is the linear model's share of the classifier's log-odds:
	// Result.Logit is the counting half's Fisher log-odds plus LinearMix
	// times the linear model's margin (see linear.go). Negative turns the
	// linear model off (no training, no say).
	LinearMix float64
	// LinearRate is how far one training step moves a message's margin.
	LinearRate float64
	// LinearEpochs is how many passes training makes over the messages
	// it is given.
	LinearEpochs int
	// LinearHamMargin is the margin a ham message must reach on the ham
	// side before training stops pushing it (a spam message's is 1): the
	// score's errors that matter most are ham scored as spam, so ham is
	// held further from the threshold than spam.
	LinearHamMargin float64
}

// DefaultParams returns the defaults. Strength, MinDeviation, LinearMix,
// LinearRate, LinearEpochs, LinearHamMargin and Scale were chosen by
// scripts/tune-spam -forward on the training folds of the time-split
// SpamAssassin corpus (consecutive periods) only: the objective the mean
// spam recall when 1 to 12 of the folds' ham may be flagged, averaged over
// cross-validation (each fold scored by a model of the other four) and
// forward chaining (each fold by a model of the earlier folds only, as
// newer mail meets a model), over Strength 0.1 and 0.5, MinDeviation 0.3
// and 0.4, LinearMix 4–32, LinearRate 0.25–4, LinearEpochs 10 and
// LinearHamMargin 1–3; of the candidates within one standard error of the
// best, the one whose linear model learns least aggressively. Scale then
// puts on the default tag threshold the point where the folds flag no ham:
// with 2,625 of them, the most that keeps the false-positive rate's 90 %
// upper confidence bound within 0.1 % (one flagged gives 0.15 %).
// MaxTokens comes from an earlier grid (400–3000: the first 600 features
// of a message, header and structure first, judge it as well as more of
// them). The others are design choices, not tuned.
func DefaultParams() Params {
	return Params{
		Strength:          0.1,
		Prior:             0.5,
		MinDeviation:      0.3,
		MaxClues:          150,
		MinClues:          10,
		LocalWeight:       2,
		MinScriptMessages: 10,
		Scale:             0.0776,
		MaxTokens:         DefaultMaxTokens,
		LinearMix:         32,
		LinearRate:        0.25,
		LinearEpochs:      10,
		LinearHamMargin:   1,
	}
}

func (p Params) withDefaults() Params {
	d := DefaultParams()
	if p.Strength <= 0 {
		p.Strength = d.Strength
	}
	if p.Prior <= 0 || p.Prior >= 1 {
		p.Prior = d.Prior
	}
	if p.MinDeviation <= 0 {
		p.MinDeviation = d.MinDeviation
	}
	if p.MaxClues <= 0 {
		p.MaxClues = d.MaxClues
	}
	if p.MinClues <= 0 {
		p.MinClues = d.MinClues
	}
	if p.LocalWeight <= 0 {
		p.LocalWeight = d.LocalWeight
	}
	if p.MinScriptMessages == 0 {
		p.MinScriptMessages = d.MinScriptMessages
	}
	if p.Scale <= 0 {
		p.Scale = d.Scale
	}
	if p.MaxTokens <= 0 {
		p.MaxTokens = d.MaxTokens
	}
	if p.LinearMix == 0 {
		p.LinearMix = d.LinearMix
	}
	if p.LinearRate <= 0 {
		p.LinearRate = d.LinearRate
	}
	if p.LinearEpochs <= 0 {
		p.LinearEpochs = d.LinearEpochs
	}
	if p.LinearHamMargin <= 0 {
		p.LinearHamMargin = d.LinearHamMargin
	}
	return p
}

// TokenProb is one token's evidence as the classifier used it.
type TokenProb struct {
	Token string
	// Prob is Robinson's f(w): the probability that a message containing
	// the token is spam, in (0,1).
	Prob float64
	// Spam and Ham are the weighted counts behind Prob (base plus weighted
	// local counts).
	Spam, Ham float64
}

// Result is a classification.
type Result struct {
	// Prob is the spam probability in [0,1]; 0.5 means no opinion.
	Prob float64
	// Logit is Prob's log-odds: Bayes plus Params.LinearMix times Margin.
	Logit float64
	// Bayes is the counting half's log-odds, computed without rounding
	// Fisher's probability to 0 or 1 first (see fisherLogit), so it keeps
	// ordering confident verdicts.
	Bayes float64
	// Margin is the linear model's margin (see linear.go): positive says
	// spam, and 1 is where its training stops pushing.
	Margin float64
	// Points are the classifier's say in the score, in log-odds: Logit
	// times Params.Scale bent into ±MaxLogit (see Params.points), times
	// Coverage; ±MaxLogit for a message trained before (Label).
	Points float64
	// Label is the label this very message was trained with (LabelSpam
	// or LabelHam; "" when it was not), see Classifier.ClassifyMessage.
	Label string
	// Top are the tokens combined into Prob, most significant first (ties
	// by token), at most MaxClues of them.
	Top []TokenProb
	// Trained is false when the models hold no spam or no ham messages;
	// Prob is then 0.5 and Top empty.
	Trained bool
	// Neutral names the scripts whose words were ignored because the
	// models hold too few messages of that script in one class.
	Neutral []string
	// Coverage is the share of the message's words (text tokens) in
	// scripts the models know, 1 when all are (or there are none). The
	// classifier's say is scaled by it (see Evidence.Findings): a verdict
	// resting on a few header and structure tokens of a message whose
	// text the model cannot read is not a verdict on the message.
	Coverage float64
}

// tokenProb is Robinson's f(w) for a token seen in spam of nspam spam
// messages and ham of nham ham messages (weighted counts, hence floats),
// n messages in all (unweighted: weighting says whose evidence matters
// more, not how much evidence there is):
//
//	p(w) = (spam/nspam) / (spam/nspam + ham/nham)
//	f(w) = (s*x + n*p(w)) / (s + n)
//
// The per-class ratios make p(w) independent of how much of each class was
// trained. nspam and nham must be positive.
func (p Params) tokenProb(spam, ham, n, nspam, nham float64) float64 {
	sr := min(spam/nspam, 1)
	hr := min(ham/nham, 1)
	pw := p.Prior
	if sr+hr > 0 {
		pw = sr / (sr + hr)
	}
	return (p.Strength*p.Prior + n*pw) / (p.Strength + n)
}

// points maps the classifier's log-odds to its say in the score:
// MaxLogit·tanh(Scale·logit/MaxLogit), which is Scale·logit near the
// threshold and bends smoothly towards ±MaxLogit, so confident verdicts
// keep their order (a hard bound would give them all the same score, and
// make thresholds above it meaningless).
func (p Params) points(logit float64) float64 {
	return MaxLogit * math.Tanh(p.Scale*logit/MaxLogit)
}

// layer is one model in a classification, with the weight of its counts.
type layer struct {
	m *Model
	w float64
}

// tokenCounts are a token's counts over the layers: its weighted spam
// and ham counts, its unweighted number of messages and its linear weight
// (the layers' weights added up: each learned what the ones under it
// missed).
type tokenCounts struct {
	spam, ham, n float64
	w            int64
}

// countAll sets out to the counts of each of toks over the layers (out
// and buf are scratch space, reused when long enough). A table layer is
// read in one batch (frozenTokens.lookup), so that its reads, which mostly
// miss the caches, wait for memory together rather than one after another
// between the scoring of tokens. Each token's sums are taken layer by
// layer in order, as a token-by-token loop would.
func countAll(layers []layer, toks []string, out []tokenCounts, buf []TokenCount) ([]tokenCounts, []TokenCount) {
	out = slices.Grow(out[:0], len(toks))[:len(toks)]
	clear(out)
	for _, l := range layers {
		if l.m.frozen != nil {
			buf = slices.Grow(buf[:0], len(toks))[:len(toks)]
			l.m.frozen.lookup(toks, buf)
			for i, c := range buf {
				out[i].add(l.w, c)
			}
			continue
		}
		if len(l.m.Tokens) == 0 {
			continue
		}
		for i, tok := range toks {
			if c, ok := l.m.Tokens[tok]; ok {
				out[i].add(l.w, c)
			}
		}
	}
	return out, buf
}

// classifyScratch is classify's working space, reused across messages
// (classifyScratches): for a message of 600 features it is 50 KB.
type classifyScratch struct {
	read    []string
	scripts []script
	counts  []tokenCounts
	buf     []TokenCount
}

var classifyScratches = sync.Pool{New: func() any { return new(classifyScratch) }}

// release gives the scratch back, holding no message's tokens.
func (scr *classifyScratch) release() {
	clear(scr.read)
	scr.read = scr.read[:0]
	classifyScratches.Put(scr)
}

// add adds one layer's counts of weight w. A token the layer does not
// hold has zero counts and adds nothing.
func (t *tokenCounts) add(w float64, c TokenCount) {
	t.spam += w * float64(c.Spam)
	t.ham += w * float64(c.Ham)
	t.n += float64(c.Spam + c.Ham)
	t.w += c.Weight
}

// scriptStats are the messages of one script in the layers.
type scriptStats struct {
	spam, ham       float64 // weighted
	uspam, uham     int64   // unweighted
	known, computed bool
}

// classify scores a token set over the layers. Tokens nobody has seen are
// skipped (their f(w) is the prior), and so are the words of a script the
// layers hold fewer than MinScriptMessages spam or ham messages of; the
// others are judged against the messages of their own script.
func (p Params) classify(tokens []string, layers []layer) Result {
	var nspam, nham float64
	for _, l := range layers {
		nspam += l.w * float64(l.m.Spam)
		nham += l.w * float64(l.m.Ham)
	}
	if nspam <= 0 || nham <= 0 {
		return Result{Prob: 0.5, Coverage: 1}
	}
	var scripts [numScripts]scriptStats
	stats := func(sc script) *scriptStats {
		st := &scripts[sc]
		if st.computed {
			return st
		}
		st.computed = true
		tok := ScriptTokenPrefix + scriptNames[sc]
		for _, l := range layers {
			if c, ok := l.m.count(tok); ok {
				st.spam += l.w * float64(c.Spam)
				st.ham += l.w * float64(c.Ham)
				st.uspam += c.Spam
				st.uham += c.Ham
			}
		}
		st.known = st.uspam >= int64(p.MinScriptMessages) && st.uham >= int64(p.MinScriptMessages)
		return st
	}
	var neutral [numScripts]bool
	words, unread := 0, 0
	scr := classifyScratches.Get().(*classifyScratch)
	defer scr.release()
	// The tokens the layers are asked about: not the script tokens, and
	// not the words of a script too little trained to be read.
	scr.read, scr.scripts = scr.read[:0], scr.scripts[:0]
	for _, tok := range tokens {
		if strings.HasPrefix(tok, ScriptTokenPrefix) {
			continue
		}
		sc := scriptNone
		if p.MinScriptMessages > 0 {
			sc = tokenScript(tok)
		}
		if sc != scriptNone {
			words++
			if !stats(sc).known {
				neutral[sc] = true
				unread++
				continue
			}
		}
		scr.read, scr.scripts = append(scr.read, tok), append(scr.scripts, sc)
	}
	clues := make([]TokenProb, 0, 64)
	var wsum int64 // the linear model's sum over the features read
	nlin := 0
	scr.counts, scr.buf = countAll(layers, scr.read, scr.counts, scr.buf)
	for i, c := range scr.counts {
		tok, sc := scr.read[i], scr.scripts[i]
		if p.LinearMix > 0 && linearFeature(tok) {
			wsum += c.w
			nlin++
		}
		if c.n <= 0 {
			continue
		}
		ns, nh := nspam, nham
		if sc != scriptNone {
			ns, nh = scripts[sc].spam, scripts[sc].ham
		}
		f := p.tokenProb(c.spam, c.ham, c.n, ns, nh)
		if math.Abs(f-0.5) < p.MinDeviation {
			continue
		}
		clues = append(clues, TokenProb{Token: tok, Prob: f, Spam: c.spam, Ham: c.ham})
	}
	slices.SortFunc(clues, func(a, b TokenProb) int {
		if c := cmp.Compare(math.Abs(b.Prob-0.5), math.Abs(a.Prob-0.5)); c != 0 {
			return c
		}
		return cmp.Compare(a.Token, b.Token)
	})
	if len(clues) > p.MaxClues {
		clues = clues[:p.MaxClues]
	}
	res := Result{Bayes: fisherLogit(clues, p.MinClues), Top: clues, Trained: true, Coverage: 1}
	l := res.Bayes
	if nlin > 0 {
		res.Margin = float64(wsum) / WeightUnit / math.Sqrt(float64(nlin))
		l += p.LinearMix * res.Margin
	}
	res.Logit, res.Prob = l, 1/(1+math.Exp(-l))
	if words > 0 {
		res.Coverage = float64(words-unread) / float64(words)
	}
	// The bound applies before the coverage, so a message the models can
	// read a tenth of gets at most a tenth of the classifier's full say.
	res.Points = p.points(l) * res.Coverage
	for sc, on := range neutral {
		if on {
			res.Neutral = append(res.Neutral, scriptNames[sc])
		}
	}
	return res
}

// fisher combines token probabilities with Fisher's method, both ways (as
// SpamBayes' chi-combining): H measures how unlikely the probabilities are
// under "all were random" leaning to ham, S the same leaning to spam,
//
//	S = 1 - Q(-2 Σ ln(1-f), 2n),  H = 1 - Q(-2 Σ ln f, 2n)
//	result = (1 + S - H) / 2
//
// where Q is the chi-square survival function. No clues give 0.5.
func fisher(clues []TokenProb) float64 {
	return 1 / (1 + math.Exp(-fisherLogit(clues, 0)))
}

// fisherLogit is the log-odds of fisher's result, computed from the
// logarithms of both chi-square tails so that it keeps ranking messages
// where the probability itself has rounded to 0 or 1:
//
//	result/(1-result) = (1 - Qs + Qh) / (1 + Qs - Qh) = (Ps + Qh) / (Qs + Ph)
//
// with P = 1 - Q the lower tail. Fewer than minClues clues are made up to
// minClues with neutral ones (f = 0.5).
func fisherLogit(clues []TokenProb, minClues int) float64 {
	if len(clues) == 0 {
		return 0
	}
	var lnSpam, lnHam float64 // Σ ln(1-f), Σ ln f
	for _, c := range clues {
		lnSpam += math.Log1p(-c.Prob)
		lnHam += math.Log(c.Prob)
	}
	n := len(clues)
	if pad := minClues - n; pad > 0 {
		lnSpam += float64(pad) * math.Log(0.5)
		lnHam += float64(pad) * math.Log(0.5)
		n = minClues
	}
	dof := 2 * n
	lPs, lQs := chi2Tails(-2*lnSpam, dof)
	lPh, lQh := chi2Tails(-2*lnHam, dof)
	return logAddExp(lPs, lQh) - logAddExp(lQs, lPh)
}

func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(a, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// chi2Q is the probability that a chi-square variable with dof (even)
// degrees of freedom exceeds x2.
func chi2Q(x2 float64, dof int) float64 {
	_, lq := chi2Tails(x2, dof)
	return math.Exp(lq)
}

// chi2Tails returns the logarithms of both tails of the chi-square
// distribution with dof (even) degrees of freedom at x2: ln P(X <= x2) and
// ln P(X > x2). For dof = 2k they are Poisson tails with mean m = x2/2:
// Q = e^-m Σ_{i<k} m^i/i! and P = e^-m Σ_{i>=k} m^i/i!. The smaller tail
// is summed directly in log space (so it neither underflows nor loses its
// digits to 1 - x), the larger one is derived from it.
func chi2Tails(x2 float64, dof int) (lp, lq float64) {
	if x2 <= 0 {
		return math.Inf(-1), 0
	}
	m := x2 / 2
	k := dof / 2
	lm := math.Log(m)
	if m < float64(k) {
		// P: terms i >= k shrink from the first, since i > m.
		lg, _ := math.Lgamma(float64(k) + 1)
		top := float64(k)*lm - lg
		sum, lt := 0.0, 0.0
		for i := k; lt > -50 && i < k+100000; i++ {
			sum += math.Exp(lt)
			lt += lm - math.Log(float64(i+1))
		}
		lp = min(top-m+math.Log(sum), 0)
		return lp, log1mExp(lp)
	}
	// Q: terms i < k grow up to i = k-1 <= m; scaling by the largest keeps
	// the sum finite.
	imax := float64(k - 1)
	lg, _ := math.Lgamma(imax + 1)
	top := imax*lm - lg
	var sum float64
	lt := 0.0 // log of term i
	for i := range k {
		if i > 0 {
			lt += lm - math.Log(float64(i))
		}
		sum += math.Exp(lt - top)
	}
	lq = min(top-m+math.Log(sum), 0)
	return log1mExp(lq), lq
}

// log1mExp returns ln(1 - e^x) for x <= 0.
func log1mExp(x float64) float64 {
	if x > -math.Ln2 {
		return math.Log(-math.Expm1(x))
	}
	return math.Log1p(-math.Exp(x))
}
