package continuity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/store"
)

// FailoverActor is the actor of automatic switches in the audit and
// continuity logs.
const FailoverActor = "failover"

// Marks (shared by every node) of a domain's failover state.
func probeKey(domain string) string { return "continuity:probe:" + domain } // last probe (claimed by the node that runs it)
func failKey(domain string) string  { return "continuity:fail:" + domain }  // failing since (zero: passing)
func okKey(domain string) string    { return "continuity:ok:" + domain }    // passing since (zero: failing)

// Prober runs the failover probes of every domain whose policy turns
// failover on. Every node runs it; each probe is claimed in the store
// (store.ClaimMark), so a domain is probed once per interval across nodes.
//
// A probe that fails starts (or continues) a failing period; once it has
// lasted continuity.fail_after, a domain in primary mode is switched to
// emergency. A probe that passes ends it and starts a passing period;
// once that has lasted continuity.recover_after, a domain that the
// failover switched (not an administrator) goes back to primary, if
// continuity.auto_back is on. The two periods are the hysteresis: one
// failed or one passing probe never switches by itself (unless fail_after
// is 0).
type Prober struct {
	*Service
	Router PrimaryRouter
	// Probe asks targets whether they take mail for rcpt
	// (delivery.Client.Probe).
	Probe func(ctx context.Context, targets []delivery.Target, rcpt string) (string, error)
	// Switch changes a domain's mode through the administration layer, so
	// an automatic switch is checked and audited as any other.
	Switch func(ctx context.Context, tenantID int64, domain, mode, reason string) error
}

// Tick probes every due domain once and returns how many it probed.
func (p *Prober) Tick(ctx context.Context) (int, error) {
	tenants, err := p.Store.Tenants(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, t := range tenants {
		if ctx.Err() != nil {
			break
		}
		ss, err := p.Store.Settings(ctx, t.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !anyFailover(ss) {
			continue
		}
		ds, err := p.Store.Domains(ctx, t.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range ds {
			pol := policyFrom(ss, d.Name)
			if !pol.Failover {
				continue
			}
			probed, err := p.probeDomain(ctx, d, pol)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.Name, err))
			}
			if probed {
				n++
			}
		}
	}
	return n, errors.Join(errs...)
}

func anyFailover(ss []store.Setting) bool {
	for _, s := range ss {
		if s.Key == KeyFailover && s.Value == "on" {
			return true
		}
	}
	return false
}

// canary is the address the probe names: the configured one, or the
// domain's postmaster (RFC 5321 4.5.1).
func canary(pol Policy, domain string) string {
	if pol.Canary != "" {
		return pol.Canary
	}
	return "postmaster@" + domain
}

// probeDomain probes d if it is due and this node wins the claim.
func (p *Prober) probeDomain(ctx context.Context, d store.Domain, pol Policy) (bool, error) {
	st := p.Store
	now := p.now()
	last, err := st.Mark(ctx, d.TenantID, probeKey(d.Name))
	if err != nil {
		return false, err
	}
	if !last.IsZero() && now.Sub(last) < pol.ProbeInterval && !now.Before(last) {
		return false, nil
	}
	if won, err := st.ClaimMark(ctx, d.TenantID, probeKey(d.Name), last, now); err != nil || !won {
		return false, err
	}
	rcpt := canary(pol, d.Name)
	targets, perr := p.Router.PrimaryTargets(ctx, d.Name)
	if perr == nil {
		pctx, cancel := context.WithTimeout(ctx, pol.ProbeTimeout)
		_, perr = p.Probe(pctx, targets, rcpt)
		cancel()
	}
	if ctx.Err() != nil {
		return true, ctx.Err() // stopping: the result says nothing about the primary
	}
	mode, err := st.DomainMode(ctx, d.TenantID, d.ID)
	if err != nil {
		return true, err
	}
	failSince, err := st.Mark(ctx, d.TenantID, failKey(d.Name))
	if err != nil {
		return true, err
	}
	okSince, err := st.Mark(ctx, d.TenantID, okKey(d.Name))
	if err != nil {
		return true, err
	}
	if perr != nil {
		p.event(ctx, d.TenantID, d.Name, EventProbeFailed, FailoverActor, fmt.Sprintf("RCPT TO:<%s>: %s", rcpt, oneLine(perr.Error(), 500)))
		if failSince.IsZero() {
			failSince = now
			if err := st.SetMark(ctx, d.TenantID, failKey(d.Name), now); err != nil {
				return true, err
			}
		}
		if !okSince.IsZero() {
			if err := st.SetMark(ctx, d.TenantID, okKey(d.Name), time.Time{}); err != nil {
				return true, err
			}
		}
		if mode.Mode == store.ModePrimary && now.Sub(failSince) >= pol.FailAfter {
			reason := fmt.Sprintf("automatic failover: the primary service has failed probes since %s (%s)",
				failSince.UTC().Format(time.RFC3339), oneLine(perr.Error(), 200))
			if err := p.Switch(ctx, d.TenantID, d.Name, store.ModeEmergency, reason); err != nil && !errors.Is(err, ErrSameMode) {
				return true, fmt.Errorf("failover switch: %w", err)
			}
		}
		return true, nil
	}
	if !failSince.IsZero() {
		p.event(ctx, d.TenantID, d.Name, EventProbeRecovered, FailoverActor, fmt.Sprintf("RCPT TO:<%s> accepted again after failing since %s",
			rcpt, failSince.UTC().Format(time.RFC3339)))
		if err := st.SetMark(ctx, d.TenantID, failKey(d.Name), time.Time{}); err != nil {
			return true, err
		}
	}
	if okSince.IsZero() {
		okSince = now
		if err := st.SetMark(ctx, d.TenantID, okKey(d.Name), now); err != nil {
			return true, err
		}
	}
	// Back automatically only from a switch the failover made: an
	// administrator's switch is theirs to undo.
	if mode.Mode == store.ModeEmergency && pol.AutoBack && mode.ChangedBy == FailoverActor && now.Sub(okSince) >= pol.RecoverAfter {
		reason := fmt.Sprintf("automatic switch back: the primary service has passed probes since %s", okSince.UTC().Format(time.RFC3339))
		if err := p.Switch(ctx, d.TenantID, d.Name, store.ModePrimary, reason); err != nil && !errors.Is(err, ErrSameMode) {
			return true, fmt.Errorf("switch back: %w", err)
		}
	}
	return true, nil
}

// ProbeState is a domain's failover state as the marks record it.
type ProbeState struct {
	LastProbe    time.Time `json:"last_probe,omitzero"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	PassingSince time.Time `json:"passing_since,omitzero"`
}

// ProbeStateOf reads a domain's failover state.
func (s *Service) ProbeStateOf(ctx context.Context, tenantID int64, domain string) (ProbeState, error) {
	var ps ProbeState
	var err error
	if ps.LastProbe, err = s.Store.Mark(ctx, tenantID, probeKey(domain)); err != nil {
		return ps, err
	}
	if ps.FailingSince, err = s.Store.Mark(ctx, tenantID, failKey(domain)); err != nil {
		return ps, err
	}
	ps.PassingSince, err = s.Store.Mark(ctx, tenantID, okKey(domain))
	return ps, err
}
