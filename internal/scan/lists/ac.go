package lists

import (
	"cmp"
	"slices"
)

// automaton is an Aho–Corasick multi-pattern matcher over bytes (Aho and
// Corasick, "Efficient string matching", CACM 1975). It is immutable once
// built and safe for concurrent use.
//
// The trie is stored flat: node n's edges are edgeByte/edgeNext[edgeStart[n]:
// edgeStart[n+1]], sorted by byte, which keeps 10,000 patterns at a few
// bytes per trie node instead of a 256-slot table each. Only the root, which
// every mismatch returns to, has a full table.
type automaton struct {
	root      [256]int32 // child of the root per byte; 0 = stay at the root
	edgeStart []int32
	edgeByte  []byte
	edgeNext  []int32
	fail      []int32 // longest proper suffix of the node's string that is a trie node
	dict      []int32 // nearest node on the fail chain that ends a pattern; -1 none
	outStart  []int32 // patterns ending exactly at node n: outPat[outStart[n]:outStart[n+1]]
	outPat    []int32
}

// buildAutomaton builds the automaton for pats; pattern i is reported as i.
// Empty patterns are ignored.
func buildAutomaton(pats []string) *automaton {
	type edge struct {
		from int32
		b    byte
		to   int32
	}
	// Trie construction with a map keyed by (node, byte); flattened below.
	child := make(map[uint64]int32)
	key := func(n int32, b byte) uint64 { return uint64(n)<<8 | uint64(b) }
	nodes := int32(1)
	var edges []edge
	ends := make(map[int32][]int32)
	for i, p := range pats {
		if p == "" {
			continue
		}
		n := int32(0)
		for j := 0; j < len(p); j++ {
			k := key(n, p[j])
			c, ok := child[k]
			if !ok {
				c = nodes
				nodes++
				child[k] = c
				edges = append(edges, edge{n, p[j], c})
			}
			n = c
		}
		ends[n] = append(ends[n], int32(i))
	}
	a := &automaton{
		edgeStart: make([]int32, nodes+1),
		edgeByte:  make([]byte, len(edges)),
		edgeNext:  make([]int32, len(edges)),
		fail:      make([]int32, nodes),
		dict:      make([]int32, nodes),
		outStart:  make([]int32, nodes+1),
	}
	slices.SortFunc(edges, func(x, y edge) int {
		if c := cmp.Compare(x.from, y.from); c != 0 {
			return c
		}
		return cmp.Compare(x.b, y.b)
	})
	for i, e := range edges {
		a.edgeByte[i] = e.b
		a.edgeNext[i] = e.to
		a.edgeStart[e.from+1]++
	}
	for n := int32(0); n < nodes; n++ {
		a.edgeStart[n+1] += a.edgeStart[n]
		a.outStart[n+1] = a.outStart[n] + int32(len(ends[n]))
		a.outPat = append(a.outPat, ends[n]...)
	}
	for i := a.edgeStart[0]; i < a.edgeStart[1]; i++ {
		a.root[a.edgeByte[i]] = a.edgeNext[i]
	}
	// Breadth-first, so a node's fail target is final before its children's.
	a.dict[0] = -1
	queue := make([]int32, 0, nodes)
	for i := a.edgeStart[0]; i < a.edgeStart[1]; i++ {
		c := a.edgeNext[i]
		a.fail[c] = 0
		a.dict[c] = -1
		queue = append(queue, c)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for i := a.edgeStart[n]; i < a.edgeStart[n+1]; i++ {
			b, c := a.edgeByte[i], a.edgeNext[i]
			a.fail[c] = a.step(a.fail[n], b)
			f := a.fail[c]
			if a.outStart[f] < a.outStart[f+1] {
				a.dict[c] = f
			} else {
				a.dict[c] = a.dict[f]
			}
			queue = append(queue, c)
		}
	}
	return a
}

// next returns node n's child on b, or -1.
func (a *automaton) next(n int32, b byte) int32 {
	if n == 0 {
		if c := a.root[b]; c != 0 {
			return c
		}
		return -1
	}
	lo, hi := a.edgeStart[n], a.edgeStart[n+1]
	for lo < hi {
		m := int32(uint32(lo+hi) >> 1)
		switch eb := a.edgeByte[m]; {
		case eb == b:
			return a.edgeNext[m]
		case eb < b:
			lo = m + 1
		default:
			hi = m
		}
	}
	return -1
}

// step is the automaton's transition: follow fail links until b can be
// taken, or end at the root.
func (a *automaton) step(n int32, b byte) int32 {
	for {
		if c := a.next(n, b); c >= 0 {
			return c
		}
		if n == 0 {
			return 0
		}
		n = a.fail[n]
	}
}

// scan calls emit once for every pattern that occurs in the concatenation
// of parts (each pattern at most once per scan, whatever its number of
// occurrences). Passing the text in parts lets callers add sentinels
// without copying it.
//
// Work is linear in the text plus the distinct matches: seen stops the walk
// along a dictionary chain at the first node already reported, since the
// rest of that chain was reported with it.
func (a *automaton) scan(emit func(pat int32), parts ...string) {
	if a == nil || len(a.fail) <= 1 {
		return
	}
	var seen map[int32]bool
	n := int32(0)
	for _, s := range parts {
		for i := 0; i < len(s); i++ {
			n = a.step(n, s[i])
			t := n
			if a.outStart[t] == a.outStart[t+1] {
				t = a.dict[t]
			}
			for t > 0 {
				if seen[t] {
					break
				}
				if seen == nil {
					seen = make(map[int32]bool)
				}
				seen[t] = true
				for _, p := range a.outPat[a.outStart[t]:a.outStart[t+1]] {
					emit(p)
				}
				t = a.dict[t]
			}
		}
	}
}
