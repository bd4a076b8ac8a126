package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/scan/spam"
)

// example is one parsed corpus message's training example.
type example struct {
	file corpusFile
	ex   spam.Example
}

// examplesOf parses files (raw corpus messages, or .eml already) and
// returns their training examples in the same order, using every core.
func examplesOf(ctx context.Context, files []corpusFile, read func(corpusFile) ([]byte, error)) ([]example, error) {
	out := make([]example, len(files))
	errs := make([]error, len(files))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				raw, err := read(files[i])
				if err != nil {
					errs[i] = err
					continue
				}
				msg, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
				if err != nil {
					errs[i] = fmt.Errorf("%s/%s: %w", files[i].group, files[i].name, err)
					continue
				}
				label := spam.LabelHam
				if files[i].spam {
					label = spam.LabelSpam
				}
				out[i] = example{files[i], spam.NewExample(msg, label)}
			}
		})
	}
	for i := range files {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// cmdBuildModel builds the shipped model from the whole corpus: every
// message (spam.NewExample) learned as "mailgate spam train --global" of a
// fresh install without a shipped model would (counts and linear weights,
// spam.Classifier.Learn), tokens seen in fewer than -min-count messages
// left out, written with spam.EncodeModel.
func cmdBuildModel(ctx context.Context, fs *flag.FlagSet, args []string) error {
	data := fs.String("corpus", "", "corpus data directory (holds easy-ham-1, spam-1, ...)")
	out := fs.String("out", "", "model file to write")
	minCount := fs.Int64("min-count", 2, "leave out tokens seen in fewer messages")
	source := fs.String("source", "", "what the corpus is, for the model's header")
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
	exs, err := examplesOf(ctx, files, func(c corpusFile) ([]byte, error) {
		raw, err := os.ReadFile(filepath.Join(*data, c.group, c.name))
		return toEML(raw), err
	})
	if err != nil {
		return err
	}
	var list []spam.Example
	for _, e := range exs {
		list = append(list, e.ex)
	}
	st := spam.NewMemoryStore()
	if _, err := spam.NewClassifier(st, spam.DefaultParams(), spam.Options{}).Learn(ctx, spam.GlobalModel, list); err != nil {
		return err
	}
	m := spam.NewModel()
	info, err := st.LoadModel(ctx, spam.GlobalModel, func(t string, c spam.TokenCount) { m.Tokens[t] = c }, nil)
	if err != nil {
		return err
	}
	m.Spam, m.Ham = info.Spam, info.Ham
	all := len(m.Tokens)
	for t, c := range m.Tokens {
		if c.Spam+c.Ham < *minCount {
			delete(m.Tokens, t)
		}
	}
	src := fmt.Sprintf("%s: %d spam, %d ham messages; %d of %d tokens (those in at least %d messages)",
		*source, m.Spam, m.Ham, len(m.Tokens), all, *minCount)
	var buf bytes.Buffer
	if err := spam.EncodeModel(&buf, m, spam.FeatureVersion, src); err != nil {
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	fmt.Printf("%s; %d bytes\n", src, buf.Len())
	return nil
}
