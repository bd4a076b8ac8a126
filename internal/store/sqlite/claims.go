package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// AddDomainClaim records a tenant's unverified domain.
func (db *DB) AddDomainClaim(ctx context.Context, c store.DomainClaim) (store.DomainClaim, error) {
	if c.Created.IsZero() {
		c.Created = time.Now().UTC()
	}
	routes, err := store.EncodeClaimRoutes(c.Routes)
	if err != nil {
		return c, err
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRow(`SELECT 1 FROM domains WHERE tenant_id = ? AND name = ?`, c.TenantID, c.Name).Scan(&one)
		if err == nil {
			return fmt.Errorf("domain %q: %w", c.Name, store.ErrExists)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("domain claim: %w", err)
		}
		res, err := tx.Exec(`INSERT INTO domain_claims(tenant_id, name, token, routes, created_us) VALUES (?, ?, ?, ?, ?)`,
			c.TenantID, c.Name, c.Token, routes, us(c.Created))
		if isUnique(err) {
			return fmt.Errorf("domain %q: %w", c.Name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("domain claim: %w", err)
		}
		c.ID, err = res.LastInsertId()
		return err
	})
	return c, err
}

// DomainClaims lists a tenant's unverified domains.
func (db *DB) DomainClaims(ctx context.Context, tenantID int64) ([]store.DomainClaim, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, tenant_id, name, token, routes, created_us FROM domain_claims WHERE tenant_id = ? ORDER BY name`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("domain claims: %w", err)
	}
	defer rows.Close()
	var out []store.DomainClaim
	for rows.Next() {
		c, err := scanClaim(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func scanClaim(row interface{ Scan(...any) error }) (store.DomainClaim, error) {
	var c store.DomainClaim
	var routes string
	var created int64
	if err := row.Scan(&c.ID, &c.TenantID, &c.Name, &c.Token, &routes, &created); err != nil {
		return c, err
	}
	c.Created = fromUS(created)
	var err error
	c.Routes, err = store.DecodeClaimRoutes(c.TenantID, c.Name, routes)
	return c, err
}

// DeleteDomainClaim removes a tenant's unverified domain.
func (db *DB) DeleteDomainClaim(ctx context.Context, tenantID int64, name string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM domain_claims WHERE tenant_id = ? AND name = ?`, tenantID, name)
		return affected(res, err, "domain claim "+name)
	})
}

// ServeDomainClaim turns a claim into a served domain with its routes.
func (db *DB) ServeDomainClaim(ctx context.Context, tenantID int64, name string) (store.Domain, error) {
	var d store.Domain
	err := db.write(ctx, func(tx *sql.Tx) error {
		c, err := scanClaim(tx.QueryRow(`SELECT id, tenant_id, name, token, routes, created_us FROM domain_claims WHERE tenant_id = ? AND name = ?`, tenantID, name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("domain claim %q: %w", name, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("domain claim: %w", err)
		}
		d = store.Domain{TenantID: tenantID, Name: name, Created: time.Now().UTC()}
		res, err := tx.Exec(`INSERT INTO domains(tenant_id, name, created_us) VALUES (?, ?, ?)`, tenantID, name, us(d.Created))
		if isUnique(err) {
			return fmt.Errorf("domain %q: %w", name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("serve domain claim: %w", err)
		}
		if d.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, r := range c.Routes {
			if _, err := tx.Exec(`INSERT INTO routes(tenant_id, domain_id, priority, target, tls) VALUES (?, ?, ?, ?, ?)`,
				tenantID, d.ID, r.Priority, r.Target, r.TLS); err != nil {
				return fmt.Errorf("serve domain claim: %w", err)
			}
		}
		if _, err := tx.Exec(`DELETE FROM domain_claims WHERE id = ?`, c.ID); err != nil {
			return fmt.Errorf("serve domain claim: %w", err)
		}
		return nil
	})
	return d, err
}
