package main

import (
	"math"
	"testing"

	"github.com/mailgate/mailgate/internal/scan/spam"
)

func TestOneSE(t *testing.T) {
	type c struct {
		obj          float64
		rate         float64
		epochs       int
		strength     float64
		wantNear     bool
		wantSelected bool
	}
	// 500 spam and a best objective of 0.9: one standard error is
	// sqrt(0.9·0.1/500) ≈ 0.0134.
	cands := []c{
		{obj: 0.900, rate: 2, epochs: 20, strength: 1, wantNear: true},
		{obj: 0.888, rate: 0.25, epochs: 20, strength: 1, wantNear: true},
		{obj: 0.890, rate: 0.25, epochs: 10, strength: 1, wantNear: true},
		{obj: 0.895, rate: 0.25, epochs: 10, strength: 2, wantNear: true, wantSelected: true},
		{obj: 0.887, rate: 0.25, epochs: 10, strength: 0.5, wantNear: true},
		{obj: 0.860, rate: 0.1, epochs: 5, strength: 1}, // gentler, but too far from the best
	}
	idx, top, se, near := oneSE(cands, func(x c) float64 { return x.obj }, func(x c) spam.Params {
		return spam.Params{LinearRate: x.rate, LinearEpochs: x.epochs, Strength: x.strength}
	}, 500)
	if top != 0.9 {
		t.Errorf("top = %v, want 0.9", top)
	}
	if se < 0.0133 || se > 0.0135 {
		t.Errorf("se = %v, want about 0.0134", se)
	}
	wantNear := 0
	for i, x := range cands {
		if x.wantNear {
			wantNear++
		}
		if x.wantSelected && idx != i {
			t.Errorf("chose %d (%+v), want %d", idx, cands[idx], i)
		}
	}
	if near != wantNear {
		t.Errorf("near = %d, want %d", near, wantNear)
	}
}

func TestAllowedFP(t *testing.T) {
	// With none flagged the bound is 1-(1-conf)^(1/n): with 2,625 ham,
	// 0.088 % at 90 % (within 0.1 %) and 0.114 % at 95 % (not).
	if got, want := fpUpperBound(0, 2625, 0.9), 1-math.Pow(0.1, 1.0/2625); math.Abs(got-want) > 1e-9 {
		t.Errorf("bound with none flagged: %v, want %v", got, want)
	}
	// One flagged of 2,625: the exact bound is about 0.148 % at 90 %.
	if got := fpUpperBound(1, 2625, 0.9); got < 0.00147 || got > 0.00149 {
		t.Errorf("bound with one flagged: %v", got)
	}
	for _, c := range []struct {
		n          int
		goal, conf float64
		want       int
	}{
		{2625, 0.001, 0.9, 0},
		{2625, 0.001, 0.95, -1},
		{100000, 0.001, 0.9, 86}, // many ham: close to the goal's 100
		{10, 0.001, 0.9, -1},
	} {
		if got := allowedFP(c.n, c.goal, c.conf); got != c.want {
			t.Errorf("allowedFP(%d, %g, %g) = %d, want %d", c.n, c.goal, c.conf, got, c.want)
		}
	}
}
