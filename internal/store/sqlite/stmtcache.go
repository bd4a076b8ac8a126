package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
)

// maxCachedStmts bounds the statements one connection keeps prepared.
// The store's queries are a few hundred fixed texts; a query built with a
// variable number of placeholders past the bound is prepared per call, as
// without the cache.
const maxCachedStmts = 512

// cachingConnector opens the SQLite driver's connections wrapped in
// cachingConn. The driver parses a query's SQL on every Exec and Query
// that does not go through a prepared statement, and the store's writes
// run as plain tx.Exec calls inside the group commit, on its one writer
// goroutine: there, parsing each INSERT and UPDATE again was a tenth of
// the process's CPU and lengthened every commit.
type cachingConnector struct {
	dsn string
	drv driver.Driver
}

func newCachingConnector(dsn string) (*cachingConnector, error) {
	// The driver registered as "sqlite"; sql.Open does not connect.
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	drv := db.Driver()
	db.Close()
	return &cachingConnector{dsn: dsn, drv: drv}, nil
}

func (c *cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{Conn: conn, stmts: make(map[string]*cachedStmt)}, nil
}

func (c *cachingConnector) Driver() driver.Driver { return c.drv }

// cachingConn keeps each query's prepared statement for the connection's
// lifetime. database/sql uses a driver connection from one goroutine at a
// time, so the map needs no lock. A statement whose rows are still open is
// busy: the same query asked again meanwhile (inside a loop over those
// rows, say) gets a statement of its own.
type cachingConn struct {
	driver.Conn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	st   driver.Stmt
	busy bool
}

type stmtExecer interface {
	ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error)
}

type stmtQueryer interface {
	QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error)
}

// cached returns the idle prepared statement for query, preparing it when
// there is none; ok is false when the caller must prepare and close one
// itself (busy, or the cache is full).
func (c *cachingConn) cached(ctx context.Context, query string) (cs *cachedStmt, ok bool, err error) {
	if cs, found := c.stmts[query]; found {
		return cs, !cs.busy, nil
	}
	if len(c.stmts) >= maxCachedStmts {
		return nil, false, nil
	}
	st, err := c.prepare(ctx, query)
	if err != nil {
		return nil, false, err
	}
	cs = &cachedStmt{st: st}
	c.stmts[query] = cs
	return cs, true, nil
}

func (c *cachingConn) prepare(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.Conn.Prepare(query)
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.prepare(ctx, query)
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs, ok, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if !ok {
		e, isExecer := c.Conn.(driver.ExecerContext)
		if !isExecer {
			return nil, driver.ErrSkip
		}
		return e.ExecContext(ctx, query, args)
	}
	e, isExecer := cs.st.(stmtExecer)
	if !isExecer {
		return nil, driver.ErrSkip
	}
	return e.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs, ok, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if !ok {
		q, isQueryer := c.Conn.(driver.QueryerContext)
		if !isQueryer {
			return nil, driver.ErrSkip
		}
		return q.QueryContext(ctx, query, args)
	}
	q, isQueryer := cs.st.(stmtQueryer)
	if !isQueryer {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, cs: cs}, nil
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return c.Conn.Begin() //nolint:staticcheck // fallback for drivers without BeginTx
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.st.Close())
		delete(c.stmts, q)
	}
	errs = append(errs, c.Conn.Close())
	return errors.Join(errs...)
}

// cachedRows frees its statement for the next call when closed.
type cachedRows struct {
	driver.Rows
	cs *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.cs.busy = false
	return err
}
