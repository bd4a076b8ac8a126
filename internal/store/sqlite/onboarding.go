package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
)

const onboardingCols = `tenant_id, domain, service, done, test_message, finished_us, updated_us, updated_by`

func scanOnboarding(sc interface{ Scan(...any) error }) (store.Onboarding, error) {
	var o store.Onboarding
	var fin, upd int64
	err := sc.Scan(&o.TenantID, &o.Domain, &o.Service, &o.Done, &o.TestMessage, &fin, &upd, &o.UpdatedBy)
	if fin != 0 {
		o.Finished = fromUS(fin)
	}
	o.Updated = fromUS(upd)
	return o, err
}

// Onboarding returns the tenant's wizard state for domain.
func (db *DB) Onboarding(ctx context.Context, tenantID int64, domain string) (store.Onboarding, error) {
	o, err := scanOnboarding(db.r.QueryRowContext(ctx, `SELECT `+onboardingCols+` FROM domain_onboarding WHERE tenant_id = ? AND domain = ?`,
		tenantID, strings.ToLower(domain)))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Onboarding{}, fmt.Errorf("onboarding of %s: %w", domain, store.ErrNotFound)
	} else if err != nil {
		return store.Onboarding{}, fmt.Errorf("onboarding: %w", err)
	}
	return o, nil
}

// Onboardings lists the tenant's wizard states by domain.
func (db *DB) Onboardings(ctx context.Context, tenantID int64) ([]store.Onboarding, error) {
	q := `SELECT ` + onboardingCols + ` FROM domain_onboarding`
	var args []any
	if tenantID != 0 {
		q += ` WHERE tenant_id = ?`
		args = append(args, tenantID)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY domain, tenant_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("onboardings: %w", err)
	}
	defer rows.Close()
	var out []store.Onboarding
	for rows.Next() {
		o, err := scanOnboarding(rows)
		if err != nil {
			return nil, fmt.Errorf("onboardings: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// SaveOnboarding creates or replaces o's row.
func (db *DB) SaveOnboarding(ctx context.Context, o store.Onboarding) error {
	var fin int64
	if !o.Finished.IsZero() {
		fin = us(o.Finished)
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO domain_onboarding(`+onboardingCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(tenant_id, domain) DO UPDATE SET service = excluded.service, done = excluded.done,
			test_message = excluded.test_message, finished_us = excluded.finished_us,
			updated_us = excluded.updated_us, updated_by = excluded.updated_by`,
			o.TenantID, strings.ToLower(o.Domain), o.Service, o.Done, o.TestMessage, fin, us(o.Updated), o.UpdatedBy)
		if err != nil {
			return fmt.Errorf("save onboarding: %w", err)
		}
		return nil
	})
}

// DeleteOnboarding removes the tenant's wizard state for domain.
func (db *DB) DeleteOnboarding(ctx context.Context, tenantID int64, domain string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM domain_onboarding WHERE tenant_id = ? AND domain = ?`, tenantID, strings.ToLower(domain)); err != nil {
			return fmt.Errorf("delete onboarding: %w", err)
		}
		return nil
	})
}
