package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// rates are the outcomes of classifying samples as spam when
// score >= threshold.
type rates struct {
	Spam, Ham int // samples of each class
	TP, FP    int // spam caught, ham flagged
}

func (r rates) fpRate() float64 { return ratio(r.FP, r.Ham) }
func (r rates) recall() float64 { return ratio(r.TP, r.Spam) }

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

func ratesAt(samples []sample, threshold float64) rates {
	var r rates
	for _, s := range samples {
		flagged := s.Score >= threshold
		if s.Spam {
			r.Spam++
			if flagged {
				r.TP++
			}
		} else {
			r.Ham++
			if flagged {
				r.FP++
			}
		}
	}
	return r
}

// bestThreshold returns the smallest threshold t (spam when score >= t)
// whose false-positive rate on samples is at most maxFP. Only scores that
// occur are candidates, so t is always a score some message got; ok is
// false when no threshold qualifies other than one above every score.
// The smallest qualifying threshold maximises recall, since recall and the
// false-positive rate both fall as the threshold rises.
func bestThreshold(samples []sample, maxFP float64) (t float64, ok bool) {
	var ham []float64
	for _, s := range samples {
		if !s.Spam {
			ham = append(ham, s.Score)
		}
	}
	// allowed false positives; the epsilon keeps e.g. 0.001*3000 from
	// rounding down to 2.
	allowed := int(math.Floor(maxFP*float64(len(ham)) + 1e-9))
	if allowed >= len(ham) {
		// Every ham may be flagged: the lowest score of all qualifies.
		if len(samples) == 0 {
			return 0, false
		}
		low := math.Inf(1)
		for _, s := range samples {
			low = math.Min(low, s.Score)
		}
		return low, true
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(ham)))
	// The threshold must lie above the (allowed+1)-th highest ham score.
	bar := ham[allowed]
	t = math.Inf(1)
	for _, s := range samples {
		if s.Score > bar && s.Score < t {
			t = s.Score
		}
	}
	if math.IsInf(t, 1) {
		return 0, false
	}
	return t, true
}

// engineLine is one engine's results: the test set scored by the model
// trained on the training set (res), the training set's cross-validation
// folds, each scored by a model trained on the other folds (cv), and the
// Japanese corpus scored by the first model (ja).
type engineLine struct {
	name   string
	res    *result
	cv     []*result
	ja     *result
	reason string // why the engine could not run (res == nil)
}

func (e engineLine) msPerMsg() float64 {
	if e.res == nil || e.res.Messages == 0 {
		return math.NaN()
	}
	return e.res.CPUSeconds * 1000 / float64(e.res.Messages)
}

// cvSamples pools the folds' samples.
func (e engineLine) cvSamples() []sample {
	var out []sample
	for _, r := range e.cv {
		out = append(out, r.Samples...)
	}
	return out
}

// operatingPoint is the threshold chosen on the training folds: the
// smallest with at most maxFP false positives over the pooled fold scores.
func (e engineLine) operatingPoint(maxFP float64) (float64, bool) {
	if len(e.cv) == 0 {
		return 0, false
	}
	return bestThreshold(e.cvSamples(), maxFP)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", 100*v)
}

func num(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", v)
}

func unitOf(r *result) string {
	if r.Unit == "percent" {
		return "%"
	}
	return ""
}

