package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/store"
)

// --- mail continuity ---
//
// The delivery switch, the hand-back and their log (package continuity)
// are tenant administrators' actions: each is checked here for role and
// tenant, and audited.

// errNoContinuity is returned on a node built without continuity.
var errNoContinuity = errors.New("mail continuity is not available on this node")

func (s *Service) continuity() (*continuity.Service, error) {
	if s.Continuity == nil {
		return nil, errNoContinuity
	}
	return s.Continuity, nil
}

// continuityDomain finds a served domain of a's tenant (an operator acting
// on every tenant: of whichever tenant serves it).
func (s *Service) continuityDomain(ctx context.Context, a Actor, domain string) (*continuity.Service, store.Domain, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return nil, store.Domain{}, err
	}
	c, err := s.continuity()
	if err != nil {
		return nil, store.Domain{}, err
	}
	d, err := s.servedDomain(ctx, a, domain)
	return c, d, err
}

// sameModeError refuses a switch to the mode the domain is in; it is an
// Invalid refusal that is also continuity.ErrSameMode.
type sameModeError struct{ Invalid }

func (e sameModeError) Unwrap() []error { return []error{e.Invalid, continuity.ErrSameMode} }

// SwitchContinuity switches a served domain of a's tenant to mode
// "emergency" (its mail goes into mailgate's mailboxes), "mailbox" (there
// for good: a hosted domain) or "primary" (to its routes again; from
// emergency the hand-back starts unless the policy says manual).
// reason is kept with the mode, in the audit log and in the notice.
func (s *Service) SwitchContinuity(ctx context.Context, a Actor, domain, mode, reason string) (continuity.SwitchResult, error) {
	c, d, err := s.continuityDomain(ctx, a, domain)
	if err != nil {
		return continuity.SwitchResult{}, err
	}
	mode = strings.ToLower(strings.TrimSpace(mode))
	if mode != store.ModePrimary && mode != store.ModeEmergency && mode != store.ModeMailbox {
		return continuity.SwitchResult{}, Invalidf("mode must be primary, emergency or mailbox")
	}
	reason = strings.TrimSpace(reason)
	if len(reason) > 500 || strings.ContainsAny(reason, "\r\n\x00") {
		return continuity.SwitchResult{}, Invalidf("reason: at most 500 characters on one line")
	}
	res, err := c.Switch(ctx, d, mode, a.Name, reason)
	if errors.Is(err, continuity.ErrSameMode) {
		return res, sameModeError{Invalid{fmt.Sprintf("%s is already in %s mode", d.Name, mode)}}
	}
	if err != nil {
		return res, err
	}
	after := mode
	if reason != "" {
		after += ": " + reason
	}
	return res, s.Audit(ctx, a, d.TenantID, "continuity.switch", d.Name, res.From, after)
}

// ContinuityStatus reports the continuity state of a's tenant's domains
// (one domain when named). An operator acting on every tenant sees every
// tenant's.
func (s *Service) ContinuityStatus(ctx context.Context, a Actor, domain string) ([]continuity.DomainStatus, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return nil, err
	}
	c, err := s.continuity()
	if err != nil {
		return nil, err
	}
	if domain != "" {
		d, err := s.servedDomain(ctx, a, domain)
		if err != nil {
			return nil, err
		}
		return c.Status(ctx, d.TenantID, d.Name)
	}
	if a.allTenants() {
		ts, err := s.Store.Tenants(ctx)
		if err != nil {
			return nil, err
		}
		out := []continuity.DomainStatus{}
		for _, t := range ts {
			st, err := c.Status(ctx, t.ID, "")
			if err != nil {
				return nil, err
			}
			out = append(out, st...)
		}
		return out, nil
	}
	tid, err := a.tenant()
	if err != nil {
		return nil, err
	}
	return c.Status(ctx, tid, "")
}

// ContinuityEvents lists the continuity log of a served domain of a's
// tenant, newest first, before the event beforeID (0: the newest).
func (s *Service) ContinuityEvents(ctx context.Context, a Actor, domain string, beforeID int64, limit int) ([]store.ContinuityEvent, error) {
	c, d, err := s.continuityDomain(ctx, a, domain)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return c.Events(ctx, d.TenantID, d.Name, beforeID, limit)
}

