package spam

import (
	"fmt"
	"hash/maphash"
	"sync"
)

// frozenTokens holds a model's token counts that never change (the
// shipped model's) without a pointer: an open-addressing table whose slot
// holds a token's 64-bit hash beside its counts. The garbage collector
// skips it, where it walked the shipped model's 150,000 map keys on every
// cycle of a busy server, and a lookup reads one place in memory the
// caches rarely hold (linear probing stays within it or the next slots),
// where a map or a table of references reads two or three.
//
// A token is known by its hash alone: the token bytes are not kept. The
// hash is seeded afresh by each process (hash/maphash), so nobody can
// choose a token that collides; two different tokens share a hash about
// once in 2^64 lookups, and then one token's counts would stand for the
// other's in one message's score.
type frozenTokens struct {
	seed  maphash.Seed
	mask  uint64
	slots []frozenSlot
}

type frozenSlot struct {
	hash uint64 // never 0; 0 marks an empty slot
	c    TokenCount
}

// freeze builds the table of tokens with at least 1.25 slots a token
// (8 MiB for the shipped model), which linear probing keeps short at that
// load.
func freeze(tokens map[string]TokenCount) *frozenTokens {
	size := 1
	for size*4 < len(tokens)*5 {
		size <<= 1
	}
	f := &frozenTokens{seed: maphash.MakeSeed(), mask: uint64(size - 1), slots: make([]frozenSlot, size)}
	for tok, c := range tokens {
		h := f.hash(tok)
		i := h & f.mask
		for f.slots[i].hash != 0 {
			i = (i + 1) & f.mask
		}
		f.slots[i] = frozenSlot{hash: h, c: c}
	}
	return f
}

// hash is tok's hash in the table, never 0.
func (f *frozenTokens) hash(tok string) uint64 {
	return max(maphash.String(f.seed, tok), 1)
}

// get returns tok's counts.
func (f *frozenTokens) get(tok string) (TokenCount, bool) {
	return f.probe(f.hash(tok))
}

// probe returns the counts of the token whose hash is h.
func (f *frozenTokens) probe(h uint64) (TokenCount, bool) {
	for i := h & f.mask; ; i = (i + 1) & f.mask {
		s := &f.slots[i]
		switch s.hash {
		case h:
			return s.c, true
		case 0:
			return TokenCount{}, false
		}
	}
}

// lookup sets out[i] to toks[i]'s counts, zero for a token the table
// does not hold. The hashes are computed first and the slots then read in
// a loop that does little else, so the processor has many of the reads,
// which mostly miss its caches, under way at once: a token-by-token get
// between other work waits for each in turn.
func (f *frozenTokens) lookup(toks []string, out []TokenCount) {
	var hs [128]uint64
	for start := 0; start < len(toks); start += len(hs) {
		h := hs[:min(len(hs), len(toks)-start)]
		for i := range h {
			h[i] = f.hash(toks[start+i])
		}
		o := out[start : start+len(h)]
		for i, hv := range h {
			o[i], _ = f.probe(hv)
		}
	}
}

// count returns tok's counts in m.
func (m *Model) count(tok string) (TokenCount, bool) {
	if m.frozen != nil {
		return m.frozen.get(tok)
	}
	c, ok := m.Tokens[tok]
	return c, ok
}

var builtinBase = sync.OnceValues(func() (*Model, error) {
	m, _, err := DecodeBuiltin()
	if err != nil {
		return nil, err
	}
	return &Model{Spam: m.Spam, Ham: m.Ham, Labels: m.Labels, frozen: freeze(m.Tokens)}, nil
})

// BuiltinBase returns the shipped model for scoring (Options.Base): the
// same counts as Builtin, held where the garbage collector need not walk
// them and looked up faster, but without Tokens to list or change. It is
// decoded on first use and shared.
func BuiltinBase() (*Model, error) {
	m, err := builtinBase()
	if err != nil {
		return nil, fmt.Errorf("spam: shipped model for scoring: %w", err)
	}
	return m, nil
}
