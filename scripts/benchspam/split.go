package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// corpusFile is one message of the corpus: data/<group>/<name>.txt.
type corpusFile struct {
	group string // e.g. "easy-ham-1", "spam-2"
	name  string // file name inside the group, e.g. "00001.7c53….txt"
	spam  bool   // groups named spam* hold spam, the others ham
}

// emlName is the file name the message gets in the split: unique across
// groups, so a scorer can map an output path back by its base name.
func (c corpusFile) emlName() string {
	return c.group + "-" + strings.TrimSuffix(c.name, ".txt") + ".eml"
}

func (c corpusFile) class() string {
	if c.spam {
		return "spam"
	}
	return "ham"
}

// listCorpus returns the *.txt messages of every group directory under data,
// sorted by group and name.
func listCorpus(data string) ([]corpusFile, error) {
	groups, err := os.ReadDir(data)
	if err != nil {
		return nil, fmt.Errorf("read corpus directory: %w", err)
	}
	var out []corpusFile
	for _, g := range groups {
		if !g.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(data, g.Name()))
		if err != nil {
			return nil, fmt.Errorf("read corpus group %s: %w", g.Name(), err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".txt") {
				out = append(out, corpusFile{group: g.Name(), name: e.Name(), spam: strings.HasPrefix(g.Name(), "spam")})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].group != out[j].group {
			return out[i].group < out[j].group
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// rankKey orders messages where an order is needed that no content should
// decide (the LIMIT subset, the cross-validation folds): SHA-256 of
// "seed/group/name". It depends on nothing but the seed and the file's
// identity, so it is the same on every machine, Go version and directory
// listing order.
func rankKey(seed uint64, c corpusFile) [32]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seed)
	h := sha256.New()
	h.Write(b[:])
	h.Write([]byte("/" + c.group + "/" + c.name))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// splitByTime splits the corpus by age, as mail arrives: the older
// collections train (spam-1, easy-ham-1), the newer ones test (spam-2,
// easy-ham-2). hard-ham-1 has no newer counterpart: its first half by file
// number (the collection is numbered in the order it was gathered) trains,
// the second half tests. Any other group named *-1 trains and *-2 tests;
// groups without such a suffix are split in half by number like hard-ham-1.
func splitByTime(files []corpusFile) (train, test []corpusFile) {
	byGroup := map[string][]corpusFile{}
	var groups []string
	for _, f := range files {
		if _, ok := byGroup[f.group]; !ok {
			groups = append(groups, f.group)
		}
		byGroup[f.group] = append(byGroup[f.group], f)
	}
	sort.Strings(groups)
	for _, g := range groups {
		fs := byGroup[g]
		sort.Slice(fs, func(i, j int) bool { return fs[i].name < fs[j].name })
		switch {
		case strings.HasPrefix(g, "hard-"):
			half := len(fs) / 2
			train = append(train, fs[:half]...)
			test = append(test, fs[half:]...)
		case strings.HasSuffix(g, "-1"):
			train = append(train, fs...)
		case strings.HasSuffix(g, "-2"):
			test = append(test, fs...)
		default:
			half := len(fs) / 2
			train = append(train, fs[:half]...)
			test = append(test, fs[half:]...)
		}
	}
	return train, test
}

// limitTest cuts test to a subset of about limit messages that keeps each
// group's share (largest remainder), taking each group's first messages in
// rankKey order. limit <= 0 keeps everything.
func limitTest(test []corpusFile, seed uint64, limit int) []corpusFile {
	if limit <= 0 || limit >= len(test) {
		return test
	}
	byGroup := map[string][]corpusFile{}
	var groups []string
	for _, f := range test {
		if _, ok := byGroup[f.group]; !ok {
			groups = append(groups, f.group)
		}
		byGroup[f.group] = append(byGroup[f.group], f)
	}
	sort.Strings(groups)
	take := map[string]int{}
	type rem struct {
		group string
		frac  float64
	}
	var rems []rem
	given := 0
	for _, g := range groups {
		fs := byGroup[g]
		sort.Slice(fs, func(i, j int) bool {
			a, b := rankKey(seed, fs[i]), rankKey(seed, fs[j])
			return bytes.Compare(a[:], b[:]) < 0
		})
		exact := float64(limit) * float64(len(fs)) / float64(len(test))
		take[g] = int(exact)
		given += take[g]
		rems = append(rems, rem{g, exact - float64(int(exact))})
	}
	sort.SliceStable(rems, func(i, j int) bool { return rems[i].frac > rems[j].frac })
	for i := 0; given < limit; i++ {
		take[rems[i%len(rems)].group]++
		given++
	}
	var out []corpusFile
	for _, g := range groups {
		out = append(out, byGroup[g][:take[g]]...)
	}
	return out
}

// assignFolds gives every training message a cross-validation fold in
// [0, k) by time, as the split itself is made: within each class the
// messages are ordered by arrival (spam.MessageTime), and the folds are
// consecutive periods of about equal size, so each fold is scored by a
// model that saw mostly other weeks' mail rather than its neighbours.
// Near-duplicates (clusters, by index into train) always share a fold:
// the one their earliest message falls in.
func assignFolds(train []corpusFile, clusters [][]int, dates []time.Time, seed uint64, k int) []int {
	fold := make([]int, len(train))
	type cl struct {
		members []int
		first   time.Time
		key     [32]byte
	}
	byClass := map[bool][]cl{}
	n := map[bool]int{}
	for _, m := range clusters {
		c := cl{members: m, first: dates[m[0]], key: rankKey(seed, train[m[0]])}
		for _, i := range m {
			if dates[i].Before(c.first) {
				c.first = dates[i]
			}
		}
		spam := train[m[0]].spam
		byClass[spam] = append(byClass[spam], c)
		n[spam] += len(m)
	}
	for spam, cs := range byClass {
		sort.Slice(cs, func(i, j int) bool {
			if !cs[i].first.Equal(cs[j].first) {
				return cs[i].first.Before(cs[j].first)
			}
			return bytes.Compare(cs[i].key[:], cs[j].key[:]) < 0
		})
		done := 0
		for _, c := range cs {
			// The fold whose share of the class this cluster's middle falls in.
			f := min((done+len(c.members)/2)*k/n[spam], k-1)
			for _, i := range c.members {
				fold[i] = f
			}
			done += len(c.members)
		}
	}
	return fold
}

// clusterDuplicates groups the training messages into near-duplicate
// clusters (connected components of the near-duplicate relation, one class
// at a time: a spam and a ham are never put together).
func clusterDuplicates(train []corpusFile, infos []dupInfo) [][]int {
	parent := make([]int, len(train))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, spam := range []bool{true, false} {
		x := newDupIndex()
		var pos []int // index position -> train index
		for i, f := range train {
			if f.spam != spam {
				continue
			}
			for _, j := range x.matches(infos[i]) {
				if a, b := find(i), find(pos[j]); a != b {
					parent[a] = b
				}
			}
			x.add(infos[i])
			pos = append(pos, i)
		}
	}
	byRoot := map[int][]int{}
	var roots []int
	for i := range train {
		r := find(i)
		if _, ok := byRoot[r]; !ok {
			roots = append(roots, r)
		}
		byRoot[r] = append(byRoot[r], i)
	}
	out := make([][]int, 0, len(roots))
	for _, r := range roots {
		out = append(out, byRoot[r])
	}
	return out
}

// toEML turns a corpus file into an RFC 5322 message as it would arrive
// over SMTP: the mbox "From " separator line is dropped and every line ends
// in CRLF (RFC 5322 section 2.1). Existing CRLFs are kept, bare LFs become
// CRLF, and a final line break is added when missing.
func toEML(raw []byte) []byte {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		} else {
			raw = nil
		}
	}
	out := make([]byte, 0, len(raw)+len(raw)/30+2)
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			out = append(out, raw...)
			out = append(out, '\r', '\n')
			break
		}
		line := bytes.TrimSuffix(raw[:i], []byte("\r"))
		out = append(out, line...)
		out = append(out, '\r', '\n')
		raw = raw[i+1:]
	}
	return out
}

