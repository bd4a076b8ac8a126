package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/app"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dkimsign"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/doctor"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

// errDoctorFailed makes the exit status non-zero once the results are
// printed (they already say what is wrong).
var errDoctorFailed = errors.New("doctor: some checks failed")

func doctorCmd(g *globals) *cobra.Command {
	var ips []string
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check a running install and say what is wrong",
		Long: `Checks the install described by the configuration file, as the server runs it:
its listeners answer; its inbound listener refuses to relay to an outside
domain from loopback; the certificate it presents after STARTTLS; through
the configured resolver, the hostname's addresses and the reverse names of
the sending addresses (--ip, default: the hostname's addresses), and the MX,
SPF, DKIM, DMARC and MTA-STS records of every served domain; clamd and the
age of its signatures; free disk space against limits.min_free_bytes; the
store's schema, the clock against the store's, the nodes' heartbeats and the
age of the oldest queued message.

One line per check: OK, WARN or FAIL and why. The exit status is 1 when a
check fails. Like the other commands it opens the store (only when its
schema is current: a diagnosis migrates nothing); the DKIM check shows the
records of "mailgate dkim records", whose active keys are made on first use.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd)
			if err != nil {
				return err
			}
			d, closeFn, err := doctorDeps(cmd.Context(), g, cfg, ips)
			if err != nil {
				return err
			}
			defer closeFn()
			if doctor.Print(g.stdout, doctor.Run(cmd.Context(), d)) {
				return errDoctorFailed
			}
			return nil
		},
	}
	c.Flags().StringSliceVar(&ips, "ip", nil, "sending IP address to check the reverse name of (repeatable)")
	return c
}

// doctorDeps wires the doctor to the install: the configured resolver,
// clamd and store.
func doctorDeps(ctx context.Context, g *globals, cfg config.Config, ips []string) (doctor.Deps, func(), error) {
	d := doctor.Deps{Config: cfg, Now: time.Now}
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return d, nil, fmt.Errorf("--ip %q: %w", s, err)
		}
		d.SendingIPs = append(d.SendingIPs, ip)
	}
	log := newLogger(g.stderr, "warn")
	if cfg.DNS.Resolver != "" {
		res, err := dnsx.New(cfg.DNS.Resolver, dnsx.WithTimeout(cfg.DNS.Timeout.Duration))
		if err != nil {
			return d, nil, fmt.Errorf("dns resolver: %w", err)
		}
		d.Resolver = res
		d.MTASTS = app.MTASTSFetcher(res, log)
	}
	if cl, ok := app.ClamdClient(cfg.Checks); ok {
		d.Clamd = cl
		d.ClamdConf = localClamdConf
	}
	d.Schema = func(ctx context.Context) (int, int, error) {
		if cfg.Store.Driver == "postgres" {
			pc, err := app.PostgresConfig(cfg.Store)
			if err != nil {
				return 0, 0, err
			}
			return postgres.Schema(ctx, pc)
		}
		return sqlite.Schema(ctx, filepath.Join(cfg.DataDir, "mailgate.db"))
	}
	have, want, err := d.Schema(ctx)
	switch {
	case err != nil:
		d.StoreErr = fmt.Errorf("not opened: %w", err)
		return d, func() {}, nil
	case have != want:
		d.StoreErr = fmt.Errorf("not opened: its schema version is %d, this mailgate's %d", have, want)
		return d, func() {}, nil
	}
	a, err := app.Open(ctx, cfg, log, app.Options{})
	if err != nil {
		d.StoreErr = fmt.Errorf("not opened: %w", err)
		return d, func() {}, nil
	}
	d.Store = a.Store
	d.DKIM = func(ctx context.Context, domain string) ([]dkimsign.Published, error) {
		dom, err := a.Store.DomainByName(ctx, domain)
		if err != nil {
			return nil, err
		}
		s, err := a.Pipeline.SettingsFor(ctx, dom.TenantID, "postmaster@"+domain)
		if err != nil {
			return nil, err
		}
		dc, err := dkimsign.ConfigFrom(s, domain)
		if err != nil {
			return nil, err
		}
		return dc.Records(ctx, a.Store)
	}
	return d, func() { a.Close() }, nil
}

// localClamdConf finds, among the packaged places, the clamd configuration
// whose LocalSocket is socket.
func localClamdConf(socket string) (string, []byte, bool, error) {
	for _, p := range doctor.ClamdConfPaths {
		b, err := os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return p, nil, false, fmt.Errorf("reading %s: %w", p, err)
		case doctor.SameSocket(b, socket):
			return p, b, true, nil
		}
	}
	return "", nil, false, nil
}
