package spam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// GlobalModel is the tenant ID of the site's shared model, which every
// tenant's scores include.
const GlobalModel int64 = 0

// TokenCount is how many trained spam and ham messages contained a token,
// and the token's weight in the linear model in units of 1/WeightUnit (see
// linear.go; zero in message totals). Weights are integers so that
// untraining a message takes back exactly what training it added.
type TokenCount struct {
	Spam, Ham int64
	Weight    int64
}

// Trained is a message a model was trained with, as the model remembers
// it by its fingerprint.
type Trained struct {
	Label string // LabelSpam or LabelHam
	// Lesson is what training the message added to the linear model's
	// weight of each of its features (every feature of a message gets the
	// same), so untraining it takes back exactly that.
	Lesson int64
}

// Model is a model's counts in memory: the messages trained per class and,
// per token, how many of each contained it; for a stored model also the
// labels of the trained messages by fingerprint (nil for the base model).
type Model struct {
	Spam, Ham int64
	Tokens    map[string]TokenCount
	Labels    map[string]string
	// frozen, when set, holds the counts instead of Tokens (BuiltinBase).
	frozen *frozenTokens
}

// NewModel returns an empty model.
func NewModel() *Model { return &Model{Tokens: map[string]TokenCount{}, Labels: map[string]string{}} }

// setLabels records the labels a change sets ("" forgets).
func (m *Model) setLabels(labels map[string]string) {
	for fp, l := range labels {
		if l == "" {
			delete(m.Labels, fp)
		} else {
			m.Labels[fp] = l
		}
	}
}

// apply adds deltas and total, keeping every count at zero or above and
// forgetting tokens whose counts both reach zero (their weight with them:
// no trained message has them any more).
func (m *Model) apply(deltas map[string]TokenCount, total TokenCount) {
	m.Spam = max(m.Spam+total.Spam, 0)
	m.Ham = max(m.Ham+total.Ham, 0)
	for tok, d := range deltas {
		c := m.Tokens[tok]
		c.Spam = max(c.Spam+d.Spam, 0)
		c.Ham = max(c.Ham+d.Ham, 0)
		c.Weight += d.Weight
		if c.Spam == 0 && c.Ham == 0 {
			delete(m.Tokens, tok)
		} else {
			m.Tokens[tok] = c
		}
	}
}

// Labels of trained messages.
const (
	LabelSpam = "spam"
	LabelHam  = "ham"
)

// Change is one atomic change to a stored model: token and total deltas,
// and the labels of the messages it trains or forgets.
type Change struct {
	Deltas map[string]TokenCount
	Total  TokenCount
	// Labels sets each fingerprint's label (LabelSpam, LabelHam, or ""
	// to forget it). Expect holds the label each of them had when the
	// change was computed ("" for none): a store applies the change only
	// if they all still have it, and otherwise returns ErrConflict, so a
	// message is never counted twice by concurrent learners.
	Labels, Expect map[string]string
	// Lessons holds the Trained.Lesson of each fingerprint Labels gives a
	// label (absent: 0).
	Lessons map[string]int64
}

// ErrConflict is returned by ModelStore.Apply when a fingerprint's label
// is no longer the one the change was computed from.
var ErrConflict = errors.New("spam: model changed concurrently")

// ModelInfo describes a stored model.
type ModelInfo struct {
	Spam, Ham int64 // messages trained
	Tokens    int64 // distinct tokens
	Messages  int64 // trained messages remembered by fingerprint
	// Version changes with every change to the model (Apply and Reset);
	// a cache compares it to know whether to reload.
	Version int64
}

// ModelStore keeps the models the classifier learns into: per model
// (tenant ID, with GlobalModel the site's shared one) the counts and the
// fingerprints of the messages trained. Implementations must be safe for
// concurrent use, honour ctx, and make each Apply and Reset atomic.
type ModelStore interface {
	// LoadModel calls fn for every token of tenantID's model and labels
	// (when not nil) for every trained fingerprint, and returns its totals
	// and version, all from one consistent snapshot.
	LoadModel(ctx context.Context, tenantID int64, fn func(token string, c TokenCount), labels func(fingerprint, label string)) (ModelInfo, error)
	// ModelVersion returns the version of tenantID's model (0 for a model
	// never changed).
	ModelVersion(ctx context.Context, tenantID int64) (int64, error)
	// Labels returns each given fingerprint trained into tenantID's model
	// with its label and lesson; fingerprints never trained are absent.
	Labels(ctx context.Context, tenantID int64, fingerprints []string) (map[string]Trained, error)
	// Apply makes the change (see Change) and returns the model's new
	// version, which is the previous one plus one.
	Apply(ctx context.Context, tenantID int64, ch Change) (version int64, err error)
	// Reset empties tenantID's model (counts and fingerprints) and returns
	// its new version.
	Reset(ctx context.Context, tenantID int64) (version int64, err error)
}

