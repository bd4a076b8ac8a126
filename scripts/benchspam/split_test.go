package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestToEMLDropsMboxLineAndUsesCRLF(t *testing.T) {
	cases := []struct{ in, want string }{
		{"From a@b  Thu Aug 22 13:17:22 2002\nSubject: x\n\nbody\n", "Subject: x\r\n\r\nbody\r\n"},
		// A "From " line inside the body is content, not a separator.
		{"Subject: x\n\nFrom here\n", "Subject: x\r\n\r\nFrom here\r\n"},
		// Existing CRLF is not doubled; a missing final line break is added.
		{"From x\nA: 1\r\nB: 2\n\nlast", "A: 1\r\nB: 2\r\n\r\nlast\r\n"},
		// A bare CR inside a line is left alone.
		{"A: 1\n\nx\ry\n", "A: 1\r\n\r\nx\ry\r\n"},
		{"From only-a-separator", ""},
	}
	for _, c := range cases {
		if got := string(toEML([]byte(c.in))); got != c.want {
			t.Errorf("toEML(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzToEML(f *testing.F) {
	f.Add([]byte("From a b\nSubject: x\n\nbody\n"))
	f.Add([]byte("A: 1\r\n\r\nx\ry"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := toEML(in)
		// Every LF is preceded by CR and the output ends with CRLF unless empty.
		for i, b := range out {
			if b == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, out)
			}
		}
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
			t.Fatalf("no final CRLF: %q", out)
		}
		// Removing all CR and LF gives the input's content without its
		// separator line.
		strip := func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), nil)
		}
		body := in
		if bytes.HasPrefix(in, []byte("From ")) {
			if i := bytes.IndexByte(in, '\n'); i >= 0 {
				body = in[i+1:]
			} else {
				body = nil
			}
		}
		if !bytes.Equal(strip(out), strip(body)) {
			t.Fatalf("content changed: %q -> %q", in, out)
		}
	})
}

func corpusOf(sizes map[string]int) []corpusFile {
	var out []corpusFile
	for g, n := range sizes {
		for i := range n {
			out = append(out, corpusFile{group: g, name: fmt.Sprintf("%05d.%x.txt", i, i*7919), spam: g[:4] == "spam"})
		}
	}
	return out
}

func names(list []corpusFile) map[string]bool {
	m := map[string]bool{}
	for _, c := range list {
		m[c.emlName()] = true
	}
	return m
}

// Older collections train, newer ones test; hard-ham-1's first half by
// number trains; the order the files are listed in does not matter.
func TestSplitByTime(t *testing.T) {
	sizes := map[string]int{"easy-ham-1": 41, "easy-ham-2": 20, "hard-ham-1": 10, "spam-1": 17, "spam-2": 30}
	files := corpusOf(sizes)
	rand.New(rand.NewPCG(9, 9)).Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	train, test := splitByTime(files)
	if len(train)+len(test) != len(files) {
		t.Fatalf("train %d + test %d != %d", len(train), len(test), len(files))
	}
	per := map[string]map[bool]int{}
	for _, set := range []struct {
		list  []corpusFile
		train bool
	}{{train, true}, {test, false}} {
		for _, c := range set.list {
			if per[c.group] == nil {
				per[c.group] = map[bool]int{}
			}
			per[c.group][set.train]++
		}
	}
	want := map[string][2]int{"easy-ham-1": {41, 0}, "spam-1": {17, 0}, "easy-ham-2": {0, 20}, "spam-2": {0, 30}, "hard-ham-1": {5, 5}}
	for g, w := range want {
		if per[g][true] != w[0] || per[g][false] != w[1] {
			t.Errorf("%s: %d train, %d test; want %v", g, per[g][true], per[g][false], w)
		}
	}
	for _, c := range train {
		if c.group == "hard-ham-1" && c.name >= fmt.Sprintf("%05d", 5) {
			t.Errorf("hard-ham %s (second half) trains", c.name)
		}
	}
}

