// Package s3test runs a real S3-compatible server for tests: versitygw
// (github.com/versity/versitygw, S3 over a local directory), one server
// per test binary, started on first use, with a fresh bucket per test.
//
// The server is a child of the test binary and, on Linux, is killed by the
// kernel when the binary exits, so no server outlives its tests; run
// directories left behind are removed by the next run. Each test's bucket
// is removed when the test ends.
//
// When versitygw is not installed (scripts/test installs it with
// `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`), Bucket
// skips the test, or fails it when MAILGATE_REQUIRE_PEERS=1.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mailgate/mailgate/internal/blob/s3"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// Version is the versitygw release the tests are run with.
const Version = "v1.8.0"

// ErrNotInstalled is returned by Launch when no versitygw binary is found.
var ErrNotInstalled = errors.New("versitygw not found (go install github.com/versity/versitygw/cmd/versitygw@" + Version + ", or set MAILGATE_VERSITYGW)")

// Server is one running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string
	dir       string // run directory; buckets are in dir/data
	cmd       *exec.Cmd
	exited    chan struct{}
	client    *minio.Client
}

// Binary finds versitygw: $MAILGATE_VERSITYGW, PATH, then Go's bin
// directories.
func Binary() string {
	if p := os.Getenv("MAILGATE_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(strings.Split(d, string(os.PathListSeparator))[0], "bin"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Launch starts versitygw on a free loopback port over a new directory
// under base (default: the system's temporary directory) and returns once
// it answers. The caller must call Stop. Run directories of earlier runs
// whose process is gone are removed first.
func Launch(ctx context.Context, base string) (*Server, error) {
	bin := Binary()
	if bin == "" {
		return nil, ErrNotInstalled
	}
	if base == "" {
		base = filepath.Join(os.TempDir(), "mailgate-s3test")
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	reapStale(base)
	dir, err := os.MkdirTemp(base, fmt.Sprintf("run-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("s3test: %w", err)
	}
	var last error
	// The port is picked before the server binds it; another program may
	// take it in between, so a start that fails is tried again.
	for try := 0; try < 3; try++ {
		s, err := start(ctx, bin, dir)
		if err == nil {
			return s, nil
		}
		last = err
	}
	os.RemoveAll(dir)
	return nil, last
}

func start(ctx context.Context, bin, dir string) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Endpoint: "http://" + addr, AccessKey: "mgtest" + randHex(6), SecretKey: randHex(20), Region: "us-east-1", dir: dir, exited: make(chan struct{})}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey,
		"--region", s.Region, "--keep-alive", "--quiet", "posix", filepath.Join(dir, "data"))
	// Keys given on the command line only, not from the caller's environment.
	cmd.Env = filterEnv(os.Environ(), "ROOT_ACCESS_KEY", "ROOT_SECRET_KEY", "VGW_")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("s3test: versitygw: %w", err)
	}
	s.cmd = cmd
	go func() { cmd.Wait(); close(s.exited) }()
	s.client, err = minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: s.Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("s3test: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.client.ListBuckets(cctx)
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, fmt.Errorf("s3test: versitygw exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.kill()
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			return nil, fmt.Errorf("s3test: versitygw does not answer (%v): %s", err, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func filterEnv(env []string, drop ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, d := range drop {
			if strings.HasPrefix(kv, d) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Pid is the server's process ID, for programs that measure its CPU time.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Dir is the directory holding the buckets (one subdirectory each).
func (s *Server) Dir() string { return filepath.Join(s.dir, "data") }

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	return s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region})
}

// Config is the blob store configuration for bucket on s.
func (s *Server) Config(bucket string) s3.Config {
	return s3.Config{Endpoint: s.Endpoint, Bucket: bucket, Region: s.Region, PathStyle: true,
		AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey}
}

// Client is an S3 client of the server with its root credentials, for
// tests that look at or change objects behind mailgate's back.
func (s *Server) Client() *minio.Client { return s.client }

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Stop ends the server and removes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.kill()
		}
	}
	os.RemoveAll(s.dir)
}

// reapStale removes run directories whose program is gone.
func reapStale(base string) {
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "run-%d-", &pid); err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue
		}
		os.RemoveAll(filepath.Join(base, e.Name()))
	}
}

// --- the per-binary server for tests ---

var (
	srvOnce sync.Once
	srv     *Server
	srvErr  error
	seq     atomic.Int64
)

// Shared returns the test binary's server, starting it on first use. A
// missing versitygw skips t (fails it under MAILGATE_REQUIRE_PEERS=1).
func Shared(t testing.TB) *Server {
	t.Helper()
	if Binary() == "" {
		peers.Missing(t, "s3test: %v", ErrNotInstalled)
	}
	srvOnce.Do(func() { srv, srvErr = Launch(context.Background(), "") })
	if srvErr != nil {
		t.Fatal(srvErr)
	}
	return srv
}

// Bucket creates a fresh bucket for t on the shared server and returns the
// blob store configuration for it. The bucket is removed when t ends.
func Bucket(t testing.TB) s3.Config {
	t.Helper()
	s := Shared(t)
	name := fmt.Sprintf("t%d-%s", seq.Add(1), sanitize(t.Name()))
	if len(name) > 63 {
		name = name[:63]
	}
	name = strings.TrimRight(name, "-")
	if err := s.CreateBucket(context.Background(), name); err != nil {
		t.Fatalf("s3test: create bucket %s: %v", name, err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(s.Dir(), name)) })
	return s.Config(name)
}

// sanitize makes s a bucket name fragment: lower-case letters, digits, '-'.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}
