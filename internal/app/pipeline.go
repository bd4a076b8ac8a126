package app

import (
	"bytes"
	"context"
	"io"
	"time"

	"github.com/mailgate/mailgate/internal/inbound"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/rewrite"
	"github.com/mailgate/mailgate/internal/scan/spam"
	"github.com/mailgate/mailgate/internal/store"
)

// stripNotice replaces a removed attachment.
func stripNotice(filename string) string {
	return "mailgate removed the attachment \"" + filename + "\" because it contained a virus or could not be checked.\r\n" +
		"添付ファイル「" + filename + "」はウイルスを含むか検査できなかったため、mailgate が削除しました。\r\n"
}

// newPipeline builds the inbound pipeline: the checks in their merge order.
func (a *App) newPipeline(stages []policy.Stage) *inbound.Pipeline {
	configured := stages == nil // tests that bring their own checks control everything
	if configured {
		stages = a.stages()
	}
	notifier := &inbound.VirusNotifier{Hostname: a.Config.Hostname, Now: a.Clock.Now,
		Submit: func(ctx context.Context, m store.Message, rcpts []string, body []byte, why string) (string, error) {
			return a.Queue.Submit(ctx, m, rcpts, bytes.NewReader(body), why)
		}}
	var post []inbound.PostStage
	for _, c := range a.Config.Checks.Enabled {
		if c == "spam" && configured {
			post = append(post, spam.Post{})
		}
	}
	return &inbound.Pipeline{
		Quota:        a.Quarantine,
		AfterVerdict: notifier.Notify,
		Intercept:    a.spamFeedback,
		Post:         post,
		Store:        a.Store, Spool: queueSpool(a.Spool, a.Store), Quarantine: a.QSpool, Queue: a.Queue,
		Runner:   &policy.Runner{Stages: stages, Budget: a.Config.Checks.ScanBudget(), Log: a.Log.With("stage", "policy"), Observer: a.metrics},
		Rewrite:  rewriteCopy,
		Seal:     a.arcSealer(),
		Hostname: a.Config.Hostname, Clock: a.Clock, Log: a.Log.With("stage", "inbound"),
	}
}

// rewriteCopy writes a recipient's modified copy (Subject tag, banner,
// removed parts) from the verdict.
func rewriteCopy(ctx context.Context, w io.Writer, r io.Reader, v *policy.Verdict, remove []string) error {
	return rewrite.Apply(ctx, w, r, rewrite.Spec{SubjectTag: v.TagText, Banner: v.Banner, StripParts: v.Strip, StripNotice: stripNotice, RemoveHeaders: remove})
}

// startMaintenance runs periodic housekeeping: expired console sessions,
// full throttle buckets, report counters past their retention and expired
// attachment links with their files. Every
// node runs it: each job is a delete by a time bound, so running it twice
// or on several nodes at once changes nothing more. (The quarantine's jobs run in the
// lifecycle.)
func (a *App) startMaintenance() {
	ctx, cancel := context.WithCancel(context.Background())
	a.stopMaint = cancel
	go func() {
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			now := a.Clock.Now()
			if _, err := a.Store.PurgeSessions(ctx, now); err != nil && ctx.Err() == nil {
				a.Log.Error("session purge", "err", err)
			}
			if _, err := a.Store.PurgeThrottle(ctx, now); err != nil && ctx.Err() == nil {
				a.Log.Error("throttle purge", "err", err)
			}
			months := a.Config.HTTP.ReportMonths
			if months < 2 {
				months = 2 // the previous month and this one are always available
			}
			local := now.In(a.Zone())
			before := time.Date(local.Year(), local.Month()-time.Month(months-1), 1, 0, 0, 0, 0, local.Location())
			if _, err := a.Store.PurgeReports(ctx, before.Format("2006-01-02")); err != nil && ctx.Err() == nil {
				a.Log.Error("report purge", "err", err)
			}
			a.sweepLinks(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
