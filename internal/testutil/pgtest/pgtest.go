// Package pgtest runs a throwaway PostgreSQL server for tests: one server
// per test binary, started on first use, with a fresh empty database per
// test (copied from a template database prepared once, so a migrated schema
// costs one CREATE DATABASE per test, not a migration).
//
// A package that uses it runs its tests through Main:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Main stops the server when the tests are over. The server is a child of
// the test binary (run in the foreground, not daemonised by pg_ctl) and, on
// Linux, is killed by the kernel if the binary dies first (a test timeout,
// SIGKILL), so no server outlives its tests; a directory left behind by
// such a death is removed by the next run, and a server still running in
// it is stopped.
//
// The server listens on a Unix socket in its own directory under the
// system's temporary directory (no TCP port to collide on), trusts every
// local connection, and runs with fsync off: the tests check behaviour, not
// durability against power loss. LaunchWith's Durable option keeps
// PostgreSQL's durable defaults instead (benchmarks; tests that stop the
// server with Kill, which loses commits not yet written under
// synchronous_commit off, and start it again with Restart). As root,
// initdb and postgres run as the "postgres" user (they refuse root).
//
// When PostgreSQL is not installed, DB skips the test, or fails it when
// MAILGATE_REQUIRE_PEERS=1 (as in CI), so a missing package cannot turn the
// tests into no-ops there.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequirePeersEnv is the environment variable that turns a missing
// PostgreSQL installation from a skip into a test failure.
const RequirePeersEnv = "MAILGATE_REQUIRE_PEERS"

// ErrNotInstalled is returned by Launch when no PostgreSQL server binaries
// are found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries not found (install Debian's postgresql)")

// startTimeout bounds the wait for a new server to accept connections.
const startTimeout = 60 * time.Second

// Server is one running PostgreSQL instance.
type Server struct {
	dir     string // run directory: data/, the socket, the log
	bin     string
	cred    *syscall.Credential
	durable bool
	cmd     *exec.Cmd
	exited  chan struct{}
	admin   *pgx.Conn // to the "postgres" database, for CREATE/DROP DATABASE
	mu      sync.Mutex
}

// Options change how Launch runs the server.
type Options struct {
	// Base is the directory the run directory is made in (default: the
	// system's temporary directory).
	Base string
	// Durable runs the server as an operator would: fsync,
	// full_page_writes and synchronous_commit on (PostgreSQL's defaults),
	// for benchmarks and tests that crash the server.
	Durable bool
}

// DSN returns the connection URL of database db on s.
func (s *Server) DSN(db string) string {
	q := url.Values{"host": {s.dir}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/" + db, RawQuery: q.Encode()}).String()
}

// Dir is the server's run directory (its data directory is Dir()/data).
func (s *Server) Dir() string { return s.dir }

// Pid is the postmaster's process ID (0 when not running), for programs
// that measure the server's CPU time.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Exec runs one statement on the server's "postgres" database.
func (s *Server) Exec(ctx context.Context, sql string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		return errors.New("pgtest: server not running")
	}
	_, err := s.admin.Exec(ctx, sql)
	return err
}

// Stop shuts the server down (fast shutdown: sessions are ended) and
// removes its directory.
func (s *Server) Stop() {
	s.mu.Lock()
	if s.admin != nil {
		s.admin.Close(context.Background())
		s.admin = nil
	}
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	os.RemoveAll(s.dir)
}

// Launch is the server for programs (benchmarks, load scripts): it runs
// initdb in a new directory under base (default: the system's temporary
// directory), starts postgres on a Unix socket there and returns once it
// accepts connections. The caller must call Stop. Directories of earlier
// runs whose process is gone are removed first.
func Launch(ctx context.Context, base string) (*Server, error) {
	return LaunchWith(ctx, Options{Base: base})
}

