package postgres

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

// Nodes starting together on an empty database migrate it once, without
// errors; later starts find it current, and a schema newer than this
// mailgate is refused.
func TestMigrateOnceAcrossNodes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t, nil)
	var wg sync.WaitGroup
	dbs := make([]*DB, 4)
	errs := make([]error, 4)
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(ctx, Config{DSN: dsn}, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	if v, err := dbs[0].SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("version %d %v, want %d", v, err, len(migrations))
	}
	var rows int
	dbs[0].pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&rows)
	if rows != len(migrations) {
		t.Fatalf("%d migration rows, want %d", rows, len(migrations))
	}
	if from, to, err := Migrate(ctx, Config{DSN: dsn}); err != nil || from != to || to != len(migrations) {
		t.Fatalf("second migrate: %d -> %d %v", from, to, err)
	}
	// Data survives a restart.
	tn, err := dbs[0].CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	db2, err := Open(ctx, Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db2.TenantByName(ctx, "acme"); err != nil || got.ID != tn.ID {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	db2.Close()
	if _, err := dbs[0].pool.Exec(ctx, `INSERT INTO schema_migrations(version) VALUES ($1)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Config{DSN: dsn}, nil); err == nil || !strings.Contains(err.Error(), "newer than this mailgate") {
		t.Fatalf("newer schema: %v", err)
	}
}

// A failed migration leaves the database at the previous version, and the
// lock is released for the next attempt.
func TestMigrationFailureRollsBack(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t, nil)
	saved := migrations
	t.Cleanup(func() { migrations = saved })
	migrations = append(append([]string(nil), saved...), `CREATE TABLE extra (x int); SELECT no_such_function();`)
	if _, err := Open(ctx, Config{DSN: dsn}, nil); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("migration %d", len(migrations))) {
		t.Fatalf("failing migration: %v", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	var extra bool
	conn.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v)
	conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_tables WHERE tablename = 'extra')`).Scan(&extra)
	if v != len(saved) || extra {
		t.Fatalf("after a failed migration: version %d, extra table %v", v, extra)
	}
	migrations[len(migrations)-1] = `CREATE TABLE extra (x int)`
	db, err := Open(ctx, Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.SchemaVersion(ctx); v != len(migrations) {
		t.Fatalf("version %d after the fix", v)
	}
}

// Connection problems are one line naming where, never the password.
func TestConnectErrorsAreOneLineWithoutPassword(t *testing.T) {
	ctx := context.Background()
	const pw = "s3cret-Pw"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	// A server that accepts connections and never answers.
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	go func() {
		var held []net.Conn // open and silent until the test ends
		for {
			c, err := sl.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	silent := sl.Addr().String()
	defer func(d time.Duration) { defaultConnectTimeout = d }(defaultConnectTimeout)
	defaultConnectTimeout = time.Second
	sock := pgtest.DSN(t, "postgres")
	host := sock[strings.Index(sock, "host=")+5:]
	host, _, _ = strings.Cut(host, "&")
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"unreachable", Config{DSN: "postgres://mailgate:" + pw + "@" + closed + "/mailgate?connect_timeout=5"}, "cannot connect to server " + closed},
		{"no database", Config{DSN: "host=" + strings.ReplaceAll(host, "%2F", "/") + " user=postgres dbname=nope password=" + pw}, `database "nope" does not exist`},
		{"password from file", Config{DSN: "postgres://mailgate@" + closed + "/mailgate?connect_timeout=5", Password: pw}, "cannot connect"},
		{"bad dsn", Config{DSN: "postgres://mailgate:" + pw + "@host:notaport/db"}, "bad dsn"},
		{"silent server", Config{DSN: "postgres://mailgate:" + pw + "@" + silent + "/mailgate"}, "cannot connect to server " + silent + " database mailgate user mailgate: no answer within 1s (connect_timeout)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, err := Open(ctx, c.cfg, nil)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, pw) || strings.ContainsAny(msg, "\n\t") || !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "postgres store: ") {
				t.Fatalf("error %q", msg)
			}
		})
	}
}
