package store

import (
	"context"
	"time"
)

// AttachLink is the record behind an attachment download link (package
// attachlink). Data is the link's description (files, recipients,
// subject) as its owner encodes it; the store keeps the counters.
type AttachLink struct {
	TenantID     int64
	ID           string
	Sender       string
	Data         []byte
	Created      time.Time
	Expires      time.Time
	MaxDownloads int // 0: no limit
	Downloads    int
	Revoked      bool
}

// LinkDownload is one entry of a link's download log.
type LinkDownload struct {
	At     time.Time
	File   string
	Client string
}

// Why CountAttachLinkDownload refused a download.
const (
	LinkRevoked = "revoked"
	LinkExpired = "expired"
	LinkLimit   = "limit"
)

// AttachLinkStore keeps attachment links. The SQLite and PostgreSQL
// stores implement it.
type AttachLinkStore interface {
	// CreateAttachLink stores a new link; ErrExists for a taken ID.
	CreateAttachLink(ctx context.Context, l AttachLink) error
	// AttachLink returns a link of the tenant; ErrNotFound otherwise.
	AttachLink(ctx context.Context, tenantID int64, id string) (AttachLink, error)
	// CountAttachLinkDownload records one download if the link is usable
	// at d.At (not revoked, not expired, under its limit), in one commit,
	// so concurrent downloads never exceed the limit. refused is "" when
	// counted, else LinkRevoked, LinkExpired or LinkLimit; the link is
	// returned as it is after the call.
	CountAttachLinkDownload(ctx context.Context, tenantID int64, id string, d LinkDownload) (l AttachLink, refused string, err error)
	// RevokeAttachLink makes the link unusable; ErrNotFound without it.
	RevokeAttachLink(ctx context.Context, tenantID int64, id string) error
	// AttachLinkDownloads is the link's download log, oldest first.
	AttachLinkDownloads(ctx context.Context, tenantID int64, id string) ([]LinkDownload, error)
	// AttachLinks lists a tenant's links, newest first; sender "" lists
	// every sender's (the administrator's view).
	AttachLinks(ctx context.Context, tenantID int64, sender string, limit int) ([]AttachLink, error)
	// ExpiredAttachLinks lists up to limit links of any tenant that
	// expired before t.
	ExpiredAttachLinks(ctx context.Context, t time.Time, limit int) ([]AttachLink, error)
	// DeleteAttachLink removes a link and its log.
	DeleteAttachLink(ctx context.Context, tenantID int64, id string) error
}
