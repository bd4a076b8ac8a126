package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// sample is one scored test message.
type sample struct {
	Name  string  `json:"name"` // base name in the split
	Spam  bool    `json:"spam"`
	Score float64 `json:"score"`
}

// result is what a score-* command writes for the report.
type result struct {
	Engine string `json:"engine"`
	// Threshold is the engine's own spam threshold (score >= Threshold is
	// spam), ThresholdNote says where it came from.
	Threshold     float64            `json:"threshold"`
	ThresholdNote string             `json:"threshold_note"`
	Unit          string             `json:"unit"`
	Messages      int                `json:"messages"` // test messages offered
	Errors        int                `json:"errors"`   // messages without a score
	FirstError    string             `json:"first_error,omitempty"`
	CPUSeconds    float64            `json:"cpu_seconds"` // engine CPU for all Messages
	CPUParts      map[string]float64 `json:"cpu_parts,omitempty"`
	WallSeconds   float64            `json:"wall_seconds"`
	Samples       []sample           `json:"samples"`
	Notes         []string           `json:"notes,omitempty"`
}

func (r *result) write(path string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

func readResult(path string) (*result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode result %s: %w", path, err)
	}
	return &r, nil
}

// testMessage is one file of the test half.
type testMessage struct {
	path string
	spam bool
}

// listTest returns the files of DIR/spam and DIR/ham, sorted by name.
func listTest(dir string) ([]testMessage, error) {
	var out []testMessage
	for _, class := range []string{"spam", "ham"} {
		ents, err := os.ReadDir(filepath.Join(dir, class))
		if err != nil {
			return nil, fmt.Errorf("read test directory: %w", err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() {
				out = append(out, testMessage{filepath.Join(dir, class, e.Name()), class == "spam"})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return filepath.Base(out[i].path) < filepath.Base(out[j].path) })
	if len(out) == 0 {
		return nil, fmt.Errorf("no test messages under %s", dir)
	}
	return out, nil
}

// scoreFunc scores one raw message.
type scoreFunc func(ctx context.Context, msg []byte) (float64, error)

// scoreAll runs score over msgs with conc workers, each message bounded by
// perMsg, and fills r.Samples (in msgs order), r.Errors and r.FirstError.
// Messages are interleaved spam/ham by name order, so a run stopped early
// still covers both classes.
func scoreAll(ctx context.Context, msgs []testMessage, conc int, perMsg time.Duration, score scoreFunc, r *result) {
	type out struct {
		s   float64
		err error
	}
	res := make([]out, len(msgs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				raw, err := os.ReadFile(msgs[i].path)
				if err != nil {
					res[i] = out{err: fmt.Errorf("read message: %w", err)}
					continue
				}
				mctx, cancel := context.WithTimeout(ctx, perMsg)
				s, err := score(mctx, raw)
				cancel()
				res[i] = out{s, err}
			}
		}()
	}
feed:
	for i := range msgs {
		select {
		case next <- i:
		case <-ctx.Done():
			for j := i; j < len(msgs); j++ {
				res[j] = out{err: fmt.Errorf("not scored: %w", ctx.Err())}
			}
			break feed
		}
	}
	close(next)
	wg.Wait()
	r.Messages = len(msgs)
	for i, o := range res {
		if o.err != nil {
			r.Errors++
			if r.FirstError == "" {
				r.FirstError = fmt.Sprintf("%s: %v", filepath.Base(msgs[i].path), o.err)
			}
			continue
		}
		r.Samples = append(r.Samples, sample{Name: filepath.Base(msgs[i].path), Spam: msgs[i].spam, Score: o.s})
	}
}

// scoreDaemon scores the test half against a daemon and measures the CPU of
// its process trees (label -> root PIDs) around the scoring.
//
// When c.warmup is set, c.warmupN of its messages are scored first and not
// counted: a daemon's workers open their Bayes store and fill caches on
// their first messages, which would weigh on short (LIMIT) runs.
// warm scores the warm-up messages (it must not record anything the
// result reports); score scores the test half.
func scoreDaemon(ctx context.Context, r *result, c commonFlags, trees map[string][]int, warm, score scoreFunc) error {
	msgs, err := listTest(c.test)
	if err != nil {
		return err
	}
	if c.warmup != "" && c.warmupN > 0 {
		w, err := listTest(c.warmup)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		w = w[:min(c.warmupN, len(w))]
		var wr result
		scoreAll(ctx, w, c.conc, c.timeout, warm, &wr)
		if wr.Errors == len(w) {
			return fmt.Errorf("warm-up: every message failed, first: %s", wr.FirstError)
		}
	}
	meter := newCPUMeter(c.hz, trees)
	if err := meter.Start(); err != nil {
		return fmt.Errorf("cpu before scoring: %w", err)
	}
	began := time.Now()
	scoreAll(ctx, msgs, c.conc, c.timeout, score, r)
	r.WallSeconds = time.Since(began).Seconds()
	parts, err := meter.Stop()
	if err != nil {
		return fmt.Errorf("cpu after scoring: %w", err)
	}
	r.CPUParts = parts
	for _, v := range parts {
		r.CPUSeconds += v
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("scoring interrupted: %w", err)
	}
	return nil
}

// commonFlags are shared by the score-* commands.
type commonFlags struct {
	test, out string
	warmup    string
	warmupN   int
	conc      int
	timeout   time.Duration
	hz        int64
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.test, "test", "", "test directory (holds spam/ and ham/)")
	fs.StringVar(&c.out, "out", "", "result JSON file")
	fs.StringVar(&c.warmup, "warmup", "", "directory (spam/ and ham/) with messages to score, uncounted, before measuring")
	fs.IntVar(&c.warmupN, "warmup-n", 6, "how many warm-up messages")
	fs.IntVar(&c.conc, "conc", 2, "concurrent requests")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "limit per message")
	fs.Int64Var(&c.hz, "hz", 100, "clock ticks per second (getconf CLK_TCK)")
}

func (c *commonFlags) check() error {
	if c.test == "" || c.out == "" || c.conc <= 0 || c.hz <= 0 {
		return fmt.Errorf("need -test, -out, -conc > 0 and -hz > 0")
	}
	return nil
}
