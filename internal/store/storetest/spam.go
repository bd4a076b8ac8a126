package storetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/mailgate/mailgate/internal/store"
)

func spamLoad(t *testing.T, s store.Store, tid int64) (map[string]store.TokenCount, store.SpamModelInfo) {
	t.Helper()
	got := map[string]store.TokenCount{}
	labels := map[string]string{}
	info, err := s.SpamLoad(context.Background(), tid, func(tok string, c store.TokenCount) { got[tok] = c },
		func(fp, l string) { labels[fp] = l })
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(labels)) != info.Messages {
		t.Fatalf("SpamLoad gave %d labels, counted %d", len(labels), info.Messages)
	}
	want, err := s.SpamLabels(context.Background(), tid, slices.Collect(maps.Keys(labels)))
	if err != nil || !maps.EqualFunc(want, labels, func(tr store.SpamTrained, l string) bool { return tr.Label == l }) {
		t.Fatalf("SpamLoad's labels %v, SpamLabels' %v (%v)", labels, want, err)
	}
	return got, info
}

// testSpamModels: counts, totals, labels and versions per tenant; a change
// with a stale expected label is refused whole; unlearning never goes
// below zero and drops tokens no message contains; reset empties a model.
func testSpamModels(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	if v, err := s.SpamVersion(ctx, 1); err != nil || v != 0 {
		t.Fatalf("version of an empty model: %d %v", v, err)
	}
	if got, info := spamLoad(t, s, 1); len(got) != 0 || info != (store.SpamModelInfo{}) {
		t.Fatalf("empty model: %v %+v", got, info)
	}
	v, err := s.SpamApply(ctx, 1, store.SpamChange{
		Deltas: map[string]store.TokenCount{"viagra": {Spam: 1}, "free": {Spam: 2, Ham: 1}, "meeting": {Ham: 1}},
		Total:  store.TokenCount{Spam: 2, Ham: 1},
		Labels: map[string]string{"fp-a": "spam", "fp-b": "spam", "fp-c": "ham"},
		Expect: map[string]string{"fp-a": "", "fp-b": "", "fp-c": ""},
		At:     t0,
	})
	if err != nil || v != 1 {
		t.Fatalf("apply: %d %v", v, err)
	}
	if _, err := s.SpamApply(ctx, 2, store.SpamChange{Deltas: map[string]store.TokenCount{"meeting": {Spam: 1}},
		Total: store.TokenCount{Spam: 1}, At: t0}); err != nil {
		t.Fatal(err)
	}
	got, info := spamLoad(t, s, 1)
	want := map[string]store.TokenCount{"viagra": {Spam: 1}, "free": {Spam: 2, Ham: 1}, "meeting": {Ham: 1}}
	if !maps.Equal(got, want) || info != (store.SpamModelInfo{Totals: store.TokenCount{Spam: 2, Ham: 1}, Tokens: 3, Messages: 3, Version: 1}) {
		t.Fatalf("tenant 1: %v %+v", got, info)
	}
	if got, _ := spamLoad(t, s, 2); !maps.Equal(got, map[string]store.TokenCount{"meeting": {Spam: 1}}) {
		t.Fatalf("tenant 2: %v", got)
	}
	labels, err := s.SpamLabels(ctx, 1, []string{"fp-a", "fp-c", "fp-x"})
	if err != nil || !maps.Equal(labels, map[string]store.SpamTrained{"fp-a": {Label: "spam"}, "fp-c": {Label: "ham"}}) {
		t.Fatalf("labels: %v %v", labels, err)
	}
	if l, _ := s.SpamLabels(ctx, 2, []string{"fp-a"}); len(l) != 0 {
		t.Fatalf("tenant 2 sees tenant 1's labels: %v", l)
	}
	// A stale expectation refuses the whole change.
	_, err = s.SpamApply(ctx, 1, store.SpamChange{Deltas: map[string]store.TokenCount{"viagra": {Spam: 5}},
		Total: store.TokenCount{Spam: 1}, Labels: map[string]string{"fp-a": "ham"}, Expect: map[string]string{"fp-a": ""}, At: t0})
	if !errors.Is(err, store.ErrSpamConflict) {
		t.Fatalf("stale change: %v", err)
	}
	if got2, info2 := spamLoad(t, s, 1); !maps.Equal(got2, want) || info2.Version != 1 {
		t.Fatalf("refused change left traces: %v %+v", got2, info2)
	}
	// Moving fp-a to ham and forgetting fp-b; over-unlearning stops at zero.
	v, err = s.SpamApply(ctx, 1, store.SpamChange{
		Deltas: map[string]store.TokenCount{"viagra": {Spam: -3}, "free": {Spam: -2, Ham: 1}},
		Total:  store.TokenCount{Spam: -2, Ham: 1},
		Labels: map[string]string{"fp-a": "ham", "fp-b": ""},
		Expect: map[string]string{"fp-a": "spam", "fp-b": "spam"},
		At:     t0,
	})
	if err != nil || v != 2 {
		t.Fatalf("second apply: %d %v", v, err)
	}
	got, info = spamLoad(t, s, 1)
	want = map[string]store.TokenCount{"free": {Ham: 2}, "meeting": {Ham: 1}}
	if !maps.Equal(got, want) || info.Totals != (store.TokenCount{Ham: 2}) || info.Messages != 2 || info.Version != 2 {
		t.Fatalf("after unlearning: %v %+v", got, info)
	}
	if v, _ := s.SpamVersion(ctx, 1); v != 2 {
		t.Fatalf("version %d, want 2", v)
	}
	v, err = s.SpamReset(ctx, 1)
	if err != nil || v != 3 {
		t.Fatalf("reset: %d %v", v, err)
	}
	if got, info := spamLoad(t, s, 1); len(got) != 0 || info != (store.SpamModelInfo{Version: 3}) {
		t.Fatalf("after reset: %v %+v", got, info)
	}
	if l, _ := s.SpamLabels(ctx, 1, []string{"fp-a", "fp-c"}); len(l) != 0 {
		t.Fatalf("labels after reset: %v", l)
	}
	if got, _ := spamLoad(t, s, 2); len(got) != 1 {
		t.Fatalf("resetting tenant 1 touched tenant 2: %v", got)
	}
}

