package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// SchemaVersion is the number of migrations applied to the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := db.r.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// SQL is the database's pool of read connections, for tools that read
// every table as it is (mailgate migrate-store). Nothing may write
// through it: writes go through the store's single writer.
func (db *DB) SQL() *sql.DB { return db.r }

// LatestSchema is the schema version this mailgate migrates to.
func (db *DB) LatestSchema() int { return len(migrations) }
