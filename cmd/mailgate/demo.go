package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/scan/av/clamd"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
)

func demoCmd(g *globals) *cobra.Command {
	var dataDir, listen, outListen, sinkAddr, httpAddr, subListen, subTLSListen, imapAddr, imapsAddr string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run a self-contained demonstration: tenant example.test, users alice and bob, a stand-in downstream server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(dataDir)
			if err != nil {
				return err
			}
			cfg := config.Default()
			cfg.Hostname = "mailgate.demo.test"
			cfg.DataDir = abs
			cfg.Inbound.Listen = []string{listen}
			cfg.Outbound.Listen = []string{outListen}
			cfg.HTTP.Listen = httpAddr
			cfg.Submission.Listen = []string{subListen}
			cfg.Submission.ListenTLS = []string{subTLSListen}
			// IMAP to the emergency mailboxes, with the self-signed
			// certificate made in the data directory.
			cfg.IMAP.Listen, cfg.IMAP.ListenTLS = nil, nil
			if imapAddr != "" {
				cfg.IMAP.Listen = []string{imapAddr}
			}
			if imapsAddr != "" {
				cfg.IMAP.ListenTLS = []string{imapsAddr}
			}
			// Two-factor login is on by default; the demo turns it off so it
			// can be tried without an authenticator app.
			cfg.HTTP.RequireTOTP = false
			cfg.Limits.MinFreeBytes = 64 << 20
			// The demo has no DNS; everything leaving goes to the stand-in server.
			cfg.Delivery.SmartHost = "smtp://" + sinkAddr
			cfg.Queue.Retry = []config.Duration{config.D(60e9)}
			// ClamAV is used where present: a running clamd on its usual socket.
			clamdNote := "not found (start clamd to scan for viruses)"
			for _, sock := range []string{"/run/clamav/clamd.ctl", "/var/run/clamav/clamd.ctl"} {
				cl := &clamd.Client{Network: "unix", Address: sock, DialTimeout: time.Second}
				if cl.Ping(cmd.Context()) == nil {
					cfg.Checks.Clamd, clamdNote = sock, sock
					break
				}
			}
			if err := os.MkdirAll(abs, 0o700); err != nil {
				return err
			}
			down := filepath.Join(abs, "downstream")
			sk, err := sink.Start(sinkAddr, down, false)
			if err != nil {
				return fmt.Errorf("stand-in downstream server: %w", err)
			}
			defer sk.Close()
			cfgPath := filepath.Join(abs, "mailgate.toml")
			if b, err := cfg.Encode(); err == nil {
				os.WriteFile(cfgPath, b, 0o600)
			}
			log := newLogger(g.stderr, "info")
			if err := seedDemo(cmd.Context(), cfg, sk.Addr()); err != nil {
				return err
			}
			return run(cmd.Context(), cfg, log, func(a *app.App) {
				host, port, _ := net.SplitHostPort(a.InboundAddr())
				fmt.Fprintf(g.stdout, `
mailgate demo is running.

  inbound SMTP (MX):      %s   domain example.test, users alice@ and bob@example.test
  outbound relay:         %s   for clients on 127.0.0.0/8, sender must be @example.test
  submission (mail apps): %s (STARTTLS), %s (TLS)   log in as alice@example.test; send as that address only
  stand-in mail server:   %s   writes each delivered message to %s/
  web console:            http://%s/   (API: http://%s/api/v1/openapi.json)
      logins (password %s):
        operator %-20s all tenants
        admin    %-20s tenant example
        user     %-20s own quarantine and lists
      (two-factor login is off in the demo; in production operators and administrators enrol TOTP at first login)
  IMAP (emergency mailboxes): %s (STARTTLS), %s (TLS)
      login alice@example.test, password %s; passwords only over TLS;
      certificate (self-signed): %s
  ClamAV clamd:           %s
  data directory:         %s  (config: %s)

Send a test mail:
  swaks --server %s --port %s --from someone@example.net --to alice@example.test --header "Subject: hello"
or
  python3 -c "import smtplib; smtplib.SMTP('%s', %s).sendmail('someone@example.net', ['alice@example.test'], 'Subject: hello\r\n\r\nhi\r\n')"

Then:
  ls %s/
  go run ./cmd/mailgate -c %s track alice@example.test
  go run ./cmd/mailgate -c %s queue list

Press Ctrl-C to stop.
`, a.InboundAddr(), a.OutboundAddr(), subAddr(a, 0), subAddr(a, 1), sk.Addr(), down, httpAddr, httpAddr, demoPassword, "admin", "it@example.test", "alice@example.test",
					orNone(a.IMAPAddr()), orNone(a.IMAPTLSAddr()), demoPassword, filepath.Join(abs, "tls", "selfsigned.crt"), clamdNote, abs, cfgPath,
					host, port, host, port, down, cfgPath, cfgPath)
			})
		},
	}
	c.Flags().StringVar(&dataDir, "data", "demo-data", "data directory")
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:2525", "inbound SMTP address")
	c.Flags().StringVar(&outListen, "outbound", "127.0.0.1:10025", "outbound relay address")
	c.Flags().StringVar(&sinkAddr, "downstream", "127.0.0.1:2526", "address of the stand-in downstream server")
	c.Flags().StringVar(&httpAddr, "http", "127.0.0.1:8080", "web console, API and metrics address")
	c.Flags().StringVar(&subListen, "submission", "127.0.0.1:10587", "submission address (STARTTLS, port 587 in production)")
	c.Flags().StringVar(&subTLSListen, "submission-tls", "127.0.0.1:10465", "submission address with implicit TLS (port 465 in production)")
	c.Flags().StringVar(&imapAddr, "imap", "127.0.0.1:1143", "IMAP address (STARTTLS); empty: none")
	c.Flags().StringVar(&imapsAddr, "imaps", "127.0.0.1:1993", "IMAP address with implicit TLS; empty: none")
	return c
}

