package migratestore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The two schemas hold the same tables, column for column: every table of
// both is copied, found by reading the schemas, except these, which hold
// nothing of the installation's own (what a store derives from its other
// tables, or its own bookkeeping). The SQLite store's virtual FTS5 tables
// (and their shadow tables, named after them) are search indexes over
// other tables, which PostgreSQL searches through trigram indexes instead:
// they are left out too. A table in one schema only, a column in one table
// only, a table without a primary key or a column type the copy does not
// know stops the migration before it writes anything, and
// TestEveryTableIsCopied fails on such a schema: a table added to the
// stores later is copied without a change here, or the test says why not.
var (
	sqliteOnly = map[string]string{
		"schema_version":   "the SQLite store's migration counter (PostgreSQL has its own schema_migrations)",
		"track_ids":        "row numbers of the tracking search index (FTS5); PostgreSQL searches messages through trigram indexes",
		"track_indexed":    "how far the tracking search index (FTS5) has got",
		"mailbox_text_ids": "keys of the mailbox search index (FTS5); PostgreSQL indexes the mailbox texts with GIN expression indexes",
	}
	postgresOnly = map[string]string{
		"schema_migrations": "the PostgreSQL store's migration record",
		"archive_search":    "the audit archive's search index in PostgreSQL, which the archiver builds from the archive's entries (copied as not yet indexed)",
	}
)

// column is one column of a copied table.
type column struct {
	name   string
	pgType string // information_schema data_type
	serial bool   // filled by a sequence (identity or serial)
}

// table is one table to copy.
type table struct {
	name  string
	cols  []column
	pk    []string // primary key columns, in order
	intPK bool     // one integer column: resumed after the target's greatest
}

func (t table) colNames() []string {
	var out []string
	for _, c := range t.cols {
		out = append(out, c.name)
	}
	return out
}

// copyable are the PostgreSQL column types the copy converts SQLite's
// values to.
var copyable = []string{"bigint", "integer", "smallint", "boolean", "text", "bytea", "double precision", "real"}

// plan reads both schemas and returns the tables to copy, parents before
// the tables whose foreign keys refer to them. It fails on any difference
// between the schemas that would leave data behind.
func plan(ctx context.Context, src *sql.DB, dst *pgxpool.Pool) ([]table, error) {
	srcTables, err := sqliteTables(ctx, src)
	if err != nil {
		return nil, err
	}
	dstTables, err := pgTables(ctx, dst)
	if err != nil {
		return nil, err
	}
	var problems []string
	for name := range srcTables {
		if _, ok := dstTables[name]; !ok {
			problems = append(problems, fmt.Sprintf("table %s is in the SQLite store but not in PostgreSQL", name))
		}
	}
	var tables []table
	for name, cols := range dstTables {
		srcCols, ok := srcTables[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("table %s is in PostgreSQL but not in the SQLite store", name))
			continue
		}
		t := table{name: name, cols: cols}
		var dstNames []string
		for _, c := range cols {
			dstNames = append(dstNames, c.name)
			if !slices.Contains(copyable, c.pgType) {
				problems = append(problems, fmt.Sprintf("column %s.%s has type %s, which migrate-store cannot copy", name, c.name, c.pgType))
			}
		}
		for _, c := range srcCols {
			if !slices.Contains(dstNames, c) {
				problems = append(problems, fmt.Sprintf("column %s.%s is in the SQLite store but not in PostgreSQL", name, c))
			}
		}
		for _, c := range dstNames {
			if !slices.Contains(srcCols, c) {
				problems = append(problems, fmt.Sprintf("column %s.%s is in PostgreSQL but not in the SQLite store", name, c))
			}
		}
		if t.pk, err = primaryKey(ctx, dst, name); err != nil {
			return nil, err
		}
		if len(t.pk) == 0 {
			problems = append(problems, fmt.Sprintf("table %s has no primary key: a resumed copy could not skip the rows it has", name))
		}
		if len(t.pk) == 1 {
			for _, c := range cols {
				if c.name == t.pk[0] && (c.pgType == "bigint" || c.pgType == "integer") {
					t.intPK = true
				}
			}
		}
		tables = append(tables, t)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("the SQLite and PostgreSQL schemas differ (is the target migrated by this mailgate?): %s", strings.Join(problems, "; "))
	}
	return orderByForeignKeys(ctx, dst, tables)
}

