package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/mtasts"
	"github.com/mailgate/mailgate/internal/store"
)

// Router maps a recipient domain to delivery targets: a served domain goes
// to its configured routes (in priority order; "mx" expands to an MX
// lookup), anything else to the smart host or the domain's MX.
type Router struct {
	Store     Store
	Client    *Client
	SmartHost string // "smtp://host:port" or ""
	// STS, when set, applies the recipient domain's MTA-STS policy (RFC
	// 8461) to delivery by MX: in enforce mode only the MX hosts the
	// policy names are used, over TLS with a verified certificate.
	STS STSPolicies
	// DANE, when set, applies DANE (RFC 7672) to delivery by MX: it must be
	// a validating resolver whose answers the operator trusts. DANE takes
	// precedence over MTA-STS for a domain that has both (RFC 8461 2).
	DANE SecureResolver

	// addressing answers which domains are served, at the store's
	// addressing version (read once per attempt under the queue's
	// versioned.Memo).
	addressing store.AddressingCache
}

// domain is the served domain name (store.ErrNotFound for none).
func (r *Router) domain(ctx context.Context, name string) (store.Domain, error) {
	ix, err := r.addressing.Get(ctx, r.Store)
	if err != nil {
		return store.Domain{}, err
	}
	return ix.DomainByName(name)
}

// STSPolicies finds a domain's MTA-STS policy (mtasts.Fetcher).
type STSPolicies interface {
	Policy(ctx context.Context, domain string) (*mtasts.Policy, error)
}

// Targets resolves the targets for one domain. A served domain in
// emergency mode (mail continuity) goes to mailgate's own mailboxes
// (MailboxTarget), as does a hosted domain (mode mailbox: HostedTarget);
// the mode is read at every attempt, so a switch applies
// to mail already queued.
func (r *Router) Targets(ctx context.Context, tenantID int64, domain string) ([]Target, error) {
	d, err := r.domain(ctx, domain)
	switch {
	case err == nil:
		m, err := r.Store.DomainMode(ctx, d.TenantID, d.ID)
		if err != nil {
			return nil, &TempError{fmt.Sprintf("delivery mode of %s: %v", domain, err)}
		}
		switch m.Mode {
		case store.ModeEmergency:
			return []Target{MailboxTarget}, nil
		case store.ModeMailbox:
			return []Target{HostedTarget}, nil
		}
		return r.routeTargets(ctx, d)
	case !errors.Is(err, store.ErrNotFound):
		return nil, &TempError{fmt.Sprintf("domain lookup %s: %v", domain, err)}
	}
	if r.SmartHost != "" {
		t, err := ParseTarget(r.SmartHost, TLSOpportunistic)
		if err != nil {
			return nil, &TempError{err.Error()}
		}
		return []Target{t}, nil
	}
	ts, err := r.Client.MXTargets(ctx, domain, TLSOpportunistic)
	if err != nil {
		return nil, err
	}
	ts, dane, err := r.applyDANE(ctx, domain, ts)
	if err != nil || dane {
		return ts, err
	}
	return r.applySTS(ctx, domain, ts)
}

// applySTS applies the domain's MTA-STS policy to its MX targets. Without
// a policy (none published, or none could be fetched and none is cached)
// delivery goes on as before, as RFC 8461 §5 says; in testing mode a
// mismatch is only logged.
func (r *Router) applySTS(ctx context.Context, domain string, ts []Target) ([]Target, error) {
	if r.STS == nil {
		return ts, nil
	}
	log := r.Client.log
	p, err := r.STS.Policy(ctx, domain)
	if err != nil {
		log.Warn("mta-sts policy", "domain", domain, "err", err, "cached", p != nil)
	}
	if p == nil || p.Mode == mtasts.ModeNone {
		return ts, nil
	}
	var out []Target
	for _, t := range ts {
		if !p.Match(t.Host) {
			log.Warn("mta-sts: MX host not in the policy", "domain", domain, "host", t.Host, "mode", p.Mode)
			continue
		}
		t.TLS = TLSVerify
		out = append(out, t)
	}
	if p.Mode == mtasts.ModeTesting {
		return ts, nil
	}
	if len(out) == 0 {
		return nil, &TempError{fmt.Sprintf("MTA-STS policy of %s (enforce) names none of its MX hosts", domain)}
	}
	return out, nil
}

// PrimaryTargets resolves a served domain's own routes whatever its mode:
// the customer's primary mail service, which continuity probes and hands
// mail back to. A domain mailgate does not serve is an error.
func (r *Router) PrimaryTargets(ctx context.Context, domain string) ([]Target, error) {
	d, err := r.domain(ctx, domain)
	if err != nil {
		return nil, fmt.Errorf("domain %s: %w", domain, err)
	}
	return r.routeTargets(ctx, d)
}

// routeTargets resolves a served domain's configured routes.
func (r *Router) routeTargets(ctx context.Context, d store.Domain) ([]Target, error) {
	domain := d.Name
	routes, err := r.Store.Routes(ctx, d.TenantID, d.ID)
	if err != nil {
		return nil, &TempError{fmt.Sprintf("routes of %s: %v", domain, err)}
	}
	if len(routes) == 0 {
		// Never fall back to MX for a served domain: the MX is us.
		return nil, &TempError{"no delivery route configured for " + domain}
	}
	var out []Target
	for _, rt := range routes {
		if rt.Target == "mx" || strings.HasPrefix(rt.Target, "mx:") {
			// "mx:name" looks up the MX of another name (the customer's
			// upstream, e.g. its Microsoft 365 host); plain "mx" the
			// domain's own, for split set-ups where it is not us.
			name := domain
			if n, ok := strings.CutPrefix(rt.Target, "mx:"); ok && n != "" {
				name = n
			}
			ts, err := r.Client.MXTargets(ctx, name, rt.TLS)
			if err != nil {
				return nil, err
			}
			out = append(out, ts...)
			continue
		}
		t, err := ParseTarget(rt.Target, rt.TLS)
		if err != nil {
			return nil, &TempError{err.Error()}
		}
		out = append(out, t)
	}
	return out, nil
}