// cmdSplit writes the split: OUT/train/{spam,ham} (older mail),
// OUT/test/{spam,ham} (newer mail, near-duplicates of training messages
// removed), OUT/cv/<k>/{train,test}/{spam,ham} (the training messages'
// cross-validation folds, hard links), and OUT/split.tsv (set, class,
// group, file, fold) listing every message with what became of it. It
// prints one line of counts.
func cmdSplit(ctx context.Context, fs *flag.FlagSet, args []string) error {
	data := fs.String("corpus", "", "corpus data directory (holds easy-ham-1, spam-1, ...)")
	out := fs.String("out", "", "output directory (created)")
	seed := fs.Uint64("seed", 1, "seed of the LIMIT subset and of the fold assignment")
	limit := fs.Int("limit", 0, "cut the test set to a stratified subset of about this many messages (0: all)")
	folds := fs.Int("folds", 5, "cross-validation folds of the training set (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *out == "" {
		return fmt.Errorf("need -corpus and -out")
	}
	if *folds == 1 || *folds < 0 {
		return fmt.Errorf("-folds must be 0 or at least 2")
	}
	files, err := listCorpus(*data)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no *.txt messages under %s", *data)
	}
	sp, err := makeSplit(ctx, *data, files, *seed, *limit, *folds)
	if err != nil {
		return err
	}
	if err := sp.write(ctx, *data, *out); err != nil {
		return err
	}
	fmt.Println(sp.summary())
	return nil
}

