package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/spam"
)

func spamCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "spam", Short: "Train, test and inspect the built-in spam classifier"}
	c.AddCommand(spamTrainCmd(g), spamUntrainCmd(g), spamScoreCmd(g), spamEvalCmd(g), spamStatsCmd(g), spamResetCmd(g), spamFeedbackCmd(g))
	return c
}

// modelFlags choose the stored model a command acts on.
type modelFlags struct {
	tenant string
	global bool
}

func (f *modelFlags) register(c *cobra.Command, what string) {
	c.Flags().StringVar(&f.tenant, "tenant", "", "tenant whose model to "+what)
	c.Flags().BoolVar(&f.global, "global", false, "the global model every tenant's scores include")
}

func (f *modelFlags) id(ctx context.Context, a *app.App) (int64, error) {
	if f.global {
		if f.tenant != "" {
			return 0, fmt.Errorf("give --tenant or --global, not both")
		}
		return spam.GlobalModel, nil
	}
	if f.tenant == "" {
		return 0, fmt.Errorf("give --tenant T or --global")
	}
	t, err := tenantOf(ctx, a, f.tenant)
	return t.ID, err
}

func modelName(id int64, tenant string) string {
	if id == spam.GlobalModel {
		return "the global model"
	}
	return "tenant " + tenant + "'s model"
}

func spamTrainCmd(g *globals) *cobra.Command {
	var mf modelFlags
	var spamSrc, hamSrc []string
	var noBuiltin bool
	c := &cobra.Command{Use: "train", Short: "Train from folders (or mbox files) of spam and ham",
		Long: `Train the classifier from labelled mail: each --spam/--ham argument is a directory of
messages (one per file, .eml or raw RFC 822; a leading mbox "From " line is skipped) or an mbox
file. --tenant trains that tenant's model; --global trains the model every tenant's scores include
(the same messages give the same scores either way). A message already trained with the same
label is not counted again; one trained with the other label is moved. Files that cannot be read
as mail are reported and skipped. The whole set is one commit. The linear model learns what the
models under the one trained (the shipped one, the global one) miss; --no-builtin trains as if
there were no shipped model, to measure a site's own training alone with "spam score --no-builtin".`,
		Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			id, err := mf.id(ctx, a)
			if err != nil {
				return err
			}
			var exs []spam.Example
			n := map[string]int{}
			skipped := 0
			for _, set := range []struct {
				srcs  []string
				label string
			}{{spamSrc, spam.LabelSpam}, {hamSrc, spam.LabelHam}} {
				for _, src := range set.srcs {
					k, err := eachMessage(ctx, src, g.stderr, func(name string, msg *mailtext.Message) error {
						exs = append(exs, spam.NewExample(msg, set.label))
						n[set.label]++
						return nil
					})
					skipped += k
					if err != nil {
						return err
					}
				}
			}
			if len(exs) == 0 {
				return fmt.Errorf("nothing to train: give --spam and/or --ham with messages")
			}
			var st spam.LearnStats
			err = a.Admin().ChangeSpamModel(ctx, operator().In(id), "train", func(ctx context.Context) (string, error) {
				var err error
				cl := a.SpamClassifier()
				if noBuiltin {
					cl = a.NewSpamClassifier(false)
				}
				st, err = cl.Learn(ctx, id, exs)
				return fmt.Sprintf("%d spam, %d ham: %s", n[spam.LabelSpam], n[spam.LabelHam], st), err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "trained %d spam and %d ham messages into %s: %s", n[spam.LabelSpam], n[spam.LabelHam], modelName(id, mf.tenant), st)
			if skipped > 0 {
				fmt.Fprintf(g.stdout, "; %d files skipped", skipped)
			}
			fmt.Fprintln(g.stdout)
			return nil
		})}
	mf.register(c, "train")
	c.Flags().StringArrayVar(&spamSrc, "spam", nil, "directory or mbox of spam (repeatable)")
	c.Flags().StringArrayVar(&hamSrc, "ham", nil, "directory or mbox of ham (repeatable)")
	c.Flags().BoolVar(&noBuiltin, "no-builtin", false, "train as if there were no shipped model")
	return c
}