// writeReport prints the table, the notes, the Japanese line and, as the
// last line, the summary "spam@fp0.1%: ..." whose recall is the test
// set's at the operating point chosen on the training folds.
func writeReport(w io.Writer, lines []engineLine, maxFP float64, header string) {
	if header != "" {
		fmt.Fprintln(w, header)
	}
	fmt.Fprintf(w, "%-13s %11s  %-32s %7s %8s   %-22s %7s %8s   %7s %7s\n",
		"engine", "scored/msgs", "default threshold", "FP%", "recall%",
		fmt.Sprintf("cv thr@FP<=%g%%", 100*maxFP), "FP%", "recall%", "ms/msg", "wall s")
	type sum struct{ recall, ms float64 }
	sums := map[string]sum{}
	for _, e := range lines {
		if e.res == nil {
			fmt.Fprintf(w, "%-13s %11s  %s\n", e.name, "n/a", e.reason)
			sums[e.name] = sum{math.NaN(), math.NaN()}
			continue
		}
		r := e.res
		def := ratesAt(r.Samples, r.Threshold)
		op := "none"
		opR := ratesAt(r.Samples, math.Inf(1))
		recall := math.NaN()
		if t, ok := e.operatingPoint(maxFP); ok {
			op = fmt.Sprintf(">= %.2f%s", t, unitOf(r))
			opR = ratesAt(r.Samples, t)
			recall = opR.recall()
		} else if len(e.cv) > 0 {
			recall = 0
		}
		fmt.Fprintf(w, "%-13s %11s  %-32s %7s %8s   %-22s %7s %8s   %7s %7.1f\n",
			e.name, fmt.Sprintf("%d/%d", len(r.Samples), r.Messages),
			fmt.Sprintf(">= %.2f%s (%s)", r.Threshold, unitOf(r), r.ThresholdNote),
			pct(def.fpRate()), pct(def.recall()), op, pct(opR.fpRate()), pct(recall),
			num(e.msPerMsg()), r.WallSeconds)
		sums[e.name] = sum{recall, e.msPerMsg()}
	}
	fmt.Fprintln(w)
	for _, e := range lines {
		if e.res == nil {
			continue
		}
		r := e.res
		def := ratesAt(r.Samples, r.Threshold)
		fmt.Fprintf(w, "%s: test set %d spam, %d ham; at the default threshold %d ham flagged, %d spam caught",
			e.name, def.Spam, def.Ham, def.FP, def.TP)
		if t, ok := e.operatingPoint(maxFP); ok {
			b := ratesAt(r.Samples, t)
			cvr := ratesAt(e.cvSamples(), t)
			fmt.Fprintf(w, "; at the cv threshold %.2f %d ham flagged, %d spam caught (on the %d folds: %d of %d ham flagged, %d of %d spam caught)",
				t, b.FP, b.TP, len(e.cv), cvr.FP, cvr.Ham, cvr.TP, cvr.Spam)
		}
		if t, ok := bestThreshold(r.Samples, maxFP); ok {
			b := ratesAt(r.Samples, t)
			fmt.Fprintf(w, "; for reference, the threshold chosen on the test set itself would be %.2f: recall %s%% at FP %s%%",
				t, pct(b.recall()), pct(b.fpRate()))
		}
		fmt.Fprintln(w)
		if r.Errors > 0 {
			fmt.Fprintf(w, "  %d messages without a score (first: %s)\n", r.Errors, r.FirstError)
		}
		for _, c := range e.cv {
			if c.Errors > 0 {
				fmt.Fprintf(w, "  cv: %d messages without a score (first: %s)\n", c.Errors, c.FirstError)
			}
		}
		if len(r.CPUParts) > 1 {
			var parts []string
			for k, v := range r.CPUParts {
				parts = append(parts, fmt.Sprintf("%s %.2fs", k, v))
			}
			sort.Strings(parts)
			fmt.Fprintf(w, "  CPU: %s\n", strings.Join(parts, ", "))
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	writeEqualFP(w, lines, maxFP)
	writeBootstrap(w, lines, maxFP, bootstrapRounds, 1)
	// Japanese: the model trained on the (English) training set scores the
	// generated Japanese corpus; its ham is the mail that must not be
	// flagged although no Japanese ham was trained.
	var ja []string
	for _, e := range lines {
		if e.res == nil || e.ja == nil {
			continue
		}
		j := e.ja
		def := ratesAt(j.Samples, e.res.Threshold)
		s := fmt.Sprintf("%s ham FP=%d/%d (%s%%) spam caught=%d/%d (%s%%) at the default threshold", e.name,
			def.FP, def.Ham, pct(def.fpRate()), def.TP, def.Spam, pct(def.recall()))
		if t, ok := e.operatingPoint(maxFP); ok {
			op := ratesAt(j.Samples, t)
			s += fmt.Sprintf(", FP=%d (%s%%) caught=%d (%s%%) at the cv threshold", op.FP, pct(op.fpRate()), op.TP, pct(op.recall()))
		}
		if j.Errors > 0 {
			s += fmt.Sprintf(", %d unscored", j.Errors)
		}
		ja = append(ja, s)
	}
	if len(ja) > 0 {
		fmt.Fprintf(w, "japanese (model trained without Japanese ham): %s\n", strings.Join(ja, " | "))
	}
	var parts []string
	for _, e := range lines {
		s := sums[e.name]
		rec := "n/a"
		if !math.IsNaN(s.recall) {
			rec = pct(s.recall) + "%"
		}
		parts = append(parts, fmt.Sprintf("%s recall=%s ms/msg=%s", e.name, rec, num(s.ms)))
	}
	fmt.Fprintf(w, "spam@fp%g%%: %s\n", 100*maxFP, strings.Join(parts, " | "))
}

// equalFPCounts are the numbers of test ham the equal-false-positive table
// allows flagged, before the counts the engines' operating points reached.
var equalFPCounts = []int{0, 1, 2, 4, 8, 16}

// writeEqualFP prints, for reference only, each engine's best recall on the
// test set when at most k test ham may be flagged, for the counts above and
// each count an engine's operating point reached: engines compared at equal
// false positives. The thresholds behind it are chosen on the test set
// itself, so no engine's figure here is one it would reach in use; the
// operating points above are.
func writeEqualFP(w io.Writer, lines []engineLine, maxFP float64) {
	ran := scored(lines)
	counts := map[int]bool{}
	for _, k := range equalFPCounts {
		counts[k] = true
	}
	for _, e := range ran {
		if t, ok := e.operatingPoint(maxFP); ok {
			counts[ratesAt(e.res.Samples, t).FP] = true
		}
	}
	if len(ran) == 0 {
		return
	}
	ks := make([]int, 0, len(counts))
	for k := range counts {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	ham := ratesAt(ran[0].res.Samples, math.Inf(1)).Ham
	fmt.Fprintln(w, "recall at equal false positives on the test set (reference only: each threshold here is chosen on the test set itself)")
	fmt.Fprintf(w, "%-18s", "ham flagged")
	for _, e := range ran {
		fmt.Fprintf(w, " %13s", e.name)
	}
	fmt.Fprintln(w)
	for _, k := range ks {
		if k > ham {
			continue
		}
		fmt.Fprintf(w, "%-18s", fmt.Sprintf("<= %d (%s%%)", k, pct(ratio(k, ham))))
		for _, e := range ran {
			h := ratesAt(e.res.Samples, math.Inf(1)).Ham
			fmt.Fprintf(w, " %13s", pct(recallAtFP(e.res.Samples, ratio(k, h))))
		}
		fmt.Fprintln(w)
	}
}

// scored are the engines that scored the test set.
func scored(lines []engineLine) []engineLine {
	var out []engineLine
	for _, e := range lines {
		if e.res != nil {
			out = append(out, e)
		}
	}
	return out
}

// bootstrapRounds is how many resamples of the test set writeBootstrap
// draws.
const bootstrapRounds = 1000

// recallAtFP is the best recall over samples with at most maxFP of their
// ham flagged (0 when no threshold allows any spam).
func recallAtFP(samples []sample, maxFP float64) float64 {
	t, ok := bestThreshold(samples, maxFP)
	if !ok {
		return 0
	}
	return ratesAt(samples, t).recall()
}

// bootstrapLevels are the false-positive rates writeBootstrap compares
// the engines at, as multiples of the operating point's maxFP.
var bootstrapLevels = []float64{1, 5, 10}

// writeBootstrap prints how sure the equal-false-positive comparison is:
// the first engine's recall minus each other's at each level (maxFP times
// bootstrapLevels), on the test set and over rounds resamples of it (spam
// and ham drawn separately with replacement, the same messages for every
// engine, each engine's threshold chosen again on each resample), with the
// 95 % interval of the resampled differences. The messages are those every
// engine scored; the seed makes the printed intervals the same on every
// run.
func writeBootstrap(w io.Writer, lines []engineLine, maxFP float64, rounds int, seed uint64) {
	ran := scored(lines)
	if len(ran) < 2 {
		return
	}
	// scores[e][i] is engine e's score of message i; spam[i] its class.
	count := map[string]int{}
	class := map[string]bool{}
	for _, e := range ran {
		for _, s := range e.res.Samples {
			count[s.Name]++
			class[s.Name] = s.Spam
		}
	}
	var names []string
	for n, c := range count {
		if c == len(ran) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	index := make(map[string]int, len(names))
	for i, n := range names {
		index[n] = i
	}
	scores := make([][]float64, len(ran))
	for k, e := range ran {
		scores[k] = make([]float64, len(names))
		for _, s := range e.res.Samples {
			if i, ok := index[s.Name]; ok {
				scores[k][i] = s.Score
			}
		}
	}
	var spamIdx, hamIdx []int
	for i, n := range names {
		if class[n] {
			spamIdx = append(spamIdx, i)
		} else {
			hamIdx = append(hamIdx, i)
		}
	}
	if len(spamIdx) == 0 || len(hamIdx) == 0 {
		return
	}
	// recalls[l][k] is engine k's recall at level l over the picked messages.
	recalls := func(pick []int) [][]float64 {
		out := make([][]float64, len(bootstrapLevels))
		buf := make([]sample, len(pick))
		for l, m := range bootstrapLevels {
			out[l] = make([]float64, len(ran))
			for k := range ran {
				for j, i := range pick {
					buf[j] = sample{Spam: class[names[i]], Score: scores[k][i]}
				}
				out[l][k] = recallAtFP(buf, m*maxFP)
			}
		}
		return out
	}
	all := append(append([]int(nil), spamIdx...), hamIdx...)
	point := recalls(all)
	// diffs[l][k] are the resampled differences engine 0 - engine k.
	diffs := make([][][]float64, len(bootstrapLevels))
	for l := range diffs {
		diffs[l] = make([][]float64, len(ran))
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pick := make([]int, len(all))
	for range rounds {
		for j := range spamIdx {
			pick[j] = spamIdx[rng.IntN(len(spamIdx))]
		}
		for j := range hamIdx {
			pick[len(spamIdx)+j] = hamIdx[rng.IntN(len(hamIdx))]
		}
		r := recalls(pick)
		for l := range r {
			for k := 1; k < len(ran); k++ {
				diffs[l][k] = append(diffs[l][k], r[l][0]-r[l][k])
			}
		}
	}
	fmt.Fprintf(w, "equal false positives on the test set, paired bootstrap (%d resamples, spam and ham drawn separately, thresholds chosen again on each): %s's recall minus each other engine's, with its 95%% interval\n",
		rounds, ran[0].name)
	for l, m := range bootstrapLevels {
		var parts []string
		for k := 1; k < len(ran); k++ {
			d := diffs[l][k]
			sort.Float64s(d)
			lo, hi := d[int(0.025*float64(len(d)))], d[int(0.975*float64(len(d)))-1]
			parts = append(parts, fmt.Sprintf("%s %+.2f (%+.2f to %+.2f)", ran[k].name, 100*(point[l][0]-point[l][k]), 100*lo, 100*hi))
		}
		fmt.Fprintf(w, "  FP <= %g%%: %s\n", 100*m*maxFP, strings.Join(parts, ", "))
	}
}

// cmdReport reads DIR/<engine>.json (the test set), DIR/<engine>-cv-<k>.json
// (the folds) and DIR/<engine>-ja.json (the Japanese corpus) for each
// engine, or DIR/<engine>.reason saying why there are none, and prints the
// report.
func cmdReport(_ context.Context, fs *flag.FlagSet, args []string) error {
	dir := fs.String("dir", "", "directory with the result files")
	engines := fs.String("engines", "mailgate,spamassassin,rspamd", "engines, in report order")
	maxFP := fs.Float64("max-fp", 0.001, "false-positive rate of the operating point chosen on the training folds")
	header := fs.String("header", "", "line printed above the table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("need -dir")
	}
	var lines []engineLine
	for _, name := range strings.Split(*engines, ",") {
		e := engineLine{name: name}
		r, err := readResult(filepath.Join(*dir, name+".json"))
		switch {
		case err == nil:
			e.res = r
		case errors.Is(err, os.ErrNotExist):
			e.reason = "did not run"
			if b, err := os.ReadFile(filepath.Join(*dir, name+".reason")); err == nil {
				e.reason = strings.TrimSpace(string(b))
			}
		default:
			return err
		}
		if e.res != nil {
			for k := 0; ; k++ {
				c, err := readResult(filepath.Join(*dir, fmt.Sprintf("%s-cv-%d.json", name, k)))
				if errors.Is(err, os.ErrNotExist) {
					break
				}
				if err != nil {
					return err
				}
				e.cv = append(e.cv, c)
			}
			if j, err := readResult(filepath.Join(*dir, name+"-ja.json")); err == nil {
				e.ja = j
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		lines = append(lines, e)
	}
	writeReport(os.Stdout, lines, *maxFP, *header)
	return nil
}