// MemoryStore is a ModelStore in memory, safe for concurrent use. Its
// models live as long as the process.
type MemoryStore struct {
	mu     sync.RWMutex
	models map[int64]*memModel
}

type memModel struct {
	m       *Model
	labels  map[string]Trained
	version int64
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{models: make(map[int64]*memModel)}
}

func (s *MemoryStore) get(tenantID int64) *memModel {
	mm := s.models[tenantID]
	if mm == nil {
		mm = &memModel{m: NewModel(), labels: map[string]Trained{}}
		s.models[tenantID] = mm
	}
	return mm
}

// LoadModel implements ModelStore.
func (s *MemoryStore) LoadModel(ctx context.Context, tenantID int64, fn func(string, TokenCount), labels func(fp, label string)) (ModelInfo, error) {
	if err := ctx.Err(); err != nil {
		return ModelInfo{}, fmt.Errorf("spam: load model: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	mm := s.models[tenantID]
	if mm == nil {
		return ModelInfo{}, nil
	}
	for t, c := range mm.m.Tokens {
		fn(t, c)
	}
	if labels != nil {
		for fp, l := range mm.labels {
			labels(fp, l.Label)
		}
	}
	return ModelInfo{Spam: mm.m.Spam, Ham: mm.m.Ham, Tokens: int64(len(mm.m.Tokens)), Messages: int64(len(mm.labels)), Version: mm.version}, nil
}

// ModelVersion implements ModelStore.
func (s *MemoryStore) ModelVersion(ctx context.Context, tenantID int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("spam: model version: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if mm := s.models[tenantID]; mm != nil {
		return mm.version, nil
	}
	return 0, nil
}

// Labels implements ModelStore.
func (s *MemoryStore) Labels(ctx context.Context, tenantID int64, fps []string) (map[string]Trained, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("spam: labels: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]Trained{}
	if mm := s.models[tenantID]; mm != nil {
		for _, fp := range fps {
			if l, ok := mm.labels[fp]; ok {
				out[fp] = l
			}
		}
	}
	return out, nil
}

// Apply implements ModelStore.
func (s *MemoryStore) Apply(ctx context.Context, tenantID int64, ch Change) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("spam: apply: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mm := s.get(tenantID)
	for fp, want := range ch.Expect {
		if mm.labels[fp].Label != want {
			return 0, ErrConflict
		}
	}
	mm.m.apply(ch.Deltas, ch.Total)
	for fp, l := range ch.Labels {
		if l == "" {
			delete(mm.labels, fp)
		} else {
			mm.labels[fp] = Trained{Label: l, Lesson: ch.Lessons[fp]}
		}
	}
	mm.version++
	return mm.version, nil
}

// Reset implements ModelStore.
func (s *MemoryStore) Reset(ctx context.Context, tenantID int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("spam: reset: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mm := s.get(tenantID)
	mm.m, mm.labels = NewModel(), map[string]Trained{}
	mm.version++
	return mm.version, nil
}

// Classifier trains and applies the statistical spam model. A message is
// judged by the shipped base model (if any) plus the site's global model
// plus its tenant's model (see Params.LocalWeight): training a tenant
// changes only that tenant's scores, training GlobalModel changes
// everyone's.
//
// The stored models are kept in memory and read from the store once;
// what this classifier learns is applied to the stored model and to the
// copy in memory together, and changes made elsewhere (another process
// such as the CLI, another node) are noticed by comparing the stored
// model's version at most every Refresh, then reloaded. Safe for
// concurrent use.
type Classifier struct {
	store   ModelStore
	params  Params
	base    *Model
	refresh time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	models map[int64]*cachedModel
	// learn serialises this process's learning, so its own changes never
	// conflict with each other.
	learn sync.Mutex
}

// cachedModel is one stored model in memory.
type cachedModel struct {
	load sync.Mutex // held while loading or applying a change

	mu      sync.RWMutex // guards the fields below and m's contents
	m       *Model
	version int64
	checked time.Time
}

// Options configure a Classifier beyond its Params.
type Options struct {
	// Base is the model every score starts from (Builtin(), the shipped
	// one); nil for none.
	Base *Model
	// Refresh is how long a stored model in memory is used before its
	// version is compared with the store's (default 2 s).
	Refresh time.Duration
	Log     *slog.Logger
}

// NewClassifier returns a classifier over store; zero fields of p take
// their DefaultParams values.
func NewClassifier(store ModelStore, p Params, o Options) *Classifier {
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Classifier{store: store, params: p.withDefaults(), base: o.Base, refresh: o.Refresh, log: o.Log,
		models: map[int64]*cachedModel{}}
}

// Params returns the effective parameters.
func (c *Classifier) Params() Params { return c.params }

// Base returns the base model (nil for none).
func (c *Classifier) Base() *Model { return c.base }

// model returns tenantID's stored model in memory, loading or reloading
// it when needed. A model that cannot be reloaded is used as it was; one
// that cannot be loaded at all is an error.
func (c *Classifier) model(ctx context.Context, tenantID int64) (*cachedModel, error) {
	c.mu.Lock()
	e := c.models[tenantID]
	if e == nil {
		e = &cachedModel{}
		c.models[tenantID] = e
	}
	c.mu.Unlock()
	if e.fresh(c.refresh) {
		return e, nil
	}
	e.load.Lock()
	defer e.load.Unlock()
	if e.fresh(c.refresh) {
		return e, nil
	}
	e.mu.RLock()
	loaded, version := e.m != nil, e.version
	e.mu.RUnlock()
	if loaded {
		v, err := c.store.ModelVersion(ctx, tenantID)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("spam: model %d: %w", tenantID, err)
			}
			c.log.Warn("spam model: version check failed; using the model in memory", "tenant", tenantID, "err", err)
			e.touch()
			return e, nil
		}
		if v == version {
			e.touch()
			return e, nil
		}
	}
	m := NewModel()
	info, err := c.store.LoadModel(ctx, tenantID, func(tok string, tc TokenCount) { m.Tokens[tok] = tc },
		func(fp, l string) { m.Labels[fp] = l })
	if err != nil {
		if loaded && ctx.Err() == nil {
			c.log.Warn("spam model: reload failed; using the model in memory", "tenant", tenantID, "err", err)
			e.touch()
			return e, nil
		}
		return nil, fmt.Errorf("spam: load model %d: %w", tenantID, err)
	}
	m.Spam, m.Ham = info.Spam, info.Ham
	e.mu.Lock()
	e.m, e.version, e.checked = m, info.Version, time.Now()
	e.mu.Unlock()
	return e, nil
}

func (e *cachedModel) fresh(refresh time.Duration) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.m != nil && time.Since(e.checked) < refresh
}

func (e *cachedModel) touch() {
	e.mu.Lock()
	e.checked = time.Now()
	e.mu.Unlock()
}

// applied brings the copy in memory up to a change the store made as
// version v: applied in place when the copy is at v-1, otherwise marked
// for a version check on next use.
func (c *Classifier) applied(tenantID int64, v int64, ch Change, reset bool) {
	c.mu.Lock()
	e := c.models[tenantID]
	c.mu.Unlock()
	if e == nil {
		return
	}
	e.load.Lock()
	defer e.load.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.m != nil && e.version == v-1 && reset:
		e.m, e.version = NewModel(), v
	case e.m != nil && e.version == v-1:
		e.m.apply(ch.Deltas, ch.Total)
		e.m.setLabels(ch.Labels)
		e.version = v
	default:
		e.checked = time.Time{}
	}
}

