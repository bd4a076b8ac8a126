package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
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

// Schema reads the schema version of the database at path without
// creating or migrating it, and returns it with the version this mailgate
// migrates to (mailgate doctor: a diagnosis changes nothing).
func Schema(ctx context.Context, path string) (have, want int, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, len(migrations), fmt.Errorf("no database: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return 0, len(migrations), fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&have); err != nil {
		return 0, len(migrations), fmt.Errorf("schema version of %s: %w", path, err)
	}
	return have, len(migrations), nil
}