// sqliteTables lists the SQLite store's tables to copy with their columns.
func sqliteTables(ctx context.Context, db *sql.DB) (map[string][]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if err != nil {
		return nil, fmt.Errorf("read the SQLite schema: %w", err)
	}
	all := map[string]string{}
	for rows.Next() {
		var name, ddl string
		if err := rows.Scan(&name, &ddl); err != nil {
			rows.Close()
			return nil, err
		}
		all[name] = ddl
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var virtual []string
	for name, ddl := range all {
		if strings.HasPrefix(strings.ToUpper(ddl), "CREATE VIRTUAL TABLE") {
			virtual = append(virtual, name)
		}
	}
	out := map[string][]string{}
	for name := range all {
		if _, skip := sqliteOnly[name]; skip || searchIndex(name, virtual) {
			continue
		}
		cols, err := sqliteColumns(ctx, db, name)
		if err != nil {
			return nil, err
		}
		out[name] = cols
	}
	return out, nil
}

// searchIndex reports whether a table is a virtual table or one of its
// shadow tables (FTS5 names them <table>_data, <table>_idx, ...).
func searchIndex(name string, virtual []string) bool {
	for _, v := range virtual {
		if name == v || strings.HasPrefix(name, v+"_") {
			return true
		}
	}
	return false
}

func sqliteColumns(ctx context.Context, db *sql.DB, t string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, t)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", t, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// pgTables lists the PostgreSQL store's tables to copy with their columns.
func pgTables(ctx context.Context, db *pgxpool.Pool) (map[string][]column, error) {
	rows, err := db.Query(ctx, `SELECT c.table_name, c.column_name, c.data_type,
			c.is_identity = 'YES' OR coalesce(c.column_default, '') LIKE 'nextval(%'
		FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("read the PostgreSQL schema: %w", err)
	}
	defer rows.Close()
	out := map[string][]column{}
	for rows.Next() {
		var t string
		var c column
		if err := rows.Scan(&t, &c.name, &c.pgType, &c.serial); err != nil {
			return nil, err
		}
		if _, skip := postgresOnly[t]; skip {
			continue
		}
		out[t] = append(out[t], c)
	}
	return out, rows.Err()
}

func primaryKey(ctx context.Context, db *pgxpool.Pool, t string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT a.attname
		FROM pg_index i
		JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = (quote_ident(current_schema()) || '.' || quote_ident($1))::regclass AND i.indisprimary
		ORDER BY k.n`, t)
	if err != nil {
		return nil, fmt.Errorf("primary key of %s: %w", t, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// orderByForeignKeys sorts the tables so that every table comes after
// the tables its foreign keys refer to (ties by name).
func orderByForeignKeys(ctx context.Context, db *pgxpool.Pool, tables []table) ([]table, error) {
	rows, err := db.Query(ctx, `SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE c.contype = 'f' AND n.nspname = current_schema()`)
	if err != nil {
		return nil, fmt.Errorf("foreign keys: %w", err)
	}
	parents := map[string][]string{}
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			rows.Close()
			return nil, err
		}
		if child != parent {
			parents[child] = append(parents[child], parent)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].name < tables[j].name })
	byName := map[string]table{}
	for _, t := range tables {
		byName[t.name] = t
	}
	var out []table
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("foreign keys form a cycle through %s", n)
		case 2:
			return nil
		}
		state[n] = 1
		ps := parents[n]
		sort.Strings(ps)
		for _, p := range ps {
			if _, ok := byName[p]; ok {
				if err := visit(p); err != nil {
					return err
				}
			}
		}
		state[n] = 2
		out = append(out, byName[n])
		return nil
	}
	for _, t := range tables {
		if err := visit(t.name); err != nil {
			return nil, err
		}
	}
	return out, nil
}
