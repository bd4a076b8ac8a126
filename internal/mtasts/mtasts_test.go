package mtasts

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
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
)

func TestParseAndMatch(t *testing.T) {
	p, err := Parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmx: *.backup.example.test\r\nmax_age: 604800\r\nextra: ignored\r\n")
	if err != nil || p.Mode != ModeEnforce || p.MaxAge != 7*24*time.Hour || len(p.MX) != 2 {
		t.Fatalf("%+v %v", p, err)
	}
	for host, want := range map[string]bool{
		"mail.example.test": true, "MAIL.example.test.": true, "a.backup.example.test": true,
		"a.b.backup.example.test": false, "backup.example.test": false, "evil.test": false, "xmail.example.test": false,
	} {
		if p.Match(host) != want {
			t.Errorf("Match(%s) = %v", host, !want)
		}
	}
	if p, _ := Parse("version: STSv1\nmode: testing\nmx: a.test\nmax_age: 9999999999\n"); p.MaxAge != maxMaxAge {
		t.Errorf("max_age not capped: %v", p.MaxAge)
	}
	for _, bad := range []string{
		"", "version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n", "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\n", "version: STSv1\nmode: enforce\nmx: a\nmax_age: -5\n",
		"version: STSv1\nmode: enforce\nmx: a\n", "version STSv1\n",
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// policyServer is a loopback HTTPS server for mta-sts.<domain>, with a
// certificate for that name from a test CA the client trusts.
type policyServer struct {
	srv    *httptest.Server
	body   atomic.Value // string
	ctype  atomic.Value // string
	hits   atomic.Int32
	client *http.Client
}

func newPolicyServer(t *testing.T, certName string) *policyServer {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: []string{certName}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ps := &policyServer{}
	ps.ctype.Store("text/plain; charset=utf-8")
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.hits.Add(1)
		switch r.URL.Path {
		case "/.well-known/mta-sts.txt":
			w.Header().Set("Content-Type", ps.ctype.Load().(string))
			io.WriteString(w, ps.body.Load().(string))
		case "/moved":
			http.Redirect(w, r, "/.well-known/mta-sts.txt", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	ps.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	addr := ps.srv.Listener.Addr().String()
	d := &net.Dialer{Timeout: 3 * time.Second}
	ps.client = &http.Client{Timeout: 5 * time.Second, CheckRedirect: noRedirect, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		// Every host name reaches the loopback server; the certificate is
		// still checked against the name asked for.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
	return ps
}

type fixture struct {
	dns *dnstest.Server
	ps  *policyServer
	f   *Fetcher
	now time.Time
}

func newFixture(t *testing.T, certName string) *fixture {
	t.Helper()
	fx := &fixture{dns: dnstest.Start(t), ps: newPolicyServer(t, certName), now: time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC)}
	res, err := dnsx.New(fx.dns.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fx.f = &Fetcher{Resolver: res, Client: fx.ps.client, Now: func() time.Time { return fx.now }, Log: slog.New(slog.DiscardHandler)}
	return fx
}

func (fx *fixture) txt(name, value string) {
	fx.dns.AddRR(&dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1}, Txt: []string{value}})
}

const enforce = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n"

func TestFetchAndCache(t *testing.T) {
	fx := newFixture(t, "mta-sts.example.test")
	ctx := context.Background()
	if p, err := fx.f.Policy(ctx, "example.test"); p != nil || err != nil {
		t.Fatalf("no TXT record: %v %v", p, err)
	}
	fx.txt("_mta-sts.example.test", "v=STSv1; id=20270401")
	fx.ps.body.Store(enforce)
	p, err := fx.f.Policy(ctx, "Example.TEST.")
	if err != nil || p == nil || p.Mode != ModeEnforce || !p.Match("mx.example.test") || p.ID != "20270401" {
		t.Fatalf("policy %+v %v", p, err)
	}
	// Same id: the cache answers.
	fx.ps.body.Store("version: STSv1\nmode: none\nmax_age: 1\n")
	if p, _ := fx.f.Policy(ctx, "example.test"); p.Mode != ModeEnforce || fx.ps.hits.Load() != 1 {
		t.Fatalf("not cached: %+v, %d fetches", p, fx.ps.hits.Load())
	}
	// The HTTPS server fails: the cached policy still applies.
	fx.ps.ctype.Store("text/html")
	fx.dns.SetRcode("_mta-sts.example.test.", dns.TypeTXT, dns.RcodeServerFailure)
	if p, err := fx.f.Policy(ctx, "example.test"); p == nil || p.Mode != ModeEnforce || err == nil {
		t.Fatalf("DNS failure with a cached policy: %+v %v", p, err)
	}
	// After max_age the cache is gone: no policy when nothing can be fetched.
	fx.now = fx.now.Add(25 * time.Hour)
	if p, err := fx.f.Policy(ctx, "example.test"); p != nil || err == nil {
		t.Fatalf("expired cache: %+v %v", p, err)
	}
}

func TestNewIDRefetches(t *testing.T) {
	fx := newFixture(t, "mta-sts.example.test")
	ctx := context.Background()
	fx.txt("_mta-sts.example.test", "v=STSv1; id=1")
	fx.ps.body.Store(enforce)
	if p, _ := fx.f.Policy(ctx, "example.test"); p == nil || p.Mode != ModeEnforce {
		t.Fatal("first fetch")
	}
	// A new id: refetched. The record is replaced by a new server.
	fx2 := newFixture(t, "mta-sts.example.test")
	fx2.f = fx.f
	fx.f.Resolver, _ = dnsx.New(fx2.dns.Addr())
	fx2.txt("_mta-sts.example.test", "v=STSv1; id=2")
	fx.ps.body.Store("version: STSv1\nmode: testing\nmx: *.example.test\nmax_age: 600\n")
	if p, _ := fx.f.Policy(ctx, "example.test"); p == nil || p.Mode != ModeTesting || fx.ps.hits.Load() != 2 {
		t.Fatalf("not refetched: %+v", p)
	}
}

func TestFetchRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("certificate for another name", func(t *testing.T) {
		fx := newFixture(t, "other.example.test")
		fx.txt("_mta-sts.example.test", "v=STSv1; id=1")
		fx.ps.body.Store(enforce)
		if p, err := fx.f.Policy(ctx, "example.test"); p != nil || err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("wrong content type", func(t *testing.T) {
		fx := newFixture(t, "mta-sts.example.test")
		fx.txt("_mta-sts.example.test", "v=STSv1; id=1")
		fx.ps.body.Store(enforce)
		fx.ps.ctype.Store("text/html")
		if p, err := fx.f.Policy(ctx, "example.test"); p != nil || err == nil {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		fx := newFixture(t, "mta-sts.example.test")
		fx.txt("_mta-sts.example.test", "v=STSv1; id=1")
		fx.ps.body.Store(enforce + strings.Repeat("x: y\n", MaxPolicyBytes/4))
		if p, err := fx.f.Policy(ctx, "example.test"); p != nil || err == nil {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("two records", func(t *testing.T) {
		fx := newFixture(t, "mta-sts.example.test")
		fx.txt("_mta-sts.example.test", "v=STSv1; id=1")
		fx.txt("_mta-sts.example.test", "v=STSv1; id=2")
		if p, err := fx.f.Policy(ctx, "example.test"); p != nil || err == nil {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		fx := newFixture(t, "mta-sts.example.test")
		resp, err := fx.ps.client.Get("https://mta-sts.example.test/moved")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("redirect followed: %d", resp.StatusCode)
		}
		if (&Fetcher{}).client().CheckRedirect == nil {
			t.Fatal("default client follows redirects")
		}
	})
}
