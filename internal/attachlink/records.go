package attachlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// StoreRecords keeps links in mailgate's store (SQLite or PostgreSQL), so
// every node serves them and they survive restarts.
type StoreRecords struct{ S store.AttachLinkStore }

var _ Records = StoreRecords{}

// linkData is the part of a Link kept as the record's data.
type linkData struct {
	Rcpts   []string `json:"rcpts,omitempty"`
	Subject string   `json:"subject,omitempty"`
	Files   []File   `json:"files"`
}

func toStore(l Link) (store.AttachLink, error) {
	data, err := json.Marshal(linkData{Rcpts: l.Rcpts, Subject: l.Subject, Files: l.Files})
	if err != nil {
		return store.AttachLink{}, err
	}
	return store.AttachLink{TenantID: l.TenantID, ID: l.ID, Sender: l.Sender, Data: data, Created: l.Created,
		Expires: l.Expires, MaxDownloads: l.MaxDownloads, Downloads: l.Downloads, Revoked: l.Revoked}, nil
}

func fromStore(s store.AttachLink) (Link, error) {
	var d linkData
	if err := json.Unmarshal(s.Data, &d); err != nil {
		return Link{}, fmt.Errorf("attachment link %s: %w", s.ID, err)
	}
	return Link{ID: s.ID, TenantID: s.TenantID, Sender: s.Sender, Rcpts: d.Rcpts, Subject: d.Subject, Files: d.Files,
		Created: s.Created, Expires: s.Expires, MaxDownloads: s.MaxDownloads, Downloads: s.Downloads, Revoked: s.Revoked}, nil
}

func mapErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}

// Create stores a new link.
func (r StoreRecords) Create(ctx context.Context, l Link) error {
	s, err := toStore(l)
	if err != nil {
		return err
	}
	return r.S.CreateAttachLink(ctx, s)
}

// Get returns a link.
func (r StoreRecords) Get(ctx context.Context, tenantID int64, id string) (Link, error) {
	s, err := r.S.AttachLink(ctx, tenantID, id)
	if err != nil {
		return Link{}, mapErr(err)
	}
	return fromStore(s)
}

// Count records one download.
func (r StoreRecords) Count(ctx context.Context, tenantID int64, id string, d Download) (Link, error) {
	s, refused, err := r.S.CountAttachLinkDownload(ctx, tenantID, id, store.LinkDownload{At: d.At, File: d.File, Client: d.From})
	if err != nil {
		return Link{}, mapErr(err)
	}
	l, err := fromStore(s)
	if err != nil {
		return Link{}, err
	}
	switch refused {
	case store.LinkRevoked:
		return l, ErrRevoked
	case store.LinkExpired:
		return l, ErrExpired
	case store.LinkLimit:
		return l, ErrLimit
	}
	return l, nil
}

// Revoke makes a link unusable.
func (r StoreRecords) Revoke(ctx context.Context, tenantID int64, id string) error {
	return mapErr(r.S.RevokeAttachLink(ctx, tenantID, id))
}

// Downloads is a link's download log.
func (r StoreRecords) Downloads(ctx context.Context, tenantID int64, id string) ([]Download, error) {
	ds, err := r.S.AttachLinkDownloads(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	out := make([]Download, len(ds))
	for i, d := range ds {
		out[i] = Download{At: d.At, File: d.File, From: d.Client}
	}
	return out, nil
}

// Expired lists links that expired before t.
func (r StoreRecords) Expired(ctx context.Context, t time.Time, limit int) ([]Link, error) {
	ss, err := r.S.ExpiredAttachLinks(ctx, t, limit)
	if err != nil {
		return nil, err
	}
	return fromStoreAll(ss)
}

// Delete removes a link.
func (r StoreRecords) Delete(ctx context.Context, tenantID int64, id string) error {
	return r.S.DeleteAttachLink(ctx, tenantID, id)
}

// List returns a tenant's links, newest first; sender "" lists every
// sender's.
func (r StoreRecords) List(ctx context.Context, tenantID int64, sender string, limit int) ([]Link, error) {
	ss, err := r.S.AttachLinks(ctx, tenantID, sender, limit)
	if err != nil {
		return nil, err
	}
	return fromStoreAll(ss)
}

func fromStoreAll(ss []store.AttachLink) ([]Link, error) {
	out := make([]Link, 0, len(ss))
	for _, s := range ss {
		l, err := fromStore(s)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}
