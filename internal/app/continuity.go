package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/smtpin"
	"github.com/mailgate/mailgate/internal/store"
)

// MailboxStore is the emergency mailbox store as the node uses it: the
// delivery target of domains in emergency mode, and what the continuity
// switch, hand-back and console need of it.
type MailboxStore interface {
	delivery.Mailbox
	continuity.Mailboxes
}

// continuityParts are the node's mail-continuity pieces.
type continuityParts struct {
	router   *delivery.Router
	handback *continuity.Handback
	prober   *continuity.Prober
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// deliverer is what the queue delivers through: SMTP, or the mailboxes
// for domains in emergency mode.
func (a *App) deliverer(dl *delivery.Client, mb MailboxStore) *delivery.Dispatcher {
	d := &delivery.Dispatcher{SMTP: dl, Log: a.Log.With("stage", "delivery")}
	if mb != nil {
		d.Mailbox = mb
	}
	return d
}

// newContinuity builds the continuity service (Open: the CLI uses it too).
func (a *App) newContinuity(router *delivery.Router, mb MailboxStore) {
	a.Continuity = &continuity.Service{Store: a.Store, Queue: a.Queue, Hostname: a.Config.Hostname, Clock: a.Clock,
		Log: a.Log.With("stage", "continuity")}
	if mb != nil {
		a.Continuity.Mailboxes = mb
	}
	cfg := a.Config.Continuity
	a.cont.router = router
	a.cont.handback = &continuity.Handback{Service: a.Continuity, Router: router, SMTP: a.Delivery, Node: a.Config.NodeID,
		HTTP: &http.Client{Timeout: 10 * time.Minute}, Lease: cfg.Lease.Duration, Workers: cfg.HandbackWorkers,
		Endpoints: continuity.Endpoints{GraphURL: cfg.GraphURL, GraphLoginURL: cfg.GraphLoginURL, GmailURL: cfg.GmailURL, GoogleTokenURL: cfg.GoogleTokenURL}}
	a.cont.prober = &continuity.Prober{Service: a.Continuity, Router: router, Probe: a.Delivery.Probe, Switch: a.failoverSwitch}
}

// failoverSwitch is the prober's switch: through the administration layer,
// as the failover, so it is audited like an administrator's.
func (a *App) failoverSwitch(ctx context.Context, tenantID int64, domain, mode, reason string) error {
	_, err := a.Admin().SwitchContinuity(ctx, admin.Actor{Name: continuity.FailoverActor, Role: store.RoleOperator, TenantID: tenantID, IP: "local"},
		domain, mode, reason)
	return err
}

// startContinuity runs the failover probes, the hand-back and the
// retention in the background until stopContinuity.
func (a *App) startContinuity(ctx context.Context) error {
	c := &a.cont
	if err := c.handback.Start(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.stop = cancel
	cfg := a.Config.Continuity
	every := func(name string, d time.Duration, fn func(context.Context) error) {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				if err := fn(runCtx); err != nil && runCtx.Err() == nil {
					a.Log.Error("continuity "+name, "err", err)
				}
				select {
				case <-runCtx.Done():
					return
				case <-a.done:
					return
				case <-t.C:
				}
			}
		}()
	}
	every("probes", cfg.ProbeTick.Duration, func(ctx context.Context) error { _, err := c.prober.Tick(ctx); return err })
	every("hand-back", cfg.HandbackTick.Duration, func(ctx context.Context) error { _, err := c.handback.Tick(ctx); return err })
	every("retention", time.Hour, a.continuityRetention)
	return nil
}

// continuityRetention runs the retention once an hour across nodes.
func (a *App) continuityRetention(ctx context.Context) error {
	const key = "continuity:retention"
	last, err := a.Store.Mark(ctx, 0, key)
	if err != nil {
		return err
	}
	now := a.Clock.Now()
	if !last.IsZero() && now.Sub(last) < 55*time.Minute {
		return nil
	}
	if won, err := a.Store.ClaimMark(ctx, 0, key, last, now); err != nil || !won {
		return err
	}
	n, err := a.Continuity.Retention(ctx, a.Config.Continuity.EventDays)
	if n > 0 {
		a.Log.Info("continuity retention", "deleted", n)
	}
	return err
}

// stopContinuity stops the background work; a hand-back under way is
// waited for until ctx ends (its outcome is recorded, so a restart does
// not hand it back again).
func (a *App) stopContinuity(ctx context.Context) {
	c := &a.cont
	if c.stop == nil {
		return
	}
	c.stop()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		a.Log.Warn("continuity work still running at shutdown; its lease runs out and another start resumes it")
	}
}

// ContinuityTick runs one round of the failover probes and the hand-back
// on this node (tests and the CLI's "handback run").
func (a *App) ContinuityTick(ctx context.Context) error {
	_, err1 := a.cont.prober.Tick(ctx)
	_, err2 := a.cont.handback.Tick(ctx)
	if err1 != nil {
		return err1
	}
	return err2
}

// startSubmission opens the submission listener's addresses: STARTTLS
// (587) and implicit TLS (465). The server is made even without them: the
// webmail submits through it (SubmitWebmail).
func (a *App) startSubmission(tlsCfg *tls.Config) error {
	sc := a.Config.Submission
	a.submission = smtpin.New(smtpin.Deps{Kind: smtpin.Submission, Hostname: a.Config.Hostname, Listener: sc.Listener(), Limits: a.Config.Limits,
		TLS: tlsCfg, Store: a.Store, Spool: a.Spool, Queue: a.metrics.wrapEnqueuer(a.enqueuer(smtpin.Submission), smtpin.Submission), Log: a.Log, Clock: a.Clock, Observer: a.metrics,
		Passwords: a.Passwords, AuthThrottle: a.LoginThrottle, ScanBudget: a.Config.Checks.ScanBudget(), Postmaster: a.Config.Postmaster,
		RequireTOTP: a.Config.HTTP.RequireTOTP, Lists: a.Lists})
	if len(sc.Listen)+len(sc.ListenTLS) == 0 {
		return nil
	}
	for _, l := range []struct {
		addrs []string
		tls   bool
	}{{sc.Listen, false}, {sc.ListenTLS, true}} {
		for _, addr := range l.addrs {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen %s: %w", addr, err)
			}
			a.listeners = append(a.listeners, ln)
			a.submissionAddrs = append(a.submissionAddrs, ln.Addr().String())
			srv, implicit := a.submission, l.tls
			a.serveWG.Add(1)
			go func() {
				defer a.serveWG.Done()
				serve := srv.Serve
				if implicit {
					serve = srv.ServeTLS
				}
				if err := serve(ln); err != nil {
					a.Log.Error("submission listener stopped", "addr", ln.Addr().String(), "err", err)
				}
			}()
		}
	}
	return nil
}

// SubmissionAddrs are the submission listener's bound addresses: the
// STARTTLS ones, then the implicit TLS ones.
func (a *App) SubmissionAddrs() []string { return append([]string(nil), a.submissionAddrs...) }
