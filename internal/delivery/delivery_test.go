package delivery

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/sink"
)

func newClient(t *testing.T, res Resolver, redirect string) *Client {
	cfg := config.Default().Delivery
	cfg.AllowLoopbackMX = true
	cfg.ConnectTimeout = config.D(3 * time.Second)
	cfg.CommandTimeout = config.D(5 * time.Second)
	c := New("mx.mailgate.test", cfg, res, nil, nil)
	if redirect != "" {
		// MX delivery always dials port 25; send it to the test server instead.
		d := &net.Dialer{Timeout: 3 * time.Second}
		c.dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			if port == "25" {
				addr = net.JoinHostPort(host, redirect)
			}
			return d.DialContext(ctx, network, addr)
		}
	}
	return c
}

// twoMX is a client whose DNS gives partner.test two MX hosts on port
// (for port 25): first10.partner.test at 127.0.0.2 (first10 as given),
// then live.partner.test at 127.0.0.1; it returns the client and the
// domain's targets.
func twoMX(t *testing.T, first10, port string) (*Client, []Target) {
	t.Helper()
	srv := dnstest.Start(t)
	srv.Add("partner.test. 300 IN MX 10 " + first10 + ".partner.test.")
	srv.Add("partner.test. 300 IN MX 20 live.partner.test.")
	srv.Add(first10 + ".partner.test. 300 IN A 127.0.0.2")
	srv.Add("live.partner.test. 300 IN A 127.0.0.1")
	res, _ := dnsx.New(srv.Addr())
	c := newClient(t, res, port)
	ts, err := c.MXTargets(context.Background(), "partner.test", TLSOpportunistic)
	if err != nil {
		t.Fatal(err)
	}
	return c, ts
}

