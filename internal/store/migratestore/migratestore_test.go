package migratestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/blob/s3"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
	"github.com/mailgate/mailgate/internal/testutil/s3test"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var migrated = pgtest.NewTemplate("migratestore", func(ctx context.Context, dsn string) error {
	_, _, err := postgres.Migrate(ctx, postgres.Config{DSN: dsn})
	return err
})

// freshSQLite creates an SQLite store at the current schema and returns
// its path.
func freshSQLite(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "mailgate.db")
	db, err := sqlite.Open(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	return p
}

// Every table of the two stores' current schemas is copied, parents
// first, or is on the list of what a store derives for itself. A table or
// column added to one store and not the other, a table without a primary
// key or a column type the copy cannot convert fails this test.
func TestEveryTableIsCopied(t *testing.T) {
	ctx := context.Background()
	src, err := sqlite.Open(ctx, freshSQLite(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, postgres.Config{DSN: pgtest.DB(t, migrated)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	tables, err := plan(ctx, src.SQL(), dst.Pool())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.name)
	}
	var virtual []string
	vrows, err := src.SQL().QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'`)
	if err != nil {
		t.Fatal(err)
	}
	for vrows.Next() {
		var n string
		vrows.Scan(&n)
		virtual = append(virtual, n)
	}
	vrows.Close()
	if len(virtual) < 2 {
		t.Fatalf("search indexes (FTS5 tables) %v: want the tracking and mailbox ones", virtual)
	}
	rows, err := src.SQL().QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		rows.Scan(&n)
		_, derived := sqliteOnly[n]
		fts := searchIndex(n, virtual)
		if !slices.Contains(names, n) && !derived && !fts {
			t.Errorf("SQLite table %s is not copied", n)
		}
		if slices.Contains(names, n) && (derived || fts) {
			t.Errorf("SQLite table %s is copied and listed as derived", n)
		}
	}
	pos := func(n string) int { return slices.Index(names, n) }
	for _, must := range [][2]string{{"tenants", "domains"}, {"domains", "routes"}, {"messages", "recipients"}, {"accounts", "web_sessions"}, {"groups", "group_members"}} {
		if pos(must[0]) < 0 || pos(must[1]) < 0 || pos(must[0]) > pos(must[1]) {
			t.Errorf("%s must be copied before %s: order %v", must[0], must[1], names)
		}
	}
	for _, n := range []string{"messages", "quarantine", "audit_log", "spam_tokens", "domain_claims", "secrets", "nodes", "report_counts"} {
		if pos(n) < 0 {
			t.Errorf("table %s not planned: %v", n, names)
		}
	}
}

