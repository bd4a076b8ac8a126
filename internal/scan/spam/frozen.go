package spam

import (
	"fmt"
	"hash/maphash"
	"sync"
)

// frozenTokens holds a model's token counts that never change (the
// shipped model's) without a pointer: an open-addressing table of hashes
// over one array of counts and one of token bytes. The garbage collector
// skips it, where it walked the shipped model's 150,000 map keys on every
// cycle of a busy server. A lookup is not faster than the map's (three
// reads of memory the caches rarely hold, against about two).
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
// token bytes), with at least 1.25 slots a token: 2 MiB of slots for the
// shipped model, which linear probing keeps short at that load.
func freeze(tokens map[string]TokenCount) *frozenTokens {
	size := 1
	for size*4 < len(tokens)*5 {
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