// Example is one message to learn: its features, its fingerprint (which
// identifies the message however it reaches the trainer; "" for none,
// which disables the duplicate check) and its label (LabelSpam, LabelHam,
// or "" to forget what was learned from it).
type Example struct {
	Fingerprint string
	Tokens      []string
	Label       string
}

// NewExample returns the example of msg with label: its features as of
// when it arrived (see MessageTime) and its Fingerprint.
func NewExample(msg *mailtext.Message, label string) Example {
	toks, _ := Features(msg, nil, MessageTime(msg, time.Time{}), 0)
	return Example{Fingerprint: Fingerprint(msg), Tokens: toks, Label: label}
}

// LearnStats counts what Learn did.
type LearnStats struct {
	Learned   int // trained for the first time
	Relearned int // trained before with the other label, now moved
	Forgotten int // trained before, now removed
	Unchanged int // already trained with this label, or never trained and forgotten
}

func (s LearnStats) String() string {
	return fmt.Sprintf("%d learned, %d relearned, %d forgotten, %d unchanged", s.Learned, s.Relearned, s.Forgotten, s.Unchanged)
}

// Learn trains examples into tenantID's model in one atomic change. A
// message already trained with the same label is not counted again; one
// trained with the other label is moved (its old counts removed); an
// example with an empty label forgets a trained message. Examples without
// a fingerprint are always counted.
func (c *Classifier) Learn(ctx context.Context, tenantID int64, examples []Example) (LearnStats, error) {
	c.learn.Lock()
	defer c.learn.Unlock()
	var fps []string
	for _, ex := range examples {
		if ex.Fingerprint != "" {
			fps = append(fps, ex.Fingerprint)
		}
	}
	for attempt := 0; ; attempt++ {
		prev := map[string]Trained{}
		if len(fps) > 0 {
			var err error
			if prev, err = c.store.Labels(ctx, tenantID, fps); err != nil {
				return LearnStats{}, fmt.Errorf("spam: learn tenant %d: %w", tenantID, err)
			}
		}
		ch, st, fits := plan(examples, prev)
		if len(ch.Deltas) == 0 && ch.Total == (TokenCount{}) && len(ch.Labels) == 0 {
			return st, nil
		}
		if err := c.fitLinear(ctx, tenantID, &ch, fits); err != nil {
			return LearnStats{}, fmt.Errorf("spam: learn tenant %d: %w", tenantID, err)
		}
		v, err := c.store.Apply(ctx, tenantID, ch)
		if errors.Is(err, ErrConflict) && attempt < 5 {
			continue // another process learned one of these meanwhile
		}
		if err != nil {
			return LearnStats{}, fmt.Errorf("spam: learn tenant %d: %w", tenantID, err)
		}
		c.applied(tenantID, v, ch, false)
		return st, nil
	}
}