// A table or column the other store lacks stops the copy before it
// writes anything, naming what differs.
func TestSchemaDifferenceStopsTheCopy(t *testing.T) {
	ctx := context.Background()
	path := freshSQLite(t, t.TempDir())
	src, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, postgres.Config{DSN: pgtest.DB(t, migrated)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := src.SQL().ExecContext(ctx, `CREATE TABLE extra_things (id INTEGER PRIMARY KEY, name TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Pool().Exec(ctx, `ALTER TABLE tenants ADD COLUMN plan TEXT NOT NULL DEFAULT ''`); err != nil {
		t.Fatal(err)
	}
	_, err = plan(ctx, src.SQL(), dst.Pool())
	if err == nil || !strings.Contains(err.Error(), "table extra_things is in the SQLite store but not in PostgreSQL") ||
		!strings.Contains(err.Error(), "column tenants.plan is in PostgreSQL but not in the SQLite store") {
		t.Fatalf("plan: %v", err)
	}
}

// source is a filled SQLite store with blobs in its data_dir.
type source struct {
	dir, path        string
	nodeKey, oldKey  string // a node-named blob key and a legacy one
	quarKey, archKey string
	nodeBody, oldBod []byte
}

func fillSource(t *testing.T, events int) source {
	t.Helper()
	ctx := context.Background()
	s := source{dir: t.TempDir()}
	s.path = filepath.Join(s.dir, "mailgate.db")
	db, err := sqlite.Open(ctx, s.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ten, err := db.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateDomain(ctx, ten.ID, "example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, ten.ID, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	spool, err := local.Open(filepath.Join(s.dir, "spool"), "mx1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	s.nodeBody = []byte("Subject: queued\r\n\r\n" + strings.Repeat("body line\r\n", 20000))
	if s.nodeKey, _, err = blob.Put(ctx, spool, "001aaa", bytes.NewReader(s.nodeBody)); err != nil {
		t.Fatal(err)
	}
	// A blob from before keys named their node: a bare file.
	s.oldKey, s.oldBod = "001bbb", []byte("Subject: old\r\n\r\nfrom an earlier version\r\n")
	if err := os.WriteFile(filepath.Join(s.dir, "spool", s.oldKey), s.oldBod, 0o600); err != nil {
		t.Fatal(err)
	}
	// Never acknowledged: no row refers to it.
	if _, _, err := blob.Put(ctx, spool, "001ccc", strings.NewReader("unacknowledged")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, m := range []struct{ id, key string }{{"001aaa", s.nodeKey}, {"001bbb", s.oldKey}, {"001ddd", "mx1/001ddd"}} {
		if _, err := db.Enqueue(ctx, store.Message{ID: m.id, TenantID: ten.ID, Direction: store.Inbound, MailFrom: "bob@remote.test",
			Size: 10, BlobKey: m.key, ReceivedAt: now, Subject: "件名 " + m.id},
			[]store.Recipient{{Addr: "alice@example.test", State: store.Queued, NextAttempt: now}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	qs, err := local.Open(filepath.Join(s.dir, "quarantine"), "mx1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer qs.Close()
	if s.quarKey, _, err = blob.Put(ctx, qs, "q001", strings.NewReader("Subject: spam\r\n\r\nbuy\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := db.AddQuarantine(ctx, store.QuarantineItem{ID: "q001", TenantID: ten.ID, Rcpt: "alice@example.test", MessageID: "001aaa",
		BlobKey: s.quarKey, MailFrom: "spam@remote.test", Size: 20, Score: 9.5, Created: now, Expires: now.Add(time.Hour), State: store.QHeld, Updated: now},
		store.Event{MessageID: "001aaa", TenantID: ten.ID, At: now, Kind: "quarantined", Rcpt: "alice@example.test"}); err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	for i := range events {
		evs = append(evs, store.Event{MessageID: "001aaa", TenantID: ten.ID, At: now.Add(time.Duration(i) * time.Microsecond), Kind: "deferred",
			Detail: fmt.Sprintf("try %d \x00 with a NUL", i)})
	}
	if err := db.AddEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Secret(ctx, "link", func() ([]byte, error) { return []byte{0, 1, 2, 0xff}, nil }); err != nil {
		t.Fatal(err)
	}
	// An audit archive entry the SQLite store's (embedded) index holds, and
	// an archived body.
	if _, err := db.AppendArchive(ctx, store.ArchiveAppend{TenantID: ten.ID, Entries: []store.ArchiveEntry{{ID: "arch1",
		Kind: store.ArchiveKindSettings, At: now, Meta: `{"by":"test"}`}}}); err != nil {
		t.Fatal(err)
	}
	as, err := local.Open(filepath.Join(s.dir, "archive"), "mx1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	archBody := "Subject: archived\r\n\r\nkept\r\n"
	if s.archKey, _, err = blob.Put(ctx, as, "seg1", strings.NewReader(archBody)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendArchive(ctx, store.ArchiveAppend{TenantID: ten.ID, Entries: []store.ArchiveEntry{{ID: "arch2",
		Kind: store.ArchiveKindMessage, At: now, Received: now, Size: int64(len(archBody)), SHA256: "seg1", Segments: []string{"seg1"}, Meta: `{}`}},
		Blobs: []store.ArchiveBlob{{SHA256: "seg1", Key: s.archKey, Size: int64(len(archBody))}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkArchiveIndexed(ctx, ten.ID, []string{"arch1"}); err != nil {
		t.Fatal(err)
	}
	return s
}

func counts(t *testing.T, db *pgx.Conn, tables ...string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tb := range tables {
		var n int64
		if err := db.QueryRow(context.Background(), `SELECT count(*) FROM `+tb).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tb] = n
	}
	return out
}

// A copy stopped in the middle of a table continues where it stopped when
// run again; rows are neither lost nor doubled, blobs are in S3 under keys
// naming a node (a legacy key gets the configured node, and its row the
// new key), and the copy of text PostgreSQL cannot hold is what the store
// itself would write.
func TestCopyResumesAndVerifies(t *testing.T) {
	ctx := context.Background()
	s := fillSource(t, 1100)
	dsn := pgtest.DB(t, migrated)
	cfg := s3test.Bucket(t)
	var lines []string
	o := Options{SQLite: s.path, DataDir: s.dir, Target: postgres.Config{DSN: dsn}, S3: &cfg, Node: "mx9", DeadAfter: 30 * time.Second,
		Progress: func(l string) { lines = append(lines, l) }}

	batchRows = 100
	defer func() { batchRows, afterBatch = 500, nil }()
	cctx, cancel := context.WithCancel(ctx)
	batches := 0
	afterBatch = func(tb string) {
		if tb == "events" {
			if batches++; batches == 4 {
				cancel()
			}
		}
	}
	if _, err := Run(cctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if n := counts(t, conn, "events")["events"]; n != 400 {
		t.Fatalf("interrupted after 4 batches: %d events", n)
	}
	afterBatch = nil
	lines = nil
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, "continuing it") || !strings.Contains(all, "table tenants: 1 rows, already copied") ||
		!strings.Contains(all, "table events: 701 rows copied") {
		t.Errorf("progress:\n%s", all)
	}
	got := counts(t, conn, "events", "messages", "recipients", "quarantine", "secrets", "tenants")
	want := map[string]int64{"events": 1101, "messages": 3, "recipients": 3, "quarantine": 1, "secrets": 2, "tenants": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d rows, want %d", k, got[k], v)
		}
	}
	for _, c := range rep.Tables {
		if c.Source != c.Target {
			t.Errorf("report: %+v", c)
		}
	}
	if rep.Blobs != 4 || rep.Unreferenced != 1 || len(rep.Absent) != 1 || !strings.Contains(rep.Absent[0], "mx1/001ddd (missing)") {
		t.Errorf("report: blobs %d copied %d unreferenced %d absent %v", rep.Blobs, rep.Copied, rep.Unreferenced, rep.Absent)
	}
	// The copied tables have the planner's statistics before any node runs.
	for _, tb := range []string{"messages", "recipients", "events"} {
		var analyzed bool
		if err := conn.QueryRow(ctx, `SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = $1`, tb).Scan(&analyzed); err != nil || !analyzed {
			t.Errorf("table %s not analyzed after the copy (%v)", tb, err)
		}
	}

	// Rows point at the blobs under their new keys, and S3 holds them.
	var oldKey, detail string
	conn.QueryRow(ctx, `SELECT blob_key FROM messages WHERE id = '001bbb'`).Scan(&oldKey)
	if oldKey != "mx9/001bbb" {
		t.Errorf("legacy key copied as %q", oldKey)
	}
	conn.QueryRow(ctx, `SELECT detail FROM events WHERE kind = 'deferred' ORDER BY id LIMIT 1`).Scan(&detail)
	if detail != "try 0 \uFFFD with a NUL" {
		t.Errorf("text with NUL copied as %q", detail)
	}
	// The archive's entries arrive unindexed: the archiver indexes them in
	// PostgreSQL's index.
	var indexed bool
	if err := conn.QueryRow(ctx, `SELECT indexed FROM archive_entries WHERE id = 'arch1'`).Scan(&indexed); err != nil || indexed {
		t.Errorf("archive entry copied as indexed=%v (%v), want false", indexed, err)
	}
	for ns, kb := range map[string]map[string][]byte{
		"spool":      {s.nodeKey: s.nodeBody, "mx9/001bbb": s.oldBod},
		"quarantine": {s.quarKey: []byte("Subject: spam\r\n\r\nbuy\r\n")},
		"archive":    {s.archKey: []byte("Subject: archived\r\n\r\nkept\r\n")},
	} {
		st, err := s3.Open(ctx, cfg, ns, "mx9", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, body := range kb {
			r, err := st.Open(ctx, k)
			if err != nil {
				t.Fatalf("%s %s: %v", ns, k, err)
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(b, body) {
				t.Errorf("%s %s: %d bytes, %v", ns, k, len(b), err)
			}
		}
	}
	// A third run finds everything in place and writes nothing.
	if rep, err = Run(ctx, o); err != nil || rep.Copied != 0 || rep.Blobs != 4 {
		t.Fatalf("third run: %+v %v", rep, err)
	}
	// Sequences continue after the copied keys.
	var next int64
	if err := conn.QueryRow(ctx, `INSERT INTO events(message_id, tenant_id, at_us, kind) VALUES ('x', 1, 0, 'k') RETURNING id`).Scan(&next); err != nil || next <= 1101 {
		t.Errorf("next event id %d, %v", next, err)
	}
	// Verification counts every table: a row the source lacks is found.
	if _, err = Run(ctx, o); err == nil || !strings.Contains(err.Error(), "events: 1101 rows in the source, 1102 in the target") {
		t.Fatalf("run over a target with a row more: %v", err)
	}
}

// A target with data not copied from this source is refused, unless
// forced; a source whose node is running is refused.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	s := fillSource(t, 3)
	dsn := pgtest.DB(t, migrated)
	other, err := postgres.Open(ctx, postgres.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Heartbeat(ctx, store.Node{ID: "mx2", Hostname: "mx2", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	other.Close()
	o := Options{SQLite: s.path, DataDir: s.dir, Target: postgres.Config{DSN: dsn}, Node: "mx1", DeadAfter: 30 * time.Second}
	_, err = Run(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "already holds data (nodes 1)") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("foreign target: %v", err)
	}
	o.Force = true
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("forced: %v", err)
	}
	for _, c := range rep.Tables {
		if c.Table == "tenants" && (c.Source != 1 || c.Target != 1) {
			t.Errorf("forced copy: %+v", c)
		}
	}

	// A source node heard from just now.
	db, err := sqlite.Open(ctx, s.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Heartbeat(ctx, store.Node{ID: "mx1", Hostname: "mx1", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	o.Force = false
	if _, err := Run(ctx, o); err == nil || !strings.Contains(err.Error(), "node mx1 was running") {
		t.Fatalf("running source: %v", err)
	}
}
