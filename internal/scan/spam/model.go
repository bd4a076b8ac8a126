package spam

import (
	"context"
	"fmt"
	"sync"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// GlobalModel is the tenant ID of the shared base model.
const GlobalModel int64 = 0

// TokenCount is how many trained spam and ham messages contained a token.
type TokenCount struct {
	Spam, Ham int64
}

// ModelStore keeps the classifier's counts: per model (tenant ID, with
// GlobalModel the shared base), the number of spam and ham messages trained
// and, per token, how many of each contained it. Token lists are sets (no
// duplicates); every call takes a whole message's tokens so a SQL store can
// answer with one batched statement. Implementations must be safe for
// concurrent use and honour ctx.
type ModelStore interface {
	// Counts returns the counts of the given tokens in tenantID's model.
	// Tokens never trained may be absent from the map (absent means zero).
	Counts(ctx context.Context, tenantID int64, tokens []string) (map[string]TokenCount, error)
	// Totals returns the number of spam and ham messages trained into
	// tenantID's model.
	Totals(ctx context.Context, tenantID int64) (spam, ham int64, err error)
	// Learn adds delta (+1 learn, -1 unlearn a feedback correction) to the
	// spam or ham count of each token and to that class's message total,
	// atomically: a concurrent Counts sees all of it or none. Counts never
	// go below zero.
	Learn(ctx context.Context, tenantID int64, tokens []string, spam bool, delta int) error
}

// MemoryStore is a ModelStore in memory, safe for concurrent use. Its
// models live as long as the process.
type MemoryStore struct {
	mu     sync.RWMutex
	models map[int64]*memModel
}

type memModel struct {
	spam, ham int64
	tokens    map[string]TokenCount
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{models: make(map[int64]*memModel)}
}

// Counts implements ModelStore.
func (s *MemoryStore) Counts(ctx context.Context, tenantID int64, tokens []string) (map[string]TokenCount, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("spam: model counts: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.models[tenantID]
	if m == nil {
		return map[string]TokenCount{}, nil
	}
	out := make(map[string]TokenCount, len(tokens)/2)
	for _, t := range tokens {
		if c, ok := m.tokens[t]; ok {
			out[t] = c
		}
	}
	return out, nil
}

// Totals implements ModelStore.
func (s *MemoryStore) Totals(ctx context.Context, tenantID int64) (spam, ham int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("spam: model totals: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m := s.models[tenantID]; m != nil {
		return m.spam, m.ham, nil
	}
	return 0, 0, nil
}

// Learn implements ModelStore. Tokens whose counts both reach zero are
// forgotten, so unlearning leaves no trace.
func (s *MemoryStore) Learn(ctx context.Context, tenantID int64, tokens []string, spam bool, delta int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("spam: model learn: %w", err)
	}
	if delta == 0 {
		return nil
	}
	d := int64(delta)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.models[tenantID]
	if m == nil {
		if delta < 0 {
			return nil
		}
		m = &memModel{tokens: make(map[string]TokenCount)}
		s.models[tenantID] = m
	}
	if spam {
		m.spam = max(m.spam+d, 0)
	} else {
		m.ham = max(m.ham+d, 0)
	}
	for _, t := range tokens {
		c := m.tokens[t]
		if spam {
			c.Spam = max(c.Spam+d, 0)
		} else {
			c.Ham = max(c.Ham+d, 0)
		}
		if c == (TokenCount{}) {
			delete(m.tokens, t)
		} else {
			m.tokens[t] = c
		}
	}
	if m.spam == 0 && m.ham == 0 && len(m.tokens) == 0 {
		delete(s.models, tenantID)
	}
	return nil
}

// Classifier trains and applies the statistical spam model through a
// ModelStore. A tenant's model is layered over the global one (see
// Params.TenantWeight): training a tenant changes only that tenant's
// scores, training GlobalModel changes everyone's. Safe for concurrent use
// as far as the store is.
type Classifier struct {
	store  ModelStore
	params Params
}

// NewClassifier returns a classifier over store; zero fields of p take
// their DefaultParams values.
func NewClassifier(store ModelStore, p Params) *Classifier {
	return &Classifier{store: store, params: p.withDefaults()}
}

// Params returns the effective parameters.
func (c *Classifier) Params() Params { return c.params }

// Tokens returns the tokens the classifier uses for msg.
func (c *Classifier) Tokens(msg *mailtext.Message) []string {
	return Tokenize(msg, c.params.MaxTokens)
}

// Train learns msg as spam (or ham) in tenantID's model.
func (c *Classifier) Train(ctx context.Context, tenantID int64, msg *mailtext.Message, spam bool) error {
	return c.TrainTokens(ctx, tenantID, c.Tokens(msg), spam)
}

// Untrain removes what Train(ctx, tenantID, msg, spam) added, exactly. A
// feedback correction of a message trained with the wrong class is Untrain
// with the old class followed by Train with the new one; a message that was
// never trained needs only the Train.
func (c *Classifier) Untrain(ctx context.Context, tenantID int64, msg *mailtext.Message, spam bool) error {
	return c.UntrainTokens(ctx, tenantID, c.Tokens(msg), spam)
}

// TrainTokens is Train for a token set (duplicates are counted once).
func (c *Classifier) TrainTokens(ctx context.Context, tenantID int64, tokens []string, spam bool) error {
	if err := c.store.Learn(ctx, tenantID, dedup(tokens), spam, +1); err != nil {
		return fmt.Errorf("spam: train tenant %d: %w", tenantID, err)
	}
	return nil
}

// UntrainTokens is Untrain for a token set.
func (c *Classifier) UntrainTokens(ctx context.Context, tenantID int64, tokens []string, spam bool) error {
	if err := c.store.Learn(ctx, tenantID, dedup(tokens), spam, -1); err != nil {
		return fmt.Errorf("spam: untrain tenant %d: %w", tenantID, err)
	}
	return nil
}

// Classify returns msg's spam probability under tenantID's model layered
// over the global one (or the global model alone for GlobalModel). It fails
// only when the store does.
func (c *Classifier) Classify(ctx context.Context, tenantID int64, msg *mailtext.Message) (Result, error) {
	return c.ClassifyTokens(ctx, tenantID, c.Tokens(msg))
}

// ClassifyTokens is Classify for a token set.
func (c *Classifier) ClassifyTokens(ctx context.Context, tenantID int64, tokens []string) (Result, error) {
	tokens = dedup(tokens)
	gs, gh, err := c.store.Totals(ctx, GlobalModel)
	if err != nil {
		return Result{}, fmt.Errorf("spam: classify: %w", err)
	}
	global, err := c.store.Counts(ctx, GlobalModel, tokens)
	if err != nil {
		return Result{}, fmt.Errorf("spam: classify: %w", err)
	}
	nspam, nham := float64(gs), float64(gh)
	count := func(t string) (float64, float64) {
		g := global[t]
		return float64(g.Spam), float64(g.Ham)
	}
	if tenantID != GlobalModel {
		ts, th, err := c.store.Totals(ctx, tenantID)
		if err != nil {
			return Result{}, fmt.Errorf("spam: classify tenant %d: %w", tenantID, err)
		}
		if ts > 0 || th > 0 {
			local, err := c.store.Counts(ctx, tenantID, tokens)
			if err != nil {
				return Result{}, fmt.Errorf("spam: classify tenant %d: %w", tenantID, err)
			}
			w := c.params.TenantWeight
			nspam += w * float64(ts)
			nham += w * float64(th)
			count = func(t string) (float64, float64) {
				g, l := global[t], local[t]
				return float64(g.Spam) + w*float64(l.Spam), float64(g.Ham) + w*float64(l.Ham)
			}
		}
	}
	return c.params.score(tokens, count, nspam, nham), nil
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
