package delivery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/sink"
)

// cert makes a certificate for name signed by parent (self-signed when
// parent is nil); isCA makes it a signing certificate.
func testCert(t *testing.T, name string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: isCA}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.DNSNames = []string{name}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}
}

func spkiSHA256(c *x509.Certificate) string {
	h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(h[:])
}

// daneEnv is a domain whose MX is a TLS sink with a self-signed
// certificate no web PKI trusts, behind a fake validating resolver.
func daneEnv(t *testing.T, tc tls.Certificate) (*Router, *dnstest.Server, *sink.Sink) {
	t.Helper()
	sk, err := sink.StartTLS("127.0.0.1:0", "", true, &tls.Config{Certificates: []tls.Certificate{tc}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sk.Close() })
	_, port, _ := net.SplitHostPort(sk.Addr())
	srv := dnstest.Start(t)
	srv.Add("dane.test. 300 IN MX 10 mx.dane.test.")
	srv.Add("mx.dane.test. 300 IN A 127.0.0.1")
	res, err := dnsx.New(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return &Router{Store: notServed{}, Client: newClient(t, res, port), DANE: res}, srv, sk
}

func deliverTo(t *testing.T, r *Router, domain string) ([]Target, Result, error) {
	t.Helper()
	ctx := context.Background()
	ts, err := r.Targets(ctx, 1, domain)
	if err != nil {
		return nil, Result{}, err
	}
	rs := r.Client.Deliver(ctx, ts, Request{From: "a@example.test", Rcpts: []string{"b@" + domain}, Body: body("Subject: d\r\n\r\nd\r\n")})
	return ts, rs[0], nil
}

// DANE-EE: a secure TLSA record naming the server's key makes delivery go
// over TLS to that key only; a mismatch defers the message instead of
// sending it in plaintext or to an impostor; without DNSSEC nothing
// changes.
func TestDANEEndEntity(t *testing.T) {
	leaf, _, tc := testCert(t, "mx.dane.test", false, nil, nil)
	r, srv, sk := daneEnv(t, tc)

	// Not secure (no DNSSEC): TLSA records are ignored; opportunistic TLS.
	srv.Add("_25._tcp.mx.dane.test. 300 IN TLSA 3 1 1 " + spkiSHA256(leaf))
	ts, res, err := deliverTo(t, r, "dane.test")
	if err != nil || ts[0].TLS != TLSOpportunistic || !res.OK() || !strings.HasSuffix(res.TLS, ", not verified") || !strings.HasPrefix(res.TLS, "TLS 1.") {
		t.Fatalf("insecure zone: %+v %+v %v", ts, res, err)
	}

	srv.Secure("dane.test", true)
	ts, res, err = deliverTo(t, r, "dane.test")
	if err != nil || ts[0].TLS != TLSDANE || !res.OK() || !strings.HasSuffix(res.TLS, ", verified by DANE") {
		t.Fatalf("secure matching TLSA: %+v %+v %v", ts, res, err)
	}
	if sk.Count() != 2 {
		t.Fatalf("%d messages at the sink, want 2", sk.Count())
	}

	// Another key published: the server's certificate no longer matches.
	other, _, _ := testCert(t, "mx.dane.test", false, nil, nil)
	r.Client.CloseIdle(true) // a new connection, verified against the new record
	setTLSA(t, srv, "_25._tcp.mx.dane.test.", "3 1 1 "+spkiSHA256(other))
	ts, res, err = deliverTo(t, r, "dane.test")
	if err != nil || ts[0].TLS != TLSDANE || res.OK() || res.Permanent {
		t.Fatalf("mismatching TLSA: %+v %+v %v", ts, res, err)
	}
	if sk.Count() != 2 {
		t.Fatalf("a message reached a server whose key matches no TLSA record (%d at the sink)", sk.Count())
	}
}

// setTLSA replaces the TLSA records of name.
func setTLSA(t *testing.T, srv *dnstest.Server, name, rdata string) {
	t.Helper()
	srv.Remove(name, dns.TypeTLSA)
	srv.Add(name + " 300 IN TLSA " + rdata)
}

// DANE-TA: the record names the issuer the server sends in its chain; the
// server's certificate must be issued by it for the MX host name.
func TestDANETrustAnchor(t *testing.T) {
	ca, caKey, _ := testCert(t, "Example Private CA", true, nil, nil)
	_, _, leafTC := testCert(t, "mx.dane.test", false, ca, caKey)
	leafTC.Certificate = append(leafTC.Certificate, ca.Raw)
	r, srv, _ := daneEnv(t, leafTC)
	srv.Secure("dane.test", true)
	srv.Add("_25._tcp.mx.dane.test. 300 IN TLSA 2 0 1 " + fmt.Sprintf("%x", sha256.Sum256(ca.Raw)))
	ts, res, err := deliverTo(t, r, "dane.test")
	if err != nil || ts[0].TLS != TLSDANE || !res.OK() {
		t.Fatalf("DANE-TA: %+v %+v %v", ts, res, err)
	}
	// The same anchor, but the MX host name is not the certificate's.
	if err := daneVerify("other.dane.test", parseTLSA(ts[0].TLSA), time.Now)(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leafTC.Leaf, ca}}); !errors.Is(err, errDANE) {
		t.Fatalf("DANE-TA for another host name: %v", err)
	}
}

// A failed TLSA lookup for a secure MX makes the host unusable (deferred),
// never plaintext; a secure denial of TLSA leaves opportunistic TLS.
func TestDANELookupFailures(t *testing.T) {
	_, _, tc := testCert(t, "mx.dane.test", false, nil, nil)
	r, srv, _ := daneEnv(t, tc)
	srv.Secure("dane.test", true)
	ts, res, err := deliverTo(t, r, "dane.test")
	if err != nil || ts[0].TLS != TLSOpportunistic || !res.OK() {
		t.Fatalf("secure MX without TLSA: %+v %+v %v", ts, res, err)
	}
	srv.SetRcode("_25._tcp.mx.dane.test.", dns.TypeTLSA, dns.RcodeServerFailure)
	var te *TempError
	if _, _, err := deliverTo(t, r, "dane.test"); !errors.As(err, &te) {
		t.Fatalf("TLSA lookup failure: %v, want a temporary error", err)
	}
	// Only unusable records (PKIX-EE): encryption, without authentication.
	srv.SetRcode("_25._tcp.mx.dane.test.", dns.TypeTLSA, dns.RcodeSuccess)
	srv.Add("_25._tcp.mx.dane.test. 300 IN TLSA 1 1 1 " + spkiSHA256(tc.Leaf))
	if ts, res, err := deliverTo(t, r, "dane.test"); err != nil || ts[0].TLS != TLSRequired || !res.OK() {
		t.Fatalf("unusable TLSA only: %+v %+v %v", ts, res, err)
	}
}
