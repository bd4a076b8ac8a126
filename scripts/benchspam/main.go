// Command benchspam is the helper of scripts/bench-spam, which compares the
// spam filtering of mailgate, SpamAssassin (spamd) and rspamd on the public
// SpamAssassin corpus. The script installs and starts the peers; this
// program does the parts that are awkward in shell:
//
//	split          reproducible, stratified train/test split of the corpus
//	               into .eml files (CRLF, mbox "From " line removed)
//	dnsstub        loopback UDP DNS responder that answers every query at
//	               once with REFUSED (or NXDOMAIN), so no peer waits on DNS
//	score-spamd    score the test half over the SPAMC protocol
//	score-rspamd   score the test half over rspamd's HTTP /checkv2
//	score-mailgate score the test half with "mailgate spam score"
//	report         thresholds, false-positive rates, recall and CPU table
//
// Every score-* command writes one JSON result file (see result) and
// measures the engine's CPU time: the daemon's process tree from /proc for
// spamd and rspamd, the rusage of the CLI for mailgate.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:])) }

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchspam split|dnsstub|score-spamd|score-rspamd|score-mailgate|report [flags]")
}

func run(args []string) int {
	if len(args) < 1 {
		usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmds := map[string]func(context.Context, *flag.FlagSet, []string) error{
		"split":          cmdSplit,
		"dnsstub":        cmdDNSStub,
		"score-spamd":    cmdScoreSpamd,
		"score-rspamd":   cmdScoreRspamd,
		"score-mailgate": cmdScoreMailgate,
		"report":         cmdReport,
		"ja-corpus":      cmdJACorpus,
		"build-model":    cmdBuildModel,
		"tune":           cmdTune,
	}
	f, ok := cmds[args[0]]
	if !ok {
		usage()
		return 2
	}
	fs := flag.NewFlagSet("benchspam "+args[0], flag.ContinueOnError)
	if err := f(ctx, fs, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(os.Stderr, "benchspam %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
