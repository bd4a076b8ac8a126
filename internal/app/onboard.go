package app

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/dkimsign"
)

// onboardEnv are this node's values for the onboarding wizard.
func (a *App) onboardEnv() admin.OnboardEnv {
	e := admin.OnboardEnv{Hostname: a.Config.Hostname, DKIM: a.DKIMRecords, Sealer: a.Config.ARC.Domain, ARC: a.ARCRecord}
	if len(a.Config.Outbound.Listen) > 0 {
		if _, p, err := net.SplitHostPort(a.Config.Outbound.Listen[0]); err == nil {
			e.RelayPort, _ = strconv.Atoi(p)
		}
	}
	if f := a.Config.Delivery.ClientCertFile; f != "" {
		// Open loaded it already; the name is what a partner connector
		// compares with its configured subject name.
		if c, err := tls.LoadX509KeyPair(f, a.Config.Delivery.ClientKeyFile); err == nil && c.Leaf != nil {
			if len(c.Leaf.DNSNames) > 0 {
				e.CertName = c.Leaf.DNSNames[0]
			} else {
				e.CertName = c.Leaf.Subject.CommonName
			}
		}
	}
	return e
}

// DKIMRecords returns the DKIM records a domain of the tenant publishes,
// from its dkim.* settings (keys of the active selector are made on first
// use); nil when the domain does not sign.
func (a *App) DKIMRecords(ctx context.Context, tenantID int64, domain string) ([]dkimsign.Published, error) {
	s, err := a.Pipeline.SettingsFor(ctx, tenantID, "postmaster@"+domain)
	if err != nil {
		return nil, err
	}
	cfg, err := dkimsign.ConfigFrom(s, domain)
	if err != nil {
		return nil, err
	}
	return cfg.Records(ctx, a.Store)
}