// subAddr is the i-th bound submission address, or "-".
func subAddr(a *app.App, i int) string {
	if as := a.SubmissionAddrs(); i < len(as) {
		return as[i]
	}
	return "-"
}

// seedDemo creates the demo tenant once; later starts keep what is there.
func seedDemo(ctx context.Context, cfg config.Config, sinkAddr string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	a, err := app.Open(ctx, cfg, newLogger(os.Stderr, "warn"), app.Options{Version: version})
	if err != nil {
		return err
	}
	defer a.Close()
	t, err := a.Store.CreateTenant(ctx, "example")
	if errors.Is(err, store.ErrExists) {
		t, err = a.Store.TenantByName(ctx, "example")
		if err != nil {
			return err
		}
		d, err := a.Store.DomainByName(ctx, "example.test")
		if err != nil {
			return err
		}
		// The stand-in server may listen elsewhere this time.
		if err := a.Store.SetRoutes(ctx, t.ID, d.ID, []store.Route{{Priority: 10, Target: "smtp://" + sinkAddr, TLS: "opportunistic"}}); err != nil {
			return err
		}
		return seedDemoLogins(ctx, a, t.ID)
	} else if err != nil {
		return err
	}
	d, err := a.Store.CreateDomain(ctx, t.ID, "example.test")
	if err != nil {
		return err
	}
	if err := a.Store.SetRoutes(ctx, t.ID, d.ID, []store.Route{{Priority: 10, Target: "smtp://" + sinkAddr, TLS: "opportunistic"}}); err != nil {
		return err
	}
	for _, u := range []string{"alice@example.test", "bob@example.test"} {
		if _, err := a.Store.CreateUser(ctx, t.ID, u); err != nil {
			return err
		}
	}
	if err := a.Store.AddRelayNet(ctx, t.ID, netip.MustParsePrefix("127.0.0.0/8")); err != nil && !strings.Contains(err.Error(), "exists") {
		return err
	}
	return seedDemoLogins(ctx, a, t.ID)
}

// seedDemoLogins creates the demo's console logins that are missing (a
// data directory from an older demo has none).
func seedDemoLogins(ctx context.Context, a *app.App, tenantID int64) error {
	hash, err := passwd.Hash(demoPassword)
	if err != nil {
		return err
	}
	now := a.Clock.Now()
	for _, acct := range []store.Account{
		{Login: "admin", Role: store.RoleOperator},
		{Login: "it@example.test", Role: store.RoleAdmin, TenantID: tenantID},
		{Login: "alice@example.test", Role: store.RoleUser, TenantID: tenantID},
	} {
		if _, err := a.Store.AccountByLogin(ctx, acct.Login); err == nil {
			continue
		}
		acct.Hash, acct.Created = hash, now
		if _, err := a.Store.CreateAccount(ctx, acct); err != nil {
			return err
		}
	}
	return nil
}

// demoPassword is every demo login's password (the demo listens on loopback only).
const demoPassword = "mailgate-demo"

// orNone shows an empty address as "off".
func orNone(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}
