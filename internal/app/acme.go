package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/mailgate/mailgate/internal/config"
)

// acmeCerts are the certificates of [tls] acme: issued and renewed by the
// certificate authority through autocert, kept in data_dir/acme, validated
// on the console listener (TLS-ALPN-01 when it serves TLS, HTTP-01
// otherwise).
type acmeCerts struct {
	m        *autocert.Manager
	names    []string
	hostname string
	log      *slog.Logger
}

// acmeNames are the names of [tls] acme_names, or the hostname and the
// console's host.
func acmeNames(cfg config.Config) []string {
	var names []string
	add := func(n string) {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, n := range cfg.TLS.ACMENames {
		add(n)
	}
	if len(names) == 0 {
		add(cfg.Hostname)
		if u, err := url.Parse(cfg.HTTP.BaseURL); err == nil && cfg.HTTP.BaseURL != "" {
			add(u.Hostname())
		}
	}
	return names
}

// newACME builds the certificate manager of cfg, nil when [tls] acme is off.
func newACME(cfg config.Config, log *slog.Logger) (*acmeCerts, error) {
	if !cfg.TLS.ACME {
		return nil, nil
	}
	hc := &http.Client{Timeout: time.Minute}
	if cfg.TLS.ACMECAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.ACMECAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.acme_ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.acme_ca_file %s: no PEM certificate in it", cfg.TLS.ACMECAFile)
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Proxy: http.ProxyFromEnvironment}
	}
	names := acmeNames(cfg)
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(filepath.Join(cfg.DataDir, "acme")),
		HostPolicy: autocert.HostWhitelist(names...),
		Email:      cfg.TLS.ACMEEmail,
		Client:     &acme.Client{DirectoryURL: cfg.TLS.ACMEDirectory, HTTPClient: hc, UserAgent: "mailgate"},
	}
	return &acmeCerts{m: m, names: names, hostname: strings.ToLower(strings.TrimSuffix(cfg.Hostname, ".")), log: log}, nil
}

// get returns the ACME certificate for hello, and false when the fallback
// certificate should be presented instead: a name not in acme_names, or no
// certificate yet (the CA cannot be reached: mail keeps flowing with
// opportunistic TLS). A TLS-ALPN-01 validation gets the manager's answer
// whatever it is. SMTP clients often send no server name: they get the
// hostname's certificate.
func (c *acmeCerts) get(hello *tls.ClientHelloInfo) (*tls.Certificate, bool, error) {
	if slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
		cert, err := c.m.GetCertificate(hello)
		return cert, true, err
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name == "" {
		h := *hello
		h.ServerName, name = c.hostname, c.hostname
		hello = &h
	}
	if !slices.Contains(c.names, name) {
		return nil, false, nil
	}
	cert, err := c.m.GetCertificate(hello)
	if err != nil {
		c.log.Warn("acme certificate not available; presenting the fallback certificate", "name", name, "err", err)
		return nil, false, nil
	}
	return cert, true, nil
}

// acmeChanged reports a change of the [tls] acme settings, which the
// listeners take at the next start (the console's validation paths are
// set up then).
func acmeChanged(a, b config.TLSConfig) bool {
	return a.ACME != b.ACME || a.ACMEDirectory != b.ACMEDirectory || a.ACMEEmail != b.ACMEEmail ||
		!slices.Equal(a.ACMENames, b.ACMENames) || a.ACMECAFile != b.ACMECAFile
}

// consoleTLS lets the console listener answer TLS-ALPN-01 validations.
func (c *acmeCerts) consoleTLS(cfg *tls.Config) {
	if c != nil && !slices.Contains(cfg.NextProtos, acme.ALPNProto) {
		cfg.NextProtos = append(cfg.NextProtos, "h2", "http/1.1", acme.ALPNProto)
	}
}

// handler answers HTTP-01 validations before the console sees the request.
func (c *acmeCerts) handler(h http.Handler) http.Handler {
	if c == nil {
		return h
	}
	return c.m.HTTPHandler(h)
}