// split is the evaluation split of the corpus.
type split struct {
	train, test []corpusFile
	raw         map[string][]byte // emlName -> message as written (.eml)
	fold        []int             // per train message; nil without folds
	folds       int
	dups        []corpusFile // test messages removed as near-duplicates of training ones
	sameSubject int          // kept test messages whose Subject a training message of the class has
	clusters    int          // near-duplicate clusters in the training set
}

// makeSplit reads the corpus and builds the split.
func makeSplit(ctx context.Context, data string, files []corpusFile, seed uint64, limit, folds int) (*split, error) {
	sp := &split{raw: map[string][]byte{}, folds: folds}
	train, test := splitByTime(files)
	read := func(c corpusFile) (dupInfo, error) {
		if err := ctx.Err(); err != nil {
			return dupInfo{}, fmt.Errorf("split interrupted: %w", err)
		}
		raw, err := os.ReadFile(filepath.Join(data, c.group, c.name))
		if err != nil {
			return dupInfo{}, fmt.Errorf("read message: %w", err)
		}
		eml := toEML(raw)
		sp.raw[c.emlName()] = eml
		return dupInfoOf(ctx, eml), nil
	}
	trainInfo := make([]dupInfo, len(train))
	idx := map[bool]*dupIndex{true: newDupIndex(), false: newDupIndex()}
	subjects := map[bool]map[string]bool{true: {}, false: {}}
	for i, c := range train {
		d, err := read(c)
		if err != nil {
			return nil, err
		}
		trainInfo[i] = d
		idx[c.spam].add(d)
		if d.subject != "" {
			subjects[c.spam][d.subject] = true
		}
	}
	// A test message near-duplicating a training message of either class
	// is removed: the model would be scored on what it memorised.
	var kept []corpusFile
	for _, c := range test {
		d, err := read(c)
		if err != nil {
			return nil, err
		}
		if len(idx[true].matches(d)) > 0 || len(idx[false].matches(d)) > 0 {
			sp.dups = append(sp.dups, c)
			delete(sp.raw, c.emlName())
			continue
		}
		if d.subject != "" && subjects[c.spam][d.subject] {
			sp.sameSubject++
		}
		kept = append(kept, c)
	}
	sp.train = train
	sp.test = limitTest(kept, seed, limit)
	clusters := clusterDuplicates(train, trainInfo)
	sp.clusters = len(clusters)
	if folds > 0 {
		dates := make([]time.Time, len(train))
		for i := range trainInfo {
			dates[i] = trainInfo[i].date
		}
		sp.fold = assignFolds(train, clusters, dates, seed, folds)
	}
	return sp, nil
}

