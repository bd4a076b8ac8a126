package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

var _ store.AttachLinkStore = (*DB)(nil)

const attachLinkCols = `tenant_id, id, sender, data, created_us, expires_us, max_downloads, downloads, revoked`

func scanAttachLink(sc interface{ Scan(...any) error }) (store.AttachLink, error) {
	var l store.AttachLink
	var created, expires int64
	var revoked int
	err := sc.Scan(&l.TenantID, &l.ID, &l.Sender, &l.Data, &created, &expires, &l.MaxDownloads, &l.Downloads, &revoked)
	l.Created, l.Expires, l.Revoked = fromUS(created), fromUS(expires), revoked != 0
	return l, err
}

// CreateAttachLink stores a new link.
func (db *DB) CreateAttachLink(ctx context.Context, l store.AttachLink) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO attach_links(`+attachLinkCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)`,
			l.TenantID, l.ID, l.Sender, l.Data, us(l.Created), us(l.Expires), l.MaxDownloads)
		if isUnique(err) {
			return fmt.Errorf("attachment link %s: %w", l.ID, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("attachment link: %w", err)
		}
		return nil
	})
}

func attachLinkIn(q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, ctx context.Context, tenantID int64, id string) (store.AttachLink, error) {
	l, err := scanAttachLink(q.QueryRowContext(ctx, `SELECT `+attachLinkCols+` FROM attach_links WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("attachment link %s: %w", id, store.ErrNotFound)
	} else if err != nil {
		return l, fmt.Errorf("attachment link: %w", err)
	}
	return l, nil
}

// AttachLink returns a link.
func (db *DB) AttachLink(ctx context.Context, tenantID int64, id string) (store.AttachLink, error) {
	return attachLinkIn(db.r, ctx, tenantID, id)
}

// CountAttachLinkDownload records one download if the link is usable.
func (db *DB) CountAttachLinkDownload(ctx context.Context, tenantID int64, id string, d store.LinkDownload) (store.AttachLink, string, error) {
	var l store.AttachLink
	var refused string
	err := db.write(ctx, func(tx *sql.Tx) error {
		refused = ""
		res, err := tx.Exec(`UPDATE attach_links SET downloads = downloads + 1 WHERE tenant_id = ? AND id = ? AND revoked = 0
			AND expires_us > ? AND (max_downloads = 0 OR downloads < max_downloads)`, tenantID, id, us(d.At))
		if err != nil {
			return fmt.Errorf("count download: %w", err)
		}
		n, _ := res.RowsAffected()
		if n == 1 {
			if _, err := tx.Exec(`INSERT INTO attach_link_downloads(tenant_id, link_id, at_us, file, client) VALUES (?, ?, ?, ?, ?)`,
				tenantID, id, us(d.At), d.File, d.Client); err != nil {
				return fmt.Errorf("download log: %w", err)
			}
		}
		l, err = attachLinkIn(tx, ctx, tenantID, id)
		if err != nil {
			return err
		}
		if n != 1 {
			refused = refusal(l, d.At)
		}
		return nil
	})
	return l, refused, err
}

// refusal says why a link that was not counted is unusable.
func refusal(l store.AttachLink, at time.Time) string {
	switch {
	case l.Revoked:
		return store.LinkRevoked
	case !at.Before(l.Expires):
		return store.LinkExpired
	}
	return store.LinkLimit
}

// RevokeAttachLink makes a link unusable.
func (db *DB) RevokeAttachLink(ctx context.Context, tenantID int64, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE attach_links SET revoked = 1 WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err != nil {
			return fmt.Errorf("revoke link: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("attachment link %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// AttachLinkDownloads is a link's download log.
func (db *DB) AttachLinkDownloads(ctx context.Context, tenantID int64, id string) ([]store.LinkDownload, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT at_us, file, client FROM attach_link_downloads WHERE tenant_id = ? AND link_id = ? ORDER BY at_us, id`, tenantID, id)
	if err != nil {
		return nil, fmt.Errorf("download log: %w", err)
	}
	defer rows.Close()
	var out []store.LinkDownload
	for rows.Next() {
		var d store.LinkDownload
		var at int64
		if err := rows.Scan(&at, &d.File, &d.Client); err != nil {
			return nil, fmt.Errorf("download log: %w", err)
		}
		d.At = fromUS(at)
		out = append(out, d)
	}
	return out, rows.Err()
}

func (db *DB) attachLinks(ctx context.Context, q string, args ...any) ([]store.AttachLink, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("attachment links: %w", err)
	}
	defer rows.Close()
	var out []store.AttachLink
	for rows.Next() {
		l, err := scanAttachLink(rows)
		if err != nil {
			return nil, fmt.Errorf("attachment links: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// AttachLinks lists a tenant's links, newest first.
func (db *DB) AttachLinks(ctx context.Context, tenantID int64, sender string, limit int) ([]store.AttachLink, error) {
	if sender == "" {
		return db.attachLinks(ctx, `SELECT `+attachLinkCols+` FROM attach_links WHERE tenant_id = ? ORDER BY created_us DESC, id LIMIT ?`, tenantID, limit)
	}
	return db.attachLinks(ctx, `SELECT `+attachLinkCols+` FROM attach_links WHERE tenant_id = ? AND sender = ? ORDER BY created_us DESC, id LIMIT ?`, tenantID, sender, limit)
}

// ExpiredAttachLinks lists links that expired before t.
func (db *DB) ExpiredAttachLinks(ctx context.Context, t time.Time, limit int) ([]store.AttachLink, error) {
	return db.attachLinks(ctx, `SELECT `+attachLinkCols+` FROM attach_links WHERE expires_us < ? ORDER BY expires_us LIMIT ?`, us(t), limit)
}

// DeleteAttachLink removes a link and its log.
func (db *DB) DeleteAttachLink(ctx context.Context, tenantID int64, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM attach_link_downloads WHERE tenant_id = ? AND link_id = ?`, tenantID, id); err != nil {
			return fmt.Errorf("delete link: %w", err)
		}
		if _, err := tx.Exec(`DELETE FROM attach_links WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
			return fmt.Errorf("delete link: %w", err)
		}
		return nil
	})
}
