package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/policy"
)

// testDNS is a fake DNS server with the resolver pointed at it.
type testDNS struct {
	srv *dnstest.Server
	res dnsx.Resolver
	t   testing.TB
}

func newTestDNS(t testing.TB) *testDNS {
	t.Helper()
	srv := dnstest.Start(t)
	res, err := dnsx.New(srv.Addr(), dnsx.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &testDNS{srv: srv, res: res, t: t}
}

// txt adds a TXT record, split into 255-octet strings as DNS requires.
func (d *testDNS) txt(name, value string) {
	d.t.Helper()
	var parts []string
	for len(value) > 255 {
		parts = append(parts, value[:255])
		value = value[255:]
	}
	parts = append(parts, value)
	for i, p := range parts {
		parts[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
	}
	d.srv.Add(strings.TrimSuffix(name, ".") + ". 300 IN TXT " + strings.Join(parts, " "))
}

// key is a DKIM signing key with its DNS record value.
type key struct {
	signer crypto.Signer
	record string
}

func edKey(t testing.TB) key {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key{priv, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}
}

func rsaKey(t testing.TB, bits int) key {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return key{k, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)}
}

// publish adds the key at selector._domainkey.domain.
func (d *testDNS) publish(domain, selector string, k key) {
	d.txt(selector+"._domainkey."+domain, k.record)
}

// mail builds a CRLF message with the given header lines and body.
func mail(body string, header ...string) []byte {
	var b bytes.Buffer
	for _, h := range header {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return b.Bytes()
}

func basicMail(from string) []byte {
	return mail("Hello,\nthis is a test.\n",
		"From: "+from,
		"To: bob@tenant.example",
		"Subject: test",
		"Date: Mon, 01 Jan 2024 00:00:00 +0000",
		"Message-ID: <1@test>",
	)
}

// dkimSign signs msg with go-msgauth (relaxed/relaxed) and returns the
// message with the signature prepended.
func dkimSign(t testing.TB, msg []byte, domain, selector string, k key) []byte {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: selector, Signer: k.signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// envelope is an inbound SMTP envelope from 192.0.2.1.
func envelope(mailFrom string) *policy.Envelope {
	return &policy.Envelope{
		TenantID: 7,
		ClientIP: netip.MustParseAddr("192.0.2.1"),
		Helo:     "mx.sender.example",
		MailFrom: mailFrom,
		Rcpts:    []policy.Rcpt{{Addr: "bob@tenant.example", Domain: "tenant.example"}},
	}
}

func message(raw []byte, env *policy.Envelope) *policy.Message {
	return &policy.Message{
		Env:  env,
		Size: int64(len(raw)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
	}
}

type fixedDomains []string

func (f fixedDomains) TenantDomains(context.Context, int64) ([]string, error) { return f, nil }

func newCheck(d *testDNS) *Check {
	return New(Config{Resolver: d.res, Hostname: "mx.gate.example", Timeout: 10 * time.Second,
		Now: func() time.Time { return time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC) }})
}

func run(t testing.TB, c *Check, raw []byte, env *policy.Envelope, s policy.Settings) []policy.Finding {
	t.Helper()
	if s == nil {
		s = policy.MapSettings{}
	}
	fs, err := c.Check(context.Background(), message(raw, env), s)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	// Every run must give a header that parses back to its findings.
	assertHeaderParses(t, fs)
	return fs
}

func byCheck(fs []policy.Finding, check string) []policy.Finding {
	var out []policy.Finding
	for _, f := range fs {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

func one(t testing.TB, fs []policy.Finding, check string) policy.Finding {
	t.Helper()
	got := byCheck(fs, check)
	if len(got) != 1 {
		t.Fatalf("%d %s findings, want 1: %+v", len(got), check, fs)
	}
	return got[0]
}

func bySymbol(fs []policy.Finding, sym string) *policy.Finding {
	for i := range fs {
		if fs[i].Symbol == sym {
			return &fs[i]
		}
	}
	return nil
}

// assertHeaderParses checks that HeaderValue of the findings parses with
// go-msgauth into one result per finding with an AuthResult, with the same
// method and value, and that it holds no bare line breaks.
func assertHeaderParses(t testing.TB, fs []policy.Finding) {
	t.Helper()
	v := HeaderValue("mx.gate.example", fs)
	if strings.ContainsAny(strings.ReplaceAll(v, "\r\n\t", ""), "\r\n") {
		t.Fatalf("header value has a stray line break: %q", v)
	}
	id, res, err := authres.Parse(v)
	if err != nil || id != "mx.gate.example" {
		t.Fatalf("authres.Parse(%q) = %q, %v", v, id, err)
	}
	var want []string
	for _, f := range fs {
		if f.AuthResult != "" {
			want = append(want, f.AuthResult)
		}
	}
	if len(res) != len(want) {
		t.Fatalf("parsed %d results from %q, want %d", len(res), v, len(want))
	}
	for i, r := range res {
		method, value, _ := strings.Cut(strings.Fields(want[i])[0], "=")
		if got := resultMethodValue(r); got != method+"="+value {
			t.Errorf("result %d parsed as %s, want %s=%s", i, got, method, value)
		}
	}
}

func resultMethodValue(r authres.Result) string {
	switch r := r.(type) {
	case *authres.SPFResult:
		return "spf=" + string(r.Value)
	case *authres.DKIMResult:
		return "dkim=" + string(r.Value)
	case *authres.DMARCResult:
		return "dmarc=" + string(r.Value)
	case *authres.ARCResult:
		return "arc=" + string(r.Value)
	case *authres.GenericResult:
		return r.Method + "=" + string(r.Value)
	case *authres.AuthResult:
		return "auth=" + string(r.Value)
	case *authres.IPRevResult:
		return "iprev=" + string(r.Value)
	}
	return "?"
}
