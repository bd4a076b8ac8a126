package spam

import (
	"math"
	"slices"
)

// Rates are the outcome of flagging as spam every message scoring at or
// above a threshold.
type Rates struct {
	Threshold float64 `json:"threshold"`
	Spam      int     `json:"spam"`            // spam messages scored
	Ham       int     `json:"ham"`             // ham messages scored
	Caught    int     `json:"caught"`          // spam at or above the threshold
	FP        int     `json:"false_positives"` // ham at or above the threshold
	Recall    float64 `json:"recall"`          // Caught / Spam (NaN without spam)
	FPRate    float64 `json:"fp_rate"`         // FP / Ham (NaN without ham)
}

// RatesAt counts the outcome of threshold over labelled scores.
func RatesAt(spamScores, hamScores []float64, threshold float64) Rates {
	r := Rates{Threshold: threshold, Spam: len(spamScores), Ham: len(hamScores)}
	for _, s := range spamScores {
		if s >= threshold {
			r.Caught++
		}
	}
	for _, s := range hamScores {
		if s >= threshold {
			r.FP++
		}
	}
	r.Recall, r.FPRate = ratio(r.Caught, r.Spam), ratio(r.FP, r.Ham)
	return r
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// ThresholdFor returns the smallest threshold (flagging score >= t) with at
// most maxFP false positives over hamScores, which maximises recall at that
// rate: floor(maxFP × ham) ham may be flagged, so t is the lowest score of
// any message above the next-highest ham. ok is false when no message
// scores above it.
func ThresholdFor(spamScores, hamScores []float64, maxFP float64) (t float64, ok bool) {
	ham := slices.Clone(hamScores)
	slices.Sort(ham)
	slices.Reverse(ham)
	// The epsilon keeps e.g. 0.001*3000 from rounding down to 2.
	allowed := int(math.Floor(maxFP*float64(len(ham)) + 1e-9))
	t = math.Inf(1)
	if allowed >= len(ham) {
		for _, s := range append(slices.Clone(spamScores), hamScores...) {
			t = math.Min(t, s)
		}
		return t, !math.IsInf(t, 1)
	}
	bar := ham[allowed]
	for _, s := range append(slices.Clone(spamScores), hamScores...) {
		if s > bar && s < t {
			t = s
		}
	}
	return t, !math.IsInf(t, 1)
}
