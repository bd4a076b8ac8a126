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

// rankKey orders messages for the split: SHA-256 of "seed/group/name". It
// depends on nothing but the seed and the file's identity, so the split is
// the same on every machine, Go version and directory listing order.
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

// splitCorpus splits files into a training and a test half, stratified by
// corpus group (and so by spam/ham): within each group, messages are
// ordered by rankKey and the first floor(n/2) train, the rest test. With
// limit > 0 the test half is cut to a subset of about limit messages that
// keeps each group's share (largest remainder), taking each group's first
// messages in rank order; the training half is never cut.
func splitCorpus(files []corpusFile, seed uint64, limit int) (train, test []corpusFile) {
	byGroup := map[string][]corpusFile{}
	var groups []string
	for _, f := range files {
		if _, ok := byGroup[f.group]; !ok {
			groups = append(groups, f.group)
		}
		byGroup[f.group] = append(byGroup[f.group], f)
	}
	sort.Strings(groups)
	testBy := map[string][]corpusFile{}
	total := 0
	for _, g := range groups {
		fs := byGroup[g]
		keys := make(map[string][32]byte, len(fs))
		for _, f := range fs {
			keys[f.name] = rankKey(seed, f)
		}
		sort.Slice(fs, func(i, j int) bool {
			a, b := keys[fs[i].name], keys[fs[j].name]
			return bytes.Compare(a[:], b[:]) < 0
		})
		half := len(fs) / 2
		train = append(train, fs[:half]...)
		testBy[g] = fs[half:]
		total += len(fs) - half
	}
	if limit <= 0 || limit >= total {
		for _, g := range groups {
			test = append(test, testBy[g]...)
		}
		return train, test
	}
	// Largest-remainder apportionment of limit over the groups.
	take := map[string]int{}
	type rem struct {
		group string
		frac  float64
	}
	var rems []rem
	given := 0
	for _, g := range groups {
		exact := float64(limit) * float64(len(testBy[g])) / float64(total)
		take[g] = int(exact)
		given += take[g]
		rems = append(rems, rem{g, exact - float64(int(exact))})
	}
	sort.SliceStable(rems, func(i, j int) bool { return rems[i].frac > rems[j].frac })
	for i := 0; given < limit; i++ {
		take[rems[i%len(rems)].group]++
		given++
	}
	for _, g := range groups {
		test = append(test, testBy[g][:take[g]]...)
	}
	return train, test
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

// cmdSplit writes OUT/train/{spam,ham} and OUT/test/{spam,ham} plus
// OUT/split.tsv (set, class, group, file) listing every message.
func cmdSplit(ctx context.Context, fs *flag.FlagSet, args []string) error {
	data := fs.String("corpus", "", "corpus data directory (holds easy-ham-1, spam-1, ...)")
	out := fs.String("out", "", "output directory (created)")
	seed := fs.Uint64("seed", 1, "split seed")
	limit := fs.Int("limit", 0, "cut the test half to a stratified subset of about this many messages (0: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *out == "" {
		return fmt.Errorf("need -corpus and -out")
	}
	files, err := listCorpus(*data)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no *.txt messages under %s", *data)
	}
	train, test := splitCorpus(files, *seed, *limit)
	var manifest strings.Builder
	write := func(set string, list []corpusFile) (spam, ham int, err error) {
		for _, c := range list {
			if err := ctx.Err(); err != nil {
				return 0, 0, fmt.Errorf("split interrupted: %w", err)
			}
			raw, err := os.ReadFile(filepath.Join(*data, c.group, c.name))
			if err != nil {
				return 0, 0, fmt.Errorf("read message: %w", err)
			}
			dir := filepath.Join(*out, set, c.class())
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return 0, 0, fmt.Errorf("create split directory: %w", err)
			}
			if err := os.WriteFile(filepath.Join(dir, c.emlName()), toEML(raw), 0o644); err != nil {
				return 0, 0, fmt.Errorf("write message: %w", err)
			}
			fmt.Fprintf(&manifest, "%s\t%s\t%s\t%s\n", set, c.class(), c.group, c.emlName())
			if c.spam {
				spam++
			} else {
				ham++
			}
		}
		return spam, ham, nil
	}
	for _, set := range []string{"train", "test"} {
		for _, class := range []string{"spam", "ham"} {
			// Scorers read whole directories: they must exist even when empty.
			if err := os.MkdirAll(filepath.Join(*out, set, class), 0o755); err != nil {
				return fmt.Errorf("create split directory: %w", err)
			}
		}
	}
	trS, trH, err := write("train", train)
	if err != nil {
		return err
	}
	teS, teH, err := write("test", test)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "split.tsv"), []byte(manifest.String()), 0o644); err != nil {
		return fmt.Errorf("write split manifest: %w", err)
	}
	fmt.Printf("corpus=%d train_spam=%d train_ham=%d test_spam=%d test_ham=%d seed=%d\n",
		len(files), trS, trH, teS, teH, *seed)
	return nil
}
