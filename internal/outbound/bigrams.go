package outbound

import (
	"sync"
	"unsafe"
)

// bigrams is the set of adjacent byte pairs of a text. A keyword with a
// pair the text lacks is not in the text: most keywords of a large rule
// set are ruled out that way in the time of reading the keyword, instead
// of a scan of the whole text each. A keyword that passes is still
// looked for (strings.Contains): the set only ever says "not there".
type bigrams [1 << 16 / 64]uint64

// bigramMin is the shortest text worth a set: shorter ones are scanned.
const bigramMin = 2048

var bigramSets = sync.Pool{New: func() any { return new(bigrams) }}

func (b *bigrams) fill(s string) {
	*b = bigrams{}
	for i := 0; i+1 < len(s); i++ {
		v := uint16(s[i])<<8 | uint16(s[i+1])
		b[v>>6] |= 1 << (v & 63)
	}
}

// lacks reports whether k has a byte pair the text does not: then k is
// not in the text. A keyword shorter than two bytes is never ruled out.
func (b *bigrams) lacks(k string) bool {
	for i := 0; i+1 < len(k); i++ {
		v := uint16(k[i])<<8 | uint16(k[i+1])
		if b[v>>6]&(1<<(v&63)) == 0 {
			return true
		}
	}
	return false
}

// textSets are the bigram sets of the texts one evaluation looks for
// keywords in, by the text's bytes. An entry keeps its text, so the
// bytes it is keyed by cannot be reused for another text meanwhile.
type textSets map[textKey]textSet

type textKey struct {
	p *byte
	n int
}

type textSet struct {
	text string
	set  *bigrams
}

// of returns the set of s, built on first use; nil for a short text.
func (ts *textSets) of(s string) *bigrams {
	if len(s) < bigramMin {
		return nil
	}
	k := textKey{unsafe.StringData(s), len(s)}
	if e, ok := (*ts)[k]; ok {
		return e.set
	}
	if *ts == nil {
		*ts = textSets{}
	}
	b := bigramSets.Get().(*bigrams)
	b.fill(s)
	(*ts)[k] = textSet{text: s, set: b}
	return b
}

// release gives the sets back for other evaluations.
func (ts *textSets) release() {
	for k, e := range *ts {
		bigramSets.Put(e.set)
		delete(*ts, k)
	}
}
