package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/store"
)

// AddressingVersion changes with every change to a domain, a relay network
// or a mailing list's address (the schema's triggers bump it).
func (db *DB) AddressingVersion(ctx context.Context) (int64, error) {
	var v int64
	err := db.conn.QueryRow(ctx, `SELECT version FROM store_versions WHERE name = 'addressing'`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
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
	err = db.conn.QueryRow(ctx, `SELECT COALESCE((SELECT version FROM store_versions WHERE name = 'addressing'), 0),
		COALESCE((SELECT policy FROM tenant_versions WHERE tenant_id = $1), 0)`, tenantID).Scan(&addressing, &policy)
	if err != nil {
		return 0, 0, fmt.Errorf("versions: %w", err)
	}
	return addressing, policy, nil
}

// Addressing reads every tenant's domains, relay networks and mailing
// list addresses.
func (db *DB) Addressing(ctx context.Context) (store.Addressing, error) {
	var a store.Addressing
	rows, err := db.conn.Query(ctx, `SELECT id, tenant_id, name, created_us FROM domains ORDER BY name`)
	a.Domains, err = collect(rows, err, func(r pgx.Rows) (store.Domain, error) { return scanDomain(r) })
	if err != nil {
		return a, fmt.Errorf("domains: %w", err)
	}
	type net struct {
		id, tenantID int64
		prefix       string
	}
	rows, err = db.conn.Query(ctx, `SELECT id, tenant_id, prefix FROM relay_nets ORDER BY id`)
	nets, err := collect(rows, err, func(r pgx.Rows) (net, error) {
		var n net
		err := r.Scan(&n.id, &n.tenantID, &n.prefix)
		return n, err
	})
	if err != nil {
		return a, fmt.Errorf("relay nets: %w", err)
	}
	for _, n := range nets {
		p, err := netip.ParsePrefix(n.prefix)
		if err != nil {
			continue // as TenantForRelayIP: never matches
		}
		a.RelayNets = append(a.RelayNets, store.RelayNet{ID: n.id, TenantID: n.tenantID, Prefix: p})
	}
	rows, err = db.conn.Query(ctx, `SELECT address FROM ml_lists ORDER BY address`)
	a.Lists, err = collect(rows, err, func(r pgx.Rows) (string, error) {
		var s string
		err := r.Scan(&s)
		return s, err
	})
	if err != nil {
		return a, fmt.Errorf("mailing lists: %w", err)
	}
	return a, nil
}
