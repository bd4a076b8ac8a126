package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// freePort returns a loopback port nothing listens on (pebble needs the
// console's port in its configuration before the node starts).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acme directory"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// startPebble runs pebble, the ACME test CA, validating TLS-ALPN-01 on
// tlsPort and resolving names through dnsAddr. It returns the directory
// URL, the CA file of its HTTPS interface and a client for its
// management interface.
func startPebble(t *testing.T, dnsAddr, tlsPort string) (dir, caFile string, roots func() *x509.CertPool) {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	if err != nil {
		peers.Missing(t, "pebble (Debian package pebble) is not installed")
	}
	tmp := t.TempDir()
	certFile, keyFile := selfSigned(t, tmp)
	listen, mgmt := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	port, _ := strconv.Atoi(tlsPort)
	cfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt, "certificate": certFile, "privateKey": keyFile,
		"httpPort": 1, "tlsPort": port, "ocspResponderURL": "", "externalAccountBindingRequired": false}})
	cfgFile := filepath.Join(tmp, "pebble.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pebble:\n%s", out.String())
		}
	})
	mgtest.WaitFor(t, 20*time.Second, "pebble listening", func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	pemCA, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCA)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return "https://" + listen + "/dir", certFile, func() *x509.CertPool {
		resp, err := hc.Get("https://" + mgmt + "/roots/0")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			t.Fatalf("pebble root: %s", b)
		}
		return p
	}
}

// With [tls] acme the node gets certificates for its hostname and its
// console's name from the CA, validated on the console listener
// (TLS-ALPN-01), and presents them on SMTP (to a client that sends no
// server name) and on the console.
func TestACMECertificatesFromPebble(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Add(`mx.acme.test. 60 IN A 127.0.0.1`)
	dns.Add(`console.acme.test. 60 IN A 127.0.0.1`)
	consolePort := freePort(t)
	dir, caFile, roots := startPebble(t, dns.Addr(), consolePort)
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) {
		c.Hostname = "mx.acme.test"
		c.DNS.Resolver = dns.Addr()
		c.HTTP.Listen, c.HTTP.TLS, c.HTTP.BaseURL = "127.0.0.1:"+consolePort, true, "https://console.acme.test"
		c.TLS.ACME, c.TLS.ACMEDirectory, c.TLS.ACMECAFile, c.TLS.ACMEEmail = true, dir, caFile, "ops@acme.test"
	}})

	// SMTP STARTTLS without a server name: the hostname's certificate.
	c, err := smtp.Dial(n.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	st, _ := c.TLSConnectionState()
	pool := roots()
	leaf := st.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, ic := range st.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "mx.acme.test", Roots: pool, Intermediates: inter}); err != nil {
		t.Fatalf("SMTP certificate %v (issuer %q): %v", leaf.DNSNames, leaf.Issuer.CommonName, err)
	}
	c.Quit()

	// The console's name, verified as a browser would.
	conn, err := tls.Dial("tcp", "127.0.0.1:"+consolePort, &tls.Config{ServerName: "console.acme.test", RootCAs: pool})
	if err != nil {
		t.Fatalf("console TLS: %v", err)
	}
	conn.Close()
	ents, _ := os.ReadDir(filepath.Join(n.Dir, "acme"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, "mx.acme.test") || !slices.Contains(names, "console.acme.test") {
		t.Errorf("certificate cache in data_dir/acme: %v", names)
	}
}

// When the CA cannot be reached the listeners present the fallback
// certificate: mail keeps its opportunistic TLS.
func TestACMEUnreachableFallsBack(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) {
		c.HTTP.Listen = "127.0.0.1:0"
		c.TLS.ACME, c.TLS.ACMEDirectory = true, "https://127.0.0.1:"+freePort(t)+"/dir"
	}})
	c, err := smtp.Dial(n.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	st, _ := c.TLSConnectionState()
	if o := st.PeerCertificates[0].Subject.Organization; len(o) == 0 || o[0] != "mailgate self-signed" {
		t.Fatalf("certificate %+v", st.PeerCertificates[0].Subject)
	}
}
