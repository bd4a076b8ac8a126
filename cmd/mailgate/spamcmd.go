package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/spam"
	"github.com/mailgate/mailgate/internal/store"
)

func spamCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "spam", Short: "Train and test the built-in spam classifier"}
	var tenant, spamDir, hamDir string
	var global bool
	train := &cobra.Command{Use: "train", Short: "Train from folders (or mbox files) of spam and ham",
		Long: `Train the classifier from labelled mail: each --spam/--ham argument is a directory of
messages (one per file, .eml or raw RFC 822; a leading mbox "From " line is skipped) or an mbox
file. --tenant trains that tenant's model; --global trains the base model every tenant shares.`,
		Args: cobra.NoArgs,
		RunE: g.withApp(func(ctx context.Context, a *app.App, _ []string) error {
			tid, err := spamTenant(ctx, a, tenant, global)
			if err != nil {
				return err
			}
			deltas := map[string]store.TokenCount{}
			var total store.TokenCount
			for _, set := range []struct {
				src  string
				spam bool
			}{{spamDir, true}, {hamDir, false}} {
				if set.src == "" {
					continue
				}
				n, err := eachMessage(set.src, func(name string, raw []byte) error {
					msg, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
					if err != nil {
						return fmt.Errorf("%s: %w", name, err)
					}
					toks, _ := spam.Features(msg, &policy.Envelope{}, a.Clock.Now(), 0)
					for _, t := range toks {
						d := deltas[t]
						if set.spam {
							d.Spam++
						} else {
							d.Ham++
						}
						deltas[t] = d
					}
					return nil
				})
				if err != nil {
					return err
				}
				if set.spam {
					total.Spam += int64(n)
				} else {
					total.Ham += int64(n)
				}
			}
			// One commit for the whole training set.
			if err := a.Admin().TrainSpam(ctx, operator().In(tid), deltas, total); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "trained %d spam and %d ham messages (%d distinct tokens)\n", total.Spam, total.Ham, len(deltas))
			return nil
		})}
	train.Flags().StringVar(&tenant, "tenant", "", "tenant whose model to train")
	train.Flags().BoolVar(&global, "global", false, "train the global base model")
	train.Flags().StringVar(&spamDir, "spam", "", "directory or mbox of spam")
	train.Flags().StringVar(&hamDir, "ham", "", "directory or mbox of ham")
	c.AddCommand(train)

	var stenant string
	var verbose bool
	score := &cobra.Command{Use: "score PATH...", Short: "Print the spam score (0–100) of each message: path<TAB>score",
		Long: `Score messages as the inbound pipeline would from their content alone (classifier and header
heuristics; no SPF/DKIM/DNS, since the messages are not arriving now). PATH is a file, a
directory of messages or an mbox file.`,
		Args: cobra.MinimumNArgs(1),
		RunE: g.withApp(func(ctx context.Context, a *app.App, args []string) error {
			t, err := tenantOf(ctx, a, stenant)
			if err != nil {
				return err
			}
			chk := &spam.Check{Classifier: a.SpamClassifier(), Now: a.Clock.Now}
			w := bufio.NewWriter(g.stdout)
			defer w.Flush()
			for _, p := range args {
				_, err := eachMessage(p, func(name string, raw []byte) error {
					m := &policy.Message{Env: &policy.Envelope{TenantID: t.ID, ClientIP: netip.IPv4Unspecified()},
						Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }}
					ev, err := chk.Evaluate(ctx, m)
					if err != nil {
						return fmt.Errorf("%s: %w", name, err)
					}
					pct, syms := spam.Combine(ev.Findings())
					fmt.Fprintf(w, "%s\t%.2f", name, pct)
					if verbose {
						fmt.Fprintf(w, "\t%s", strings.Join(syms, " "))
					}
					fmt.Fprintln(w)
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})}
	score.Flags().StringVar(&stenant, "tenant", "", "tenant whose model scores")
	score.Flags().BoolVarP(&verbose, "verbose", "v", false, "also print the contributing symbols")
	score.MarkFlagRequired("tenant")
	c.AddCommand(score)

	var ftenant, qid, file string
	var asSpam, asHam bool
	feedback := &cobra.Command{Use: "feedback", Short: `Report a message as "spam" or "not spam": retrains the tenant's model`,
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
	feedback.Flags().StringVar(&ftenant, "tenant", "", "tenant (with --file)")
	feedback.Flags().StringVar(&qid, "quarantine", "", "quarantined message ID")
	feedback.Flags().StringVar(&file, "file", "", "message file")
	feedback.Flags().BoolVar(&asSpam, "spam", false, "it is spam")
	feedback.Flags().BoolVar(&asHam, "ham", false, "it is not spam")
	c.AddCommand(feedback)
	return c
}

func spamTenant(ctx context.Context, a *app.App, tenant string, global bool) (int64, error) {
	if global {
		if tenant != "" {
			return 0, fmt.Errorf("give --tenant or --global, not both")
		}
		return spam.GlobalModel, nil
	}
	if tenant == "" {
		return 0, fmt.Errorf("give --tenant T or --global")
	}
	t, err := tenantOf(ctx, a, tenant)
	return t.ID, err
}

// eachMessage calls fn for every message in a file, a directory of files, or
// an mbox file, and returns how many it found.
func eachMessage(path string, fn func(name string, raw []byte) error) (int, error) {
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
		n := 0
		for _, e := range ents {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			k, err := eachMessage(filepath.Join(path, e.Name()), fn)
			if err != nil {
				return n, err
			}
			n += k
		}
		return n, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	msgs := splitMbox(raw)
	for i, m := range msgs {
		name := path
		if len(msgs) > 1 {
			name = fmt.Sprintf("%s#%d", path, i+1)
		}
		if err := fn(name, m); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
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