func spamUntrainCmd(g *globals) *cobra.Command {
	var mf modelFlags
	c := &cobra.Command{Use: "untrain PATH...", Short: "Forget what training the given messages taught a model",
		Long: `Remove the given messages (files, directories of messages or mbox files) from a model, whichever
label they were trained with; messages never trained change nothing. Counts are recomputed from
the messages given, so give the copies that were trained.`,
		Args: cobra.MinimumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			id, err := mf.id(ctx, a)
			if err != nil {
				return err
			}
			var exs []spam.Example
			for _, p := range args {
				if _, err := eachMessage(ctx, p, g.stderr, func(_ string, msg *mailtext.Message) error {
					exs = append(exs, spam.NewExample(msg, ""))
					return nil
				}); err != nil {
					return err
				}
			}
			var st spam.LearnStats
			err = a.Admin().ChangeSpamModel(ctx, operator().In(id), "untrain", func(ctx context.Context) (string, error) {
				var err error
				st, err = a.SpamClassifier().Learn(ctx, id, exs)
				return fmt.Sprintf("%d messages: %d forgotten", len(exs), st.Forgotten), err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%d messages: %d forgotten from %s, %d were not trained\n", len(exs), st.Forgotten, modelName(id, mf.tenant), st.Unchanged)
			return nil
		})}
	mf.register(c, "remove them from")
	return c
}

// scorer scores messages as the inbound pipeline's spam check would from
// their content alone.
type scorer struct {
	chk    *spam.Check
	tenant int64
}

func newScorer(ctx context.Context, a *app.App, tenant string, noBuiltin bool) (*scorer, error) {
	var tid int64
	if tenant != "" {
		t, err := tenantOf(ctx, a, tenant)
		if err != nil {
			return nil, err
		}
		tid = t.ID
	}
	cl := a.SpamClassifier()
	if noBuiltin {
		cl = a.NewSpamClassifier(false)
	}
	return &scorer{chk: &spam.Check{Classifier: cl}, tenant: tid}, nil
}

// score returns the percentage and the evidence behind it. The message's
// own arrival time stands for "now", so an old message is judged as it
// was when it arrived.
func (s *scorer) score(ctx context.Context, msg *mailtext.Message) (float64, spam.Evidence, error) {
	at := spam.MessageTime(msg, time.Now())
	chk := *s.chk
	chk.Now = func() time.Time { return at }
	ev, err := chk.EvaluateParsed(ctx, msg, &policy.Envelope{TenantID: s.tenant, ClientIP: netip.IPv4Unspecified()})
	if err != nil {
		return 0, ev, err
	}
	pct, _ := spam.Combine(ev.Findings())
	return pct, ev, nil
}

