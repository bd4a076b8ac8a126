// Package migratestore moves a single-node installation to the cluster
// store (`mailgate migrate-store`): every table of its SQLite store into a
// PostgreSQL database, and the message bodies and quarantined copies its
// rows refer to from data_dir into S3.
//
// The copy is resumable: blobs already in S3 are checked, not written
// again; rows are inserted in primary key order, in batches each committed
// on its own, with ON CONFLICT DO NOTHING, and a table with an integer key
// continues after the greatest key the target holds. A run that stopped
// (killed, network lost) is simply run again. Everything is verified
// before the run reports success: the rows of every table counted on both
// sides, every blob read back from S3 and its SHA-256 compared with the
// source's.
//
// The target must be empty or hold an earlier run's copy of the same
// source: the source is marked with a random origin secret, copied first,
// and a target holding data without that mark is refused unless forced.
// The source installation must be stopped: its node's heartbeat in the
// SQLite store must be older than the cluster's dead_after.
package migratestore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/s3"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

// Options say what to move where.
type Options struct {
	// SQLite is the source database file (data_dir/mailgate.db).
	SQLite string
	// DataDir holds the source's blobs (spool/, quarantine/).
	DataDir string
	// Target is the PostgreSQL database (migrated to the current schema
	// first, as `mailgate migrate` does).
	Target postgres.Config
	// S3, when set, receives the blobs; nil leaves them in DataDir (a
	// single node moving to PostgreSQL with local blobs).
	S3 *s3.Config
	// Node is the node name given to blobs written before keys named
	// their node; their rows' keys are rewritten to it.
	Node string
	// DeadAfter is how long the source's node must have been silent.
	DeadAfter time.Duration
	// Force copies into a target holding other data: rows whose key
	// exists there are left as they are.
	Force bool
	// Progress receives one line per step (tables, blobs, checks).
	Progress func(string)
	Log      *slog.Logger
}

// TableCount is one table's rows on both sides after the copy.
type TableCount struct {
	Table          string
	Source, Target int64
}

// Report is what a run did.
type Report struct {
	Tables []TableCount
	Rows   int64 // rows in the source's copied tables
	// Blobs referred to by the source's rows and found in DataDir; Copied
	// were written by this run, the others found in S3 from an earlier run.
	// Every one of them was read back and its checksum compared.
	Blobs, Copied int
	// Absent are blob keys the source's rows refer to that were not in
	// DataDir: bodies of messages the source had already found missing or
	// damaged, or quarantined copies already removed. Nothing can copy
	// them; the target holds their messages as the source would.
	Absent []string
	// Unreferenced counts blobs in DataDir no row refers to (mail never
	// acknowledged): not copied.
	Unreferenced int
}

// originSecret names the random value that marks a source store and the
// targets copied from it.
const originSecret = "migrate-store-origin"

// batchRows is how many rows one INSERT (and one commit) carries.
var batchRows = 500

// afterBatch, when set (tests), is called after each batch is committed.
var afterBatch func(table string)

// progressEvery is how often a long table's copy reports.
const progressEvery = 5 * time.Second

