// Package mgtest starts a complete mailgate node in-process for tests: real
// listeners on 127.0.0.1, a real store and blob store in a temporary
// directory (or PostgreSQL and S3, see OnPostgres and OnS3),
// and sink servers standing in for the customer's server (downstream) and
// for the internet (smart host, where DSNs and outbound mail go).
package mgtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/blob/s3"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
	"github.com/mailgate/mailgate/internal/testutil/s3test"
)

// Node is a running test instance.
type Node struct {
	*app.App
	Down     *sink.Sink // the tenant's own mail server (route of example.test)
	Internet *sink.Sink // smart host: mail to everyone else, DSNs included
	Tenant   store.Tenant
	Domain   store.Domain
	Dir      string
}

// Options adjust the node before it starts.
type Options struct {
	Clock  clock.Clock
	Config func(*config.Config)
	// NoStart opens the node without listeners or queue workers.
	NoStart bool
	// Stages replaces the inbound checks (nil: the configured ones).
	Stages []policy.Stage
	// NoChecks runs the relay without any inbound check (queue tests).
	NoChecks bool
	// Passwords replaces the node's password verifier (tests that
	// instrument or fill its memory budget).
	Passwords *passwd.Verifier
	// Postgres keeps the node's store in a fresh database on the test
	// binary's throwaway PostgreSQL server (see OnPostgres) instead of
	// SQLite in the node's directory.
	Postgres bool
	// S3 keeps the node's message bodies and quarantined copies in a fresh
	// bucket of the test binary's S3 server (versitygw, see OnS3) instead
	// of files in the node's directory.
	S3 bool
	// Mailboxes is the emergency mailbox store (mail continuity).
	Mailboxes app.MailboxStore
	// IMAP starts the IMAP listeners (STARTTLS and implicit TLS) on
	// 127.0.0.1; see IMAPAddr, IMAPTLSAddr, IMAPClientTLS and MailUser.
	IMAP bool
}

// migrated is the template database of every PostgreSQL-backed node.
var migrated = pgtest.NewTemplate("mailgate", func(ctx context.Context, dsn string) error {
	_, _, err := postgres.Migrate(ctx, postgres.Config{DSN: dsn})
	return err
})

// onPostgres holds the names of tests whose nodes use PostgreSQL.
var onPostgres sync.Map

// OnPostgres makes every node and store that t and its subtests start
// use PostgreSQL, as if with Options.Postgres: a package runs some of its
// existing tests again on the cluster store by calling them as subtests
// of a test that calls OnPostgres. The package's TestMain must call
// pgtest.Main; without PostgreSQL installed the tests skip (or fail under
// MAILGATE_REQUIRE_PEERS=1).
func OnPostgres(t testing.TB) {
	onPostgres.Store(t.Name(), true)
	t.Cleanup(func() { onPostgres.Delete(t.Name()) })
}

func usePostgres(t testing.TB, o Options) bool { return o.Postgres || marked(&onPostgres, t) }

// onS3 holds the names of tests whose nodes keep their blobs on S3.
var onS3 sync.Map

// OnS3 makes every node and blob store that t and its subtests start keep
// their blobs on S3, as if with Options.S3 (like OnPostgres). Without
// versitygw installed the tests skip (or fail under
// MAILGATE_REQUIRE_PEERS=1).
func OnS3(t testing.TB) {
	onS3.Store(t.Name(), true)
	t.Cleanup(func() { onS3.Delete(t.Name()) })
}

func useS3(t testing.TB, o Options) bool { return o.S3 || marked(&onS3, t) }

// marked reports whether t or one of its parents is in m.
func marked(m *sync.Map, t testing.TB) bool {
	found := false
	m.Range(func(k, _ any) bool {
		p := k.(string)
		found = t.Name() == p || strings.HasPrefix(t.Name(), p+"/")
		return !found
	})
	return found
}

