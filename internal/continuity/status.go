package continuity

import (
	"context"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// DomainStatus is a domain's continuity state for the console, the API
// and the CLI.
type DomainStatus struct {
	Domain       string           `json:"domain"`
	Mode         string           `json:"mode"`
	Changed      time.Time        `json:"changed,omitzero"`
	ChangedBy    string           `json:"changed_by,omitempty"`
	Reason       string           `json:"reason,omitempty"`
	Failover     bool             `json:"failover"`
	AutoBack     bool             `json:"auto_back"`
	Canary       string           `json:"canary"`
	HandbackPath string           `json:"handback_path"`
	Probe        ProbeState       `json:"probe"`
	Handbacks    []HandbackStatus `json:"handbacks"`
}

// HandbackStatus is a hand-back job with its progress.
type HandbackStatus struct {
	ID        int64     `json:"id"`
	Domain    string    `json:"domain"`
	User      string    `json:"user,omitempty"`
	Path      string    `json:"path"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by,omitempty"`
	Finished  time.Time `json:"finished,omitzero"`
	// Searching is true until every message of the mailboxes was found.
	Searching bool `json:"searching"`
	Total     int  `json:"total"`
	Done      int  `json:"done"`
	Pending   int  `json:"pending"`
	Deferred  int  `json:"deferred"` // pending after a failed attempt
	Failed    int  `json:"failed"`
	Skipped   int  `json:"skipped"`
}

// Status reports the continuity state of the tenant's served domains
// (only the one named, unless domain is "").
func (s *Service) Status(ctx context.Context, tenantID int64, domain string) ([]DomainStatus, error) {
	ds, err := s.Store.Domains(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	ss, err := s.Store.Settings(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	jobs, err := s.HandbackStatus(ctx, tenantID, domain)
	if err != nil {
		return nil, err
	}
	out := []DomainStatus{}
	for _, d := range ds {
		if domain != "" && d.Name != domain {
			continue
		}
		m, err := s.Store.DomainMode(ctx, tenantID, d.ID)
		if err != nil {
			return nil, err
		}
		pol := policyFrom(ss, d.Name)
		st := DomainStatus{Domain: d.Name, Mode: m.Mode, Changed: m.Changed, ChangedBy: m.ChangedBy, Reason: m.Reason,
			Failover: pol.Failover, AutoBack: pol.AutoBack, Canary: canary(pol, d.Name), HandbackPath: pol.HandbackPath, Handbacks: []HandbackStatus{}}
		if pol.Failover {
			if st.Probe, err = s.ProbeStateOf(ctx, tenantID, d.Name); err != nil {
				return nil, err
			}
		}
		for _, j := range jobs {
			if j.Domain == d.Name {
				st.Handbacks = append(st.Handbacks, j)
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// HandbackStatus lists the tenant's hand-back jobs (of one domain unless
// domain is ""), newest first, with their progress.
func (s *Service) HandbackStatus(ctx context.Context, tenantID int64, domain string) ([]HandbackStatus, error) {
	jobs, err := s.Store.HandbackJobs(ctx, tenantID, false)
	if err != nil {
		return nil, err
	}
	out := []HandbackStatus{}
	for _, j := range jobs {
		if domain != "" && j.Domain != domain {
			continue
		}
		p, err := s.Store.HandbackProgress(ctx, tenantID, j.ID)
		if err != nil {
			return nil, fmt.Errorf("hand-back %d: %w", j.ID, err)
		}
		out = append(out, HandbackStatus{ID: j.ID, Domain: j.Domain, User: j.User, Path: j.Path, State: j.State, Created: j.Created,
			CreatedBy: j.CreatedBy, Finished: j.Finished, Searching: !j.Scanned, Total: p.Total(), Done: p.Done,
			Pending: p.Pending, Deferred: p.Tried, Failed: p.Failed, Skipped: p.Skipped})
	}
	return out, nil
}

// Events lists the continuity log of the tenant (of one domain unless
// domain is ""), newest first.
func (s *Service) Events(ctx context.Context, tenantID int64, domain string, beforeID int64, limit int) ([]store.ContinuityEvent, error) {
	es, err := s.Store.ContinuityEvents(ctx, store.ContinuityEventFilter{TenantID: tenantID, Domain: domain, BeforeID: beforeID, Limit: limit})
	if es == nil {
		es = []store.ContinuityEvent{}
	}
	return es, err
}

// Usage reports each user of an emergency domain (the mailbox side's
// counts); nil without a mailbox store.
func (s *Service) Usage(ctx context.Context, tenantID int64, domain string) ([]UserUsage, error) {
	if s.Mailboxes == nil {
		return []UserUsage{}, nil
	}
	us, err := s.Mailboxes.EmergencyUsage(ctx, tenantID, domain)
	if us == nil {
		us = []UserUsage{}
	}
	return us, err
}

// Purge deletes a domain's local copies that were handed back before
// before; the event names actor.
func (s *Service) Purge(ctx context.Context, d store.Domain, before time.Time, actor string) (int, error) {
	if s.Mailboxes == nil {
		return 0, nil // no mailbox store, no local copies
	}
	n, err := s.Mailboxes.PurgeHandedBack(ctx, d.TenantID, d.Name, before)
	if n > 0 {
		s.event(ctx, d.TenantID, d.Name, EventPurged, actor, fmt.Sprintf("%d local copies handed back before %s deleted", n, before.UTC().Format(time.RFC3339)))
	}
	return n, err
}

// Retention deletes, for every domain that was ever switched, the local
// copies handed back more than its continuity.retention_days ago, and
// continuity events older than eventDays. It returns how many copies it
// deleted.
func (s *Service) Retention(ctx context.Context, eventDays int) (int, error) {
	total := 0
	if s.Mailboxes != nil {
		ms, err := s.Store.DomainModes(ctx, 0)
		if err != nil {
			return 0, err
		}
		for _, m := range ms {
			pol, err := PolicyFor(ctx, s.Store, m.TenantID, m.Domain)
			if err != nil {
				return total, err
			}
			n, err := s.Purge(ctx, store.Domain{ID: m.DomainID, TenantID: m.TenantID, Name: m.Domain},
				s.now().AddDate(0, 0, -pol.RetentionDays), "retention")
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	if eventDays > 0 {
		if _, err := s.Store.PurgeContinuityEvents(ctx, s.now().AddDate(0, 0, -eventDays)); err != nil {
			return total, err
		}
	}
	return total, nil
}