func TestLimitKeepsShares(t *testing.T) {
	sizes := map[string]int{"easy-ham-2": 1400, "hard-ham-1": 125, "spam-2": 1396}
	test := corpusOf(sizes)
	for _, limit := range []int{1, 10, 300, 1001} {
		got := limitTest(append([]corpusFile(nil), test...), 1, limit)
		if len(got) != limit {
			t.Fatalf("limit %d: %d test messages", limit, len(got))
		}
		per := map[string]int{}
		for _, c := range got {
			per[c.group]++
		}
		for g, n := range sizes {
			share := float64(limit) * float64(n) / float64(len(test))
			if d := float64(per[g]) - share; d > 1 || d < -1 {
				t.Errorf("limit %d: group %s has %d, share %.2f", limit, g, per[g], share)
			}
		}
	}
}

func msg(subject, body string) []byte {
	return []byte("From: a@example.com\r\nSubject: " + subject + "\r\n\r\n" + body + "\r\n")
}

// Near-duplicates: the same body opening, or nearly the same words; a
// shared Subject alone, or an unrelated body, is not one.
func TestNearDuplicates(t *testing.T) {
	ctx := t.Context()
	long := strings.Repeat("the quick brown fox jumps over the lazy dog while the farmer sleeps soundly ", 8)
	words := strings.Fields(long + " and then some more words follow here to make the text longer than before")
	x := newDupIndex()
	x.add(dupInfoOf(ctx, msg("Offer", long+"\r\nfooter one")))
	x.add(dupInfoOf(ctx, msg("Report", strings.Join(words, " "))))
	changed := append([]string(nil), words...)
	changed[len(changed)-1] = "differently" // one word of ~90 changed: Jaccard > 0.9
	cases := []struct {
		name string
		raw  []byte
		want int
	}{
		{"same opening, other footer", msg("Another subject", long+"\r\nfooter two"), 1},
		{"one word changed", msg("Report", "intro "+strings.Join(changed, " ")), 1},
		{"same subject only", msg("Offer", "a completely different message about the budget for the next quarter and nothing else at all"), 0},
		{"short equal bodies", msg("x", "ok"), 0},
	}
	for _, c := range cases {
		if got := len(x.matches(dupInfoOf(ctx, c.raw))); got < c.want || (c.want == 0 && got != 0) {
			t.Errorf("%s: %d matches, want %d", c.name, got, c.want)
		}
	}
}

// Folds are consecutive periods of each class, keep near-duplicate
// clusters together and are about equal in size.
func TestAssignFolds(t *testing.T) {
	train := corpusOf(map[string]int{"spam-1": 30, "easy-ham-1": 70})
	sort.Slice(train, func(i, j int) bool { return train[i].emlName() < train[j].emlName() })
	dates := make([]time.Time, len(train))
	base := time.Date(2002, 8, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range dates {
		dates[i] = base.Add(time.Duration(r.IntN(90*24)) * time.Hour)
	}
	var clusters [][]int
	for i := 0; i < len(train); {
		n := 1
		if i%10 == 0 {
			n = 3
		}
		var c []int
		for j := i; j < min(i+n, len(train)) && train[j].spam == train[i].spam; j++ {
			c = append(c, j)
		}
		clusters = append(clusters, c)
		i += len(c)
	}
	fold := assignFolds(train, clusters, dates, 1, 5)
	first := func(c []int) time.Time {
		f := dates[c[0]]
		for _, i := range c {
			if dates[i].Before(f) {
				f = dates[i]
			}
		}
		return f
	}
	for _, c := range clusters {
		for _, m := range c {
			if fold[m] != fold[c[0]] {
				t.Fatalf("cluster %v split over folds", c)
			}
		}
	}
	for _, a := range clusters {
		for _, b := range clusters {
			if train[a[0]].spam == train[b[0]].spam && first(a).Before(first(b)) && fold[a[0]] > fold[b[0]] {
				t.Fatalf("an earlier cluster is in a later fold: %v (%v) fold %d, %v (%v) fold %d", a, first(a), fold[a[0]], b, first(b), fold[b[0]])
			}
		}
	}
	size := map[bool][]int{true: make([]int, 5), false: make([]int, 5)}
	for i, f := range fold {
		size[train[i].spam][f]++
	}
	for _, class := range []bool{true, false} {
		lo, hi := slices.Min(size[class]), slices.Max(size[class])
		if hi-lo > 4 {
			t.Errorf("spam=%v fold sizes %v", class, size[class])
		}
	}
}