// OpenBlobs opens an empty blob store for t writing as node "node1": files
// in dir/namespace, or a fresh S3 bucket when t runs under OnS3.
func OpenBlobs(t testing.TB, dir, namespace string) blob.Store {
	t.Helper()
	var bs blob.Store
	var err error
	if useS3(t, Options{}) {
		cfg := s3test.Bucket(t)
		cfg.SpillDir = filepath.Join(dir, "blob-spill")
		bs, err = s3.Open(context.Background(), cfg, namespace, "node1", nil)
	} else {
		bs, err = local.Open(filepath.Join(dir, namespace), "node1", 0, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	return bs
}

// OpenStore opens an empty store for t, closed when t ends: SQLite in dir,
// or a PostgreSQL database when t runs under OnPostgres.
func OpenStore(t testing.TB, dir string) store.Store {
	t.Helper()
	ctx := context.Background()
	var st store.Store
	var err error
	if usePostgres(t, Options{}) {
		st, err = postgres.Open(ctx, postgres.Config{DSN: pgtest.DB(t, migrated)}, nil)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dir, "db"), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Start builds and starts a node serving example.test (users alice and bob)
// for tenant "acme", with 127.0.0.1/32 allowed to relay outbound.
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	dir := t.TempDir()
	down, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { down.Close() })
	inet, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inet.Close() })

	cfg := config.Default()
	cfg.Hostname = "mx.mailgate.test"
	cfg.DataDir = dir
	cfg.Inbound.Listen = []string{"127.0.0.1:0"}
	cfg.Outbound.Listen = []string{"127.0.0.1:0"}
	cfg.Limits.MinFreeBytes = 0
	cfg.Limits.RejectTalkFirst = true
	cfg.Queue.Jitter = 0
	cfg.Queue.PollInterval = config.D(50 * time.Millisecond)
	cfg.Delivery.SmartHost = "smtp://" + inet.Addr()
	cfg.Delivery.ConnectTimeout = config.D(5 * time.Second)
	if usePostgres(t, o) {
		cfg.Store.Driver, cfg.Store.DSN = "postgres", pgtest.DB(t, migrated)
	}
	if useS3(t, o) {
		b := s3test.Bucket(t)
		cfg.Blobs = config.BlobsConfig{Driver: "s3", Endpoint: b.Endpoint, Bucket: b.Bucket, Region: b.Region,
			PathStyle: b.PathStyle, AccessKeyID: b.AccessKeyID, SecretAccessKey: b.SecretAccessKey}
	}
	// Fake upstreams (IMAP, SMTP, identity provider) listen on loopback.
	cfg.Auth.UpstreamAllow = []string{"127.0.0.0/8", "::1/128"}
	if o.IMAP {
		cfg.IMAP.Listen, cfg.IMAP.ListenTLS = []string{"127.0.0.1:0"}, []string{"127.0.0.1:0"}
		cfg.IMAP.PollInterval = config.D(100 * time.Millisecond)
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("MAILGATE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx := context.Background()
	if o.NoChecks {
		o.Stages = []policy.Stage{}
	}
	a, err := app.Open(ctx, cfg, log, app.Options{Clock: o.Clock, Stages: o.Stages, Passwords: o.Passwords, Mailboxes: o.Mailboxes})
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{App: a, Down: down, Internet: inet, Dir: dir}
	n.Tenant, err = a.Store.CreateTenant(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	n.Domain, err = a.Store.CreateDomain(ctx, n.Tenant.ID, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store.SetRoutes(ctx, n.Tenant.ID, n.Domain.ID, []store.Route{{Priority: 10, Target: "smtp://" + down.Addr(), TLS: "opportunistic"}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice@example.test", "bob@example.test"} {
		if _, err := a.Store.CreateUser(ctx, n.Tenant.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Store.AddRelayNet(ctx, n.Tenant.ID, netip.MustParsePrefix("127.0.0.1/32")); err != nil {
		t.Fatal(err)
	}
	if o.NoStart {
		t.Cleanup(func() { a.Close() })
		return n
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(sctx)
	})
	return n
}

// WaitFor polls cond until it is true or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// IMAPClientTLS trusts the node's self-signed certificate (made at start
// in its data directory) for its hostname.
func (n *Node) IMAPClientTLS(t testing.TB) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(n.Dir, "tls", "selfsigned.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("node certificate unreadable")
	}
	return &tls.Config{RootCAs: pool, ServerName: n.Config.Hostname}
}

// MailUser gives a user of the node's tenant a console account with a
// local password, which is also its IMAP login.
func (n *Node) MailUser(t testing.TB, address, password string) {
	t.Helper()
	ctx := context.Background()
	if ok, err := n.Store.UserExists(ctx, n.Tenant.ID, address); err != nil {
		t.Fatal(err)
	} else if !ok {
		if _, err := n.Store.CreateUser(ctx, n.Tenant.ID, address); err != nil {
			t.Fatal(err)
		}
	}
	hash, err := passwd.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.CreateAccount(ctx, store.Account{TenantID: n.Tenant.ID, Login: address, Role: store.RoleUser, Hash: hash, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
}
