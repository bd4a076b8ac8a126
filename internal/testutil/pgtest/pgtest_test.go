package pgtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailgate/mailgate/internal/testutil/peers"
)

func TestMain(m *testing.M) { Main(m) }

func TestDBFromTemplate(t *testing.T) {
	ctx := context.Background()
	runs := 0
	tmpl := NewTemplate("demo", func(ctx context.Context, dsn string) error {
		runs++
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE TABLE t (v text); INSERT INTO t VALUES ('from template')`)
		return err
	})
	var dsns []string
	for i := range 2 {
		dsn := DB(t, tmpl)
		dsns = append(dsns, dsn)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		var v string
		if err := conn.QueryRow(ctx, `SELECT v FROM t`).Scan(&v); err != nil || v != "from template" {
			t.Fatalf("copy %d: %q %v", i, v, err)
		}
		// Each test's database is its own.
		if _, err := conn.Exec(ctx, `INSERT INTO t VALUES ('mine')`); err != nil {
			t.Fatal(err)
		}
		var n int
		conn.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n)
		conn.Close(ctx)
		if n != 2 {
			t.Fatalf("copy %d has %d rows", i, n)
		}
		// Japanese is indexed by trigrams (a UTF-8 LC_CTYPE).
		conn, _ = pgx.Connect(ctx, dsn)
		var trgms int
		conn.QueryRow(ctx, `SELECT cardinality(show_trgm('お見積り'))`).Scan(&trgms)
		conn.Close(ctx)
		if trgms == 0 {
			t.Fatal("no trigrams for Japanese text")
		}
	}
	if runs != 1 || dsns[0] == dsns[1] {
		t.Fatalf("template set up %d times; dsns %v", runs, dsns)
	}
	// A database without template is empty.
	conn, err := pgx.Connect(ctx, DB(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n)
	if n != 0 {
		t.Fatalf("empty database has %d tables", n)
	}
}

// A server whose test binary is killed dies with it, and the next run
// removes what it left behind.
func TestServerDiesWithItsProcess(t *testing.T) {
	if os.Getenv("PGTEST_HELPER_BASE") != "" {
		return
	}
	if findBinDir() == "" {
		peers.Missing(t, "%v", ErrNotInstalled)
	}
	base := filepath.Join(os.TempDir(), "mailgate-pgtest-reap")
	os.MkdirAll(base, 0o755)
	t.Cleanup(func() { os.RemoveAll(base) })
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServer$")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER_BASE="+base)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var dir string
	var pm int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "server %s %d", &dir, &pm); err == nil {
			break
		}
	}
	if pm == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper did not start a server")
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for alive(pm) {
		if time.Now().After(deadline) {
			t.Fatalf("postgres %d outlived its test process", pm)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed run's directory is already gone: %v", err)
	}
	s, err := Launch(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("stale run directory %s kept: %v", dir, err)
	}
	if left, _ := os.ReadDir(base); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestHelperServer is the child process of TestServerDiesWithItsProcess.
func TestHelperServer(t *testing.T) {
	base := os.Getenv("PGTEST_HELPER_BASE")
	if base == "" {
		t.Skip("helper process only")
	}
	s, err := Launch(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.Dir(), "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	fmt.Printf("server %s %s\n", s.Dir(), first)
	time.Sleep(time.Hour) // killed by the parent
}

// A durable server stopped at once keeps every commit it acknowledged and
// starts again on the same socket.
func TestKillAndRestart(t *testing.T) {
	if findBinDir() == "" {
		peers.Missing(t, "pgtest: %v", ErrNotInstalled)
	}
	ctx := context.Background()
	s, err := LaunchWith(ctx, Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (n int); INSERT INTO kept SELECT generate_series(1, 100)`); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("connection still works after Kill")
	}
	conn.Close(ctx)
	if err := s.Exec(ctx, `SELECT 1`); err == nil {
		t.Fatal("Exec works on a stopped server")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM kept`).Scan(&n); err != nil || n != 100 {
		t.Fatalf("after restart: %d rows, %v", n, err)
	}
	var fsync string
	conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&fsync)
	if fsync != "on" {
		t.Fatalf("durable server has synchronous_commit %s", fsync)
	}
}
