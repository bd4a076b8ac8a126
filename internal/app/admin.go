package app

import (
	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/netguard"
)

// Admin is the administration layer on this node's store, queue and
// quarantine: the console, the API and the CLI make every change through
// it. Its resolver (domain ownership records) is the configured one
// without a cache, so a record published a moment ago is seen.
func (a *App) Admin() *admin.Service {
	var res dnsx.Resolver
	if a.Config.DNS.Resolver != "" {
		// Open already built a client for this resolver, so this cannot fail.
		if c, err := dnsx.New(a.Config.DNS.Resolver, dnsx.WithTimeout(a.Config.DNS.Timeout.Duration)); err == nil {
			res = c
		}
	}
	s := &admin.Service{Store: a.Store, Queue: a.Queue, Quarantine: a.Quarantine, Continuity: a.Continuity, Archive: a.OpenArchive,
		OutHolds: a.OutHolds, OutEngine: a.OutPipeline.Engine, Learn: a.LearnMessage,
		Passwords: a.Passwords, Upstreams: netguard.Policy{Allow: a.Config.Auth.UpstreamNets()}, Resolver: res, Clock: a.Clock, Log: a.Log.With("stage", "admin")}
	s.OnboardEnv = a.onboardEnv()
	if a.Mailboxes != nil {
		s.Mailboxes = a.Mailboxes
	}
	if a.Queue != nil {
		s.Mailer = a.Queue
	}
	if a.Links != nil {
		if r, ok := a.Links.Records.(admin.LinkRecords); ok {
			s.LinkRecords = r
		}
	}
	if a.Pipeline != nil {
		s.Rejudge = a.Pipeline.Rejudge
	}
	return s
}