// plan computes the change that takes the model from the trained
// messages prev to the examples' labels: the counts' change, the linear
// model's lessons taken back (those of messages moved or forgotten), and
// the messages the linear model is to learn.
func plan(examples []Example, prev map[string]Trained) (Change, LearnStats, []fitExample) {
	ch := Change{Deltas: map[string]TokenCount{}, Labels: map[string]string{}, Expect: map[string]string{}, Lessons: map[string]int64{}}
	var st LearnStats
	var fits []fitExample
	target := func(label string) int64 {
		if label == LabelSpam {
			return 1
		}
		return -1
	}
	cur := maps.Clone(prev)
	fitOf := map[string]int{} // fingerprint -> its fit in this change
	learn := func(ex Example) {
		if i, ok := fitOf[ex.Fingerprint]; ok && ex.Fingerprint != "" {
			fits[i].skip = true // the same message given again: the last label wins
		}
		if ex.Label == "" {
			return
		}
		fitOf[ex.Fingerprint] = len(fits)
		fits = append(fits, newFitExample(ex, target(ex.Label)))
	}
	add := func(tokens []string, label string, d, lesson int64) {
		one := TokenCount{Ham: d}
		if label == LabelSpam {
			one = TokenCount{Spam: d}
		}
		ch.Total.Spam += one.Spam
		ch.Total.Ham += one.Ham
		for _, t := range dedup(tokens) {
			x := ch.Deltas[t]
			x.Spam += one.Spam
			x.Ham += one.Ham
			if lesson != 0 && linearFeature(t) {
				x.Weight -= lesson
			}
			if x == (TokenCount{}) {
				delete(ch.Deltas, t)
			} else {
				ch.Deltas[t] = x
			}
		}
	}
	for _, ex := range examples {
		if ex.Label != "" && ex.Label != LabelSpam && ex.Label != LabelHam {
			continue
		}
		if ex.Fingerprint == "" {
			if ex.Label != "" {
				add(ex.Tokens, ex.Label, +1, 0)
				fits = append(fits, newFitExample(ex, target(ex.Label)))
				st.Learned++
			}
			continue
		}
		old := cur[ex.Fingerprint]
		if _, seen := ch.Expect[ex.Fingerprint]; !seen {
			ch.Expect[ex.Fingerprint] = prev[ex.Fingerprint].Label
		}
		switch {
		case old.Label == ex.Label:
			st.Unchanged++
			continue
		case old.Label == "":
			st.Learned++
		case ex.Label == "":
			st.Forgotten++
		default:
			st.Relearned++
		}
		if old.Label != "" {
			add(ex.Tokens, old.Label, -1, old.Lesson)
		}
		if ex.Label != "" {
			add(ex.Tokens, ex.Label, +1, 0)
		}
		learn(ex)
		cur[ex.Fingerprint] = Trained{Label: ex.Label}
		ch.Labels[ex.Fingerprint] = ex.Label
	}
	return ch, st, fits
}

