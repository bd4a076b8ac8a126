// Package clamdtest starts a real ClamAV daemon for tests, with a small
// signature database written at test time (no freshclam download needed).
//
// The daemon gets its own directory under t.TempDir(): clamd.conf, the
// signature database, a Unix socket, a log file and a temporary directory.
// It also listens on a free TCP port on 127.0.0.1. Each Start is a separate
// clamd process, so tests using it may run in parallel.
//
// When no clamd binary is installed, Start skips the test, or fails it when
// the environment variable MAILGATE_REQUIRE_PEERS is "1" (as in CI), so a
// missing package cannot silently turn the tests into no-ops there.
//
// Programs that are not tests (benchmarks, load drivers) use Launch, which
// takes a directory and returns errors instead of failing a test.
package clamdtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/peers"
	"github.com/mailgate/mailgate/internal/testutil/syncbuf"
)

// RequirePeersEnv is the environment variable that turns a missing peer
// (clamd binary, clamav-testfiles) from a skip into a test failure.
const RequirePeersEnv = peers.Env

// TestFilesDir is where Debian's clamav-testfiles package installs its
// harmless sample files (clam.exe and clam.exe in many container formats).
const TestFilesDir = "/usr/share/clamav-testfiles"

// startTimeout bounds the wait for clamd's first PONG. Loading this tiny
// database takes well under a second; the margin is for loaded CI machines.
const startTimeout = 60 * time.Second

// Option adjusts the generated clamd.conf.
type Option func(*config)

type config struct {
	maxFileSize     int64
	maxScanSize     int64
	streamMaxLength int64
	maxScanTime     time.Duration
	maxRecursion    int
	maxThreads      int
	alertExceedsMax bool
	tempDir         string
	readTimeout     time.Duration
}

// WithMaxFileSize sets clamd's MaxFileSize in bytes: larger files (also
// inside archives) are not scanned, and reported as
// Heuristics.Limits.Exceeded.MaxFileSize while AlertExceedsMax is on.
func WithMaxFileSize(n int64) Option { return func(c *config) { c.maxFileSize = n } }

// WithMaxScanSize sets clamd's MaxScanSize in bytes: the total amount of
// data scanned per stream, archive members included.
func WithMaxScanSize(n int64) Option { return func(c *config) { c.maxScanSize = n } }

// WithStreamMaxLength sets clamd's StreamMaxLength in bytes: a longer
// INSTREAM is refused with "INSTREAM size limit exceeded".
func WithStreamMaxLength(n int64) Option { return func(c *config) { c.streamMaxLength = n } }

// WithMaxScanTime sets clamd's MaxScanTime (millisecond resolution).
func WithMaxScanTime(d time.Duration) Option { return func(c *config) { c.maxScanTime = d } }

// WithMaxThreads sets clamd's MaxThreads, the number of scans it runs at
// once (default here 4). Zero or less leaves it out of clamd.conf, so clamd
// uses its own default, as a packaged daemon does.
func WithMaxThreads(n int) Option { return func(c *config) { c.maxThreads = n } }

// WithTemporaryDirectory sets clamd's TemporaryDirectory, where it writes
// each message's decoded parts and unpacked archive members while it
// scans (default here: a directory beside clamd.conf). The directory is
// created if needed and handed to the clamav user when clamd runs as it.
func WithTemporaryDirectory(dir string) Option { return func(c *config) { c.tempDir = dir } }

// WithReadTimeout sets clamd's ReadTimeout (second resolution, at least
// one): clamd closes a connection that has sent no command for that long,
// including an idle IDSESSION connection, after writing
// "COMMAND READ TIMED OUT". clamd's default is 120 seconds.
func WithReadTimeout(d time.Duration) Option { return func(c *config) { c.readTimeout = d } }

// Clamd is a running clamd started by Start or Launch. Its methods are safe
// for concurrent use.
type Clamd struct {
	dir     string
	socket  string
	addr    string
	logPath string

	cmd    *exec.Cmd
	output *syncbuf.Buffer
	exited chan struct{} // closed once cmd.Wait has returned

	stopOnce sync.Once
}

// ErrNotInstalled is returned by Launch when no clamd binary is found on
// PATH or in the usual sbin directories.
var ErrNotInstalled = errors.New("clamd binary not found (install Debian's clamav-daemon)")

