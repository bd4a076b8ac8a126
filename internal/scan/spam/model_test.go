package spam

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
)

type labeled struct {
	name string
	spam bool
	msg  *mailtext.Message
}

// loadSynthetic reads testdata/corpus/{spam,ham}/*.eml (Japanese in
// ISO-2022-JP and UTF-8, English; plain and HTML) and splits it: every
// fourth message of each class is held out.
func loadSynthetic(t *testing.T) (train, held []labeled) {
	t.Helper()
	for _, class := range []string{"spam", "ham"} {
		files, err := filepath.Glob(filepath.Join("testdata/corpus", class, "*.eml"))
		if err != nil || len(files) < 20 {
			t.Fatalf("corpus %s: %d files, %v", class, len(files), err)
		}
		for i, f := range files {
			l := labeled{name: f, spam: class == "spam", msg: parseFile(t, f)}
			if i%4 == 3 {
				held = append(held, l)
			} else {
				train = append(train, l)
			}
		}
	}
	return train, held
}

func trainAll(t *testing.T, c *Classifier, tenant int64, msgs []labeled) {
	t.Helper()
	for _, m := range msgs {
		if err := c.Train(context.Background(), tenant, m.msg, m.spam); err != nil {
			t.Fatal(err)
		}
	}
}

func classify(t *testing.T, c *Classifier, tenant int64, m *mailtext.Message) Result {
	t.Helper()
	r, err := c.Classify(context.Background(), tenant, m)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newTestClassifier(s ModelStore) *Classifier {
	return NewClassifier(s, Params{}, Options{})
}

func TestClassifierSeparatesHeldOut(t *testing.T) {
	train, held := loadSynthetic(t)
	c := newTestClassifier(NewMemoryStore())
	if r := classify(t, c, GlobalModel, held[0].msg); r.Trained || r.Prob != 0.5 {
		t.Fatalf("empty model: %+v", r)
	}
	var exs []Example
	for _, m := range train {
		label := LabelHam
		if m.spam {
			label = LabelSpam
		}
		exs = append(exs, NewExample(m.msg, label))
	}
	if _, err := c.Learn(context.Background(), GlobalModel, exs); err != nil {
		t.Fatal(err)
	}
	for _, m := range held {
		r := classify(t, c, GlobalModel, m.msg)
		if !r.Trained || len(r.Top) == 0 {
			t.Fatalf("%s: no evidence: %+v", m.name, r)
		}
		if m.spam && r.Prob < 0.8 || !m.spam && r.Prob > 0.2 {
			t.Errorf("%s (spam=%v): prob %.4f (bayes %.2f margin %.2f), top %v", m.name, m.spam, r.Prob, r.Bayes, r.Margin, topNames(r, 8))
		}
	}
}

func topNames(r Result, n int) []string {
	var out []string
	for _, c := range r.Top[:min(n, len(r.Top))] {
		out = append(out, c.Token)
	}
	return out
}

func TestTenantIsolation(t *testing.T) {
	ctx := context.Background()
	train, held := loadSynthetic(t)
	c := newTestClassifier(NewMemoryStore())
	trainAll(t, c, GlobalModel, train)

	var target labeled // a held-out ham the tenant will call spam
	for _, m := range held {
		if !m.spam {
			target = m
			break
		}
	}
	g := classify(t, c, GlobalModel, target.msg)
	r1 := classify(t, c, 1, target.msg)
	r2 := classify(t, c, 2, target.msg)
	if r1.Prob != g.Prob || r2.Prob != g.Prob {
		t.Fatalf("tenants without feedback differ from global: %g %g %g", g.Prob, r1.Prob, r2.Prob)
	}

	// Tenant 1 reports the message (and two like it) as spam.
	for range 3 {
		if err := c.TrainTokens(ctx, 1, Tokenize(target.msg, 0), true); err != nil {
			t.Fatal(err)
		}
	}
	a1 := classify(t, c, 1, target.msg)
	a2 := classify(t, c, 2, target.msg)
	if a1.Logit <= r1.Logit+10 {
		t.Errorf("tenant 1 feedback barely moved its score: log-odds %g -> %g", r1.Logit, a1.Logit)
	}
	if a2.Prob != r2.Prob || !slices.Equal(topNames(a2, 150), topNames(r2, 150)) {
		t.Errorf("tenant 1 feedback changed tenant 2: %g -> %g", r2.Prob, a2.Prob)
	}
	if gg := classify(t, c, GlobalModel, target.msg); gg.Prob != g.Prob {
		t.Errorf("tenant 1 feedback changed the global model: %g -> %g", g.Prob, gg.Prob)
	}

	// Global training reaches both tenants. (Tenant 1 now has strong
	// evidence both ways, which Fisher's method reports as uncertainty near
	// 0.5, so its score must only not fall.)
	for range 3 {
		if err := c.TrainTokens(ctx, GlobalModel, Tokenize(target.msg, 0), true); err != nil {
			t.Fatal(err)
		}
	}
	b1, b2 := classify(t, c, 1, target.msg), classify(t, c, 2, target.msg)
	if b1.Logit < a1.Logit || b2.Logit <= a2.Logit+10 {
		t.Errorf("global training did not reach tenants: t1 %g -> %g, t2 %g -> %g", a1.Logit, b1.Logit, a2.Logit, b2.Logit)
	}
}

// The same messages trained into the global model or into a tenant's give
// the same scores (each over an otherwise empty store, with and without a
// base model).
func TestGlobalAndTenantTrainingAgree(t *testing.T) {
	train, held := loadSynthetic(t)
	base := NewModel()
	for _, m := range train[:len(train)/2] {
		base.apply(countsOf(NewExample(m.msg, "").Tokens, m.spam), TokenCount{Spam: b2i(m.spam), Ham: b2i(!m.spam)})
	}
	for _, b := range []*Model{nil, base} {
		g := NewClassifier(NewMemoryStore(), Params{}, Options{Base: b})
		tn := NewClassifier(NewMemoryStore(), Params{}, Options{Base: b})
		trainAll(t, g, GlobalModel, train[len(train)/2:])
		trainAll(t, tn, 9, train[len(train)/2:])
		for _, m := range held {
			a, b := classify(t, g, 9, m.msg), classify(t, tn, 9, m.msg)
			if a.Prob != b.Prob {
				t.Errorf("%s: global training %g, tenant training %g", m.name, a.Prob, b.Prob)
			}
		}
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func countsOf(tokens []string, spam bool) map[string]TokenCount {
	out := map[string]TokenCount{}
	for _, t := range tokens {
		if spam {
			out[t] = TokenCount{Spam: 1}
		} else {
			out[t] = TokenCount{Ham: 1}
		}
	}
	return out
}

// snapshot copies a memory store's state.
func snapshot(s *MemoryStore) map[int64]Model {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[int64]Model)
	for id, m := range s.models {
		if m.m.Spam+m.m.Ham > 0 || len(m.m.Tokens) > 0 {
			out[id] = Model{Spam: m.m.Spam, Ham: m.m.Ham, Tokens: maps.Clone(m.m.Tokens)}
		}
	}
	return out
}

func equalSnapshots(a, b map[int64]Model) bool {
	return maps.EqualFunc(a, b, func(x, y Model) bool {
		return x.Spam == y.Spam && x.Ham == y.Ham && maps.Equal(x.Tokens, y.Tokens)
	})
}

func TestUntrainReversesTrain(t *testing.T) {
	train, held := loadSynthetic(t)
	store := NewMemoryStore()
	c := newTestClassifier(store)
	trainAll(t, c, GlobalModel, train)
	trainAll(t, c, 7, train[:5])
	before := snapshot(store)
	var results []Result
	for _, m := range held {
		results = append(results, classify(t, c, 7, m.msg))
	}
	for _, tenant := range []int64{GlobalModel, 7, 8} {
		for _, m := range held {
			if err := c.Train(context.Background(), tenant, m.msg, !m.spam); err != nil {
				t.Fatal(err)
			}
		}
		if equalSnapshots(before, snapshot(store)) {
			t.Fatal("training changed nothing")
		}
		for _, m := range held {
			if err := c.Untrain(context.Background(), tenant, m.msg); err != nil {
				t.Fatal(err)
			}
		}
		if !equalSnapshots(before, snapshot(store)) {
			t.Fatalf("tenant %d: Untrain did not restore the model", tenant)
		}
	}
	for i, m := range held {
		if r := classify(t, c, 7, m.msg); r.Prob != results[i].Prob {
			t.Errorf("%s: %g before, %g after train+untrain", m.name, results[i].Prob, r.Prob)
		}
	}
}

// Training a message twice counts it once; training it with the other
// label moves it; untraining removes it; a message seen again with other
// Received fields and transfer encoding is the same message.
func TestTrainingIsIdempotent(t *testing.T) {
	ctx := context.Background()
	train, _ := loadSynthetic(t)
	store := NewMemoryStore()
	c := newTestClassifier(store)
	trainAll(t, c, 3, train)
	once := snapshot(store)
	label := func(m labeled) string {
		if m.spam {
			return LabelSpam
		}
		return LabelHam
	}
	st, err := c.Learn(ctx, 3, []Example{NewExample(train[0].msg, label(train[0])), NewExample(train[1].msg, label(train[1]))})
	if err != nil {
		t.Fatal(err)
	}
	if !equalSnapshots(once, snapshot(store)) {
		t.Fatalf("training again changed the model (%v)", st)
	}
	if st.Unchanged != 2 {
		t.Errorf("stats %v", st)
	}

	raw := "Received: from a by b; Mon, 4 Mar 2024 10:00:00 +0900\r\nMessage-ID: <x1@example.com>\r\nFrom: a@example.com\r\nSubject: cheap pills\r\n\r\nbuy cheap pills now\r\n"
	again := "Received: from c by d; Mon, 4 Mar 2024 10:05:00 +0900\r\n" +
		"Received: from a by b; Mon, 4 Mar 2024 10:00:00 +0900\r\nMessage-ID: <x1@example.com>\r\nFrom: a@example.com\r\nSubject: cheap pills\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nYnV5IGNoZWFwIHBpbGxzIG5vdw==\r\n"
	m1, m2 := parseMsg(t, []byte(raw)), parseMsg(t, []byte(again))
	if Fingerprint(m1) != Fingerprint(m2) {
		t.Fatal("the same message forwarded again has another fingerprint")
	}
	if err := c.Train(ctx, 3, m1, true); err != nil {
		t.Fatal(err)
	}
	spam1 := snapshot(store)[3]
	if spam1.Spam != once[3].Spam+1 {
		t.Fatalf("spam total %d, want %d", spam1.Spam, once[3].Spam+1)
	}
	if err := c.Train(ctx, 3, m2, true); err != nil {
		t.Fatal(err)
	}
	if snapshot(store)[3].Spam != spam1.Spam {
		t.Fatal("the forwarded copy was counted again")
	}
	// Moved to ham: one ham more, one spam less, nothing counted twice.
	// (Counts are recomputed from the message given, so the exact undo
	// needs the copy that was trained.)
	if err := c.Train(ctx, 3, m1, false); err != nil {
		t.Fatal(err)
	}
	moved := snapshot(store)[3]
	if moved.Spam != once[3].Spam || moved.Ham != once[3].Ham+1 {
		t.Fatalf("after relearning as ham: %d spam %d ham, want %d and %d", moved.Spam, moved.Ham, once[3].Spam, once[3].Ham+1)
	}
	if err := c.Untrain(ctx, 3, m1); err != nil {
		t.Fatal(err)
	}
	if !equalSnapshots(once, snapshot(store)) {
		t.Fatal("untraining did not restore the model")
	}
	// Untraining what was never trained changes nothing.
	if err := c.Untrain(ctx, 3, m1); err != nil {
		t.Fatal(err)
	}
	if !equalSnapshots(once, snapshot(store)) {
		t.Fatal("untraining an untrained message changed the model")
	}
}

// Another classifier (another process, another node) training the same
// store is seen once the model's version changes; Reset empties a model.
func TestClassifierSeesOtherWriters(t *testing.T) {
	ctx := context.Background()
	train, held := loadSynthetic(t)
	store := NewMemoryStore()
	reader := NewClassifier(store, Params{}, Options{Refresh: time.Nanosecond})
	writer := newTestClassifier(store)
	if r := classify(t, reader, 4, held[0].msg); r.Trained {
		t.Fatal("empty store trained")
	}
	trainAll(t, writer, 4, train)
	if r := classify(t, reader, 4, held[0].msg); !r.Trained {
		t.Fatal("reader did not see the writer's training")
	}
	if err := writer.Reset(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if r := classify(t, reader, 4, held[0].msg); r.Trained {
		t.Fatal("reader did not see the reset")
	}
	if info, err := reader.Stats(ctx, 4); err != nil || info.Spam+info.Ham+info.Tokens+info.Messages != 0 {
		t.Fatalf("stats after reset: %+v %v", info, err)
	}
}

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	v, err := s.Apply(ctx, 3, Change{Deltas: map[string]TokenCount{"a": {Spam: 1, Ham: 0, Weight: 7}, "b": {Spam: 1, Ham: 2, Weight: 7}, "c": {Spam: 0, Ham: 2}},
		Total: TokenCount{Spam: 1, Ham: 2}, Labels: map[string]string{"f1": LabelSpam}, Expect: map[string]string{"f1": ""},
		Lessons: map[string]int64{"f1": 7}})
	if err != nil || v != 1 {
		t.Fatalf("apply: %d %v", v, err)
	}
	got := map[string]TokenCount{}
	info, err := s.LoadModel(ctx, 3, func(tok string, c TokenCount) { got[tok] = c }, nil)
	if err != nil || info != (ModelInfo{Spam: 1, Ham: 2, Tokens: 3, Messages: 1, Version: 1}) {
		t.Fatalf("load: %+v %v", info, err)
	}
	if want := map[string]TokenCount{"a": {Spam: 1, Ham: 0, Weight: 7}, "b": {Spam: 1, Ham: 2, Weight: 7}, "c": {Spam: 0, Ham: 2}}; !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	if l, _ := s.Labels(ctx, 3, []string{"f1", "f2"}); !maps.Equal(l, map[string]Trained{"f1": {Label: LabelSpam, Lesson: 7}}) {
		t.Errorf("labels %v", l)
	}
	// A change computed from a stale label is refused whole.
	if _, err := s.Apply(ctx, 3, Change{Deltas: map[string]TokenCount{"a": {Spam: 1, Ham: 0}}, Labels: map[string]string{"f1": LabelHam},
		Expect: map[string]string{"f1": ""}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale change: %v", err)
	}
	if v, _ := s.ModelVersion(ctx, 3); v != 1 {
		t.Fatalf("version %d after a refused change", v)
	}
	// Unlearning more than was learned stops at zero and forgets the token.
	if _, err := s.Apply(ctx, 3, Change{Deltas: map[string]TokenCount{"a": {Spam: -5, Ham: 0}}, Total: TokenCount{Spam: -5, Ham: 0}}); err != nil {
		t.Fatal(err)
	}
	got = map[string]TokenCount{}
	if info, _ := s.LoadModel(ctx, 3, func(tok string, c TokenCount) { got[tok] = c }, nil); info.Spam != 0 || got["a"] != (TokenCount{}) {
		t.Errorf("after over-unlearning: %+v %v", info, got)
	}
	if info, _ := s.LoadModel(ctx, 4, func(string, TokenCount) {}, nil); info != (ModelInfo{}) {
		t.Errorf("other tenant: %+v", info)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.LoadModel(cctx, 3, func(string, TokenCount) {}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadModel on cancelled ctx: %v", err)
	}
	if _, err := s.Apply(cctx, 3, Change{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply on cancelled ctx: %v", err)
	}
	c := newTestClassifier(s)
	if _, err := c.ClassifyTokens(cctx, 5, []string{"a"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Classify on cancelled ctx: %v", err)
	}
}

func TestTrainTokensDedups(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore()
	c := newTestClassifier(s)
	if err := c.TrainTokens(ctx, 1, []string{"x", "y", "x", "x"}, true); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(s)[1].Tokens; got["x"].Spam != 1 || got["x"].Ham != 0 || got["y"].Spam != 1 || got["y"].Ham != 0 ||
		got["x"].Weight <= 0 || got["x"].Weight != got["y"].Weight {
		t.Errorf("counts %v", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	train, held := loadSynthetic(t)
	c := NewClassifier(NewMemoryStore(), Params{}, Options{Refresh: time.Microsecond})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i, m := range train {
				if i%4 == g {
					if err := c.Train(ctx, int64(g%2), m.msg, m.spam); err != nil {
						t.Error(err)
					}
				}
			}
		})
		wg.Go(func() {
			for _, m := range held {
				if _, err := c.Classify(ctx, int64(g), m.msg); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Every message was learned exactly once.
	n := int64(0)
	for _, id := range []int64{0, 1} {
		info, err := c.Stats(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		n += info.Spam + info.Ham
	}
	if n != int64(len(train)) {
		t.Fatalf("%d messages counted, %d trained", n, len(train))
	}
}

func BenchmarkClassify(b *testing.B) {
	ctx := context.Background()
	c := newTestClassifier(NewMemoryStore())
	// A model of a few thousand messages sharing the benchmark's vocabulary.
	base := TokenizeText(string(tenKB()))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		toks := make([]string, 0, 300)
		for range 300 {
			toks = append(toks, base[r.IntN(len(base))])
		}
		toks = append(toks, "filler"+string(rune('a'+i%26)), "script:latin")
		if err := c.TrainTokens(ctx, GlobalModel, toks, i%3 == 0); err != nil {
			b.Fatal(err)
		}
	}
	msg := parseMsg(b, tenKB())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Classify(ctx, 5, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// A message a tenant trained is judged by its label when it comes again,
// whatever the statistics say; other tenants are not affected, and the
// global model's label applies to every tenant unless the tenant's own
// says otherwise.
func TestTrainedMessageKeepsItsLabel(t *testing.T) {
	ctx := context.Background()
	train, held := loadSynthetic(t)
	c := newTestClassifier(NewMemoryStore())
	trainAll(t, c, GlobalModel, train)
	var spamMsg labeled // a Japanese one: the corpus has too little English to judge it
	for _, m := range held {
		if m.spam && spamMsg.msg == nil {
			spamMsg = m
		}
	}
	chk := &Check{Classifier: c}
	points := func(tenant int64) float64 {
		ev, err := chk.EvaluateParsed(ctx, spamMsg.msg, &policy.Envelope{TenantID: tenant})
		if err != nil {
			t.Fatal(err)
		}
		return ev.Result.Points
	}
	if p := points(1); p <= 0 {
		t.Fatalf("held-out spam scored %+.2f before any feedback", p)
	}
	if err := c.Train(ctx, 1, spamMsg.msg, false); err != nil {
		t.Fatal(err)
	}
	if p := points(1); p != -MaxLogit {
		t.Errorf("after tenant 1's \"not spam\": %+.2f, want %+.2f", p, -MaxLogit)
	}
	if p := points(2); p <= 0 {
		t.Errorf("tenant 1's feedback changed tenant 2's verdict: %+.2f", p)
	}
	if err := c.Train(ctx, GlobalModel, spamMsg.msg, true); err != nil {
		t.Fatal(err)
	}
	if p1, p2 := points(1), points(2); p1 != -MaxLogit || p2 != MaxLogit {
		t.Errorf("global label: tenant 1 %+.2f (its own label wins), tenant 2 %+.2f", p1, p2)
	}
}

// Fingerprint hashes the text's words joined by single spaces.
func TestFingerprintNormalisesWhiteSpace(t *testing.T) {
	a := parseMsg(t, []byte("Message-ID: <a@x>\r\n\r\n  hello\t world\u3000日本語\r\n\r\nend \r\n"))
	b := parseMsg(t, []byte("Message-ID: <a@x>\r\n\r\nhello world 日本語 end\r\n"))
	c := parseMsg(t, []byte("Message-ID: <a@x>\r\n\r\nhello world 日本語 end.\r\n"))
	if Fingerprint(a) != Fingerprint(b) {
		t.Error("white space changed the fingerprint")
	}
	if Fingerprint(b) == Fingerprint(c) {
		t.Error("another text gave the same fingerprint")
	}
}