// fitLinear adds to ch the linear model's lessons of fits, trained on
// top of the models tenantID's scores add up (the base, the global model
// and, for a tenant, its own) as they are now with ch's changes.
func (c *Classifier) fitLinear(ctx context.Context, tenantID int64, ch *Change, fits []fitExample) error {
	if c.params.LinearMix < 0 || len(fits) == 0 {
		return nil
	}
	layers := make([]layer, 0, 3)
	if c.base != nil {
		layers = append(layers, layer{c.base, 1})
	}
	ids := []int64{GlobalModel}
	if tenantID != GlobalModel {
		ids = append(ids, tenantID)
	}
	for _, id := range ids {
		e, err := c.model(ctx, id)
		if err != nil {
			return err
		}
		e.mu.RLock()
		defer e.mu.RUnlock()
		layers = append(layers, layer{e.m, 1})
	}
	pending := make(map[string]int64, len(ch.Deltas))
	for t, d := range ch.Deltas {
		if d.Weight != 0 {
			pending[t] = d.Weight
		}
	}
	lessons := c.params.fit(layers, pending, fits)
	for i, f := range fits {
		if lessons[i] == 0 {
			continue
		}
		for _, t := range f.feats {
			x := ch.Deltas[t]
			x.Weight += lessons[i]
			ch.Deltas[t] = x
		}
		if f.fingerprint != "" {
			ch.Lessons[f.fingerprint] = lessons[i]
		}
	}
	return nil
}

// Train learns msg as spam (or ham) in tenantID's model; a message
// already trained with that label is not counted again.
func (c *Classifier) Train(ctx context.Context, tenantID int64, msg *mailtext.Message, spam bool) error {
	label := LabelHam
	if spam {
		label = LabelSpam
	}
	_, err := c.Learn(ctx, tenantID, []Example{NewExample(msg, label)})
	return err
}

// Untrain forgets what training msg taught tenantID's model, whichever
// label it was trained with; a message never trained changes nothing.
func (c *Classifier) Untrain(ctx context.Context, tenantID int64, msg *mailtext.Message) error {
	_, err := c.Learn(ctx, tenantID, []Example{NewExample(msg, "")})
	return err
}

// TrainTokens counts a token set (duplicates once) as one spam (or ham)
// message, without a fingerprint: every call counts.
func (c *Classifier) TrainTokens(ctx context.Context, tenantID int64, tokens []string, spam bool) error {
	label := LabelHam
	if spam {
		label = LabelSpam
	}
	_, err := c.Learn(ctx, tenantID, []Example{{Tokens: tokens, Label: label}})
	return err
}

// Reset empties tenantID's stored model (the base model stays).
func (c *Classifier) Reset(ctx context.Context, tenantID int64) error {
	c.learn.Lock()
	defer c.learn.Unlock()
	v, err := c.store.Reset(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("spam: reset tenant %d: %w", tenantID, err)
	}
	c.applied(tenantID, v, Change{}, true)
	return nil
}

// Classify returns msg's spam probability from its Tokenize tokens (no
// rule features; the spam check uses ClassifyTokens with Features).
func (c *Classifier) Classify(ctx context.Context, tenantID int64, msg *mailtext.Message) (Result, error) {
	return c.ClassifyTokens(ctx, tenantID, Tokenize(msg, c.params.MaxTokens))
}

// ClassifyTokens returns the spam probability of a token set under the
// base model, the global model and tenantID's model (the global model
// alone for GlobalModel). It fails only when a model cannot be loaded.
func (c *Classifier) ClassifyTokens(ctx context.Context, tenantID int64, tokens []string) (Result, error) {
	return c.ClassifyMessage(ctx, tenantID, tokens, "")
}

// ClassifyMessage is ClassifyTokens for a message whose Fingerprint is
// known: a message the tenant's model (or else the global model) was
// trained with is judged by that label with the classifier's full say,
// so a user's "spam" or "not spam" on a message holds when it comes
// again, whatever the statistics say.
func (c *Classifier) ClassifyMessage(ctx context.Context, tenantID int64, tokens []string, fingerprint string) (Result, error) {
	return c.classify(ctx, tenantID, tokens, func() string { return fingerprint })
}

