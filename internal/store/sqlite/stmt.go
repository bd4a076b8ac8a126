package sqlite

import (
	"context"
	"database/sql"
)

// stmt returns the prepared read statement for query, preparing it on
// first use. The inbound pipeline's lookups (domain, settings, routes,
// groups, users, sender history) run for every message: prepared once,
// SQLite parses each of them once per connection instead of once per call.
// database/sql prepares a Stmt on each pooled connection as it is used.
func (db *DB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := db.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := db.r.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, s); loaded {
		s.Close()
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

// queryRow is db.r.QueryRowContext through a prepared statement.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	s, err := db.stmt(ctx, query)
	if err != nil {
		return db.r.QueryRowContext(ctx, query, args...) // reports the same error
	}
	return s.QueryRowContext(ctx, args...)
}

// query is db.r.QueryContext through a prepared statement.
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	s, err := db.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// closeStmts closes the prepared statements (at Close).
func (db *DB) closeStmts() {
	db.stmts.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		db.stmts.Delete(k)
		return true
	})
}
