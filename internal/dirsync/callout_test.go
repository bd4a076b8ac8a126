package dirsync_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/dirsync"
	"github.com/mailgate/mailgate/internal/store"
)

// primary is a loopback SMTP server that knows some users and refuses the
// others with 550 5.1.1 (or every recipient with tempfail), recording the
// dialogue of each connection.
type primary struct {
	addr     string
	users    map[string]bool
	mu       sync.Mutex
	tempfail bool
	log      []string
	srv      *smtp.Server
}

func startPrimary(t *testing.T, users ...string) *primary {
	p := &primary{users: map[string]bool{}}
	for _, u := range users {
		p.users[u] = true
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.srv = smtp.NewServer(p)
	p.srv.Domain = "primary.test"
	p.srv.AllowInsecureAuth = true
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func (p *primary) record(s string) {
	p.mu.Lock()
	p.log = append(p.log, s)
	p.mu.Unlock()
}

func (p *primary) dialogue() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, " ")
}

func (p *primary) NewSession(c *smtp.Conn) (smtp.Session, error) { return &primarySession{p: p}, nil }

type primarySession struct{ p *primary }

func (s *primarySession) Mail(from string, _ *smtp.MailOptions) error {
	s.p.record("MAIL<" + from + ">")
	return nil
}

func (s *primarySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.p.record("RCPT<" + to + ">")
	s.p.mu.Lock()
	temp := s.p.tempfail
	s.p.mu.Unlock()
	if temp {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	if !s.p.users[to] {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Recipient address rejected"}
	}
	return nil
}

func (s *primarySession) Data(r io.Reader) error {
	s.p.record("DATA")
	return errors.New("no data expected")
}

func (s *primarySession) Reset()        { s.p.record("RSET") }
func (s *primarySession) Logout() error { s.p.record("QUIT"); return nil }

// calloutEnv routes example.test to addrs and returns a callout over the
// real delivery client, counting its probes.
func (e *env) callout(probes *int, mu *sync.Mutex, addrs ...string) *dirsync.Callout {
	var routes []store.Route
	for i, a := range addrs {
		routes = append(routes, store.Route{Priority: 10 + i, Target: "smtp://" + a, TLS: "none"})
	}
	e.must(e.st.SetRoutes(e.ctx, e.tenant.ID, e.dom.ID, routes))
	cfg := config.Default().Delivery
	cfg.ConnectTimeout = config.D(3 * time.Second)
	cfg.CommandTimeout = config.D(5 * time.Second)
	dl := delivery.New("mx.mailgate.test", cfg, nil, nil, e.log)
	return &dirsync.Callout{Router: &delivery.Router{Store: e.st, Client: dl}, Clock: e.clk, Log: e.log,
		Probe: func(ctx context.Context, ts []delivery.Target, rcpt string) (string, error) {
			mu.Lock()
			*probes++
			mu.Unlock()
			return dl.Probe(ctx, ts, rcpt)
		}}
}

// TestCallout: the primary is asked with the null sender, and the session
// reset and closed without data; its answers are cached (known for 7
// days, unknown for 3 hours); an unreachable primary or a temporary
// answer gives ErrUnverified and nothing cached.
func TestCallout(t *testing.T) {
	e := newEnv(t)
	p := startPrimary(t, "alice@example.test")
	var probes int
	var mu sync.Mutex
	c := e.callout(&probes, &mu, p.addr)
	e.must(e.st.SetRecipientCheck(e.ctx, store.RecipientCheck{TenantID: e.tenant.ID, DomainID: e.dom.ID, Mode: store.RcptCheckCallout}))
	v := &dirsync.Verifier{Store: e.st, Callout: c}
	check := func(addr string, want bool) {
		t.Helper()
		ok, err := v.VerifyRecipient(e.ctx, e.dom, addr)
		if err != nil || ok != want {
			t.Fatalf("VerifyRecipient(%s) = %v %v, want %v", addr, ok, err, want)
		}
	}
	check("alice@example.test", true)
	// go-smtp's server resets the transaction at QUIT too. The client does
	// not wait for the server to end the session, so the QUIT may be
	// recorded a moment after the answer.
	d := p.dialogue()
	for deadline := time.Now().Add(5 * time.Second); !strings.HasSuffix(d, " QUIT") && time.Now().Before(deadline); d = p.dialogue() {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(d, "MAIL<> RCPT<alice@example.test> RSET") || !strings.HasSuffix(d, " QUIT") || strings.Contains(d, "DATA") {
		t.Fatalf("dialogue: %q", d)
	}
	check("nobody@example.test", false)
	check("alice@example.test", true)
	check("nobody@example.test", false)
	if probes != 2 {
		t.Fatalf("%d probes, want 2 (answers cached)", probes)
	}
	// The unknown answer expires after 3 hours, the known one after 7 days.
	e.clk.Advance(3*time.Hour + time.Second)
	check("nobody@example.test", false)
	check("alice@example.test", true)
	if probes != 3 {
		t.Fatalf("%d probes after 3 h, want 3", probes)
	}
	e.clk.Advance(7 * 24 * time.Hour)
	check("alice@example.test", true)
	if probes != 4 {
		t.Fatalf("%d probes after 7 days, want 4", probes)
	}

	// A temporary answer is no answer, and is not cached.
	p.mu.Lock()
	p.tempfail = true
	p.mu.Unlock()
	for i := 0; i < 2; i++ {
		if ok, err := v.VerifyRecipient(e.ctx, e.dom, "carol@example.test"); ok || !errors.Is(err, dirsync.ErrUnverified) {
			t.Fatalf("tempfail: %v %v", ok, err)
		}
	}
	if probes != 6 {
		t.Fatalf("%d probes, want 6 (temporary answers not cached)", probes)
	}

	// The primary down: unverified, known answers still served from the cache.
	p.srv.Close()
	if ok, err := v.VerifyRecipient(e.ctx, e.dom, "dave@example.test"); ok || !errors.Is(err, dirsync.ErrUnverified) {
		t.Fatalf("primary down: %v %v", ok, err)
	}
	check("alice@example.test", true)
}

// TestCalloutSecondRoute: a primary that is down is skipped for the next
// route, whose 5xx is an answer.
func TestCalloutSecondRoute(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	e.must(err)
	down := ln.Addr().String()
	ln.Close()
	p := startPrimary(t, "alice@example.test")
	var probes int
	var mu sync.Mutex
	c := e.callout(&probes, &mu, down, p.addr)
	for addr, want := range map[string]bool{"alice@example.test": true, "ghost@example.test": false} {
		if ok, err := c.Check(e.ctx, e.dom, addr); err != nil || ok != want {
			t.Fatalf("Check(%s) = %v %v", addr, ok, err)
		}
	}
}

// TestCalloutBounded: at most MaxConcurrent callouts run at once; a check
// waiting for a turn past its deadline is unverified; concurrent checks
// of one address share one callout.
func TestCalloutBounded(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	var mu sync.Mutex
	running, most, probes := 0, 0, 0
	c := &dirsync.Callout{Router: routerFunc(func(ctx context.Context, d string) ([]delivery.Target, error) {
		return []delivery.Target{{Host: "127.0.0.1", Port: 1}}, nil
	}), Clock: e.clk, Log: e.log, MaxConcurrent: 2, Wait: time.Hour,
		Probe: func(ctx context.Context, ts []delivery.Target, rcpt string) (string, error) {
			mu.Lock()
			running++
			probes++
			most = max(most, running)
			mu.Unlock()
			select {
			case <-release:
			case <-ctx.Done():
			}
			mu.Lock()
			running--
			mu.Unlock()
			return "h", nil
		}}
	var wg sync.WaitGroup
	results := make(chan error, 10)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Check(e.ctx, e.dom, fmt.Sprintf("u%d@example.test", i%3))
			results <- err
		}()
	}
	// A check whose own deadline passes while all slots are taken.
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return running == 2 })
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := c.Check(ctx, e.dom, "late@example.test"); !errors.Is(err, dirsync.ErrUnverified) {
		t.Fatalf("check past its deadline: %v", err)
	}
	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 2 {
		t.Fatalf("%d callouts at once, want 2", most)
	}
	if probes > 4 { // three addresses (+ the late one, which may have started)
		t.Fatalf("%d probes for 3 addresses", probes)
	}
}

type routerFunc func(ctx context.Context, domain string) ([]delivery.Target, error)

func (f routerFunc) PrimaryTargets(ctx context.Context, domain string) ([]delivery.Target, error) {
	return f(ctx, domain)
}

// waitFor waits for cond, a state other goroutines reach (not a timing).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 10000 && !cond(); i++ {
		time.Sleep(time.Millisecond)
	}
	if !cond() {
		t.Fatal("condition never reached")
	}
}