func body(s string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

func TestMXTargets(t *testing.T) {
	srv := dnstest.Start(t)
	srv.Add("multi.test. 300 IN MX 20 b.multi.test.")
	srv.Add("multi.test. 300 IN MX 10 a.multi.test.")
	srv.Add("nullmx.test. 300 IN MX 0 .")
	srv.Add("nomx.test. 300 IN A 127.0.0.1")
	srv.SetRcode("broken.test.", dns.TypeMX, dns.RcodeServerFailure)
	res, err := dnsx.New(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, res, "")
	ctx := context.Background()
	ts, err := c.MXTargets(ctx, "multi.test", TLSOpportunistic)
	if err != nil || len(ts) != 2 || ts[0].Host != "a.multi.test" || ts[1].Host != "b.multi.test" {
		t.Fatalf("MX order: %+v %v", ts, err)
	}
	var pe *PermError
	if _, err := c.MXTargets(ctx, "nullmx.test", TLSOpportunistic); !errors.As(err, &pe) || pe.Enhanced != "5.1.10" {
		t.Fatalf("null MX: %v", err)
	}
	if ts, err := c.MXTargets(ctx, "nomx.test", TLSOpportunistic); err != nil || len(ts) != 1 || ts[0].Host != "nomx.test" {
		t.Fatalf("implicit MX: %+v %v", ts, err)
	}
	var te *TempError
	if _, err := c.MXTargets(ctx, "broken.test", TLSOpportunistic); !errors.As(err, &te) {
		t.Fatalf("SERVFAIL: %v", err)
	}
	if _, err := newClient(t, nil, "").MXTargets(ctx, "multi.test", TLSOpportunistic); !errors.As(err, &te) {
		t.Fatalf("no resolver: %v", err)
	}
}

func TestDeliverByMXWithFallbackAndPerRecipientResults(t *testing.T) {
	sk, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	sk.RejectRcpt("nobody@partner.test")
	_, port, _ := net.SplitHostPort(sk.Addr())
	// The preferred MX does not answer; the second one is the sink.
	c, ts := twoMX(t, "dead", port)
	ctx := context.Background()
	rs := c.Deliver(ctx, ts, Request{From: "alice@example.test", Rcpts: []string{"bob@partner.test", "nobody@partner.test"},
		Body: body("Subject: x\r\n\r\n.dot\r\n")})
	if !rs[0].OK() || rs[0].Remote != "live.partner.test" {
		t.Fatalf("bob: %+v", rs[0])
	}
	if !rs[1].Permanent || rs[1].Code != 550 || rs[1].Enhanced != "5.1.1" {
		t.Fatalf("nobody: %+v", rs[1])
	}
	if got := string(sk.Messages()[0].Data); got != "Subject: x\r\n\r\n.dot\r\n" {
		t.Fatalf("delivered bytes %q", got)
	}
	// The connection is reused for the next message.
	rs = c.Deliver(ctx, ts, Request{From: "alice@example.test", Rcpts: []string{"bob@partner.test"}, Body: body("Subject: y\r\n\r\ny\r\n")})
	if !rs[0].OK() {
		t.Fatalf("second message: %+v", rs[0])
	}
	if idle := idleConns(c); idle != 1 {
		t.Fatalf("%d idle connections, want the one reused", idle)
	}
	c.CloseIdle(true)
}

func TestTLSModes(t *testing.T) {
	sk, err := sink.Start("127.0.0.1:0", "", true) // offers no STARTTLS
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	host, p, _ := net.SplitHostPort(sk.Addr())
	port, _ := strconv.Atoi(p)
	c := newClient(t, nil, "")
	ctx := context.Background()
	req := Request{From: "a@example.test", Rcpts: []string{"b@partner.test"}, Body: body("Subject: t\r\n\r\nt\r\n")}
	// Opportunistic: plaintext when STARTTLS is not offered.
	if rs := c.Deliver(ctx, []Target{{Host: host, Port: port, TLS: TLSOpportunistic}}, req); !rs[0].OK() || rs[0].TLS != "none" {
		t.Fatalf("opportunistic: %+v", rs[0])
	}
	// Required: never sent in the clear.
	rs := c.Deliver(ctx, []Target{{Host: host, Port: port, TLS: TLSRequired}}, req)
	if rs[0].OK() || rs[0].Permanent || !strings.Contains(rs[0].Text, "STARTTLS") {
		t.Fatalf("required TLS to a plaintext server: %+v", rs[0])
	}
	if sk.Count() != 1 {
		t.Fatalf("%d messages at the sink, want 1", sk.Count())
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]Target{
		"smtp://mail.example.net":           {Host: "mail.example.net", Port: 25, TLS: TLSOpportunistic},
		"smtp://[2001:db8::1]:2525":         {Host: "2001:db8::1", Port: 2525, TLS: TLSOpportunistic},
		"smtp://contoso.mail.protection:25": {Host: "contoso.mail.protection", Port: 25, TLS: TLSOpportunistic},
	} {
		got, err := ParseTarget(in, "")
		if err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"mail.example.net", "http://x", "smtp://x:0", "smtp://x:99999", "smtp://"} {
		if _, err := ParseTarget(bad, ""); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseTarget("smtp://x", "sometimes"); err == nil {
		t.Error("bad TLS mode accepted")
	}
}

// failingBody hands out the first part of a message, then fails (a blob
// found damaged at its end, a disk error).
type failingBody struct{ r io.Reader }

func (b *failingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errors.New("blob damaged: content does not match its SHA-256")
	}
	return n, err
}
func (b *failingBody) Close() error { return nil }

// A message whose body cannot be read to its end is not delivered: the
// transaction is abandoned without the final dot (which would make the
// server accept the part sent), and the attempt fails temporarily.
func TestUnreadableBodyIsNotDelivered(t *testing.T) {
	sk, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	target, err := ParseTarget("smtp://"+sk.Addr(), "")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, nil, "")
	defer c.CloseIdle(true)
	ctx := context.Background()
	half := "Subject: pay\r\n\r\nIBAN DE00 1234\r\n" + strings.Repeat("x", 100<<10) + "\r\n"
	rs := c.Deliver(ctx, []Target{target}, Request{From: "alice@example.test", Rcpts: []string{"bob@partner.test"},
		Body: func() (io.ReadCloser, error) { return &failingBody{strings.NewReader(half)}, nil }})
	if rs[0].OK() || rs[0].Permanent || !strings.Contains(rs[0].Text, "blob damaged") {
		t.Fatalf("result %+v, want a temporary failure naming the read error", rs[0])
	}
	// The next message goes out on a working connection; the sink never
	// got the first one.
	rs = c.Deliver(ctx, []Target{target}, Request{From: "alice@example.test", Rcpts: []string{"bob@partner.test"}, Body: body("Subject: y\r\n\r\ny\r\n")})
	if !rs[0].OK() {
		t.Fatalf("next message: %+v", rs[0])
	}
	if n := sk.Count(); n != 1 || !strings.HasPrefix(string(sk.Messages()[0].Data), "Subject: y") {
		t.Fatalf("sink received %d messages, want only the second", n)
	}
}
