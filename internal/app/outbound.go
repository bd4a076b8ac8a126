package app

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/smtpin"
)

// newOutbound builds outbound protection: the pipeline the outbound relay
// and the submission listener hand their messages to, and the service
// that decides about held and delayed mail. The "zip" and "link" rule
// actions are zipcrypt and attachlink (outtransforms.go).
func (a *App) newOutbound() {
	cc := a.Config.Checks
	a.OutPipeline = &outbound.Pipeline{
		Store: a.Store, Spool: a.Spool, Queue: a.Queue,
		Engine:      &outbound.Engine{Store: a.Store, Clock: a.Clock},
		RuleTimeout: cc.Timeout.Duration,
		Budget:      cc.ScanBudget(),
		Hostname:    a.Config.Hostname, BaseURL: a.ConsoleURL(), Zone: a.Zone(),
		Clock: a.Clock, Log: a.Log.With("stage", "outbound"),
		Hooks:  outbound.Hooks{Zip: zipHook{secrets: a.Store}},
		Judged: a.metrics.outboundJudged,
	}
	if a.Links != nil {
		a.OutPipeline.Hooks.Link = linkHook{links: a.Links}
	}
	if st, ok := a.avStage(); ok {
		a.OutPipeline.AV, a.OutPipeline.AVTimeout, a.OutPipeline.AVOnError = st.Check, st.Timeout, st.OnError
	}
	a.OutHolds = &outbound.Service{Store: a.Store, Spool: a.Spool, Hostname: a.Config.Hostname, BaseURL: a.ConsoleURL(), Zone: a.Zone(),
		Clock: a.Clock, Log: a.Log.With("stage", "outbound")}
}

// startOutbound runs the timer of held and delayed mail on this node
// (every node runs it; each hold is decided once). It stops when the App
// closes.
func (a *App) startOutbound() {
	iv := a.Config.Queue.PollInterval.Duration
	if iv <= 0 || iv > 5*time.Second {
		iv = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-a.done
		cancel()
	}()
	go a.OutHolds.Run(ctx, iv)
}

// avStage is the virus scan for outbound mail: the inbound one's, when
// "av" is among the enabled checks.
func (a *App) avStage() (policy.Stage, bool) {
	if a.Config.Checks.On("av") {
		return a.avCheck()
	}
	return policy.Stage{}, false
}

// enqueuer is where a listener's accepted messages go: the outbound
// pipeline for the relay and submission, the inbound one for the MX.
func (a *App) enqueuer(k smtpin.Kind) smtpin.Enqueuer {
	if k == smtpin.Outbound || k == smtpin.Submission {
		return a.OutPipeline
	}
	return a.Pipeline
}