func spamScoreCmd(g *globals) *cobra.Command {
	var tenant string
	var verbose, noBuiltin bool
	c := &cobra.Command{Use: "score PATH...", Short: "Print the spam score (0–100) of each message: path<TAB>score",
		Long: `Score messages as the inbound pipeline would from their content alone (classifier and rules; no
SPF/DKIM/DNS, since the messages are not arriving now). PATH is a file, a directory of messages or
an mbox file. Without --tenant the shipped and global models score. -v also prints every rule with
its points, the classifier's verdict and its strongest tokens. Files that cannot be read as mail
are reported and skipped.`,
		Args: cobra.MinimumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			sc, err := newScorer(ctx, a, tenant, noBuiltin)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(g.stdout)
			defer w.Flush()
			for _, p := range args {
				_, err := eachMessage(ctx, p, g.stderr, func(name string, msg *mailtext.Message) error {
					pct, ev, err := sc.score(ctx, msg)
					if err != nil {
						return fmt.Errorf("%s: %w", name, err)
					}
					fmt.Fprintf(w, "%s\t%.2f\n", name, pct)
					if verbose {
						explain(w, ev)
						explainWeights(ctx, w, sc, ev)
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant whose model scores too (default: the global model only)")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every rule's points and the strongest tokens")
	c.Flags().BoolVar(&noBuiltin, "no-builtin", false, "leave the shipped model out (score with the site's own training only)")
	return c
}

// explain writes the evidence behind a score, indented under its line.
func explain(w io.Writer, ev spam.Evidence) {
	r := ev.Result
	if r.Trained {
		fmt.Fprintf(w, "  classifier: %.4f, log-odds %.2f (counting %.2f, linear margin %.3f; %+.2f points", r.Prob, r.Logit, r.Bayes, r.Margin, r.Points)
		if r.Coverage < 1 {
			fmt.Fprintf(w, ": it reads %.0f%% of the text", 100*r.Coverage)
		}
		if r.Label != "" {
			fmt.Fprintf(w, ": this message was trained as %s", r.Label)
		}
		fmt.Fprint(w, ")")
	} else {
		fmt.Fprint(w, "  classifier: no trained model")
	}
	if len(r.Neutral) > 0 {
		fmt.Fprintf(w, "; words neutral for want of training in: %s", strings.Join(r.Neutral, ", "))
	}
	fmt.Fprintln(w)
	for _, rule := range ev.Rules {
		how := "learned feature"
		if rule.Fixed || !r.Trained {
			how = fmt.Sprintf("%+.2f points", rule.Points)
		}
		fmt.Fprintf(w, "  rule %s (%s): %s\n", rule.Symbol, how, rule.Reason)
	}
	var spammy, hammy []spam.TokenProb
	for _, t := range r.Top {
		if t.Prob >= 0.5 {
			spammy = append(spammy, t)
		} else {
			hammy = append(hammy, t)
		}
	}
	for _, side := range []struct {
		name string
		toks []spam.TokenProb
	}{{"spam", spammy}, {"ham", hammy}} {
		if len(side.toks) == 0 {
			continue
		}
		var parts []string
		for _, t := range side.toks[:min(10, len(side.toks))] {
			parts = append(parts, fmt.Sprintf("%q=%.3f (%.0f spam, %.0f ham)", t.Token, t.Prob, t.Spam, t.Ham))
		}
		fmt.Fprintf(w, "  strongest %s tokens: %s\n", side.name, strings.Join(parts, " "))
	}
}

// explainWeights writes the message's features the linear model weighs
// most, each way.
func explainWeights(ctx context.Context, w io.Writer, s *scorer, ev spam.Evidence) {
	ws, err := s.chk.Classifier.LinearWeights(ctx, s.tenant, ev.Tokens)
	if err != nil || len(ws) == 0 {
		return
	}
	var spammy, hammy []string
	for _, t := range ws {
		switch {
		case t.Weight > 0 && len(spammy) < 10:
			spammy = append(spammy, fmt.Sprintf("%q=%+.3f", t.Token, t.Weight))
		case t.Weight < 0 && len(hammy) < 10:
			hammy = append(hammy, fmt.Sprintf("%q=%+.3f", t.Token, t.Weight))
		}
	}
	if len(spammy) > 0 {
		fmt.Fprintf(w, "  strongest spam weights: %s\n", strings.Join(spammy, " "))
	}
	if len(hammy) > 0 {
		fmt.Fprintf(w, "  strongest ham weights: %s\n", strings.Join(hammy, " "))
	}
}

// evalReport is what "spam eval" prints.
type evalReport struct {
	Spam    int          `json:"spam"`
	Ham     int          `json:"ham"`
	Skipped int          `json:"skipped"`
	Default spam.Rates   `json:"default_threshold"`
	AtFP    []evalAtRate `json:"at_fp_rate"`
}

type evalAtRate struct {
	MaxFPRate float64 `json:"max_fp_rate"`
	Found     bool    `json:"found"`
	spam.Rates
}

func spamEvalCmd(g *globals) *cobra.Command {
	var tenant string
	var spamSrc, hamSrc []string
	var noBuiltin, asJSON bool
	c := &cobra.Command{Use: "eval --spam DIR --ham DIR", Short: "Measure false positives and spam recall on labelled mail",
		Long: `Score labelled mail (directories or mbox files, as for train) and print the false-positive rate
and the spam recall at the default tag threshold and at the thresholds that keep false positives
at or below 0.1 %, 0.5 % and 1 %. Measure on mail the model was not trained on. --json prints the
figures as JSON.`,
		Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			if len(spamSrc) == 0 || len(hamSrc) == 0 {
				return fmt.Errorf("give both --spam and --ham")
			}
			sc, err := newScorer(ctx, a, tenant, noBuiltin)
			if err != nil {
				return err
			}
			var rep evalReport
			scores := map[bool][]float64{}
			for _, set := range []struct {
				srcs []string
				spam bool
			}{{spamSrc, true}, {hamSrc, false}} {
				for _, src := range set.srcs {
					k, err := eachMessage(ctx, src, g.stderr, func(name string, msg *mailtext.Message) error {
						pct, _, err := sc.score(ctx, msg)
						if err != nil {
							return fmt.Errorf("%s: %w", name, err)
						}
						scores[set.spam] = append(scores[set.spam], pct)
						return nil
					})
					rep.Skipped += k
					if err != nil {
						return err
					}
				}
			}
			rep.Spam, rep.Ham = len(scores[true]), len(scores[false])
			rep.Default = spam.RatesAt(scores[true], scores[false], spam.DefaultTagAt)
			for _, fp := range []float64{0.001, 0.005, 0.01} {
				r := evalAtRate{MaxFPRate: fp}
				if t, ok := spam.ThresholdFor(scores[true], scores[false], fp); ok {
					r.Found, r.Rates = true, spam.RatesAt(scores[true], scores[false], t)
				}
				rep.AtFP = append(rep.AtFP, r)
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(jsonSafe(rep))
			}
			fmt.Fprintf(g.stdout, "scored %d spam and %d ham messages", rep.Spam, rep.Ham)
			if rep.Skipped > 0 {
				fmt.Fprintf(g.stdout, " (%d files skipped)", rep.Skipped)
			}
			fmt.Fprintln(g.stdout)
			line := func(head string, r spam.Rates) {
				fmt.Fprintf(g.stdout, "%s: false positives %s (%d of %d), spam recall %s (%d of %d)\n",
					head, pctOf(r.FPRate), r.FP, r.Ham, pctOf(r.Recall), r.Caught, r.Spam)
			}
			line(fmt.Sprintf("at the default threshold %.2f%%", spam.DefaultTagAt), rep.Default)
			for _, r := range rep.AtFP {
				if !r.Found {
					fmt.Fprintf(g.stdout, "at most %s false positives: no threshold\n", pctOf(r.MaxFPRate))
					continue
				}
				line(fmt.Sprintf("at most %s false positives: threshold %.2f%%", pctOf(r.MaxFPRate), r.Threshold), r.Rates)
			}
			return nil
		})}
	c.Flags().StringVar(&tenant, "tenant", "", "tenant whose model scores too (default: the global model only)")
	c.Flags().StringArrayVar(&spamSrc, "spam", nil, "directory or mbox of spam (repeatable)")
	c.Flags().StringArrayVar(&hamSrc, "ham", nil, "directory or mbox of ham (repeatable)")
	c.Flags().BoolVar(&noBuiltin, "no-builtin", false, "leave the shipped model out")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func pctOf(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f%%", 100*v)
}

// jsonSafe replaces NaN rates (no spam or no ham given), which JSON
// cannot carry, by -1.
func jsonSafe(r evalReport) evalReport {
	fix := func(x *spam.Rates) {
		if math.IsNaN(x.Recall) {
			x.Recall = -1
		}
		if math.IsNaN(x.FPRate) {
			x.FPRate = -1
		}
	}
	fix(&r.Default)
	for i := range r.AtFP {
		fix(&r.AtFP[i].Rates)
	}
	return r
}

func spamStatsCmd(g *globals) *cobra.Command {
	var mf modelFlags
	c := &cobra.Command{Use: "stats", Short: "Describe the shipped model and a stored model",
		Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			start := time.Now()
			bm, info, err := spam.DecodeBuiltin()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "shipped model: %d spam, %d ham messages, %d tokens, %d bytes compressed, decoded in %v; features v%d (this build: v%d)\n  %s\n",
				bm.Spam, bm.Ham, len(bm.Tokens), info.Bytes, time.Since(start).Round(time.Millisecond), info.FeatureVersion, spam.FeatureVersion, info.Source)
			if !mf.global && mf.tenant == "" {
				mf.global = true
			}
			id, err := mf.id(ctx, a)
			if err != nil {
				return err
			}
			st, err := a.SpamClassifier().Stats(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: %d spam, %d ham messages, %d tokens, %d trained messages remembered, version %d\n",
				modelName(id, mf.tenant), st.Spam, st.Ham, st.Tokens, st.Messages, st.Version)
			return nil
		})}
	mf.register(c, "describe (default: the global model)")
	return c
}

