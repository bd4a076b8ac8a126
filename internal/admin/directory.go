package admin

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/dirsync"
	"github.com/mailgate/mailgate/internal/store"
)

// --- recipient verification ---
//
// A domain's recipient check says how RCPT decides about an address the
// tenant's user list does not know: none (unknown), directory (the
// directory synchronised from Microsoft Graph or Google), callout (ask
// the primary service's servers). Tenant administrators set it, list the
// directory and synchronise it; the scheduler synchronises through here
// too, so every synchronisation, applied or held, is in the audit log.

// RecipientCheckState is a domain's recipient check with the state of its
// directory synchronisation.
type RecipientCheckState struct {
	Domain    string    `json:"domain"`
	Mode      string    `json:"mode"`
	Source    string    `json:"source,omitempty"`
	Admin     string    `json:"admin,omitempty"`
	Synced    time.Time `json:"synced,omitzero"`
	Entries   int       `json:"entries"`
	Attempted time.Time `json:"attempted,omitzero"`
	Error     string    `json:"error,omitempty"`
	Held      bool      `json:"held,omitempty"`
}

func checkState(d store.Domain, c store.RecipientCheck) RecipientCheckState {
	return RecipientCheckState{Domain: d.Name, Mode: c.Mode, Source: c.Source, Admin: c.Admin, Synced: c.Synced, Entries: c.Entries,
		Attempted: c.Attempted, Error: c.Error, Held: c.Held}
}

// errNoDirectory is returned on a store without directories.
var errNoDirectory = errors.New("recipient verification is not available with this store")

func (s *Service) directoryDomain(ctx context.Context, a Actor, domain string) (store.DirectoryStore, store.Domain, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return nil, store.Domain{}, err
	}
	ds, ok := s.Store.(store.DirectoryStore)
	if !ok {
		return nil, store.Domain{}, errNoDirectory
	}
	d, err := s.servedDomain(ctx, a, domain)
	return ds, d, err
}

// RecipientCheck returns a served domain's recipient check and its
// synchronisation state.
func (s *Service) RecipientCheck(ctx context.Context, a Actor, domain string) (RecipientCheckState, error) {
	ds, d, err := s.directoryDomain(ctx, a, domain)
	if err != nil {
		return RecipientCheckState{}, err
	}
	c, err := ds.RecipientCheck(ctx, d.TenantID, d.ID)
	return checkState(d, c), err
}

// SetRecipientCheck sets a served domain's recipient check: mode "none",
// "directory" (source "graph" or "google"; google needs adminAddr, the
// Workspace administrator the service account acts as) or "callout" (the
// domain needs a delivery route to ask). The API credentials a directory
// needs must be stored first (SetHandbackCredentials). The directory
// already synchronised is kept.
func (s *Service) SetRecipientCheck(ctx context.Context, a Actor, domain, mode, source, adminAddr string) (RecipientCheckState, error) {
	ds, d, err := s.directoryDomain(ctx, a, domain)
	if err != nil {
		return RecipientCheckState{}, err
	}
	before, err := ds.RecipientCheck(ctx, d.TenantID, d.ID)
	if err != nil {
		return RecipientCheckState{}, err
	}
	c := store.RecipientCheck{TenantID: d.TenantID, DomainID: d.ID, Mode: strings.ToLower(strings.TrimSpace(mode))}
	switch c.Mode {
	case store.RcptCheckNone:
	case store.RcptCheckDirectory:
		c.Source = strings.ToLower(strings.TrimSpace(source))
		provider := continuity.PathGraph
		switch c.Source {
		case store.DirectoryGraph:
		case store.DirectoryGoogle:
			provider = continuity.PathGmail
			ad, err := addr.Parse(strings.TrimSpace(adminAddr))
			if err != nil {
				return RecipientCheckState{}, Invalidf("google: the Workspace administrator's address the service account acts as is required (%v)", err)
			}
			c.Admin = ad.Key()
		default:
			return RecipientCheckState{}, Invalidf("directory source must be graph or google")
		}
		if s.Continuity == nil {
			return RecipientCheckState{}, errNoContinuity
		}
		info, err := s.Continuity.Credentials(ctx, d.TenantID, provider)
		if err != nil {
			return RecipientCheckState{}, err
		}
		if !info.Configured {
			return RecipientCheckState{}, Invalidf("store the %s API credentials first (the same as the hand-back's)", provider)
		}
	case store.RcptCheckCallout:
		routes, err := s.Store.Routes(ctx, d.TenantID, d.ID)
		if err != nil {
			return RecipientCheckState{}, err
		}
		if len(routes) == 0 {
			return RecipientCheckState{}, Invalidf("%s has no delivery route: a callout asks the domain's routes", d.Name)
		}
	default:
		return RecipientCheckState{}, Invalidf("recipient check must be none, directory or callout")
	}
	if err := ds.SetRecipientCheck(ctx, c); err != nil {
		return RecipientCheckState{}, err
	}
	after, err := ds.RecipientCheck(ctx, d.TenantID, d.ID)
	if err != nil {
		return RecipientCheckState{}, err
	}
	return checkState(d, after), s.Audit(ctx, a, d.TenantID, "domain.recipient_check", d.Name,
		jsonString(map[string]string{"mode": before.Mode, "source": before.Source, "admin": before.Admin}),
		jsonString(map[string]string{"mode": c.Mode, "source": c.Source, "admin": c.Admin}))
}

// SyncDirectory synchronises a served domain's directory now. A list that
// is empty or would remove more than half of the directory is held
// (Result.Held, audited as directory.held) unless confirm; the last good
// list stays.
func (s *Service) SyncDirectory(ctx context.Context, a Actor, domain string, confirm bool) (dirsync.Result, error) {
	_, d, err := s.directoryDomain(ctx, a, domain)
	if err != nil {
		return dirsync.Result{}, err
	}
	if s.DirSync == nil {
		return dirsync.Result{}, errors.New("directory synchronisation is not available on this node")
	}
	res, err := s.DirSync.Sync(ctx, d, confirm)
	if errors.Is(err, dirsync.ErrNotDirectory) {
		return res, Invalidf("%s: set the recipient check to directory first", d.Name)
	}
	if err != nil {
		if aerr := s.Audit(ctx, a, d.TenantID, "directory.failed", d.Name, "", oneLine(err.Error(), 500)); aerr != nil {
			return res, errors.Join(err, aerr)
		}
		return res, err
	}
	action := "directory.sync"
	if res.Held {
		action = "directory.held"
	}
	return res, s.Audit(ctx, a, d.TenantID, action, d.Name, "", jsonString(res))
}

// Directory lists a served domain's synchronised addresses.
func (s *Service) Directory(ctx context.Context, a Actor, domain string) (RecipientCheckState, []store.DirectoryEntry, error) {
	ds, d, err := s.directoryDomain(ctx, a, domain)
	if err != nil {
		return RecipientCheckState{}, nil, err
	}
	c, err := ds.RecipientCheck(ctx, d.TenantID, d.ID)
	if err != nil {
		return RecipientCheckState{}, nil, err
	}
	es, err := ds.Directory(ctx, d.TenantID, d.ID)
	return checkState(d, c), es, err
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}
