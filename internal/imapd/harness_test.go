package imapd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"os"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/imapd"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/mailbox/mailboxtest"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testLog discards, unless MAILGATE_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("MAILGATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// password is every test account's password.
const password = "correct horse battery"

// node is an IMAP server over a mailbox environment.
type node struct {
	*mailboxtest.Env
	srv      *imapd.Server
	addr     string // STARTTLS listener
	tlsAddr  string // implicit TLS listener
	clientTL *tls.Config
	certDER  []byte
	throttle *loginlimit.Memory
	pw       *passwd.Verifier
}

type nodeOptions struct {
	config   func(*config.IMAPConfig)
	maxBytes int64
	// throttle replaces the permissive test throttle; beforeHash runs
	// before each password hash (to make checks overlap).
	throttle   *loginlimit.Memory
	beforeHash func()
	// requireTOTP is http.require_totp.
	requireTOTP bool
}

func testCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imap.test"}, DNSNames: []string{"imap.test", "localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// start runs a server with accounts for alice and bob (and an operator,
// who has no mailbox).
func start(t testing.TB, o nodeOptions) *node {
	t.Helper()
	env := mailboxtest.New(t)
	ctx := context.Background()
	pw := passwd.MustNew(passwd.Options{Params: passwd.Params{Memory: 64, Time: 1, Threads: 1}, Budget: 64 * 64, BeforeHash: o.beforeHash})
	hash, err := pw.Hash(ctx, password)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []store.Account{
		{Login: "alice@example.test", Role: store.RoleUser, TenantID: env.Tenant.ID},
		{Login: "bob@example.test", Role: store.RoleUser, TenantID: env.Tenant.ID},
		{Login: "admin", Role: store.RoleOperator},
		{Login: "gone@example.test", Role: store.RoleUser, TenantID: env.Tenant.ID, Disabled: true},
	} {
		a.Hash, a.Created = hash, time.Now()
		if _, err := env.Store.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	cert := testCert(t)
	cfg := config.DefaultIMAP()
	cfg.PollInterval = config.D(50 * time.Millisecond)
	if o.config != nil {
		o.config(&cfg)
	}
	n := &node{Env: env, throttle: loginlimit.New(loginlimit.Options{Burst: 1000}), pw: pw}
	if o.throttle != nil {
		n.throttle = o.throttle
	}
	n.srv = imapd.New(imapd.Deps{Mailboxes: env.Svc, TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Passwords: pw,
		Throttle: n.throttle, Config: cfg, MaxMessageBytes: o.maxBytes, Log: testLog(), RequireTOTP: o.requireTOTP})
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	n.certDER = cert.Certificate[0]
	pool.AddCert(leaf)
	n.clientTL = &tls.Config{RootCAs: pool, ServerName: "imap.test"}
	for _, implicit := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if implicit {
			n.tlsAddr = ln.Addr().String()
			go n.srv.ServeTLS(ln)
		} else {
			n.addr = ln.Addr().String()
			go n.srv.Serve(ln)
		}
	}
	t.Cleanup(func() { n.srv.Close() })
	return n
}

// dial connects over implicit TLS.
func (n *node) dial(t testing.TB, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = n.clientTL
	c, err := imapclient.DialTLS(n.tlsAddr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// login dials and logs in as user.
func (n *node) login(t testing.TB, user string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := n.dial(t, opts)
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}