// StartHandback hands the mail a domain received in emergency mode back
// to its primary service: every user's, or one user's (an address of the
// domain). A hand-back already running for it is refused.
func (s *Service) StartHandback(ctx context.Context, a Actor, domain, user string) (continuity.HandbackStatus, error) {
	c, d, err := s.continuityDomain(ctx, a, domain)
	if err != nil {
		return continuity.HandbackStatus{}, err
	}
	if user = strings.TrimSpace(user); user != "" {
		_, key, err := s.ownAddress(ctx, a.In(d.TenantID), user)
		if err != nil {
			return continuity.HandbackStatus{}, err
		}
		if !strings.HasSuffix(key, "@"+d.Name) {
			return continuity.HandbackStatus{}, Invalidf("%s is not an address of %s", key, d.Name)
		}
		user = key
	}
	j, err := c.StartHandback(ctx, d, user, a.Name)
	switch {
	case errors.Is(err, continuity.ErrHandbackRunning):
		return continuity.HandbackStatus{}, Invalidf("hand-back %d of %s is already running", j.ID, d.Name)
	case errors.Is(err, continuity.ErrNoCredentials):
		return continuity.HandbackStatus{}, Invalidf("%v", err)
	case err != nil:
		return continuity.HandbackStatus{}, err
	}
	target := d.Name
	if user != "" {
		target = user
	}
	st := continuity.HandbackStatus{ID: j.ID, Domain: j.Domain, User: j.User, Path: j.Path, State: j.State, Created: j.Created,
		CreatedBy: j.CreatedBy, Searching: true}
	return st, s.Audit(ctx, a, d.TenantID, "continuity.handback_start", target, "", fmt.Sprintf("hand-back %d over %s", j.ID, j.Path))
}

// RetryHandback tries a domain's failed and skipped messages again.
func (s *Service) RetryHandback(ctx context.Context, a Actor, domain string) (int, error) {
	c, d, err := s.continuityDomain(ctx, a, domain)
	if err != nil {
		return 0, err
	}
	n, err := c.RetryHandback(ctx, d, a.Name)
	if err != nil {
		return n, err
	}
	return n, s.Audit(ctx, a, d.TenantID, "continuity.handback_retry", d.Name, "", fmt.Sprintf("%d messages", n))
}

// HandbackStatus lists a domain's hand-backs with their progress.
func (s *Service) HandbackStatus(ctx context.Context, a Actor, domain string) ([]continuity.HandbackStatus, error) {
	c, d, err := s.continuityDomain(ctx, a, domain)
	if err != nil {
		return nil, err
	}
	return c.HandbackStatus(ctx, d.TenantID, d.Name)
}

// EmergencyUsage reports each user of a domain's emergency mailboxes:
// mail received, unread, sent, handed back, and the last login.
func (s *Service) EmergencyUsage(ctx context.Context, a Actor, domain string) ([]continuity.UserUsage, error) {
	c, d, err := s.continuityDomain(ctx, a, domain)
	if err != nil {
		return nil, err
	}
	return c.Usage(ctx, d.TenantID, d.Name)
}

// PurgeContinuity deletes a domain's local copies that were handed back
// (the ones still to hand back stay).
func (s *Service) PurgeContinuity(ctx context.Context, a Actor, domain string) (int, error) {
	c, d, err := s.continuityDomain(ctx, a, domain)
	if err != nil {
		return 0, err
	}
	n, err := c.Purge(ctx, d, s.now().Now(), a.Name)
	if err != nil {
		return n, err
	}
	return n, s.Audit(ctx, a, d.TenantID, "continuity.purge", d.Name, fmt.Sprintf("%d copies", n), "")
}

// SetHandbackCredentials stores a's tenant's API credentials for a
// hand-back path ("graph": {"tenant", "client_id", "client_secret"};
// "gmail": a service account key file), sealed; empty raw deletes them.
// The audit log and the event name the client, never the secret.
func (s *Service) SetHandbackCredentials(ctx context.Context, a Actor, provider string, raw []byte) (continuity.CredentialInfo, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return continuity.CredentialInfo{}, err
	}
	c, err := s.continuity()
	if err != nil {
		return continuity.CredentialInfo{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return continuity.CredentialInfo{}, err
	}
	if len(raw) > 64<<10 {
		return continuity.CredentialInfo{}, Invalidf("credentials: at most 64 KiB")
	}
	if provider != continuity.PathGraph && provider != continuity.PathGmail {
		return continuity.CredentialInfo{}, Invalidf("provider must be graph or gmail")
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		if _, _, err := continuity.ParseCredentials(provider, raw); err != nil {
			return continuity.CredentialInfo{}, Invalidf("%v", err)
		}
	}
	info, err := c.SetCredentials(ctx, tid, provider, raw)
	if err != nil {
		return info, err
	}
	after := "deleted"
	if info.ID != "" {
		after = "client " + info.ID
	}
	c.Event(ctx, tid, "", continuity.EventCredentials, a.Name, provider+" credentials: "+after)
	return info, s.Audit(ctx, a, tid, "continuity.credentials", provider, "", after)
}

// HandbackCredentials describes a's tenant's stored credentials for
// provider (without the secret); store.ErrNotFound when there are none.
func (s *Service) HandbackCredentials(ctx context.Context, a Actor, provider string) (continuity.CredentialInfo, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return continuity.CredentialInfo{}, err
	}
	c, err := s.continuity()
	if err != nil {
		return continuity.CredentialInfo{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return continuity.CredentialInfo{}, err
	}
	if provider != continuity.PathGraph && provider != continuity.PathGmail {
		return continuity.CredentialInfo{}, Invalidf("provider must be graph or gmail")
	}
	return c.Credentials(ctx, tid, provider)
}
