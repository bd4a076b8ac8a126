package spam

import (
	"cmp"
	"hash/fnv"
	"math"
	"slices"
	"strings"
)

// The linear model is the classifier's discriminative half: one weight
// per feature, the message's margin the sum of its features' weights
// scaled by 1/√n (n features), trained as a relaxed online SVM: a
// message moves its features' weights only while its margin is short of
// 1 on the side of its label, by LinearRate per step. The counting half
// (bayes.go) treats features as independent, so forty correlated clues of
// one kind (a newsletter's boilerplate, a list's path) outvote everything
// else; the linear model learns how much each feature adds to the others,
// and weighs the generic evidence spam campaigns share (header shapes,
// rules, links) beside any one campaign's words.
//
// Its weights live next to the counts, one per token (TokenCount.Weight),
// in every model: the shipped one, the site's and each tenant's. They add
// up: a model learns only what the models under it (the shipped one, then
// the global one) do not already get right, so the same messages give the
// same weights whether trained globally or for a tenant. Every step of a
// message adds the same amount to each of its features, so what training
// taught from one message is one number, its lesson (Trained.Lesson), and
// untraining subtracts exactly that. Word pairs and the per-message script
// tokens are not linear features: pairs only repeat their words' evidence,
// which the counting half uses and the linear model over-fits (measured on
// the training folds, see docs/spam.md).

// WeightUnit is the linear weights' fixed point: TokenCount.Weight counts
// units of 1/WeightUnit.
const WeightUnit = 1 << 24

// linearFeature reports whether a token is a feature of the linear model.
func linearFeature(tok string) bool {
	return !strings.HasPrefix(tok, ScriptTokenPrefix) && !strings.Contains(tok, " ")
}

// fitExample is one message the linear model learns: its linear features,
// its label (+1 spam, -1 ham) and its place in the training order.
type fitExample struct {
	fingerprint string
	feats       []string
	y           int64
	key         uint64
	skip        bool // superseded by a later example of the same message
}

func newFitExample(ex Example, y int64) fitExample {
	var feats []string
	for _, t := range dedup(ex.Tokens) {
		if linearFeature(t) {
			feats = append(feats, t)
		}
	}
	h := fnv.New64a()
	if ex.Fingerprint != "" {
		h.Write([]byte(ex.Fingerprint))
	} else {
		for _, t := range feats {
			h.Write([]byte(t))
			h.Write([]byte{0})
		}
	}
	return fitExample{fingerprint: ex.Fingerprint, feats: feats, y: y, key: h.Sum64()}
}

// stepUnits is how much one step adds to each weight of a message with n
// features: a step moves its margin by rate.
func stepUnits(rate float64, n int) int64 {
	return int64(math.Round(rate * WeightUnit / math.Sqrt(float64(n))))
}

// fit trains the examples into the top layer of layers, whose weights are
// those stored plus pending (changes of the same commit), and returns each
// example's lesson: LinearEpochs passes over the examples in an order that
// depends only on the examples themselves (the same messages given in any
// order give the same weights), each step moving a message's margin by
// LinearRate towards its label while it is short of 1 (spam) or of
// LinearHamMargin (ham).
//
// The weights kept are the average of the weights after every visit of a
// message, not the last ones (an averaged perceptron): the last steps of
// an online learner chase the last few messages it saw, the average does
// not, and it judges mail of a later period better (measured on the
// training folds, see docs/spam.md). Training still steps with the
// running weights. A step taken at visit t of T adds u·(T−t)/T to the
// average, the same for each of the message's features, so a message's
// lesson stays one number and untraining still takes back exactly it.
func (p Params) fit(layers []layer, pending map[string]int64, examples []fitExample) []int64 {
	lessons := make([]int64, len(examples))
	if p.LinearMix < 0 || len(examples) == 0 {
		return lessons
	}
	order := make([]int, 0, len(examples))
	for i, ex := range examples {
		if !ex.skip && len(ex.feats) > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(examples[a].key, examples[b].key) })
	delta := pending
	if delta == nil {
		delta = map[string]int64{}
	}
	// visit counts the visits of messages; late[i] is Σ u·t over message
	// i's steps, so its lesson in the average is Σu − late[i]/T.
	visit := 0.0
	late := make([]float64, len(examples))
	for range p.LinearEpochs {
		moved := false
		for _, i := range order {
			visit++
			ex := &examples[i]
			var sum int64
			for _, t := range ex.feats {
				for _, l := range layers {
					c, _ := l.m.count(t)
					sum += c.Weight
				}
				sum += delta[t]
			}
			margin := float64(sum) / WeightUnit / math.Sqrt(float64(len(ex.feats)))
			want := 1.0
			if ex.y < 0 {
				want = p.LinearHamMargin
			}
			if float64(ex.y)*margin >= want {
				continue
			}
			u := ex.y * stepUnits(p.LinearRate, len(ex.feats))
			for _, t := range ex.feats {
				delta[t] += u
			}
			lessons[i] += u
			late[i] += float64(u) * visit
			moved = true
		}
		if !moved {
			break // every message is on its side with room to spare
		}
	}
	for i := range lessons {
		if late[i] != 0 {
			lessons[i] -= int64(math.Round(late[i] / visit))
		}
	}
	return lessons
}
