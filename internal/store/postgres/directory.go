package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

var _ store.DirectoryStore = (*DB)(nil)

const rcptCheckCols = `tenant_id, domain_id, mode, source, admin, synced_us, entries, attempted_us, error, held`

func scanRcptCheck(sc interface{ Scan(...any) error }) (store.RecipientCheck, error) {
	var c store.RecipientCheck
	var synced, attempted, entries int64
	err := sc.Scan(&c.TenantID, &c.DomainID, &c.Mode, &c.Source, &c.Admin, &synced, &entries, &attempted, &c.Error, &c.Held)
	c.Synced, c.Attempted, c.Entries = fromUS(synced), fromUS(attempted), int(entries)
	return c, err
}

// RecipientCheck returns a domain's recipient check setting.
func (db *DB) RecipientCheck(ctx context.Context, tenantID, domainID int64) (store.RecipientCheck, error) {
	c, err := scanRcptCheck(db.conn.QueryRow(ctx, `SELECT `+rcptCheckCols+` FROM recipient_checks WHERE tenant_id = $1 AND domain_id = $2`, tenantID, domainID))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.RecipientCheck{TenantID: tenantID, DomainID: domainID, Mode: store.RcptCheckNone}, nil
	} else if err != nil {
		return c, fmt.Errorf("recipient check: %w", err)
	}
	return c, nil
}

// RecipientChecks lists the tenant's domains checked by directory or callout.
func (db *DB) RecipientChecks(ctx context.Context, tenantID int64) ([]store.RecipientCheck, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+rcptCheckCols+` FROM recipient_checks WHERE tenant_id = $1 AND mode <> 'none' ORDER BY domain_id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("recipient checks: %w", err)
	}
	defer rows.Close()
	var out []store.RecipientCheck
	for rows.Next() {
		c, err := scanRcptCheck(rows)
		if err != nil {
			return nil, fmt.Errorf("recipient checks: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ensureRcptCheck makes the domain's row exist (and locks it, so
// concurrent synchronisations of one domain apply one after the other);
// ErrNotFound when the domain is not the tenant's.
func ensureRcptCheck(x tx, tenantID, domainID int64) error {
	if _, err := x.Exec(`INSERT INTO recipient_checks(domain_id, tenant_id) SELECT id, tenant_id FROM domains WHERE id = $1 AND tenant_id = $2
		ON CONFLICT (domain_id) DO NOTHING`, domainID, tenantID); err != nil {
		return fmt.Errorf("recipient check: %w", err)
	}
	var one int
	err := x.QueryRow(`SELECT 1 FROM recipient_checks WHERE domain_id = $1 AND tenant_id = $2 FOR UPDATE`, domainID, tenantID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("domain %d: %w", domainID, store.ErrNotFound)
	}
	return err
}

// SetRecipientCheck sets a domain's mode, source and admin.
func (db *DB) SetRecipientCheck(ctx context.Context, c store.RecipientCheck) error {
	return db.write(ctx, func(x tx) error {
		if err := ensureRcptCheck(x, c.TenantID, c.DomainID); err != nil {
			return err
		}
		_, err := x.Exec(`UPDATE recipient_checks SET mode = $1, source = $2, admin = $3 WHERE domain_id = $4 AND tenant_id = $5`,
			c.Mode, c.Source, c.Admin, c.DomainID, c.TenantID)
		return err
	})
}

// ReplaceDirectory replaces a domain's directory.
func (db *DB) ReplaceDirectory(ctx context.Context, tenantID, domainID int64, entries []store.DirectoryEntry, at time.Time) error {
	return db.write(ctx, func(x tx) error {
		if err := ensureRcptCheck(x, tenantID, domainID); err != nil {
			return err
		}
		if _, err := x.Exec(`DELETE FROM directory_entries WHERE domain_id = $1 AND tenant_id = $2`, domainID, tenantID); err != nil {
			return fmt.Errorf("directory: %w", err)
		}
		// A directory of many thousand addresses goes in a few statements
		// (one round trip per chunk), well inside the write deadline.
		n := 0
		for start := 0; start < len(entries); start += 5000 {
			chunk := entries[start:min(start+5000, len(entries))]
			cols := make([][]string, 4)
			for _, e := range chunk {
				cols[0], cols[1] = append(cols[0], e.Address), append(cols[1], e.Kind)
				cols[2], cols[3] = append(cols[2], e.Target), append(cols[3], e.Name)
			}
			tag, err := x.Exec(`INSERT INTO directory_entries(domain_id, tenant_id, address, kind, target, name)
				SELECT $1, $2, a, k, t, n FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS u(a, k, t, n)
				ON CONFLICT (domain_id, address) DO NOTHING`, domainID, tenantID, cols[0], cols[1], cols[2], cols[3])
			if err != nil {
				return fmt.Errorf("directory entries: %w", err)
			}
			n += int(tag.RowsAffected())
		}
		_, err := x.Exec(`UPDATE recipient_checks SET synced_us = $1, attempted_us = $1, entries = $2, error = '', held = FALSE WHERE domain_id = $3 AND tenant_id = $4`,
			us(at), n, domainID, tenantID)
		return err
	})
}

// RecordDirectoryAttempt records a synchronisation that changed nothing.
func (db *DB) RecordDirectoryAttempt(ctx context.Context, tenantID, domainID int64, at time.Time, errText string, held bool) error {
	return db.write(ctx, func(x tx) error {
		if err := ensureRcptCheck(x, tenantID, domainID); err != nil {
			return err
		}
		_, err := x.Exec(`UPDATE recipient_checks SET attempted_us = $1, error = $2, held = $3 WHERE domain_id = $4 AND tenant_id = $5`,
			us(at), errText, held, domainID, tenantID)
		return err
	})
}

// Directory lists a domain's directory.
func (db *DB) Directory(ctx context.Context, tenantID, domainID int64) ([]store.DirectoryEntry, error) {
	rows, err := db.conn.Query(ctx, `SELECT address, kind, target, name FROM directory_entries WHERE tenant_id = $1 AND domain_id = $2 ORDER BY address`, tenantID, domainID)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	defer rows.Close()
	var out []store.DirectoryEntry
	for rows.Next() {
		var e store.DirectoryEntry
		if err := rows.Scan(&e.Address, &e.Kind, &e.Target, &e.Name); err != nil {
			return nil, fmt.Errorf("directory: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// DirectoryHas reports whether address is in one of the tenant's directories.
func (db *DB) DirectoryHas(ctx context.Context, tenantID int64, address string) (bool, error) {
	var one int
	err := db.conn.QueryRow(ctx, `SELECT 1 FROM directory_entries WHERE tenant_id = $1 AND address = $2 LIMIT 1`, tenantID, address).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("directory lookup: %w", err)
	}
	return true, nil
}