func spamResetCmd(g *globals) *cobra.Command {
	var mf modelFlags
	c := &cobra.Command{Use: "reset", Short: "Empty a stored model (the shipped model stays)",
		Long: `Delete everything a tenant's model (--tenant) or the global model (--global) has learned: token
counts, totals and the list of trained messages. The shipped model is not affected.`,
		Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			id, err := mf.id(ctx, a)
			if err != nil {
				return err
			}
			err = a.Admin().ChangeSpamModel(ctx, operator().In(id), "reset", func(ctx context.Context) (string, error) {
				return "model emptied", a.SpamClassifier().Reset(ctx, id)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "reset %s\n", modelName(id, mf.tenant))
			return nil
		})}
	mf.register(c, "empty")
	return c
}

func spamFeedbackCmd(g *globals) *cobra.Command {
	var ftenant, qid, file string
	var asSpam, asHam bool
	c := &cobra.Command{Use: "feedback", Short: `Report a message as "spam" or "not spam": retrains the tenant's model`,
		Long: `Report a quarantined message (--quarantine ID) or a saved message (--file F) as --spam or --ham.
A quarantined message reported as ham can then be released with "quarantine release".`,
		Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			if asSpam == asHam {
				return fmt.Errorf("say --spam or --ham")
			}
			label := map[bool]string{true: "spam", false: "ham"}[asSpam]
			svc := a.Admin()
			switch {
			case qid != "":
				it, err := svc.QuarantineItem(ctx, operator(), qid)
				if err != nil {
					return err
				}
				if _, err := svc.QuarantineAction(ctx, operator(), qid, "report-"+label, ""); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "learned as %s for tenant %d\n", label, it.TenantID)
				return nil
			case file != "":
				op, t, err := inTenant(ctx, a, ftenant)
				if err != nil {
					return err
				}
				raw, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				if err := svc.LearnMessage(ctx, op, stripMboxLine(raw), asSpam); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "learned as %s for tenant %d\n", label, t.ID)
				return nil
			}
			return fmt.Errorf("give --quarantine ID or --file F (with --tenant)")
		})}
	c.Flags().StringVar(&ftenant, "tenant", "", "tenant (with --file)")
	c.Flags().StringVar(&qid, "quarantine", "", "quarantined message ID")
	c.Flags().StringVar(&file, "file", "", "message file")
	c.Flags().BoolVar(&asSpam, "spam", false, "it is spam")
	c.Flags().BoolVar(&asHam, "ham", false, "it is not spam")
	return c
}

