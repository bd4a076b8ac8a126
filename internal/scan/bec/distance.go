package bec

// maxCompareRunes bounds the inputs of distance, which is only applied to
// domain names of at most 253 octets (RFC 1035 2.3.4): anything longer is
// not compared at all rather than costing quadratic time.
const maxCompareRunes = 256

// distance returns the Damerau–Levenshtein distance between a and b counted
// in runes: the fewest insertions, deletions, substitutions and transpositions
// of adjacent runes turning one into the other (the unrestricted variant of
// Lowrance and Wagner, so it is a metric: symmetric and obeying the triangle
// inequality). Equal strings are at distance 0 whatever their length;
// otherwise inputs longer than maxCompareRunes runes give max(len(a),
// len(b)) in runes, which never counts as "close".
func distance(a, b string) int {
	if a == b {
		return 0
	}
	ra, rb := []rune(a), []rune(b)
	if len(ra) > maxCompareRunes || len(rb) > maxCompareRunes {
		return max(len(ra), len(rb))
	}
	if len(ra) == 0 {
		return len(rb)
	}
	if len(rb) == 0 {
		return len(ra)
	}
	inf := len(ra) + len(rb)
	w := len(rb) + 2
	// d is the (len(ra)+2) × (len(rb)+2) table; row and column 0 hold the
	// sentinel "infinity" the transposition step may look up.
	d := make([]int, (len(ra)+2)*w)
	d[0] = inf
	for i := 0; i <= len(ra); i++ {
		d[(i+1)*w] = inf
		d[(i+1)*w+1] = i
	}
	for j := 0; j <= len(rb); j++ {
		d[j+1] = inf
		d[w+j+1] = j
	}
	// last holds, per rune, the last row of a where it occurred.
	last := make(map[rune]int, len(ra))
	for i := 1; i <= len(ra); i++ {
		db := 0
		for j := 1; j <= len(rb); j++ {
			k := last[rb[j-1]]
			l := db
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
				db = j
			}
			v := min(
				d[i*w+j]+cost,              // substitution or match
				d[(i+1)*w+j]+1,             // insertion
				d[i*w+j+1]+1,               // deletion
				d[k*w+l]+(i-k-1)+1+(j-l-1), // transposition
			)
			d[(i+1)*w+j+1] = v
		}
		last[ra[i-1]] = i
	}
	return d[(len(ra)+1)*w+len(rb)+1]
}
