package spam

import (
	"math"
	"strconv"
	"testing"
)

// naiveChi2Q is the textbook series, fine where e^-m does not underflow.
func naiveChi2Q(x2 float64, dof int) float64 {
	m := x2 / 2
	term := math.Exp(-m)
	sum := term
	for i := 1; i < dof/2; i++ {
		term *= m / float64(i)
		sum += term
	}
	return math.Min(sum, 1)
}

func TestChi2Q(t *testing.T) {
	for _, x := range []float64{0.1, 1, 3.5, 10, 50} {
		if got, want := chi2Q(x, 2), math.Exp(-x/2); math.Abs(got-want) > 1e-12 {
			t.Errorf("chi2Q(%g, 2) = %g, want %g", x, got, want)
		}
	}
	for _, c := range []struct {
		x   float64
		dof int
	}{{5, 4}, {20, 10}, {100, 80}, {300, 300}, {900, 300}} {
		got, want := chi2Q(c.x, c.dof), naiveChi2Q(c.x, c.dof)
		if math.Abs(got-want) > 1e-9*math.Max(want, 1e-300) && math.Abs(got-want) > 1e-15 {
			t.Errorf("chi2Q(%g, %d) = %g, want %g", c.x, c.dof, got, want)
		}
	}
	if chi2Q(0, 10) != 1 || chi2Q(-1, 10) != 1 {
		t.Error("chi2Q of a non-positive value must be 1")
	}
	// Large arguments: e^-1000 underflows in the naive series, but a
	// chi-square with 2000 degrees of freedom is near its median at 2000.
	if got := chi2Q(2000, 2000); got < 0.45 || got > 0.55 {
		t.Errorf("chi2Q(2000, 2000) = %g, want about 0.5", got)
	}
	prev := 1.0
	for x := 1.0; x < 3000; x *= 1.5 {
		q := chi2Q(x, 300)
		if q > prev+1e-12 || q < 0 {
			t.Fatalf("chi2Q not decreasing in [0,1] at %g: %g after %g", x, q, prev)
		}
		prev = q
	}
}

func TestTokenProb(t *testing.T) {
	p := DefaultParams()
	// Unseen tokens take the prior.
	if got := p.tokenProb(0, 0, 0, 10, 10); got != p.Prior {
		t.Errorf("unseen: %g", got)
	}
	// Per-class ratios: a token in 5 of 10 spam and 5 of 100 ham leans spam
	// even though its raw counts are equal.
	if got := p.tokenProb(5, 5, 10, 10, 100); got <= 0.8 {
		t.Errorf("ratio: %g", got)
	}
	// Symmetry between the classes.
	a, b := p.tokenProb(7, 2, 9, 50, 40), p.tokenProb(2, 7, 9, 40, 50)
	if math.Abs(a+b-1) > 1e-12 {
		t.Errorf("asymmetric: %g + %g", a, b)
	}
	// More evidence moves further from the prior.
	if p.tokenProb(1, 0, 1, 10, 10) >= p.tokenProb(5, 0, 5, 10, 10) {
		t.Error("more spam evidence did not raise f(w)")
	}
	// Weighted counts (local counts doubled) move the ratio, not the
	// amount of evidence: 2 weighted spam from 1 message stays at n=1.
	if p.tokenProb(2, 0, 1, 20, 20) != p.tokenProb(1, 0, 1, 10, 10) {
		t.Error("weighting changed the evidence count")
	}
	// s=1, x=0.5, one spam message: (0.5 + 1)/(1 + 1) = 0.75.
	q := Params{Strength: 1, Prior: 0.5}
	if got := q.tokenProb(1, 0, 1, 3, 3); math.Abs(got-0.75) > 1e-12 {
		t.Errorf("Robinson f(w) = %g, want 0.75", got)
	}
}

func clues(ps ...float64) []TokenProb {
	out := make([]TokenProb, len(ps))
	for i, p := range ps {
		out[i] = TokenProb{Token: strconv.Itoa(i), Prob: p}
	}
	return out
}

func TestFisher(t *testing.T) {
	if got := fisher(nil); got != 0.5 {
		t.Errorf("no clues: %g", got)
	}
	if got := fisher(clues(0.99, 0.98, 0.95, 0.99)); got < 0.99 {
		t.Errorf("spammy: %g", got)
	}
	if got := fisher(clues(0.01, 0.02, 0.05, 0.01)); got > 0.01 {
		t.Errorf("hammy: %g", got)
	}
	if got := fisher(clues(0.99, 0.01, 0.9, 0.1)); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("balanced evidence: %g, want 0.5", got)
	}
	// Mirror symmetry: complementing every clue complements the result.
	ps := []float64{0.93, 0.2, 0.97, 0.88, 0.4}
	inv := make([]float64, len(ps))
	for i, p := range ps {
		inv[i] = 1 - p
	}
	if a, b := fisher(clues(ps...)), fisher(clues(inv...)); math.Abs(a+b-1) > 1e-9 {
		t.Errorf("asymmetric: %g + %g", a, b)
	}
	// Many strong clues saturate without leaving [0,1] or going NaN.
	many := make([]float64, 150)
	for i := range many {
		many[i] = 0.9999
	}
	if got := fisher(clues(many...)); got != 1 && (got < 0.999 || got > 1) {
		t.Errorf("saturated: %g", got)
	}
}

func TestScoreSelectsSignificantClues(t *testing.T) {
	p := DefaultParams()
	p.MaxClues = 3
	m := &Model{Spam: 50, Ham: 50, Tokens: map[string]TokenCount{
		"strong-spam":  {Spam: 40, Ham: 0},
		"spam":         {Spam: 8, Ham: 0},
		"weak":         {Spam: 5, Ham: 4}, // |f-0.5| < MinDeviation: ignored
		"ham":          {Spam: 0, Ham: 9},
		"strong-ham":   {Spam: 0, Ham: 40},
		"extra-spam":   {Spam: 3, Ham: 0},
		"script:latin": {Spam: 50, Ham: 50},
	}}
	toks := []string{"weak", "spam", "strong-spam", "ham", "strong-ham", "extra-spam", "unseen", "script:latin"}
	r := p.classify(toks, []layer{{m, 1}})
	if !r.Trained || len(r.Top) != 3 {
		t.Fatalf("result %+v", r)
	}
	// Most significant first, ties by token.
	want := []string{"strong-ham", "strong-spam", "ham"}
	for i, w := range want {
		if r.Top[i].Token != w {
			t.Errorf("Top[%d] = %s, want %s (%+v)", i, r.Top[i].Token, w, r.Top)
		}
	}
	for _, c := range r.Top {
		if math.Abs(c.Prob-0.5) < p.MinDeviation {
			t.Errorf("insignificant clue %+v", c)
		}
	}
	if r := p.classify(toks, []layer{{&Model{Ham: 10, Tokens: m.Tokens}, 1}}); r.Trained || r.Prob != 0.5 {
		t.Errorf("untrained model gave %+v", r)
	}
}

func TestParamsDefaults(t *testing.T) {
	if got := (Params{}).withDefaults(); got != DefaultParams() {
		t.Errorf("zero Params = %+v, want %+v", got, DefaultParams())
	}
	p := Params{Strength: 2, MaxClues: 10}.withDefaults()
	if p.Strength != 2 || p.MaxClues != 10 || p.Prior != 0.5 {
		t.Errorf("partial Params = %+v", p)
	}
}