// eachMessage calls fn for every message in a file, a directory of files
// (not recursing into hidden ones), or an mbox file. A file that cannot be
// read or is not a message is reported on errw and skipped; the count of
// those is returned. fn's error stops the walk.
func eachMessage(ctx context.Context, path string, errw io.Writer, fn func(name string, msg *mailtext.Message) error) (int, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return 0, err
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		skipped := 0
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			k, err := eachMessage(ctx, filepath.Join(path, e.Name()), errw, fn)
			skipped += k
			if err != nil {
				return skipped, err
			}
		}
		return skipped, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	skip := func(name string, why error) {
		fmt.Fprintf(errw, "mailgate: skipped %s: %v\n", name, why)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		skip(path, err)
		return 1, nil
	}
	msgs := splitMbox(raw)
	skipped := 0
	for i, m := range msgs {
		name := path
		if len(msgs) > 1 {
			name = fmt.Sprintf("%s#%d", path, i+1)
		}
		msg, err := parseMessage(ctx, m)
		if err != nil {
			skip(name, err)
			skipped++
			continue
		}
		if err := fn(name, msg); err != nil {
			return skipped, err
		}
	}
	return skipped, nil
}

// parseMessage parses raw mail, refusing what is not a message at all
// (empty, or no header field before the body).
func parseMessage(ctx context.Context, raw []byte) (*mailtext.Message, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("empty file")
	}
	msg, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
	if err != nil {
		return nil, err
	}
	if len(msg.Header) == 0 {
		return nil, fmt.Errorf("not a mail message (no header fields)")
	}
	return msg, nil
}

// splitMbox splits an mbox file at "From " lines; a single message with an
// mbox envelope line comes back as one message without that line.
func splitMbox(raw []byte) [][]byte {
	if !bytes.HasPrefix(raw, []byte("From ")) {
		return [][]byte{raw}
	}
	var out [][]byte
	lines := bytes.SplitAfter(raw, []byte("\n"))
	var cur []byte
	for i, l := range lines {
		if bytes.HasPrefix(l, []byte("From ")) && (i == 0 || bytes.Equal(bytes.TrimRight(lines[i-1], "\r\n"), nil)) {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, l...)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func stripMboxLine(raw []byte) []byte {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			return raw[i+1:]
		}
	}
	return raw
}
