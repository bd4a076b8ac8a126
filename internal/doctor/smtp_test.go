package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// openRelay accepts every recipient: what the doctor must catch.
type openRelay struct{}

func (openRelay) NewSession(*smtp.Conn) (smtp.Session, error) { return relaySession{}, nil }

type relaySession struct{}

func (relaySession) Mail(string, *smtp.MailOptions) error { return nil }
func (relaySession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (relaySession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (relaySession) Reset()                               {}
func (relaySession) Logout() error                        { return nil }

// certificate makes a certificate for name valid until notAfter, signed
// by a throwaway CA (so it is not self-signed).
func certificate(t *testing.T, name string, notAfter time.Time) tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func serveSMTP(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	srv := smtp.NewServer(openRelay{})
	srv.Domain = "relay.test"
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// A server that takes any recipient is reported as an open relay, and a
// certificate about to expire is worth a warning.
func TestOpenRelayAndExpiringCertificate(t *testing.T) {
	d, _, _ := baseDeps(t)
	d.Config.DNS.Resolver = ""
	addr := serveSMTP(t, certificate(t, "mx.example.test", now.Add(5*24*time.Hour)))
	d.Config.Inbound.Listen = []string{addr}
	rs := Run(context.Background(), d)
	expect(t, rs, "port "+addr, OK, "inbound SMTP listening")
	expect(t, rs, "open relay", Fail, "OPEN RELAY: "+addr+" accepted RCPT TO:<relay-test@mailgate-doctor.invalid>")
	expect(t, rs, "tls certificate", Warn, "expires in 5 days (2026-12-11): renew it")

	addr = serveSMTP(t, certificate(t, "mx.example.test", now.Add(-time.Hour)))
	d.Config.Inbound.Listen = []string{addr}
	expect(t, Run(context.Background(), d), "tls certificate", Fail, "expired on")

	addr = serveSMTP(t, certificate(t, "other.example", now.Add(90*24*time.Hour)))
	d.Config.Inbound.Listen = []string{addr}
	expect(t, Run(context.Background(), d), "tls certificate", Warn, "not the hostname mx.example.test")

	addr = serveSMTP(t, certificate(t, "mx.example.test", now.Add(90*24*time.Hour)))
	d.Config.Inbound.Listen = []string{addr}
	expect(t, Run(context.Background(), d), "tls certificate", OK, "issued by Test CA")
}