// ClassifyParsed is ClassifyMessage for a parsed message, whose
// fingerprint (a hash of its text) is computed only when a model
// remembers trained messages to compare it with.
func (c *Classifier) ClassifyParsed(ctx context.Context, tenantID int64, tokens []string, msg *mailtext.Message) (Result, error) {
	return c.classify(ctx, tenantID, tokens, func() string { return Fingerprint(msg) })
}

func (c *Classifier) classify(ctx context.Context, tenantID int64, tokens []string, fingerprint func() string) (Result, error) {
	tokens = dedup(tokens)
	layers := make([]layer, 0, 3)
	if c.base != nil {
		layers = append(layers, layer{c.base, 1})
	}
	ids := []int64{GlobalModel}
	if tenantID != GlobalModel {
		ids = append(ids, tenantID)
	}
	label, fp := "", ""
	for _, id := range ids {
		e, err := c.model(ctx, id)
		if err != nil {
			return Result{}, fmt.Errorf("spam: classify: %w", err)
		}
		e.mu.RLock()
		defer e.mu.RUnlock()
		if e.m.Spam+e.m.Ham > 0 {
			layers = append(layers, layer{e.m, c.params.LocalWeight})
		}
		if len(e.m.Labels) > 0 {
			if fp == "" {
				fp = fingerprint()
			}
			if l := e.m.Labels[fp]; fp != "" && l != "" {
				label = l // the tenant's, when both have one: it comes last
			}
		}
	}
	res := c.params.classify(tokens, layers)
	if label != "" {
		res.Label = label
		res.Trained = true
		res.Points = MaxLogit
		if label == LabelHam {
			res.Points = -MaxLogit
		}
	}
	return res, nil
}

// TokenWeight is a feature's weight in the linear model, the models a
// score adds up together.
type TokenWeight struct {
	Token  string
	Weight float64
}

// LinearWeights returns the linear features among tokens with their
// weights under the models tenantID's scores add up, strongest first
// (for explaining a score).
func (c *Classifier) LinearWeights(ctx context.Context, tenantID int64, tokens []string) ([]TokenWeight, error) {
	layers := make([]layer, 0, 3)
	if c.base != nil {
		layers = append(layers, layer{c.base, 1})
	}
	ids := []int64{GlobalModel}
	if tenantID != GlobalModel {
		ids = append(ids, tenantID)
	}
	for _, id := range ids {
		e, err := c.model(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("spam: weights: %w", err)
		}
		e.mu.RLock()
		defer e.mu.RUnlock()
		layers = append(layers, layer{e.m, 1})
	}
	var out []TokenWeight
	for _, t := range dedup(tokens) {
		if !linearFeature(t) {
			continue
		}
		var w int64
		for _, l := range layers {
			c, _ := l.m.count(t)
			w += c.Weight
		}
		if w != 0 {
			out = append(out, TokenWeight{t, float64(w) / WeightUnit})
		}
	}
	slices.SortFunc(out, func(a, b TokenWeight) int {
		if c := cmp.Compare(math.Abs(b.Weight), math.Abs(a.Weight)); c != 0 {
			return c
		}
		return cmp.Compare(a.Token, b.Token)
	})
	return out, nil
}

// Stats describes one stored model.
func (c *Classifier) Stats(ctx context.Context, tenantID int64) (ModelInfo, error) {
	n := int64(0)
	info, err := c.store.LoadModel(ctx, tenantID, func(string, TokenCount) { n++ }, nil)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("spam: stats of model %d: %w", tenantID, err)
	}
	info.Tokens = n
	return info, nil
}

// dedup returns tokens without duplicates, reusing the slice when it is
// already a set (Tokenize's sorted output is checked without a map).
func dedup(tokens []string) []string {
	sorted := true
	for i := 1; i < len(tokens); i++ {
		if tokens[i-1] >= tokens[i] {
			sorted = false
			break
		}
	}
	if sorted {
		return tokens
	}
	seen := make(map[string]struct{}, len(tokens))
	for i, t := range tokens {
		if _, ok := seen[t]; ok {
			out := make([]string, i, len(tokens))
			copy(out, tokens[:i])
			for _, t := range tokens[i:] {
				if _, ok := seen[t]; !ok {
					seen[t] = struct{}{}
					out = append(out, t)
				}
			}
			return out
		}
		seen[t] = struct{}{}
	}
	return tokens
}