func (sp *split) summary() string {
	count := func(list []corpusFile) (spam, ham int) {
		for _, c := range list {
			if c.spam {
				spam++
			} else {
				ham++
			}
		}
		return
	}
	trS, trH := count(sp.train)
	teS, teH := count(sp.test)
	dS, dH := count(sp.dups)
	return fmt.Sprintf("by time: train=spam-1+easy-ham-1+hard-ham-1[first half] (spam=%d ham=%d, %d near-duplicate clusters) "+
		"test=spam-2+easy-ham-2+hard-ham-1[second half] (spam=%d ham=%d); near-duplicates of training mail removed from the test set: %d spam, %d ham "+
		"(same first %d bytes of normalised body text, or word %d-shingle Jaccard >= %.1f); kept test messages sharing a Subject with training mail of their class: %d; cv folds=%d (consecutive periods of the training mail)",
		trS, trH, sp.clusters, teS, teH, dS, dH, prefixLen, shingleSize, jaccardMin, sp.sameSubject, sp.folds)
}

// write writes the split's files under out.
func (sp *split) write(ctx context.Context, data, out string) error {
	var manifest strings.Builder
	dirs := []string{"train", "test"}
	for k := range sp.folds {
		dirs = append(dirs, filepath.Join("cv", fmt.Sprint(k), "train"), filepath.Join("cv", fmt.Sprint(k), "test"))
	}
	for _, set := range dirs {
		for _, class := range []string{"spam", "ham"} {
			// Scorers read whole directories: they must exist even when empty.
			if err := os.MkdirAll(filepath.Join(out, set, class), 0o755); err != nil {
				return fmt.Errorf("create split directory: %w", err)
			}
		}
	}
	write := func(set string, c corpusFile) (string, error) {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("split interrupted: %w", err)
		}
		p := filepath.Join(out, set, c.class(), c.emlName())
		if err := os.WriteFile(p, sp.raw[c.emlName()], 0o644); err != nil {
			return "", fmt.Errorf("write message: %w", err)
		}
		return p, nil
	}
	for i, c := range sp.train {
		p, err := write("train", c)
		if err != nil {
			return err
		}
		fold := "-"
		if sp.fold != nil {
			fold = fmt.Sprint(sp.fold[i])
			for k := range sp.folds {
				set := "train"
				if k == sp.fold[i] {
					set = "test"
				}
				if err := os.Link(p, filepath.Join(out, "cv", fmt.Sprint(k), set, c.class(), c.emlName())); err != nil {
					return fmt.Errorf("link fold message: %w", err)
				}
			}
		}
		fmt.Fprintf(&manifest, "train\t%s\t%s\t%s\t%s\n", c.class(), c.group, c.emlName(), fold)
	}
	for _, c := range sp.test {
		if _, err := write("test", c); err != nil {
			return err
		}
		fmt.Fprintf(&manifest, "test\t%s\t%s\t%s\t-\n", c.class(), c.group, c.emlName())
	}
	for _, c := range sp.dups {
		fmt.Fprintf(&manifest, "removed-near-duplicate\t%s\t%s\t%s\t-\n", c.class(), c.group, c.emlName())
	}
	if err := os.WriteFile(filepath.Join(out, "split.tsv"), []byte(manifest.String()), 0o644); err != nil {
		return fmt.Errorf("write split manifest: %w", err)
	}
	return nil
}