// testSpamWeights: the linear model's weights add up as they come,
// negative ones included, and leave with their token; each trained
// message keeps its lesson until its label changes again.
func testSpamWeights(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	big := int64(1) << 40 // weights are fixed-point integers of any size
	if _, err := s.SpamApply(ctx, 1, store.SpamChange{
		Deltas:  map[string]store.TokenCount{"a": {Spam: 1, Weight: big}, "b": {Spam: 1, Weight: -7}, "c": {Ham: 1, Weight: 5}},
		Total:   store.TokenCount{Spam: 1, Ham: 1},
		Labels:  map[string]string{"fp-1": "spam", "fp-2": "ham"},
		Expect:  map[string]string{"fp-1": "", "fp-2": ""},
		Lessons: map[string]int64{"fp-1": big, "fp-2": -3},
		At:      t0,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SpamApply(ctx, 1, store.SpamChange{
		Deltas: map[string]store.TokenCount{"a": {Weight: -1}, "b": {Weight: -7}, "d": {Ham: 1, Weight: 2}},
		Total:  store.TokenCount{Ham: 1},
		At:     t0,
	}); err != nil {
		t.Fatal(err)
	}
	got, _ := spamLoad(t, s, 1)
	want := map[string]store.TokenCount{"a": {Spam: 1, Weight: big - 1}, "b": {Spam: 1, Weight: -14}, "c": {Ham: 1, Weight: 5}, "d": {Ham: 1, Weight: 2}}
	if !maps.Equal(got, want) {
		t.Fatalf("weights %v, want %v", got, want)
	}
	tr, err := s.SpamLabels(ctx, 1, []string{"fp-1", "fp-2"})
	if err != nil || !maps.Equal(tr, map[string]store.SpamTrained{"fp-1": {Label: "spam", Lesson: big}, "fp-2": {Label: "ham", Lesson: -3}}) {
		t.Fatalf("lessons %v %v", tr, err)
	}
	// Moved: the new lesson replaces the old; a token whose counts reach
	// zero goes with its weight.
	if _, err := s.SpamApply(ctx, 1, store.SpamChange{
		Deltas:  map[string]store.TokenCount{"b": {Spam: -1, Weight: 14}, "c": {Weight: 1}},
		Total:   store.TokenCount{Spam: -1},
		Labels:  map[string]string{"fp-1": "ham"},
		Expect:  map[string]string{"fp-1": "spam"},
		Lessons: map[string]int64{"fp-1": 9},
		At:      t0,
	}); err != nil {
		t.Fatal(err)
	}
	got, _ = spamLoad(t, s, 1)
	want = map[string]store.TokenCount{"a": {Spam: 1, Weight: big - 1}, "c": {Ham: 1, Weight: 6}, "d": {Ham: 1, Weight: 2}}
	if !maps.Equal(got, want) {
		t.Fatalf("after moving: %v, want %v", got, want)
	}
	if tr, _ := s.SpamLabels(ctx, 1, []string{"fp-1"}); tr["fp-1"] != (store.SpamTrained{Label: "ham", Lesson: 9}) {
		t.Fatalf("moved lesson %v", tr)
	}
}
