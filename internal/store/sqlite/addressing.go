package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mailgate/mailgate/internal/store"
)

// AddressingVersion changes with every change to a domain, a relay network
// or a mailing list's address (the schema's triggers bump it).
func (db *DB) AddressingVersion(ctx context.Context) (int64, error) {
	var v int64
	err := db.queryRow(ctx, `SELECT version FROM store_versions WHERE name = 'addressing'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("addressing version: %w", err)
	}
	return v, nil
}

// Versions reads the addressing version and the tenant's policy version
// in one query.
func (db *DB) Versions(ctx context.Context, tenantID int64) (addressing, policy int64, err error) {
	err = db.queryRow(ctx, `SELECT COALESCE((SELECT version FROM store_versions WHERE name = 'addressing'), 0),
		COALESCE((SELECT policy FROM tenant_versions WHERE tenant_id = ?), 0)`, tenantID).Scan(&addressing, &policy)
	if err != nil {
		return 0, 0, fmt.Errorf("versions: %w", err)
	}
	return addressing, policy, nil
}

// Addressing reads every tenant's domains, relay networks and mailing
// list addresses.
func (db *DB) Addressing(ctx context.Context) (store.Addressing, error) {
	var a store.Addressing
	rows, err := db.r.QueryContext(ctx, `SELECT id, tenant_id, name, created_us FROM domains ORDER BY name`)
	if err != nil {
		return a, fmt.Errorf("domains: %w", err)
	}
	for rows.Next() {
		var d store.Domain
		var c int64
		if err := rows.Scan(&d.ID, &d.TenantID, &d.Name, &c); err != nil {
			rows.Close()
			return a, fmt.Errorf("domains: %w", err)
		}
		d.Created = fromUS(c)
		a.Domains = append(a.Domains, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("domains: %w", err)
	}
	rows, err = db.r.QueryContext(ctx, `SELECT id, tenant_id, prefix FROM relay_nets ORDER BY id`)
	if err != nil {
		return a, fmt.Errorf("relay nets: %w", err)
	}
	for rows.Next() {
		var n store.RelayNet
		var p string
		if err := rows.Scan(&n.ID, &n.TenantID, &p); err != nil {
			rows.Close()
			return a, fmt.Errorf("relay nets: %w", err)
		}
		if n.Prefix, err = netip.ParsePrefix(p); err != nil {
			continue // as TenantForRelayIP: never matches
		}
		a.RelayNets = append(a.RelayNets, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("relay nets: %w", err)
	}
	rows, err = db.r.QueryContext(ctx, `SELECT address FROM ml_lists ORDER BY address`)
	if err != nil {
		return a, fmt.Errorf("mailing lists: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return a, fmt.Errorf("mailing lists: %w", err)
		}
		a.Lists = append(a.Lists, s)
	}
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("mailing lists: %w", err)
	}
	return a, nil
}
