package main

import (
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
