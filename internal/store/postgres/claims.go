package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

const claimCols = `id, tenant_id, name, token, routes, created_us`

func scanClaim(r pgx.Row) (store.DomainClaim, error) {
	var c store.DomainClaim
	var routes string
	var created int64
	if err := r.Scan(&c.ID, &c.TenantID, &c.Name, &c.Token, &routes, &created); err != nil {
		return c, err
	}
	c.Created = fromUS(created)
	var err error
	c.Routes, err = store.DecodeClaimRoutes(c.TenantID, c.Name, routes)
	return c, err
}

// AddDomainClaim records a tenant's unverified domain.
func (db *DB) AddDomainClaim(ctx context.Context, c store.DomainClaim) (store.DomainClaim, error) {
	if c.Created.IsZero() {
		c.Created = time.Now().UTC()
	}
	routes, err := store.EncodeClaimRoutes(c.Routes)
	if err != nil {
		return c, err
	}
	err = db.write(ctx, func(x tx) error {
		var one int
		err := x.QueryRow(`SELECT 1 FROM domains WHERE tenant_id = $1 AND name = $2`, c.TenantID, c.Name).Scan(&one)
		if err == nil {
			return fmt.Errorf("domain %q: %w", c.Name, store.ErrExists)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("domain claim: %w", err)
		}
		err = x.QueryRow(`INSERT INTO domain_claims(tenant_id, name, token, routes, created_us) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			c.TenantID, c.Name, c.Token, routes, us(c.Created)).Scan(&c.ID)
		if isUnique(err) {
			return fmt.Errorf("domain %q: %w", c.Name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("domain claim: %w", err)
		}
		return nil
	})
	return c, err
}

// DomainClaims lists a tenant's unverified domains by name.
func (db *DB) DomainClaims(ctx context.Context, tenantID int64) ([]store.DomainClaim, error) {
	rows, err := db.conn.Query(ctx, `SELECT `+claimCols+` FROM domain_claims WHERE tenant_id = $1 ORDER BY name`, tenantID)
	out, err := collect(rows, err, func(r pgx.Rows) (store.DomainClaim, error) { return scanClaim(r) })
	if err != nil {
		return nil, fmt.Errorf("domain claims: %w", err)
	}
	return out, nil
}

// DeleteDomainClaim removes a tenant's unverified domain.
func (db *DB) DeleteDomainClaim(ctx context.Context, tenantID int64, name string) error {
	return db.write(ctx, func(x tx) error {
		tag, err := x.Exec(`DELETE FROM domain_claims WHERE tenant_id = $1 AND name = $2`, tenantID, name)
		return affected(tag, err)("domain claim " + name)
	})
}

// ServeDomainClaim turns a claim into a served domain with its routes, in
// one transaction; ErrExists when the name is served already (by any
// tenant).
func (db *DB) ServeDomainClaim(ctx context.Context, tenantID int64, name string) (store.Domain, error) {
	var d store.Domain
	err := db.write(ctx, func(x tx) error {
		c, err := scanClaim(x.QueryRow(`SELECT `+claimCols+` FROM domain_claims WHERE tenant_id = $1 AND name = $2 FOR UPDATE`, tenantID, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("domain claim %q: %w", name, store.ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("domain claim: %w", err)
		}
		d = store.Domain{TenantID: tenantID, Name: name, Created: time.Now().UTC()}
		err = x.QueryRow(`INSERT INTO domains(tenant_id, name, created_us) VALUES ($1, $2, $3) RETURNING id`, tenantID, name, us(d.Created)).Scan(&d.ID)
		if isUnique(err) {
			return fmt.Errorf("domain %q: %w", name, store.ErrExists)
		} else if err != nil {
			return fmt.Errorf("serve domain claim: %w", err)
		}
		for _, r := range c.Routes {
			if _, err := x.Exec(`INSERT INTO routes(tenant_id, domain_id, priority, target, tls) VALUES ($1, $2, $3, $4, $5)`,
				tenantID, d.ID, r.Priority, r.Target, r.TLS); err != nil {
				return fmt.Errorf("serve domain claim: %w", err)
			}
		}
		if _, err := x.Exec(`DELETE FROM domain_claims WHERE id = $1`, c.ID); err != nil {
			return fmt.Errorf("serve domain claim: %w", err)
		}
		return nil
	})
	return d, err
}
