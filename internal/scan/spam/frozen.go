package spam

import (
	"fmt"
	"hash/maphash"
	"sync"
)

// frozenTokens holds a model's token counts that never change (the
// shipped model's) without a pointer: an open-addressing table of hashes
// over one array of counts and one of token bytes. The garbage collector
// skips it, where it walked the shipped model's hundred thousand map keys
// on every cycle, and a lookup reads the slot, then the entry and its
// bytes, instead of a map group, its key and the key's bytes elsewhere.
type frozenTokens struct {
	seed  maphash.Seed
	mask  uint64
	slots []uint64 // high 32 bits of the hash | entry index+1; 0 = empty
	ents  []frozenEntry
	text  []byte
}

type frozenEntry struct {
	c      TokenCount
	off, n uint32 // the token's bytes in text
}

// freeze builds the table of tokens (at most 2^32-1 of them and 4 GiB of
// token bytes).
func freeze(tokens map[string]TokenCount) *frozenTokens {
	size := 1
	for size < 2*len(tokens) {
		size <<= 1
	}
	f := &frozenTokens{seed: maphash.MakeSeed(), mask: uint64(size - 1), slots: make([]uint64, size),
		ents: make([]frozenEntry, 0, len(tokens))}
	n := 0
	for tok := range tokens {
		n += len(tok)
	}
	f.text = make([]byte, 0, n)
	for tok, c := range tokens {
		h := maphash.String(f.seed, tok)
		f.ents = append(f.ents, frozenEntry{c: c, off: uint32(len(f.text)), n: uint32(len(tok))})
		f.text = append(f.text, tok...)
		i := h & f.mask
		for f.slots[i] != 0 {
			i = (i + 1) & f.mask
		}
		f.slots[i] = h&^0xFFFFFFFF | uint64(len(f.ents))
	}
	return f
}

// get returns tok's counts.
func (f *frozenTokens) get(tok string) (TokenCount, bool) {
	h := maphash.String(f.seed, tok)
	tag := h &^ 0xFFFFFFFF
	for i := h & f.mask; ; i = (i + 1) & f.mask {
		s := f.slots[i]
		if s == 0 {
			return TokenCount{}, false
		}
		if s&^0xFFFFFFFF == tag {
			e := &f.ents[uint32(s)-1]
			if string(f.text[e.off:e.off+e.n]) == tok {
				return e.c, true
			}
		}
	}
}

// frozenResult is one token's answer from getAll.
type frozenResult struct {
	c  TokenCount
	ok bool
}

// getAll is get for every token. The tokens' first slots are all read
// before any is compared: the reads do not wait on one another, so the
// memory system serves many at once, where get's lookups, one after the
// other, each waited for its own (the table is larger than the caches,
// and that wait was most of a lookup).
func (f *frozenTokens) getAll(tokens []string) []frozenResult {
	hs := make([]uint64, len(tokens))
	slots := make([]uint64, len(tokens))
	for i, tok := range tokens {
		h := maphash.String(f.seed, tok)
		hs[i] = h
		slots[i] = f.slots[h&f.mask]
	}
	// The same for the entries the first slots name (mostly the token's).
	ents := make([]frozenEntry, len(tokens))
	for i, s := range slots {
		if s != 0 && s&^0xFFFFFFFF == hs[i]&^0xFFFFFFFF {
			ents[i] = f.ents[uint32(s)-1]
		}
	}
	out := make([]frozenResult, len(tokens))
	for i, tok := range tokens {
		h := hs[i]
		tag := h &^ 0xFFFFFFFF
		s, e := slots[i], &ents[i]
		for j := h & f.mask; s != 0; {
			if s&^0xFFFFFFFF == tag {
				if string(f.text[e.off:e.off+e.n]) == tok {
					out[i] = frozenResult{e.c, true}
					break
				}
			}
			j = (j + 1) & f.mask
			s = f.slots[j]
			if s != 0 {
				e = &f.ents[uint32(s)-1]
			}
		}
	}
	return out
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