// Run moves the store and its blobs, verifies the copy and returns the
// report. It refuses to start when the source's node is running or the
// target holds data from elsewhere (unless Force).
func Run(ctx context.Context, o Options) (Report, error) {
	var rep Report
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Node == "" {
		return rep, errors.New("no node name for blobs written before keys named their node")
	}
	if err := blob.CheckNode(o.Node); err != nil {
		return rep, err
	}
	src, err := sqlite.Open(ctx, o.SQLite, o.Log)
	if err != nil {
		return rep, fmt.Errorf("source %s: %w", o.SQLite, err)
	}
	defer src.Close()
	if err := sourceStopped(ctx, src, o.DeadAfter); err != nil {
		return rep, err
	}
	dst, err := postgres.Open(ctx, o.Target, o.Log)
	if err != nil {
		return rep, err
	}
	defer dst.Close()
	tables, err := plan(ctx, src.SQL(), dst.Pool())
	if err != nil {
		return rep, err
	}
	origin, err := src.Secret(ctx, originSecret, func() ([]byte, error) {
		b := make([]byte, 16)
		_, err := rand.Read(b)
		return b, err
	})
	if err != nil {
		return rep, fmt.Errorf("source: %w", err)
	}
	resumed, err := checkTarget(ctx, dst.Pool(), tables, origin, o.Force)
	if err != nil {
		return rep, err
	}
	if resumed {
		o.Progress("target holds part of an earlier run's copy of this source: continuing it")
	}
	// The mark first: a run stopped after it is recognised as this source's.
	if _, err := dst.Pool().Exec(ctx, `INSERT INTO secrets(name, value, created_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		originSecret, origin, time.Now().UnixMicro()); err != nil {
		return rep, fmt.Errorf("target: mark the copy: %w", err)
	}
	m := &mover{o: o, src: src.SQL(), dst: dst.Pool()}
	if o.S3 != nil {
		if err := m.blobs(ctx, &rep); err != nil {
			return rep, err
		}
	} else {
		o.Progress(fmt.Sprintf("blobs: staying in %s ([blobs] driver is not s3)", o.DataDir))
	}
	for _, t := range tables {
		if err := m.copyTable(ctx, t); err != nil {
			return rep, err
		}
	}
	if err := m.fixSequences(ctx, tables); err != nil {
		return rep, err
	}
	if err := m.verify(ctx, tables, &rep); err != nil {
		return rep, err
	}
	// The planner's statistics of the copied tables: autovacuum gathers
	// them only after its next round, and until then a search is planned
	// as if the tables were nearly empty (a recipient-domain search of
	// 44,000 matches estimated at 7 rows took a second instead of tens of
	// milliseconds).
	o.Progress("gathering the planner's statistics (ANALYZE)")
	for _, t := range tables {
		if _, err := m.dst.Exec(ctx, `ANALYZE `+pgx.Identifier{t.name}.Sanitize()); err != nil {
			return rep, fmt.Errorf("target: analyze %s: %w", t.name, err)
		}
	}
	return rep, nil
}

// sourceStopped refuses a source whose node sent a heartbeat within
// deadAfter: mail it accepts after its tables were read would stay behind.
func sourceStopped(ctx context.Context, src *sqlite.DB, deadAfter time.Duration) error {
	st, err := src.ClusterStatus(ctx)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	for _, n := range st.Nodes {
		if ago := st.Now.Sub(n.Seen); ago < deadAfter {
			return fmt.Errorf("source: node %s was running %s ago (heartbeat); stop mailgate on it first and run this again once it has been stopped for %s (cluster.dead_after)",
				n.ID, ago.Round(time.Second), deadAfter)
		}
	}
	return nil
}

// checkTarget reports whether the target holds an earlier run's copy of
// this source, and refuses a target holding anything else unless forced.
func checkTarget(ctx context.Context, db *pgxpool.Pool, tables []table, origin []byte, force bool) (resumed bool, err error) {
	var mark []byte
	err = db.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, originSecret).Scan(&mark)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("target: %w", err)
	}
	if mark != nil && string(mark) == string(origin) {
		return true, nil
	}
	var held []string
	for _, t := range tables {
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{t.name}.Sanitize()).Scan(&n); err != nil {
			return false, fmt.Errorf("target: count %s: %w", t.name, err)
		}
		if n > 0 {
			held = append(held, fmt.Sprintf("%s %d", t.name, n))
		}
	}
	if len(held) == 0 {
		return false, nil
	}
	why := "it was not copied from this source"
	if mark != nil {
		why = "it is a copy of another source"
	}
	if !force {
		return false, fmt.Errorf("target database already holds data (%s), and %s: use an empty database, or --force to copy into it anyway (rows whose key exists there are kept as they are)",
			strings.Join(held, ", "), why)
	}
	return false, nil
}

// mover copies one source to one target.
type mover struct {
	o   Options
	src *sql.DB
	dst *pgxpool.Pool
}

// copyTable copies one table in primary key order, batch by batch.
func (m *mover) copyTable(ctx context.Context, t table) error {
	q := pgx.Identifier{t.name}.Sanitize()
	var total int64
	if err := m.src.QueryRowContext(ctx, `SELECT count(*) FROM "`+t.name+`"`).Scan(&total); err != nil {
		return fmt.Errorf("source: count %s: %w", t.name, err)
	}
	var have int64
	if err := m.dst.QueryRow(ctx, `SELECT count(*) FROM `+q).Scan(&have); err != nil {
		return fmt.Errorf("target: count %s: %w", t.name, err)
	}
	if have == total && !m.o.Force {
		// Every row the target has of this table came from this source
		// (checkTarget), so as many rows are the same rows.
		if total == 0 {
			m.o.Progress(fmt.Sprintf("table %s: empty", t.name))
		} else {
			m.o.Progress(fmt.Sprintf("table %s: %d rows, already copied", t.name, total))
		}
		return nil
	}
	cols := t.colNames()
	var srcCols []string
	for _, c := range cols {
		srcCols = append(srcCols, `"`+c+`"`)
	}
	var pkCols []string
	for _, c := range t.pk {
		pkCols = append(pkCols, `"`+c+`"`)
	}
	pkIdx := make([]int, len(t.pk))
	for i, p := range t.pk {
		for j, c := range cols {
			if c == p {
				pkIdx[i] = j
			}
		}
	}
	// after holds the key of the last row copied (nil: from the start).
	var after []any
	if t.intPK && !m.o.Force {
		var max sql.NullInt64
		if err := m.dst.QueryRow(ctx, `SELECT max(`+pgx.Identifier{t.pk[0]}.Sanitize()+`) FROM `+q).Scan(&max); err != nil {
			return fmt.Errorf("target: %s: %w", t.name, err)
		}
		if max.Valid {
			after = []any{max.Int64}
		}
	}
	selectFrom := `SELECT ` + strings.Join(srcCols, ", ") + ` FROM "` + t.name + `"`
	order := ` ORDER BY ` + strings.Join(pkCols, ", ") + fmt.Sprintf(` LIMIT %d`, batchRows)
	var placeholders []string
	for range t.pk {
		placeholders = append(placeholders, "?")
	}
	keyAfter := ` WHERE (` + strings.Join(pkCols, ", ") + `) > (` + strings.Join(placeholders, ", ") + `)`
	var dstCols []string
	for _, c := range cols {
		dstCols = append(dstCols, pgx.Identifier{c}.Sanitize())
	}
	insert := `INSERT INTO ` + q + ` (` + strings.Join(dstCols, ", ") + `) VALUES `
	copied, last := int64(0), time.Now()
	for {
		query, args := selectFrom+order, []any(nil)
		if after != nil {
			query, args = selectFrom+keyAfter+order, after
		}
		rows, err := m.src.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("source: read %s: %w", t.name, err)
		}
		var batch [][]any
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return fmt.Errorf("source: read %s: %w", t.name, err)
			}
			batch = append(batch, vals)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("source: read %s: %w", t.name, err)
		}
		if len(batch) == 0 {
			break
		}
		var (
			sb   strings.Builder
			vals []any
		)
		sb.WriteString(insert)
		for i, row := range batch {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('(')
			for j, v := range row {
				if j > 0 {
					sb.WriteString(", ")
				}
				cv, err := m.convert(t, t.cols[j], v)
				if err != nil {
					return err
				}
				vals = append(vals, cv)
				fmt.Fprintf(&sb, "$%d", len(vals))
			}
			sb.WriteByte(')')
		}
		sb.WriteString(` ON CONFLICT DO NOTHING`)
		if _, err := m.dst.Exec(ctx, sb.String(), vals...); err != nil {
			return fmt.Errorf("target: write %s: %w", t.name, err)
		}
		copied += int64(len(batch))
		if afterBatch != nil {
			afterBatch(t.name)
		}
		lastRow := batch[len(batch)-1]
		after = make([]any, len(pkIdx))
		for i, j := range pkIdx {
			after[i] = lastRow[j]
		}
		if time.Since(last) >= progressEvery {
			m.o.Progress(fmt.Sprintf("table %s: %d of %d rows", t.name, copied, total))
			last = time.Now()
		}
		if len(batch) < batchRows {
			break
		}
	}
	m.o.Progress(fmt.Sprintf("table %s: %d rows copied", t.name, copied))
	return nil
}

// convert turns a value SQLite returned into one the PostgreSQL column
// takes: integers to booleans, text PostgreSQL cannot hold (NUL, invalid
// UTF-8) as the PostgreSQL store stores it, and blob keys written before
// keys named their node under the configured node.
func (m *mover) convert(t table, c column, v any) (any, error) {
	if b, ok := v.([]byte); (v == nil || ok && b == nil) && t.name == "archive_entries" && c.pgType == "bytea" {
		// SQLite keeps an empty hash list (an event's chunks) as NULL;
		// PostgreSQL's column holds it as empty bytes.
		return []byte{}, nil
	}
	if v == nil {
		return nil, nil
	}
	bad := func() (any, error) {
		return nil, fmt.Errorf("source: %s.%s holds %T %v, not a %s", t.name, c.name, v, v, c.pgType)
	}
	switch c.pgType {
	case "boolean":
		if t.name == "archive_entries" && c.name == "indexed" {
			// The SQLite store's archive index is another program's
			// (bleve): the archiver indexes every entry again in PostgreSQL.
			return false, nil
		}
		switch x := v.(type) {
		case int64:
			return x != 0, nil
		case bool:
			return x, nil
		}
		return bad()
	case "bigint", "integer", "smallint":
		switch x := v.(type) {
		case int64:
			return x, nil
		case float64:
			if x == float64(int64(x)) {
				return int64(x), nil
			}
		}
		return bad()
	case "double precision", "real":
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		}
		return bad()
	case "bytea":
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
		return bad()
	case "text":
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte:
			s = string(x)
		case int64:
			s = fmt.Sprint(x)
		default:
			return bad()
		}
		if c.name == "blob_key" {
			s = m.blobKey(s)
		}
		return postgres.Storable(s), nil
	}
	return bad()
}

// blobKey is the key a blob has in the target: keys written before keys
// named their node get the configured node.
func (m *mover) blobKey(key string) string {
	if m.o.S3 == nil {
		return key
	}
	if node, name, ok := blob.Split(key); ok && node == "" {
		return blob.Key(m.o.Node, name)
	}
	return key
}

// fixSequences moves every sequence past the keys copied, so rows the
// nodes add later get new keys.
func (m *mover) fixSequences(ctx context.Context, tables []table) error {
	for _, t := range tables {
		for _, c := range t.cols {
			if !c.serial {
				continue
			}
			var seq sql.NullString
			if err := m.dst.QueryRow(ctx, `SELECT pg_get_serial_sequence($1, $2)`, pgx.Identifier{t.name}.Sanitize(), c.name).Scan(&seq); err != nil {
				return fmt.Errorf("target: sequence of %s.%s: %w", t.name, c.name, err)
			}
			if !seq.Valid {
				continue
			}
			col := pgx.Identifier{c.name}.Sanitize()
			// setval only ever raises: a sequence already past the copied
			// keys (a forced copy into a used database) keeps its place.
			if _, err := m.dst.Exec(ctx, `SELECT setval($1::regclass, mx) FROM (SELECT max(`+col+`) AS mx FROM `+pgx.Identifier{t.name}.Sanitize()+`) m,
					(SELECT last_value, is_called FROM `+seq.String+`) s
				WHERE mx IS NOT NULL AND (mx > s.last_value OR NOT s.is_called)`, seq.String); err != nil {
				return fmt.Errorf("target: sequence of %s.%s: %w", t.name, c.name, err)
			}
		}
	}
	return nil
}

// verify counts every table's rows on both sides.
func (m *mover) verify(ctx context.Context, tables []table, rep *Report) error {
	var bad []string
	for _, t := range tables {
		var c TableCount
		c.Table = t.name
		if err := m.src.QueryRowContext(ctx, `SELECT count(*) FROM "`+t.name+`"`).Scan(&c.Source); err != nil {
			return fmt.Errorf("source: count %s: %w", t.name, err)
		}
		if err := m.dst.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{t.name}.Sanitize()).Scan(&c.Target); err != nil {
			return fmt.Errorf("target: count %s: %w", t.name, err)
		}
		rep.Tables = append(rep.Tables, c)
		rep.Rows += c.Source
		if c.Target != c.Source && !(m.o.Force && c.Target > c.Source) {
			bad = append(bad, fmt.Sprintf("%s: %d rows in the source, %d in the target", t.name, c.Source, c.Target))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("verification failed: %s", strings.Join(bad, "; "))
	}
	return nil
}
