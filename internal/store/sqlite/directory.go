package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

var _ store.DirectoryStore = (*DB)(nil)

const rcptCheckCols = `tenant_id, domain_id, mode, source, admin, synced_us, entries, attempted_us, error, held`

func scanRcptCheck(sc interface{ Scan(...any) error }) (store.RecipientCheck, error) {
	var c store.RecipientCheck
	var synced, attempted int64
	var held int
	err := sc.Scan(&c.TenantID, &c.DomainID, &c.Mode, &c.Source, &c.Admin, &synced, &c.Entries, &attempted, &c.Error, &held)
	c.Synced, c.Attempted, c.Held = fromUS(synced), fromUS(attempted), held != 0
	return c, err
}

// RecipientCheck returns a domain's recipient check setting.
func (db *DB) RecipientCheck(ctx context.Context, tenantID, domainID int64) (store.RecipientCheck, error) {
	c, err := scanRcptCheck(db.queryRow(ctx, `SELECT `+rcptCheckCols+` FROM recipient_checks WHERE tenant_id = ? AND domain_id = ?`, tenantID, domainID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.RecipientCheck{TenantID: tenantID, DomainID: domainID, Mode: store.RcptCheckNone}, nil
	} else if err != nil {
		return c, fmt.Errorf("recipient check: %w", err)
	}
	return c, nil
}

// RecipientChecks lists the tenant's domains checked by directory or callout.
func (db *DB) RecipientChecks(ctx context.Context, tenantID int64) ([]store.RecipientCheck, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+rcptCheckCols+` FROM recipient_checks WHERE tenant_id = ? AND mode <> 'none' ORDER BY domain_id`, tenantID)
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

// ensureRcptCheck makes the domain's row exist; ErrNotFound when the
// domain is not the tenant's.
func ensureRcptCheck(tx *sql.Tx, tenantID, domainID int64) error {
	res, err := tx.Exec(`INSERT INTO recipient_checks(domain_id, tenant_id) SELECT id, tenant_id FROM domains WHERE id = ? AND tenant_id = ?
		ON CONFLICT(domain_id) DO NOTHING`, domainID, tenantID)
	if err != nil {
		return fmt.Errorf("recipient check: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var one int
	err = tx.QueryRow(`SELECT 1 FROM recipient_checks WHERE domain_id = ? AND tenant_id = ?`, domainID, tenantID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("domain %d: %w", domainID, store.ErrNotFound)
	}
	return err
}

// SetRecipientCheck sets a domain's mode, source and admin.
func (db *DB) SetRecipientCheck(ctx context.Context, c store.RecipientCheck) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if err := ensureRcptCheck(tx, c.TenantID, c.DomainID); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE recipient_checks SET mode = ?, source = ?, admin = ? WHERE domain_id = ? AND tenant_id = ?`,
			c.Mode, c.Source, c.Admin, c.DomainID, c.TenantID)
		return err
	})
}

// ReplaceDirectory replaces a domain's directory.
func (db *DB) ReplaceDirectory(ctx context.Context, tenantID, domainID int64, entries []store.DirectoryEntry, at time.Time) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if err := ensureRcptCheck(tx, tenantID, domainID); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM directory_entries WHERE domain_id = ? AND tenant_id = ?`, domainID, tenantID); err != nil {
			return fmt.Errorf("directory: %w", err)
		}
		ins, err := tx.Prepare(`INSERT INTO directory_entries(domain_id, tenant_id, address, kind, target, name) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(domain_id, address) DO NOTHING`)
		if err != nil {
			return fmt.Errorf("directory: %w", err)
		}
		defer ins.Close()
		n := 0
		for _, e := range entries {
			res, err := ins.Exec(domainID, tenantID, e.Address, e.Kind, e.Target, e.Name)
			if err != nil {
				return fmt.Errorf("directory entry %s: %w", e.Address, err)
			}
			k, _ := res.RowsAffected()
			n += int(k)
		}
		_, err = tx.Exec(`UPDATE recipient_checks SET synced_us = ?, attempted_us = ?, entries = ?, error = '', held = 0 WHERE domain_id = ? AND tenant_id = ?`,
			us(at), us(at), n, domainID, tenantID)
		return err
	})
}

// RecordDirectoryAttempt records a synchronisation that changed nothing.
func (db *DB) RecordDirectoryAttempt(ctx context.Context, tenantID, domainID int64, at time.Time, errText string, held bool) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if err := ensureRcptCheck(tx, tenantID, domainID); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE recipient_checks SET attempted_us = ?, error = ?, held = ? WHERE domain_id = ? AND tenant_id = ?`,
			us(at), errText, boolInt(held), domainID, tenantID)
		return err
	})
}

// Directory lists a domain's directory.
func (db *DB) Directory(ctx context.Context, tenantID, domainID int64) ([]store.DirectoryEntry, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT address, kind, target, name FROM directory_entries WHERE tenant_id = ? AND domain_id = ? ORDER BY address`, tenantID, domainID)
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
	err := db.queryRow(ctx, `SELECT 1 FROM directory_entries WHERE tenant_id = ? AND address = ? LIMIT 1`, tenantID, address).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("directory lookup: %w", err)
	}
	return true, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
