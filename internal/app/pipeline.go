package app

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/internal/inbound"
	"github.com/mailgate/mailgate/internal/policy"
)

// newPipeline builds the inbound pipeline: the checks in their merge order.
func (a *App) newPipeline() *inbound.Pipeline {
	return &inbound.Pipeline{
		Store: a.Store, Spool: a.Spool, Quarantine: a.QSpool, Queue: a.Queue,
		Runner:   &policy.Runner{Stages: a.stages(), Log: a.Log.With("stage", "policy")},
		Hostname: a.Config.Hostname, Clock: a.Clock, Log: a.Log.With("stage", "inbound"),
	}
}

// stages lists the body checks in the order their findings merge.
func (a *App) stages() []policy.Stage {
	return nil
}

// startMaintenance runs periodic jobs: quarantine retention.
func (a *App) startMaintenance() {
	ctx, cancel := context.WithCancel(context.Background())
	a.stopMaint = cancel
	go func() {
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			if n, err := a.Quarantine.Purge(ctx); err != nil && ctx.Err() == nil {
				a.Log.Error("quarantine purge", "err", err)
			} else if n > 0 {
				a.Log.Info("quarantine purge", "deleted", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
