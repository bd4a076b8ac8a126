package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/scan/spam"
)

// Near-duplicates. Two messages are near-duplicates when
//
//   - their decoded body text, lower-cased with white space collapsed,
//     begins with the same prefixLen bytes (and has at least minPrefix bytes:
//     two empty or one-line bodies say nothing), or
//   - the Jaccard similarity of their sets of word 5-shingles is at least
//     jaccardMin (bodies of at least 8 words).
//
// The first catches the same mailing sent again with another footer or
// recipient; the second the same text with a few words changed. Candidate
// pairs for the second come from MinHash signatures banded for
// locality-sensitive hashing (32 bands of 4 rows: a pair at Jaccard 0.9 is
// a candidate with probability 1-(1-0.9^4)^32 > 0.999999), and every
// candidate is then checked exactly.
const (
	prefixLen   = 400
	minPrefix   = 40
	jaccardMin  = 0.9
	shingleSize = 5
	minWords    = 8
	mhBands     = 32
	mhRows      = 4
)

// dupInfo is what near-duplicate detection keeps of one message.
type dupInfo struct {
	prefix   [32]byte // SHA-256 of the normalised body prefix; zero when too short
	hasPref  bool
	shingles map[uint64]struct{}
	sig      [mhBands * mhRows]uint64
	subject  string    // normalised Subject (reported, not a criterion)
	date     time.Time // when the message arrived (spam.MessageTime)
}

// dupInfoOf computes the near-duplicate fingerprints of a raw message.
func dupInfoOf(ctx context.Context, raw []byte) dupInfo {
	var d dupInfo
	msg, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
	if err != nil || msg == nil {
		return d
	}
	d.subject = normSubject(msg.Subject)
	d.date = spam.MessageTime(msg, time.Time{})
	text := normText(msg.Text)
	if len(text) >= minPrefix {
		d.prefix = sha256.Sum256([]byte(text[:min(len(text), prefixLen)]))
		d.hasPref = true
	}
	words := strings.Fields(text)
	if len(words) >= minWords {
		d.shingles = make(map[uint64]struct{}, len(words))
		for i := 0; i+shingleSize <= len(words); i++ {
			h := fnv.New64a()
			for _, w := range words[i : i+shingleSize] {
				h.Write([]byte(w))
				h.Write([]byte{0})
			}
			d.shingles[h.Sum64()] = struct{}{}
		}
		for i := range d.sig {
			d.sig[i] = ^uint64(0)
		}
		for s := range d.shingles {
			for i := range d.sig {
				if v := mix64(s ^ mhSeeds[i]); v < d.sig[i] {
					d.sig[i] = v
				}
			}
		}
	}
	return d
}

// mhSeeds are the MinHash permutations' seeds (fixed: results must not
// depend on the run).
var mhSeeds = func() (s [mhBands * mhRows]uint64) {
	x := uint64(0x9e3779b97f4a7c15)
	for i := range s {
		x = mix64(x + uint64(i))
		s[i] = x
	}
	return s
}()

// mix64 is the splitmix64 finaliser: a cheap, well-mixed 64-bit hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func normText(s string) string {
	return strings.Join(strings.FieldsFunc(strings.ToLower(s), unicode.IsSpace), " ")
}

// normSubject lower-cases a Subject, drops reply and forward prefixes and
// collapses white space.
func normSubject(s string) string {
	s = normText(s)
	for {
		t := strings.TrimSpace(s)
		for _, p := range []string{"re:", "fw:", "fwd:", "aw:", "[spam]"} {
			t = strings.TrimSpace(strings.TrimPrefix(t, p))
		}
		if t == s {
			return s
		}
		s = t
	}
}

func jaccard(a, b map[uint64]struct{}) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	inter := 0
	for k := range a {
		if _, ok := b[k]; ok {
			inter++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}

// dupIndex finds, for a message, the indexed messages it near-duplicates.
type dupIndex struct {
	infos  []dupInfo
	prefix map[[32]byte][]int
	bands  []map[uint64][]int
}

func newDupIndex() *dupIndex {
	x := &dupIndex{prefix: map[[32]byte][]int{}, bands: make([]map[uint64][]int, mhBands)}
	for i := range x.bands {
		x.bands[i] = map[uint64][]int{}
	}
	return x
}

func bandKey(sig *[mhBands * mhRows]uint64, b int) uint64 {
	var buf [8 * mhRows]byte
	for r := range mhRows {
		binary.LittleEndian.PutUint64(buf[8*r:], sig[b*mhRows+r])
	}
	h := fnv.New64a()
	h.Write(buf[:])
	return h.Sum64()
}

// add indexes d and returns its position.
func (x *dupIndex) add(d dupInfo) int {
	i := len(x.infos)
	x.infos = append(x.infos, d)
	if d.hasPref {
		x.prefix[d.prefix] = append(x.prefix[d.prefix], i)
	}
	if d.shingles != nil {
		for b := range mhBands {
			k := bandKey(&d.sig, b)
			x.bands[b][k] = append(x.bands[b][k], i)
		}
	}
	return i
}

// matches returns the positions of the indexed messages d near-duplicates,
// in increasing order.
func (x *dupIndex) matches(d dupInfo) []int {
	seen := map[int]bool{}
	if d.hasPref {
		for _, i := range x.prefix[d.prefix] {
			seen[i] = true
		}
	}
	if d.shingles != nil {
		cand := map[int]bool{}
		for b := range mhBands {
			for _, i := range x.bands[b][bandKey(&d.sig, b)] {
				if !seen[i] {
					cand[i] = true
				}
			}
		}
		for i := range cand {
			if jaccard(d.shingles, x.infos[i].shingles) >= jaccardMin {
				seen[i] = true
			}
		}
	}
	out := make([]int, 0, len(seen))
	for i := range seen {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}
