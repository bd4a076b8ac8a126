package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/attachlink"
	"github.com/mailgate/mailgate/internal/store"
)

// LinkRecords are the attachment download links the administration layer
// reads and revokes (attachlink.StoreRecords).
type LinkRecords interface {
	List(ctx context.Context, tenantID int64, sender string, limit int) ([]attachlink.Link, error)
	Get(ctx context.Context, tenantID int64, id string) (attachlink.Link, error)
	Revoke(ctx context.Context, tenantID int64, id string) error
	Downloads(ctx context.Context, tenantID int64, id string) ([]attachlink.Download, error)
}

// ErrNoLinks is returned on nodes without attachment links.
var ErrNoLinks = errors.New("attachment links are not available on this node")

// Link states as shown.
const (
	LinkActive  = "active"
	LinkRevoked = "revoked"
	LinkExpired = "expired"
	LinkUsedUp  = "used_up"
)

// LinkView is a link with its state now.
type LinkView struct {
	attachlink.Link
	State string `json:"state"`
}

func (s *Service) linkView(l attachlink.Link) LinkView {
	v := LinkView{Link: l, State: LinkActive}
	switch {
	case l.Revoked:
		v.State = LinkRevoked
	case !s.now().Now().Before(l.Expires):
		v.State = LinkExpired
	case l.MaxDownloads > 0 && l.Downloads >= l.MaxDownloads:
		v.State = LinkUsedUp
	}
	return v
}

// Links lists the attachment links a may see, newest first: a user the
// links of mail they sent, an administrator every link of the tenant (or
// one sender's).
func (s *Service) Links(ctx context.Context, a Actor, sender string, limit int) ([]LinkView, error) {
	if err := a.require(store.RoleUser); err != nil {
		return nil, err
	}
	if s.LinkRecords == nil {
		return nil, ErrNoLinks
	}
	tid, err := a.tenant()
	if err != nil {
		return nil, err
	}
	if !a.may(store.RoleAdmin) {
		if sender = strings.ToLower(a.Address); sender == "" {
			return []LinkView{}, nil
		}
	}
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	ls, err := s.LinkRecords.List(ctx, tid, strings.ToLower(strings.TrimSpace(sender)), limit)
	if err != nil {
		return nil, fmt.Errorf("attachment links: %w", err)
	}
	out := make([]LinkView, 0, len(ls))
	for _, l := range ls {
		out = append(out, s.linkView(l))
	}
	return out, nil
}

// ownLink finds a link a may see: any of the tenant's for an
// administrator, only their own for a user. Others' links are not found.
func (s *Service) ownLink(ctx context.Context, a Actor, id string) (attachlink.Link, error) {
	if err := a.require(store.RoleUser); err != nil {
		return attachlink.Link{}, err
	}
	if s.LinkRecords == nil {
		return attachlink.Link{}, ErrNoLinks
	}
	tid, err := a.tenant()
	if err != nil {
		return attachlink.Link{}, err
	}
	l, err := s.LinkRecords.Get(ctx, tid, id)
	if errors.Is(err, attachlink.ErrNotFound) {
		return l, fmt.Errorf("link %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return l, err
	}
	if !a.may(store.RoleAdmin) && !strings.EqualFold(l.Sender, a.Address) {
		return attachlink.Link{}, fmt.Errorf("link %q: %w", id, store.ErrNotFound)
	}
	return l, nil
}

// Link returns one link a may see with its download log, oldest first.
func (s *Service) Link(ctx context.Context, a Actor, id string) (LinkView, []attachlink.Download, error) {
	l, err := s.ownLink(ctx, a, id)
	if err != nil {
		return LinkView{}, nil, err
	}
	ds, err := s.LinkRecords.Downloads(ctx, l.TenantID, l.ID)
	if err != nil {
		return LinkView{}, nil, fmt.Errorf("download log: %w", err)
	}
	if ds == nil {
		ds = []attachlink.Download{}
	}
	return s.linkView(l), ds, nil
}

// RevokeLink makes a link unusable at once: its sender's or, for an
// administrator, any of the tenant's. Audited.
func (s *Service) RevokeLink(ctx context.Context, a Actor, id string) error {
	l, err := s.ownLink(ctx, a, id)
	if err != nil {
		return err
	}
	if l.Revoked {
		return nil
	}
	if err := s.LinkRecords.Revoke(ctx, l.TenantID, l.ID); err != nil {
		return fmt.Errorf("revoke link: %w", err)
	}
	return s.Audit(ctx, a, l.TenantID, "link.revoke", l.ID, l.Sender, "")
}
