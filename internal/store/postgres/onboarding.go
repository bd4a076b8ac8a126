package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

const onboardingCols = `tenant_id, domain, service, done, test_message, finished_us, updated_us, updated_by`

func scanOnboarding(sc interface{ Scan(...any) error }) (store.Onboarding, error) {
	var o store.Onboarding
	var fin, upd, done int64
	err := sc.Scan(&o.TenantID, &o.Domain, &o.Service, &done, &o.TestMessage, &fin, &upd, &o.UpdatedBy)
	o.Done = int(done)
	if fin != 0 {
		o.Finished = fromUS(fin)
	}
	o.Updated = fromUS(upd)
	return o, err
}

// Onboarding returns the tenant's wizard state for domain.
func (db *DB) Onboarding(ctx context.Context, tenantID int64, domain string) (store.Onboarding, error) {
	o, err := scanOnboarding(db.conn.QueryRow(ctx, `SELECT `+onboardingCols+` FROM domain_onboarding WHERE tenant_id = $1 AND domain = $2`,
		tenantID, strings.ToLower(domain)))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Onboarding{}, fmt.Errorf("onboarding of %s: %w", domain, store.ErrNotFound)
	} else if err != nil {
		return store.Onboarding{}, fmt.Errorf("onboarding: %w", err)
	}
	return o, nil
}

// Onboardings lists the tenant's wizard states by domain.
func (db *DB) Onboardings(ctx context.Context, tenantID int64) ([]store.Onboarding, error) {
	q := `SELECT ` + onboardingCols + ` FROM domain_onboarding`
	var a args
	if tenantID != 0 {
		q += ` WHERE tenant_id = ` + a.add(tenantID)
	}
	rows, err := db.conn.Query(ctx, q+` ORDER BY domain, tenant_id`, a...)
	out, err := collect(rows, err, func(r pgx.Rows) (store.Onboarding, error) { return scanOnboarding(r) })
	if err != nil {
		return nil, fmt.Errorf("onboardings: %w", err)
	}
	return out, nil
}

// SaveOnboarding creates or replaces o's row.
func (db *DB) SaveOnboarding(ctx context.Context, o store.Onboarding) error {
	var fin int64
	if !o.Finished.IsZero() {
		fin = us(o.Finished)
	}
	return db.write(ctx, func(x tx) error {
		_, err := x.Exec(`INSERT INTO domain_onboarding(`+onboardingCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (tenant_id, domain) DO UPDATE SET service = excluded.service, done = excluded.done,
			test_message = excluded.test_message, finished_us = excluded.finished_us,
			updated_us = excluded.updated_us, updated_by = excluded.updated_by`,
			o.TenantID, strings.ToLower(o.Domain), o.Service, int64(o.Done), o.TestMessage, fin, us(o.Updated), o.UpdatedBy)
		if err != nil {
			return fmt.Errorf("save onboarding: %w", err)
		}
		return nil
	})
}

// DeleteOnboarding removes the tenant's wizard state for domain.
func (db *DB) DeleteOnboarding(ctx context.Context, tenantID int64, domain string) error {
	return db.write(ctx, func(x tx) error {
		if _, err := x.Exec(`DELETE FROM domain_onboarding WHERE tenant_id = $1 AND domain = $2`, tenantID, strings.ToLower(domain)); err != nil {
			return fmt.Errorf("delete onboarding: %w", err)
		}
		return nil
	})
}
