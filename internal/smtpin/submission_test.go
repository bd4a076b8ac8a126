package smtpin_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

const userPassword = "correct horse battery"

// submissionNode starts a node with the submission listener on STARTTLS
// and implicit TLS, and console logins for alice (user), it (admin),
// a disabled user and an operator.
func submissionNode(t *testing.T) *mgtest.Node {
	t.Helper()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) {
		c.Submission.Listen = []string{"127.0.0.1:0"}
		c.Submission.ListenTLS = []string{"127.0.0.1:0"}
	}})
	h, err := passwd.Hash(userPassword)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := n.Store.CreateUser(ctx, n.Tenant.ID, "it@example.test"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []store.Account{
		{TenantID: n.Tenant.ID, Login: "alice@example.test", Role: store.RoleUser, Hash: h},
		{TenantID: n.Tenant.ID, Login: "it@example.test", Role: store.RoleAdmin, Hash: h},
		{TenantID: n.Tenant.ID, Login: "bob@example.test", Role: store.RoleUser, Hash: h, Disabled: true},
		{Login: "root", Role: store.RoleOperator, Hash: h},
	} {
		if _, err := n.Store.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func subClient(t *testing.T, addr string, startTLS bool) *smtp.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var c *smtp.Client
	if startTLS {
		c, err = smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
	} else {
		c = smtp.NewClient(conn)
		if err := c.Hello("client.example.net"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func code(err error) int {
	if err == nil {
		return 250
	}
	if se, ok := err.(*smtp.SMTPError); ok {
		return se.Code
	}
	return -1
}

// sendAs sends a message from envelope sender from with From field
// fromHdr and returns the reply codes of MAIL and DATA.
func sendAs(c *smtp.Client, from, fromHdr, to, tag string) (int, int) {
	if err := c.Mail(from, nil); err != nil {
		return code(err), 0
	}
	if err := c.Rcpt(to, nil); err != nil {
		return 250, code(err)
	}
	w, err := c.Data()
	if err != nil {
		return 250, code(err)
	}
	w.Write([]byte("From: " + fromHdr + "\r\nTo: <" + to + ">\r\nSubject: " + tag + "\r\n\r\nsent with the mail app " + tag + "\r\n"))
	return 250, code(w.Close())
}

// TestSubmissionAuthBeforeTLS: without TLS there is no AUTH and no MAIL.
func TestSubmissionAuthBeforeTLS(t *testing.T) {
	t.Parallel()
	n := submissionNode(t)
	c := subClient(t, n.SubmissionAddrs()[0], false)
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered before STARTTLS")
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	err := c.Auth(sasl.NewPlainClient("", "alice@example.test", userPassword))
	if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 523 {
		t.Fatalf("AUTH before TLS: %v", err)
	}
	if err := c.Mail("alice@example.test", nil); code(err) != 530 {
		t.Fatalf("MAIL before TLS: %v", err)
	}
}

// TestSubmission: after STARTTLS, AUTH PLAIN and LOGIN with the user's
// console password; only the user's own address as sender and author;
// accepted mail goes out as outbound mail (to the internet, or to the
// domain's own route).
func TestSubmission(t *testing.T) {
	t.Parallel()
	n := submissionNode(t)
	addr := n.SubmissionAddrs()[0]

	// Unknown, disabled, operator and wrong passwords fail alike.
	for _, who := range []struct{ user, pw string }{
		{"nobody@example.test", userPassword}, {"bob@example.test", userPassword}, {"root", userPassword}, {"alice@example.test", "wrong password"},
	} {
		c := subClient(t, addr, true)
		if err := c.Auth(sasl.NewPlainClient("", who.user, who.pw)); code(err) != 535 {
			t.Errorf("AUTH %s: %v", who.user, err)
		}
	}
	// MAIL without AUTH after TLS.
	c := subClient(t, addr, true)
	if err := c.Mail("alice@example.test", nil); code(err) != 530 {
		t.Fatalf("MAIL without AUTH: %v", err)
	}

	c = subClient(t, addr, true)
	if err := c.Auth(sasl.NewPlainClient("", "Alice@Example.test", userPassword)); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if m, _ := sendAs(c, "bob@example.test", "<bob@example.test>", "someone@remote.test", "forged-envelope"); m != 553 {
		t.Fatalf("another user's envelope sender: %d", m)
	}
	if m, _ := sendAs(c, "", "<alice@example.test>", "someone@remote.test", "null-sender"); m != 553 {
		t.Fatalf("null sender: %d", m)
	}
	c.Reset()
	for _, from := range []string{"The Boss <ceo@example.test>", "alice@example.test, ceo@example.test", "someone@remote.test"} {
		if m, d := sendAs(c, "alice@example.test", from, "someone@remote.test", "forged-from"); m != 250 || d != 550 {
			t.Fatalf("From %q: MAIL %d DATA %d", from, m, d)
		}
	}
	if m, d := sendAs(c, "alice@example.test", "Alice <ALICE@example.test>", "someone@remote.test", "tag-out-1"); m != 250 || d != 250 {
		t.Fatalf("own mail: MAIL %d DATA %d", m, d)
	}
	if m, d := sendAs(c, "alice@example.test", "Alice <alice@example.test>", "bob@example.test", "tag-in-1"); m != 250 || d != 250 {
		t.Fatalf("mail to a colleague: MAIL %d DATA %d", m, d)
	}
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return n.Internet.Count() >= 1 && n.Down.Count() >= 1 })
	out := string(n.Internet.Messages()[0].Data)
	if !strings.Contains(out, "tag-out-1") || !strings.Contains(out, "with ESMTPSA") || n.Internet.Count() != 1 {
		t.Fatalf("outbound message:\n%s", out)
	}
	if m := n.Down.Messages()[0]; m.From != "alice@example.test" || !strings.Contains(string(m.Data), "tag-in-1") {
		t.Fatalf("colleague's message: %+v", m)
	}
	ms, err := n.Store.FindMessages(context.Background(), n.Tenant.ID, "tag-out-1", 5)
	if err != nil || len(ms) != 1 || ms[0].Direction != store.Outbound || ms[0].AuthUser != "Alice@Example.test" {
		t.Fatalf("queued as %+v %v", ms, err)
	}
	// AUTH LOGIN (the mechanism many mail apps use), by an administrator
	// with an address login. Administrators have a second factor
	// (http.require_totp), so theirs is a mail app password.
	setAppPassword(t, n, "it@example.test")
	c = subClient(t, addr, true)
	if err := c.Auth(loginClient{"it@example.test", appPassword}); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	if m, d := sendAs(c, "it@example.test", "<it@example.test>", "someone@remote.test", "tag-out-2"); m != 250 || d != 250 {
		t.Fatalf("administrator's mail: MAIL %d DATA %d", m, d)
	}
}

const appPassword = "kq7mw3xhz9rtp2vd"

// setAppPassword gives login the mail app password appPassword.
func setAppPassword(t *testing.T, n *mgtest.Node, login string) {
	t.Helper()
	ctx := context.Background()
	a, err := n.Store.AccountByLogin(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	h, err := passwd.Hash(appPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetAppPassword(ctx, a.TenantID, a.ID, h, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestSubmissionSecondFactor: a user who enrolled TOTP, or an
// administrator while http.require_totp is on, cannot give the second
// factor in a mail app, so the console password alone is refused like a
// wrong one; the mail app password works, and from then on only it.
func TestSubmissionSecondFactor(t *testing.T) {
	t.Parallel()
	n := submissionNode(t)
	addr := n.SubmissionAddrs()[0]
	ctx := context.Background()
	a, err := n.Store.AccountByLogin(ctx, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	a.TOTPSecret = "JBSWY3DPEHPK3PXP"
	if err := n.Store.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	auth := func(pw string) error {
		c := subClient(t, addr, true)
		return c.Auth(sasl.NewPlainClient("", "alice@example.test", pw))
	}
	if err := subClient(t, addr, true).Auth(loginClient{"it@example.test", userPassword}); code(err) != 535 {
		t.Fatalf("an administrator's console password: %v", err)
	}
	if err := auth(userPassword); code(err) != 535 {
		t.Fatalf("console password with TOTP enrolled: %v", err)
	}
	setAppPassword(t, n, "alice@example.test")
	if err := auth(userPassword); code(err) != 535 {
		t.Fatalf("console password beside a mail app password: %v", err)
	}
	if err := auth(appPassword); err != nil {
		t.Fatalf("mail app password: %v", err)
	}
}

// TestSubmissionImplicitTLS: port 465 starts with TLS (no early-talker
// refusal for the client's hello) and takes AUTH at once.
func TestSubmissionImplicitTLS(t *testing.T) {
	t.Parallel()
	n := submissionNode(t)
	conn, err := tls.Dial("tcp", n.SubmissionAddrs()[1], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if ok, params := c.Extension("AUTH"); !ok || params != "PLAIN LOGIN" {
		t.Fatalf("AUTH %v %q", ok, params)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Fatal("STARTTLS offered inside TLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.test", userPassword)); err != nil {
		t.Fatal(err)
	}
	if m, d := sendAs(c, "alice@example.test", "<alice@example.test>", "someone@remote.test", "tag-465"); m != 250 || d != 250 {
		t.Fatalf("MAIL %d DATA %d", m, d)
	}
}

// TestSubmissionLoginMechanism speaks AUTH LOGIN by hand: the username as
// the initial response, then the password.
func TestSubmissionLoginMechanism(t *testing.T) {
	t.Parallel()
	n := submissionNode(t)
	conn, err := tls.Dial("tcp", n.SubmissionAddrs()[1], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	step := func(cmd string, want int) string {
		t.Helper()
		if cmd != "" {
			tp.PrintfLine("%s", cmd)
		}
		_, msg, err := tp.ReadResponse(want)
		if err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
		return msg
	}
	step("", 220)
	step("EHLO client.example.net", 250)
	if got := step("AUTH LOGIN "+b64("alice@example.test"), 334); got != b64("Password:") {
		t.Fatalf("challenge %q", got)
	}
	step(b64(userPassword), 235)
}

// loginClient is the client side of AUTH LOGIN.
type loginClient struct{ user, pw string }

func (l loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }
func (l loginClient) Next(challenge []byte) ([]byte, error) {
	if strings.HasPrefix(strings.ToLower(string(challenge)), "user") {
		return []byte(l.user), nil
	}
	return []byte(l.pw), nil
}
