package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the advisory lock key held while migrating ("mailgate"
// in ASCII): nodes starting together wait for the first one's migration
// instead of racing it.
const migrationLock = 0x6d61696c67617465

// migrate applies the migrations the database lacks, each in its own
// transaction, holding the advisory lock on one connection throughout.
func migrate(ctx context.Context, pool *pgxpool.Pool) (from, to int, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return 0, 0, fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		// A session lock outlives a failed transaction; release it even
		// when ctx is done, or the pooled connection would keep it.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(migrationLock)); uerr != nil && err == nil {
			err = fmt.Errorf("migrate: unlock: %w", uerr)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&from); err != nil {
		return 0, 0, fmt.Errorf("migrate: %w", err)
	}
	if from > len(migrations) {
		return from, from, fmt.Errorf("database schema version %d is newer than this mailgate (%d)", from, len(migrations))
	}
	for v := from + 1; v <= len(migrations); v++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return from, v - 1, fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			tx.Rollback(ctx)
			return from, v - 1, fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations(version) VALUES ($1)`, v); err != nil {
			tx.Rollback(ctx)
			return from, v - 1, fmt.Errorf("migration %d: %w", v, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return from, v - 1, fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return from, len(migrations), nil
}
