package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/internal/config"
)

// certificate is the listeners' certificate. Every handshake takes the
// current one, so a reload (SIGHUP) reaches new connections and STARTTLS
// commands at once while established sessions keep theirs.
type certificate struct {
	cur atomic.Pointer[tls.Certificate]
	// acme are the certificates of [tls] acme (acme.go); nil when off.
	acme *acmeCerts
}

func (c *certificate) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.acme != nil {
		if cert, ok, err := c.acme.get(hello); ok {
			return cert, err
		}
	}
	return c.cur.Load(), nil
}

// load reads the configured certificate, or the self-signed one made once
// and kept in the data directory (opportunistic STARTTLS between MTAs does
// not verify certificates, so a self-signed one still encrypts). On error
// the current certificate stays.
func (c *certificate) load(cfg config.Config) error {
	certFile, keyFile := cfg.TLS.CertFile, cfg.TLS.KeyFile
	if certFile == "" {
		certFile = filepath.Join(cfg.DataDir, "tls", "selfsigned.crt")
		keyFile = filepath.Join(cfg.DataDir, "tls", "selfsigned.key")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := makeSelfSigned(cfg.Hostname, certFile, keyFile); err != nil {
				return err
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	c.cur.Store(&cert)
	return nil
}

// loadTLS returns the listeners' TLS configuration, which presents the
// certificate held by the returned certificate.
func loadTLS(cfg config.Config, log *slog.Logger) (*tls.Config, *certificate, error) {
	c := &certificate{}
	if err := c.load(cfg); err != nil {
		return nil, nil, err
	}
	var err error
	if c.acme, err = newACME(cfg, log); err != nil {
		return nil, nil, err
	}
	return &tls.Config{GetCertificate: c.get, MinVersion: tls.VersionTLS12}, c, nil
}

func makeSelfSigned(host, certFile, keyFile string) error {
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host, Organization: []string{"mailgate self-signed"}},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	return nil
}
