package app

import (
	"context"
	"net/http"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/dirsync"
	"github.com/mailgate/mailgate/internal/store"
)

// directoryParts are the node's recipient verification pieces: the
// directory synchronisation and the RCPT-time verifier with its callout
// cache.
type directoryParts struct {
	syncer   *dirsync.Syncer
	verifier *dirsync.Verifier
}

// newDirectory builds the recipient verification (after newContinuity:
// it uses the continuity's credentials and the primary routes). On a
// store without directories it stays off: RCPT then knows the user list
// and mailing lists only.
func (a *App) newDirectory(router *delivery.Router) {
	ds, ok := a.Store.(interface {
		dirsync.Store
	})
	if !ok {
		return
	}
	cfg := a.Config.Continuity
	api := &continuity.API{Service: a.Continuity, HTTP: &http.Client{Timeout: 5 * time.Minute},
		Endpoints: continuity.Endpoints{GraphURL: cfg.GraphURL, GraphLoginURL: cfg.GraphLoginURL, GmailURL: cfg.GmailURL, GoogleTokenURL: cfg.GoogleTokenURL,
			GoogleAdminURL: cfg.GoogleAdminURL}}
	a.dir.syncer = &dirsync.Syncer{Store: ds, API: api, Clock: a.Clock, Log: a.Log.With("stage", "dirsync")}
	callout := &dirsync.Callout{Router: router, Probe: a.Delivery.Probe, Clock: a.Clock, Log: a.Log.With("stage", "callout")}
	a.dir.verifier = &dirsync.Verifier{Store: ds, Callout: callout}
}

// DirectorySyncer is the node's directory synchronisation (nil on a store
// without directories); tests point its API at fakes.
func (a *App) DirectorySyncer() *dirsync.Syncer { return a.dir.syncer }

// recipients is the inbound listener's recipient verifier (nil when off).
func (a *App) recipients() interface {
	VerifyRecipient(ctx context.Context, d store.Domain, address string) (bool, error)
} {
	if a.dir.verifier == nil {
		return nil
	}
	return a.dir.verifier
}

// directoryTick synchronises the directories that are due, once across
// nodes, through the administration layer so that each run is audited.
func (a *App) directoryTick(ctx context.Context) error {
	if a.dir.syncer == nil {
		return nil
	}
	_, err := dirsync.Due(ctx, a.dir.syncer.Store, a.Clock.Now(), dirsync.DefaultEvery, func(ctx context.Context, d store.Domain) error {
		actor := admin.Actor{Name: "scheduler", Role: store.RoleOperator, TenantID: d.TenantID, IP: "local"}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		_, err := a.Admin().SyncDirectory(sctx, actor, d.Name, false)
		if err != nil {
			a.Log.Warn("scheduled directory sync", "domain", d.Name, "err", err)
		}
		return err
	})
	return err
}