// LaunchWith is Launch with options.
func LaunchWith(ctx context.Context, o Options) (*Server, error) {
	base := o.Base
	bin := findBinDir()
	if bin == "" {
		return nil, ErrNotInstalled
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	if base == "" {
		base = filepath.Join(os.TempDir(), "mailgate-pgtest")
		// The postgres user must reach it: a TMPDIR under a private
		// home directory would not do.
		if cred != nil && !traversable(filepath.Dir(base)) {
			base = "/tmp/mailgate-pgtest"
		}
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	// Others (the postgres user) must reach the run directory.
	_ = os.Chmod(base, 0o755)
	reapStale(base)
	dir, err := os.MkdirTemp(base, fmt.Sprintf("run-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	// The socket path must fit in sun_path (107 bytes).
	if len(dir)+len("/.s.PGSQL.5432") > 107 {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: socket path under %s is too long; set TMPDIR to a shorter directory", dir)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	s := &Server{dir: dir, bin: bin, cred: cred, durable: o.Durable}
	if err := s.initdb(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.run(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// initdb creates the data directory.
func (s *Server) initdb(ctx context.Context) error {
	bin, dir, cred := s.bin, s.dir, s.cred
	data := filepath.Join(dir, "data")
	// C.UTF-8 classifies every script's letters (pg_trgm indexes Japanese
	// only under a UTF-8 LC_CTYPE); plain C where it is missing.
	var initOut []byte
	var err error
	for _, loc := range []string{"C.UTF-8", "C"} {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
			"--no-sync", "-E", "UTF8", "--locale="+loc)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=", "LANG=")
		if initOut, err = cmd.CombinedOutput(); err == nil {
			break
		}
		os.RemoveAll(data)
	}
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %v\n%s", err, initOut)
	}
	return nil
}

// run starts postgres on the data directory and waits until it accepts
// connections.
func (s *Server) run(ctx context.Context) error {
	dir, cred := s.dir, s.cred
	logPath := filepath.Join(dir, "log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	if cred != nil {
		_ = logf.Chown(int(cred.Uid), int(cred.Gid))
	}
	args := []string{"-D", filepath.Join(dir, "data"),
		"-c", "listen_addresses=", "-k", dir, "-c", "unix_socket_permissions=0777",
		"-c", "max_connections=300"}
	if !s.durable {
		// Small and forgetful: many test binaries run a server at once.
		args = append(args, "-c", "shared_buffers=16MB",
			"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.SysProcAttr = sysProcAttr(cred)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, s.DSN("postgres"))
		cancel()
		if err == nil {
			s.mu.Lock()
			s.admin = conn
			s.mu.Unlock()
			return nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgtest: postgres exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Kill()
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgtest: postgres does not accept connections (%v): %s", err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once, as "pg_ctl stop -m immediate" does
// (SIGQUIT: every session is cut, nothing is flushed; the next start
// recovers from the WAL), and waits for it to exit. Its data directory
// stays: Restart starts it again.
func (s *Server) Kill() {
	s.mu.Lock()
	if s.admin != nil {
		s.admin.Close(context.Background())
		s.admin = nil
	}
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart starts a server stopped by Kill again on the same data
// directory and socket, once it accepts connections.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
		default:
			return errors.New("pgtest: server still running")
		}
	}
	return s.run(ctx)
}

// Installed reports whether the PostgreSQL server programs are found.
func Installed() bool { return findBinDir() != "" }

// findBinDir returns the directory of initdb and postgres: the newest
// version under Debian's /usr/lib/postgresql, else pg_config's, else PATH's.
func findBinDir() string {
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(dirs) > 0 {
		sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
		for _, d := range dirs {
			if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres")) {
				return d
			}
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if executable(filepath.Join(d, "initdb")) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// traversable reports whether every directory from dir up to the root may
// be searched by other users.
func traversable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// serverCredential returns the postgres user's credential when running as
// root (initdb and postgres refuse to run as root), or nil.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs a postgres user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// reapStale removes run directories whose test process is gone, first
// stopping a server still running there (the binary died in a way that
// even the kernel's parent-death signal did not cover, or on a system
// without one).
func reapStale(base string) {
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "run-%d-", &pid); err != nil || pid <= 0 {
			continue
		}
		if pid == os.Getpid() || alive(pid) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if pm, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pm > 0 && isPostmasterOf(pm, dir) {
				_ = syscall.Kill(pm, syscall.SIGQUIT) // immediate shutdown
				for i := 0; i < 100 && alive(pm); i++ {
					time.Sleep(50 * time.Millisecond)
				}
				if alive(pm) {
					_ = syscall.Kill(pm, syscall.SIGKILL)
				}
			}
		}
		os.RemoveAll(dir)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// isPostmasterOf reports whether pid is a postgres process serving the data
// directory under dir (a recycled PID must not be killed).
func isPostmasterOf(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 0 && strings.HasSuffix(args[0], "postgres") && strings.Contains(string(b), filepath.Join(dir, "data"))
}

// --- the per-binary server for tests ---

var (
	mainActive atomic.Bool
	srvOnce    sync.Once
	srv        *Server
	srvErr     error
	dbSeq      atomic.Int64
)

// Main runs the tests of m and then stops the server (if a test started
// one), and exits with the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	mainActive.Store(true)
	code := m.Run()
	if srv != nil {
		srv.Stop()
	}
	os.Exit(code)
}

func server(t testing.TB) *Server {
	t.Helper()
	if !mainActive.Load() {
		t.Fatal("pgtest: the package's TestMain must call pgtest.Main(m), which stops the server after the tests")
	}
	if findBinDir() == "" {
		if os.Getenv(RequirePeersEnv) == "1" {
			t.Fatalf("pgtest: %v (%s=1)", ErrNotInstalled, RequirePeersEnv)
		}
		t.Skipf("pgtest: %v", ErrNotInstalled)
	}
	srvOnce.Do(func() { srv, srvErr = Launch(context.Background(), "") })
	if srvErr != nil {
		t.Fatal(srvErr)
	}
	return srv
}

// Template is a database prepared once per test binary, which the
// databases of DB are copied from.
type Template struct {
	name  string
	setup func(ctx context.Context, dsn string) error
	once  sync.Once
	err   error
}

// NewTemplate declares a template database: setup runs once, on first
// use, against the new database's DSN (migrating it, say) and must close
// its connections before returning (PostgreSQL copies only a database
// nobody is connected to).
func NewTemplate(name string, setup func(ctx context.Context, dsn string) error) *Template {
	return &Template{name: "tmpl_" + sanitize(name), setup: setup}
}

// DB creates a new database for the test, a copy of tmpl (nil: an empty
// database), and returns its connection URL. The database is dropped when
// the test ends, after the test's own cleanups (close the store first).
func DB(t testing.TB, tmpl *Template) string {
	t.Helper()
	s := server(t)
	ctx := context.Background()
	source := "template0"
	if tmpl != nil {
		tmpl.once.Do(func() {
			if err := s.Exec(ctx, `CREATE DATABASE `+tmpl.name+` TEMPLATE template0`); err != nil {
				tmpl.err = err
				return
			}
			tmpl.err = tmpl.setup(ctx, s.DSN(tmpl.name))
		})
		if tmpl.err != nil {
			t.Fatalf("pgtest: template %s: %v", tmpl.name, tmpl.err)
		}
		source = tmpl.name
	}
	name := fmt.Sprintf("t%d_%s", dbSeq.Add(1), sanitize(t.Name()))
	if len(name) > 60 {
		name = name[:60]
	}
	if err := s.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+source); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.DSN(name)
}

// DSN returns the connection URL of database db on the test binary's
// server (starting it if needed); for tests that manage databases
// themselves.
func DSN(t testing.TB, db string) string {
	t.Helper()
	return server(t).DSN(db)
}

// sanitize makes s a lower-case SQL identifier fragment.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
