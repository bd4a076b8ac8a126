package sqlite

import (
	"context"
	"fmt"
	"testing"
)

// cachedQueries returns the queries the writer's connection keeps prepared.
func cachedQueries(t *testing.T, db *DB) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	c, err := db.w.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Raw(func(dc any) error {
		cc, ok := dc.(*cachingConn)
		if !ok {
			return fmt.Errorf("writer connection is %T, not a caching one", dc)
		}
		for q := range cc.stmts {
			got[q] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// The group commit's writes run as plain Exec calls; the connection keeps
// each one's prepared statement so SQLite parses it once, not per message.
func TestWriterKeepsStatementsPrepared(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	for i := range 3 {
		if _, err := db.CreateTenant(ctx, fmt.Sprintf("t%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	q := cachedQueries(t, db)
	for _, want := range []string{`INSERT INTO tenants(name, created_us) VALUES (?, ?)`, `SAVEPOINT op`, `RELEASE op`} {
		if !q[want] {
			t.Errorf("%q not kept prepared; kept: %d queries", want, len(q))
		}
	}
	ts, err := db.Tenants(ctx)
	if err != nil || len(ts) != 3 {
		t.Fatalf("tenants after cached inserts: %v %v", ts, err)
	}
}

// A query asked again while its own rows are still being read gets a
// statement of its own: sharing the open one would restart the outer loop.
func TestCachedQueryWhileItsRowsAreOpen(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	for i := range 3 {
		if _, err := db.CreateTenant(ctx, fmt.Sprintf("t%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := db.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const q = `SELECT name FROM tenants ORDER BY name`
	rows, err := c.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var outer []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		outer = append(outer, n)
		var inner int
		r2, err := c.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for r2.Next() {
			inner++
		}
		r2.Close()
		if inner != 3 {
			t.Fatalf("inner query saw %d rows", inner)
		}
	}
	rows.Close()
	if fmt.Sprint(outer) != "[t0 t1 t2]" {
		t.Fatalf("outer rows %v", outer)
	}
	// And afterwards the cached statement serves again, from the start.
	for range 2 {
		rows, err := c.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var again []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			again = append(again, n)
		}
		rows.Close()
		if fmt.Sprint(again) != "[t0 t1 t2]" {
			t.Fatalf("rows on reuse %v", again)
		}
	}
}