// Start writes a configuration and signature database under t.TempDir(),
// starts clamd in the foreground and returns once it answers PING on both
// its Unix socket and its TCP port. The daemon is stopped at the end of the
// test. When running as root, clamd runs as the "clamav" user (if that user
// exists), as packaged daemons do, so permission mistakes show up in tests.
// Start fails the test if clamd exits or does not answer within a minute;
// clamd's log is included in the message.
func Start(t testing.TB, opts ...Option) *Clamd {
	t.Helper()
	if findClamd() == "" {
		missingPeer(t, ErrNotInstalled.Error())
	}
	c, err := Launch(context.Background(), t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("clamdtest: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Launch is Start for programs: it writes clamd.conf, the signature
// database (see SigEICARHash and friends) and clamd's run directory under
// dir, creating dir if needed, starts clamd in the foreground and returns
// once it answers PING on its Unix socket and on a free TCP port of
// 127.0.0.1. The caller must call Stop. When running as root, clamd runs as
// the "clamav" user if it exists; dir and its parent are then made
// traversable (mode 0711) so that user can reach its files, and the
// directories above them must already be.
//
// Launch returns ErrNotInstalled when there is no clamd binary, an error
// holding clamd's log when clamd exits or does not answer within a minute,
// and ctx's error (after stopping clamd) when ctx ends first. On Linux,
// clamd is killed if the calling process dies without stopping it.
func Launch(ctx context.Context, dir string, opts ...Option) (*Clamd, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting clamd: %w", err)
	}
	bin := findClamd()
	if bin == "" {
		return nil, ErrNotInstalled
	}
	cfg := config{maxRecursion: 20, maxThreads: 4, alertExceedsMax: true}
	for _, o := range opts {
		o(&cfg)
	}
	cred, err := daemonCredential()
	if err != nil {
		return nil, err
	}
	if cfg.tempDir == "" {
		cfg.tempDir = filepath.Join(dir, "run", "tmp")
	}
	if err := prepareDirs(dir, cfg.tempDir, cred); err != nil {
		return nil, err
	}
	if err := writeDatabase(filepath.Join(dir, "db")); err != nil {
		return nil, err
	}

	// The free port is found by binding and releasing it, so another
	// process can take it before clamd binds; retry with a new port then.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := launch(ctx, bin, dir, cred, cfg)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if !errors.Is(err, errExitedEarly) {
			break
		}
	}
	return nil, lastErr
}

// Socket returns the path of clamd's Unix socket (network "unix").
func (c *Clamd) Socket() string { return c.socket }

// Addr returns clamd's TCP address, "127.0.0.1:port" (network "tcp").
func (c *Clamd) Addr() string { return c.addr }

// Dir returns the directory holding clamd.conf, the database and the log.
func (c *Clamd) Dir() string { return c.dir }

// Pid returns the process ID of clamd, for reading its resource use.
func (c *Clamd) Pid() int { return c.cmd.Process.Pid }

// Log returns clamd's log file and its captured stdout/stderr, for test
// failure messages.
func (c *Clamd) Log() string {
	logFile, _ := os.ReadFile(c.logPath)
	return string(logFile) + c.output.String()
}

