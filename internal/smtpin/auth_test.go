package smtpin_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// relayClient connects to the relay listener from local (a loopback
// address that is not a registered relay network) and starts TLS, as AUTH
// needs.
func relayClient(t *testing.T, addr, local string) (*smtp.Client, error) {
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}).Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// authCode is the reply code of an AUTH attempt (235 for success).
func authCode(err error) (int, smtp.EnhancedCode) {
	if err == nil {
		return 235, smtp.EnhancedCode{2, 7, 0}
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code, se.EnhancedCode
	}
	return 0, smtp.EnhancedCode{}
}

// authOnce runs one AUTH PLAIN on a connection of its own (go-smtp's client
// answers a failed AUTH with "*", which the server counts as a protocol
// error, so a connection does not take many failures).
func authOnce(t *testing.T, addr, local, user, pw string) (int, smtp.EnhancedCode) {
	t.Helper()
	c, err := relayClient(t, addr, local)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return authCode(c.Auth(sasl.NewPlainClient("", user, pw)))
}

func setRelayLogin(t *testing.T, n *mgtest.Node, user, pw string) {
	t.Helper()
	h, err := passwd.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetRelayLogin(context.Background(), n.Tenant.ID, user, h); err != nil {
		t.Fatal(err)
	}
}

// A flood of wrong passwords on the relay listener: the throttle's
// allowance is reserved before the hash, so at most that many are checked
// (535) and the rest get 454 4.7.0; the right password is refused too until
// the throttle lets the address and the login try again; and no more hashes
// run at once than the memory budget holds.
func TestAuthFloodIsThrottled(t *testing.T) {
	t.Parallel()
	fake := clock.NewFake(time.Now())
	v := passwd.MustNew(passwd.Options{Budget: 2 * passwd.DefaultParams.Memory})
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Clock: fake, Passwords: v})
	setRelayLogin(t, n, "relayuser", "s3cret")

	const conns = 20
	codes := make([]int, conns)
	errs := make([]error, conns)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := relayClient(t, n.OutboundAddr(), "127.0.0.2")
			if err != nil {
				errs[i] = err
				return
			}
			<-start
			var ec smtp.EnhancedCode
			codes[i], ec = authCode(c.Auth(sasl.NewPlainClient("", "relayuser", "wrong")))
			if codes[i] == 454 && ec != (smtp.EnhancedCode{4, 7, 0}) {
				errs[i] = errors.New("454 without 4.7.0")
			}
		}()
	}
	close(start)
	wg.Wait()
	var n535, n454 int
	for i, code := range codes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		switch code {
		case 535:
			n535++
		case 454:
			n454++
		default:
			t.Fatalf("attempt %d: %d", i, code)
		}
	}
	if n535 < 1 || n535 > loginlimit.DefaultBurst || n535+n454 != conns {
		t.Fatalf("%d × 535 and %d × 454 of %d; want at most %d × 535", n535, n454, conns, loginlimit.DefaultBurst)
	}
	if st := v.Stats(); st.PeakChecks > 2 || st.Checks != int64(n535) {
		t.Fatalf("verifier %+v: above the bound of 2, or not one check per 535", st)
	}

	// Use up what is left of the allowance (attempts refused as busy were
	// given back), then the right password waits too, as does another
	// login from the same address.
	out := n.OutboundAddr()
	for i := n535; i < loginlimit.DefaultBurst; i++ {
		if code, _ := authOnce(t, out, "127.0.0.2", "relayuser", "wrong"); code != 535 {
			t.Fatalf("rest of the allowance: %d", code)
		}
	}
	if code, ec := authOnce(t, out, "127.0.0.2", "relayuser", "s3cret"); code != 454 || ec != (smtp.EnhancedCode{4, 7, 0}) {
		t.Fatalf("right password during the lock-out: %d %v", code, ec)
	}
	if code, _ := authOnce(t, out, "127.0.0.2", "someoneelse", "x"); code != 454 {
		t.Fatalf("another login from the locked-out address: %d", code)
	}
	// The login is locked out from other addresses too.
	if code, _ := authOnce(t, out, "127.0.0.3", "relayuser", "s3cret"); code != 454 {
		t.Fatalf("the locked-out login from another address: %d", code)
	}
	// One attempt comes back every 12 seconds.
	fake.Advance(loginlimit.DefaultEvery)
	if code, _ := authOnce(t, out, "127.0.0.2", "relayuser", "s3cret"); code != 235 {
		t.Fatalf("right password after the wait: %d", code)
	}
}

// When the memory budget for password checks is taken, AUTH answers 454
// 4.7.0 (try again) without checking anything and without counting the
// attempt; an unknown login costs a dummy check like a wrong password.
func TestAuthWhilePasswordBudgetFull(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	v := passwd.MustNew(passwd.Options{Budget: passwd.DefaultParams.Memory, BeforeHash: func() {
		held := false
		once.Do(func() { held = true })
		if held {
			entered <- struct{}{}
			<-release
		}
	}})
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Passwords: v})
	setRelayLogin(t, n, "relayuser", "s3cret")

	c1, err := relayClient(t, n.OutboundAddr(), "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- c1.Auth(sasl.NewPlainClient("", "relayuser", "s3cret")) }()
	<-entered
	out := n.OutboundAddr()
	for i := range loginlimit.DefaultBurst + 1 {
		if code, ec := authOnce(t, out, "127.0.0.3", "relayuser", "s3cret"); code != 454 || ec != (smtp.EnhancedCode{4, 7, 0}) {
			t.Fatalf("attempt %d while the budget is full: %d %v", i+1, code, ec)
		}
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("the check that held the budget: %v", err)
	}
	// The refusals did not count against 127.0.0.3 or the login.
	if code, _ := authOnce(t, out, "127.0.0.3", "relayuser", "s3cret"); code != 235 {
		t.Fatalf("after the budget freed: %d", code)
	}

	before := v.Stats()
	if code, _ := authOnce(t, out, "127.0.0.4", "nosuchuser", "x"); code != 535 {
		t.Fatalf("unknown login: %d", code)
	}
	if after := v.Stats(); after.Dummies-before.Dummies != 1 || after.Checks-before.Checks != 1 {
		t.Fatalf("unknown login did not cost one dummy check: %+v → %+v", before, after)
	}
}
