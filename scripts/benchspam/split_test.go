package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
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

func TestSplitIsStratifiedDisjointAndReproducible(t *testing.T) {
	sizes := map[string]int{"easy-ham-1": 41, "hard-ham-1": 10, "spam-1": 17, "spam-2": 30}
	files := corpusOf(sizes)
	train, test := splitCorpus(append([]corpusFile(nil), files...), 1, 0)
	if len(train)+len(test) != len(files) {
		t.Fatalf("train %d + test %d != %d", len(train), len(test), len(files))
	}
	tr, te := names(train), names(test)
	for n := range tr {
		if te[n] {
			t.Fatalf("%s in both halves", n)
		}
	}
	perGroup := map[string]int{}
	for _, c := range train {
		perGroup[c.group]++
	}
	for g, n := range sizes {
		if perGroup[g] != n/2 {
			t.Errorf("group %s: %d in train, want %d", g, perGroup[g], n/2)
		}
	}
	// Same seed, input in another order: same split.
	shuffled := append([]corpusFile(nil), files...)
	rand.New(rand.NewPCG(9, 9)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	train2, _ := splitCorpus(shuffled, 1, 0)
	tr2 := names(train2)
	for n := range tr {
		if !tr2[n] {
			t.Fatalf("split depends on input order: %s", n)
		}
	}
	// Another seed picks other messages.
	train3, _ := splitCorpus(append([]corpusFile(nil), files...), 2, 0)
	same := 0
	for n := range names(train3) {
		if tr[n] {
			same++
		}
	}
	if same == len(train) {
		t.Fatalf("seed 2 gave the same training half as seed 1")
	}
}

func TestSplitLimitKeepsShares(t *testing.T) {
	sizes := map[string]int{"easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250, "spam-1": 500, "spam-2": 1396}
	files := corpusOf(sizes)
	trainAll, testAll := splitCorpus(append([]corpusFile(nil), files...), 1, 0)
	for _, limit := range []int{1, 10, 300, 1001} {
		train, test := splitCorpus(append([]corpusFile(nil), files...), 1, limit)
		if len(train) != len(trainAll) {
			t.Fatalf("limit %d cut the training half: %d", limit, len(train))
		}
		if len(test) != limit {
			t.Fatalf("limit %d: %d test messages", limit, len(test))
		}
		all := names(testAll)
		got := map[string]int{}
		for _, c := range test {
			if !all[c.emlName()] {
				t.Fatalf("limit %d: %s is not in the full test half", limit, c.emlName())
			}
			got[c.group]++
		}
		for g, n := range sizes {
			share := float64(limit) * float64(n-n/2) / float64(len(testAll))
			if d := float64(got[g]) - share; d > 1 || d < -1 {
				t.Errorf("limit %d: group %s has %d, share %.2f", limit, g, got[g], share)
			}
		}
	}
}
