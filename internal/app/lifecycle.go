package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/signedlink"
)

// LifecycleOptions configure the quarantine life cycle jobs.
type LifecycleOptions struct {
	// BaseURL is the console's external root URL; digest links point at
	// BaseURL + "/q/link?t=<token>".
	BaseURL string
	// Zone is the report time zone in which quarantine.digest_hours are
	// read; nil = UTC.
	Zone *time.Location
	// Interval between runs; default 5 minutes. Digests go out at the
	// first run at or after their hour.
	Interval time.Duration
}

// Lifecycle runs the quarantine's scheduled jobs: retention (Purge) and
// digests. Every node runs them, and each effect happens once: a copy is
// deleted by the one node whose conditional state change (held to
// deleted) succeeds, and each digest is claimed per address and hour with
// a compare-and-set on its mark before it is queued.
type Lifecycle struct {
	Manager  *quarantine.Manager
	Digests  *quarantine.Digests
	Log      *slog.Logger
	Interval time.Duration
}

// NewLifecycle builds the jobs for this node, loading (or creating) the
// cluster-wide link signing key from the store.
func (a *App) NewLifecycle(ctx context.Context, o LifecycleOptions) (*Lifecycle, error) {
	key, err := signedlink.LoadKey(ctx, a.Store)
	if err != nil {
		return nil, err
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Minute
	}
	return &Lifecycle{
		Manager:  a.Quarantine,
		Digests:  &quarantine.Digests{Manager: a.Quarantine, BaseURL: o.BaseURL, Key: key, Zone: o.Zone},
		Log:      a.Log.With("stage", "quarantine"),
		Interval: o.Interval,
	}, nil
}

// Tick runs each job once: purge expired copies, then send due digests.
// Errors are logged and returned joined; one job failing does not stop the
// other.
func (l *Lifecycle) Tick(ctx context.Context) error {
	var errs []error
	if n, err := l.Manager.Purge(ctx); err != nil {
		l.Log.Error("quarantine purge", "err", err, "deleted", n)
		errs = append(errs, err)
	} else if n > 0 {
		l.Log.Info("quarantine purge", "deleted", n)
	}
	if n, err := l.Digests.Run(ctx); err != nil {
		l.Log.Error("quarantine digests", "err", err, "sent", n)
		errs = append(errs, err)
	} else if n > 0 {
		l.Log.Info("quarantine digests", "sent", n)
	}
	return errors.Join(errs...)
}

// Run calls Tick at once and then every Interval until ctx ends.
func (l *Lifecycle) Run(ctx context.Context) {
	t := time.NewTicker(l.Interval)
	defer t.Stop()
	for {
		if ctx.Err() == nil {
			l.Tick(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// StartLifecycle builds the jobs and runs them in the background. The
// returned stop ends them and waits until a running Tick has returned;
// call it before the store is closed. They also end when the App closes.
func (a *App) StartLifecycle(ctx context.Context, o LifecycleOptions) (stop func(), err error) {
	l, err := a.NewLifecycle(ctx, o)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		go func() {
			select {
			case <-a.done:
				cancel()
			case <-runCtx.Done():
			}
		}()
		l.Run(runCtx)
	}()
	return func() { cancel(); <-done }, nil
}
