// Package versioned keeps per-tenant values read from the store at a
// version the store bumps with every change to what they were read from.
package versioned

import (
	"context"
	"sync"
)

// Cache holds one value per tenant with the version it was read at. Every
// Get asks for the tenant's current version (one read of one row) and
// loads the value again when it changed, so a change made by the CLI, the
// console or another node applies from the next Get on. The version is
// read before the value: a change landing between the two is in what was
// loaded and bumps the version again, so a value is never older than the
// version it is kept at. The zero Cache is ready to use.
type Cache[T any] struct {
	mu sync.Mutex
	m  map[int64]entry[T]
}

type entry[T any] struct {
	version int64
	value   T
}

// Get returns the tenant's value at its current version (version), loaded
// by load when the cache holds none at that version. Concurrent Gets of a
// tenant whose version just changed may each load: rare, and cheaper than
// making them wait for one another.
func (c *Cache[T]) Get(ctx context.Context, tenantID int64,
	version func(ctx context.Context, tenantID int64) (int64, error),
	load func(ctx context.Context, version int64) (T, error)) (T, error) {
	v, err := version(ctx, tenantID)
	if err != nil {
		var zero T
		return zero, err
	}
	c.mu.Lock()
	cur, ok := c.m[tenantID]
	c.mu.Unlock()
	if ok && cur.version == v {
		return cur.value, nil
	}
	val, err := load(ctx, v)
	if err != nil {
		var zero T
		return zero, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[int64]entry[T]{}
	}
	if old, ok := c.m[tenantID]; !ok || old.version <= v {
		c.m[tenantID] = entry[T]{version: v, value: val}
	}
	c.mu.Unlock()
	return val, nil
}

// Memo is the versions read for one message (or one delivery attempt):
// under a context carrying it (Context, WithMemo), Memoized reads each
// version once, so the message's listener, pipeline and caches share one
// read of each version they ask for instead of reading it at every step.
// A memo must not outlive its message: a change made meanwhile applies
// from the next message on, which gets a new memo. The zero Memo is ready
// to use; it is safe for concurrent use.
type Memo struct {
	mu sync.Mutex
	m  map[memoKey]int64
}

type memoKey struct {
	kind     string
	tenantID int64
}

type memoCtxKey struct{}

// Context returns ctx carrying m; a nil m returns ctx as it is.
func (m *Memo) Context(ctx context.Context) context.Context {
	if m == nil {
		return ctx
	}
	return context.WithValue(ctx, memoCtxKey{}, m)
}

// WithMemo returns ctx carrying a new Memo.
func WithMemo(ctx context.Context) context.Context {
	return new(Memo).Context(ctx)
}

// Memoized returns the version read answers for (kind, tenantID): under
// a context carrying a Memo, the one read first under it; otherwise
// read's answer now. Errors are not remembered.
func Memoized(ctx context.Context, kind string, tenantID int64,
	read func(ctx context.Context, tenantID int64) (int64, error)) (int64, error) {
	m := MemoOf(ctx)
	if m == nil {
		return read(ctx, tenantID)
	}
	k := memoKey{kind, tenantID}
	m.mu.Lock()
	v, ok := m.m[k]
	m.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := read(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	if m.m == nil {
		m.m = map[memoKey]int64{}
	}
	if first, ok := m.m[k]; ok {
		// Another step of the message read it meanwhile: all of them
		// keep to one version.
		v = first
	} else {
		m.m[k] = v
	}
	m.mu.Unlock()
	return v, nil
}

// Remember records v as the version of (kind, tenantID) in ctx's Memo,
// unless it holds one already: a read of several versions at once fills
// in what the steps of the message ask for next. Without a Memo it does
// nothing.
func Remember(ctx context.Context, kind string, tenantID, v int64) {
	m := MemoOf(ctx)
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[memoKey]int64{}
	}
	if _, ok := m.m[memoKey{kind, tenantID}]; !ok {
		m.m[memoKey{kind, tenantID}] = v
	}
}

// MemoOf returns the Memo ctx carries, nil for none.
func MemoOf(ctx context.Context) *Memo {
	m, _ := ctx.Value(memoCtxKey{}).(*Memo)
	return m
}

// HasMemo reports whether ctx carries a Memo.
func HasMemo(ctx context.Context) bool { return MemoOf(ctx) != nil }