// Stop terminates clamd (SIGTERM to its PID, SIGKILL if it has not exited
// after 10 seconds) and waits for it. Tests call it to simulate a scanner
// outage; Start also registers it as a cleanup. Calling it again is a no-op.
func (c *Clamd) Stop() {
	c.stopOnce.Do(func() {
		select {
		case <-c.exited:
			return
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
}

var errExitedEarly = errors.New("clamd exited during start-up")

func launch(ctx context.Context, bin, dir string, cred *syscall.Credential, cfg config) (*Clamd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	run := filepath.Join(dir, "run")
	c := &Clamd{
		dir:     dir,
		socket:  filepath.Join(run, "clamd.sock"),
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		logPath: filepath.Join(run, "clamd.log"),
		output:  &syncbuf.Buffer{},
		exited:  make(chan struct{}),
	}
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(c.conf(dir, port, cfg)), 0o644); err != nil {
		return nil, fmt.Errorf("writing clamd.conf: %w", err)
	}
	// A previous attempt's log would be confusing in failure output.
	_ = os.Remove(c.logPath)

	c.cmd = exec.Command(bin, "--foreground", "--config-file="+confPath)
	c.cmd.Dir = dir
	c.cmd.Stdout = c.output
	c.cmd.Stderr = c.output
	c.cmd.SysProcAttr = sysProcAttr(cred)
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-c.exited:
			return nil, fmt.Errorf("%w (%s)\n%s", errExitedEarly, c.cmd.ProcessState, c.Log())
		case <-ctx.Done():
			c.Stop()
			return nil, fmt.Errorf("waiting for clamd to answer PING: %w", ctx.Err())
		default:
		}
		if ping("unix", c.socket) == nil && ping("tcp", c.addr) == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("clamd did not answer PING within %v\n%s", startTimeout, c.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *Clamd) conf(dir string, port int, cfg config) string {
	run := filepath.Join(dir, "run")
	var b strings.Builder
	line := func(k string, v any) { fmt.Fprintf(&b, "%s %v\n", k, v) }
	line("Foreground", "yes")
	line("LocalSocket", c.socket)
	line("LocalSocketMode", "660")
	line("FixStaleSocket", "yes")
	line("TCPSocket", port)
	line("TCPAddr", "127.0.0.1")
	line("DatabaseDirectory", filepath.Join(dir, "db"))
	tmp := cfg.tempDir
	if tmp == "" {
		tmp = filepath.Join(run, "tmp")
	}
	line("TemporaryDirectory", tmp)
	line("LogFile", c.logPath)
	line("LogTime", "yes")
	if cfg.maxThreads > 0 {
		line("MaxThreads", cfg.maxThreads)
	}
	line("Bytecode", "no")
	line("AlertEncrypted", "yes")
	line("AlertExceedsMax", yesNo(cfg.alertExceedsMax))
	line("MaxRecursion", cfg.maxRecursion)
	if cfg.maxFileSize > 0 {
		line("MaxFileSize", cfg.maxFileSize)
	}
	if cfg.maxScanSize > 0 {
		line("MaxScanSize", cfg.maxScanSize)
	}
	if cfg.streamMaxLength > 0 {
		line("StreamMaxLength", cfg.streamMaxLength)
	}
	if cfg.readTimeout > 0 {
		line("ReadTimeout", max(int64(cfg.readTimeout/time.Second), 1))
	}
	if cfg.maxScanTime > 0 {
		line("MaxScanTime", max(cfg.maxScanTime.Milliseconds(), 1))
	}
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// findClamd looks on PATH and then in sbin directories, which are often
// missing from a non-root user's PATH.
func findClamd() string {
	if p, err := exec.LookPath("clamd"); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(d, "clamd")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func missingPeer(t testing.TB, msg string) {
	t.Helper()
	peers.Missing(t, "clamdtest: %s", msg)
}

// daemonCredential returns the clamav user's credential when running as
// root, or nil to run clamd as the current user.
func daemonCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("clamav")
	if err != nil {
		// No clamav user: clamd runs as root, which it permits.
		return nil, nil
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("clamav uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("clamav gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// prepareDirs creates db/ (read by clamd) and run/ (written by clamd: the
// socket, log and temporary files). When clamd runs as another user, dir
// and its parent are opened for traversal and run/ is handed to that user;
// t.TempDir and os.MkdirTemp create them 0700.
func prepareDirs(dir, tmp string, cred *syscall.Credential) error {
	run := filepath.Join(dir, "run")
	for _, d := range []string{filepath.Join(dir, "db"), run, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	if cred == nil {
		return nil
	}
	// Under Start, dir and its parent are the per-test directories made by
	// t.TempDir. Under Launch the parent is the caller's (it may be /tmp):
	// only the search bits are added, every other bit is kept.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := addSearch(d); err != nil {
			return fmt.Errorf("opening %s to the clamav user: %w", d, err)
		}
	}
	for _, d := range []string{run, tmp} {
		if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("handing %s to the clamav user: %w", d, err)
		}
	}
	return nil
}

// addSearch lets every user traverse d (adds the x bits to its mode).
func addSearch(d string) error {
	fi, err := os.Stat(d)
	if err != nil {
		return err
	}
	if m := fi.Mode(); m.Perm()&0o011 != 0o011 {
		return os.Chmod(d, m.Perm()|0o011|m&(os.ModeSticky|os.ModeSetuid|os.ModeSetgid))
	}
	return nil
}

// writeDatabase writes the EICAR signatures and, when clamav-testfiles is
// installed, one for its clam.exe.
//
// .hdb lines are "MD5:size:name"; .ndb lines are
// "name:target:offset:hexbody" with target 0 (any file) and offset "*"
// (anywhere), per ClamAV's signature format documentation.
func writeDatabase(db string) error {
	eicar := EICAR()
	sum := md5.Sum(eicar)
	hdb := fmt.Sprintf("%s:%d:%s\n", hex.EncodeToString(sum[:]), len(eicar), SigEICARHash)
	if clamExe, err := os.ReadFile(filepath.Join(TestFilesDir, "clam.exe")); err == nil {
		sum := md5.Sum(clamExe)
		hdb += fmt.Sprintf("%s:%d:%s\n", hex.EncodeToString(sum[:]), len(clamExe), SigClamExe)
	}
	ndb := fmt.Sprintf("%s:0:*:%s\n", SigEICARBody, hex.EncodeToString(eicar))
	if err := os.WriteFile(filepath.Join(db, "mailgate-test.hdb"), []byte(hdb), 0o644); err != nil {
		return fmt.Errorf("writing .hdb: %w", err)
	}
	if err := os.WriteFile(filepath.Join(db, "mailgate-test.ndb"), []byte(ndb), 0o644); err != nil {
		return fmt.Errorf("writing .ndb: %w", err)
	}
	return nil
}

// TestFile returns the path of a file from clamav-testfiles, such as
// "clam.zip" or "clam.7z". It skips the test when the file is missing, or
// fails it under MAILGATE_REQUIRE_PEERS=1.
func TestFile(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(TestFilesDir, name)
	if _, err := os.Stat(p); err != nil {
		missingPeer(t, fmt.Sprintf("%s not available (install Debian's clamav-testfiles): %v", name, err))
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping is a minimal zPING exchange, kept here so the harness does not
// depend on the client it is used to test.
func ping(network, addr string) error {
	conn, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return err
	}
	var buf [16]byte
	var got []byte
	for len(got) < len(buf) {
		n, err := conn.Read(buf[:])
		got = append(got, buf[:n]...)
		if i := bytes.IndexByte(got, 0); i >= 0 {
			if string(got[:i]) != "PONG" {
				return fmt.Errorf("PING answered %q", got[:i])
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("PING answered %q", got)
}
