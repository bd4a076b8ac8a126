package smtpin_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// raw is a byte-exact SMTP client for protocol tests.
type raw struct {
	t    *testing.T
	c    net.Conn
	tp   *textproto.Reader
	w    *bufio.Writer
	last string
}

func dialRaw(t *testing.T, addr string, local string) *raw {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := &raw{t: t, c: c, tp: textproto.NewReader(bufio.NewReader(c)), w: bufio.NewWriter(c)}
	return r
}

// reply reads one (possibly multi-line) reply.
func (r *raw) reply() int {
	r.t.Helper()
	code, msg, err := r.tp.ReadResponse(0)
	if err != nil && code == 0 {
		r.t.Fatalf("reading reply: %v", err)
	}
	r.last = msg
	return code
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := r.w.WriteString(s); err != nil {
		r.t.Fatal(err)
	}
	if err := r.w.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// cmd sends one command line and returns the reply code.
func (r *raw) cmd(line string) int {
	r.t.Helper()
	r.send(line + "\r\n")
	return r.reply()
}

func (r *raw) expect(line string, want int) {
	r.t.Helper()
	if got := r.cmd(line); got != want {
		r.t.Fatalf("%q: got %d %s, want %d", line, got, r.last, want)
	}
}

func greet(t *testing.T, addr string) *raw {
	r := dialRaw(t, addr, "")
	if c := r.reply(); c != 220 {
		t.Fatalf("greeting %d", c)
	}
	r.expect("EHLO client.example.net", 250)
	return r
}

func countMessages(t *testing.T, n *mgtest.Node) int {
	ms, err := n.Store.FindMessages(context.Background(), 0, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(ms)
}

func TestAcceptAndRelayToDownstream(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	c, err := smtp.Dial(n.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@example.net", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"alice@example.test", "Bob@EXAMPLE.test"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatalf("rcpt %s: %v", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "From: sender@example.net\r\nSubject: hello\r\nMessage-ID: <m1@example.net>\r\n\r\n.leading dot line\r\nbody\r\n")
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.StatusText, "queued as ") {
		t.Fatalf("250 reply should carry the queue ID: %q", resp.StatusText)
	}
	id := strings.TrimSpace(resp.StatusText[strings.Index(resp.StatusText, "queued as ")+len("queued as "):])
	mgtest.WaitFor(t, 10*time.Second, "delivery downstream", func() bool { return n.Down.Count() == 1 })
	got := n.Down.Messages()[0]
	if got.From != "sender@example.net" || strings.Join(got.To, ",") != "alice@example.test,Bob@example.test" {
		t.Fatalf("envelope downstream: from %q to %v", got.From, got.To)
	}
	body := string(got.Data)
	// The inbound checks' verdict headers come first, then our trace field.
	if i := strings.Index(body, "\r\nReceived: "); i >= 0 && strings.HasPrefix(body, "Authentication-Results: ") {
		body = body[i+2:]
	}
	if !strings.HasPrefix(body, "Received: from client.example.net ([127.0.0.1])\r\n\tby mx.mailgate.test (mailgate) with ESMTP id "+id) {
		t.Fatalf("missing or wrong Received header:\n%s", body)
	}
	if !strings.Contains(body, "\r\n.leading dot line\r\n") {
		t.Fatalf("dot-stuffing not undone/redone correctly:\n%q", body)
	}
	mgtest.WaitFor(t, 5*time.Second, "message done", func() bool {
		m, _, err := n.Store.Message(context.Background(), n.Tenant.ID, id)
		return err == nil && m.Done
	})
	evs, err := n.Store.Events(context.Background(), n.Tenant.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e.Kind]++
	}
	if kinds["received"] != 1 || kinds["delivered"] != 2 {
		t.Fatalf("tracking events %v", kinds)
	}
	// The blob, named by the node that wrote it, is gone once every
	// recipient is final.
	m, _, err := n.Store.Message(context.Background(), n.Tenant.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.BlobKey != n.Config.NodeID+"/"+id {
		t.Fatalf("blob key %q, want the node's name and the queue ID", m.BlobKey)
	}
	// The queue removes it right after recording the last outcome, so it
	// may still be there for a moment after Done shows.
	mgtest.WaitFor(t, 5*time.Second, "blob removed after delivery", func() bool {
		_, err := n.Spool.Open(context.Background(), m.BlobKey)
		return errors.Is(err, blob.ErrNotFound)
	})
}

func TestRecipientChecksAndRelayForms(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	cases := []struct {
		rcpt string
		want int
	}{
		{"<alice@example.test>", 250},
		{"<ALICE@Example.Test>", 250},
		{"<nobody@example.test>", 550},
		{"<someone@other.test>", 554},
		{"<alice%other.test@example.test>", 554},
		{"<other.test!alice@example.test>", 554},
		{"<@example.test:someone@other.test>", 554},
		{"<@other.test:alice@example.test>", 250}, // source route ignored; local user
		{`<"alice@other.test"@example.test>`, 554},
		{`<"alice"@example.test>`, 250}, // quoting a plain local part changes nothing
		{"<alice@example.test.>", 501},
		{"<alice@[127.0.0.1]>", 554},
		{"<alice@[IPv6:::1]>", 554},
		{"<postmaster@other.test>", 554},
		{"<PostMaster@example.test>", 250}, // RFC 5321 4.5.1, even when not a listed user
		{"<alice@other.test@example.test>", 501},
		{"<alice@example.test:25>", 501},
	}
	for _, tc := range cases {
		r := greet(t, n.InboundAddr())
		r.expect("MAIL FROM:<sender@example.net>", 250)
		got := r.cmd("RCPT TO:" + tc.rcpt)
		if got/100 != tc.want/100 || (tc.want != 250 && got != tc.want && tc.want != 501) {
			t.Errorf("RCPT TO:%s = %d %s, want %d", tc.rcpt, got, r.last, tc.want)
		}
		if tc.want == 550 && !strings.HasPrefix(r.last, "5.1.1") {
			t.Errorf("unknown user reply %q, want 5.1.1", r.last)
		}
		if tc.want == 554 && !strings.HasPrefix(r.last, "5.7.1") {
			t.Errorf("relay denied reply %q, want 5.7.1", r.last)
		}
		r.cmd("QUIT")
	}
	// Nothing that was refused was queued. Each refused recipient of a
	// served domain (550 unknown user) is kept for tracking as an already
	// finished message without a body, with the reply it got.
	want := 0
	for _, tc := range cases {
		if tc.want == 550 {
			want++
		}
	}
	ms, err := n.Store.FindMessages(context.Background(), 0, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != want || want == 0 {
		t.Fatalf("%d messages recorded, want %d refusals", len(ms), want)
	}
	for _, m := range ms {
		m, rs, err := n.Store.Message(context.Background(), m.TenantID, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Done || m.BlobKey != "" || len(rs) != 1 || rs[0].State != store.Rejected || rs[0].LastCode != 550 || m.MailFrom != "sender@example.net" {
			t.Fatalf("refusal record %+v %+v", m, rs)
		}
	}
	pending, err := n.Store.PendingBlobs(context.Background())
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending after refusals: %v %v", pending, err)
	}
}

func TestSizeAndRecipientLimits(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) {
		c.Limits.MaxMessageBytes = 2000
		c.Limits.MaxRecipients = 2
	}})
	ctx := context.Background()
	n.Store.CreateUser(ctx, n.Tenant.ID, "carol@example.test")

	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<s@example.net> SIZE=5000", 552)
	r.expect("MAIL FROM:<s@example.net> SIZE=1000", 250)
	r.expect("RCPT TO:<alice@example.test>", 250)
	r.expect("RCPT TO:<bob@example.test>", 250)
	r.expect("RCPT TO:<carol@example.test>", 452)
	if !strings.HasPrefix(r.last, "4.5.3") {
		t.Fatalf("too many recipients: %q", r.last)
	}
	r.expect("DATA", 354)
	r.send("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 200) + ".\r\n")
	if c := r.reply(); c != 552 {
		t.Fatalf("oversize DATA: %d %s", c, r.last)
	}
	// The session survives and a message within the limit goes through.
	r.expect("MAIL FROM:<s@example.net>", 250)
	r.expect("RCPT TO:<alice@example.test>", 250)
	r.expect("DATA", 354)
	r.send("Subject: small\r\n\r\nok\r\n.\r\n")
	if c := r.reply(); c != 250 {
		t.Fatalf("small DATA: %d %s", c, r.last)
	}
	if c := countMessages(t, n); c != 1 {
		t.Fatalf("%d messages queued, want 1", c)
	}
}

func TestSTARTTLS(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) { c.Inbound.RequireTLS = true }})
	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<s@example.net>", 530)

	c, err := smtp.DialStartTLS(n.InboundAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("s@example.net", []string{"alice@example.test"}, strings.NewReader("Subject: tls\r\n\r\nsecret\r\n")); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return n.Down.Count() == 1 })
	if b := string(n.Down.Messages()[0].Data); !strings.Contains(b, "with ESMTPS id") {
		t.Fatalf("Received header should say ESMTPS:\n%s", b)
	}
}

func TestOutboundRelay(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	out := n.OutboundAddr()

	// From a registered network (127.0.0.1/32), with a sender of the tenant.
	r := dialRaw(t, out, "127.0.0.1")
	r.reply()
	r.expect("EHLO relay.example.test", 250)
	r.expect("MAIL FROM:<someone@other.test>", 553)
	r.expect("MAIL FROM:<alice@example.test>", 250)
	r.expect("RCPT TO:<partner@external.test>", 250)
	r.expect("DATA", 354)
	r.send("Subject: out\r\n\r\nhello partner\r\n.\r\n")
	if c := r.reply(); c != 250 {
		t.Fatalf("outbound DATA: %d %s", c, r.last)
	}
	mgtest.WaitFor(t, 10*time.Second, "delivery via the smart host", func() bool { return n.Internet.Count() == 1 })
	if to := n.Internet.Messages()[0].To; len(to) != 1 || to[0] != "partner@external.test" {
		t.Fatalf("outbound recipient %v", to)
	}

	// From another address on the machine (127.0.0.2 is loopback but not registered).
	r2 := dialRaw(t, out, "127.0.0.2")
	r2.reply()
	r2.expect("EHLO stranger.example", 250)
	if c := r2.cmd("MAIL FROM:<alice@example.test>"); c != 530 {
		t.Fatalf("unregistered client: %d %s", c, r2.last)
	}

	// With SMTP AUTH after STARTTLS from the unregistered address.
	h, err := passwd.Hash("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetRelayLogin(context.Background(), n.Tenant.ID, "relayuser", h); err != nil {
		t.Fatal(err)
	}
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", out)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "relayuser", "wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := c.Auth(sasl.NewPlainClient("", "relayuser", "s3cret")); err != nil {
		t.Fatalf("auth: %v", err)
	}
	if err := c.SendMail("bob@example.test", []string{"partner2@external.test"}, strings.NewReader("Subject: authed\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("authenticated relay: %v", err)
	}
	mgtest.WaitFor(t, 10*time.Second, "authenticated relay delivery", func() bool { return n.Internet.Count() == 2 })
}

func TestInboundIsNeverOpenRelay(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	// Even from an address allowed to relay outbound, port 25 only takes served domains.
	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<alice@example.test>", 250)
	r.expect("RCPT TO:<partner@external.test>", 554)
}

// smuggle sends a first message whose DATA contains an end-of-data look-alike
// followed by a pipelined second transaction; the real end comes after.
func TestSMTPSmuggling(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	variants := map[string]string{
		`\n.\n`:       "\n.\n",
		`\r.\r`:       "\r.\r",
		`\r\n.\n`:     "\r\n.\n",
		`\n.\r\n`:     "\n.\r\n",
		`\r.\r\n`:     "\r.\r\n",
		`\r\n.\r`:     "\r\n.\r",
		`\r\n\0.\r\n`: "\r\n\x00.\r\n",
	}
	smuggled := "MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n.\r\n"
	for name, seq := range variants {
		r := greet(t, n.InboundAddr())
		r.expect("MAIL FROM:<sender@example.net>", 250)
		r.expect("RCPT TO:<alice@example.test>", 250)
		r.expect("DATA", 354)
		r.send("Subject: first\r\n\r\nfirst body" + seq + smuggled + "\r\n.\r\n")
		code := r.reply()
		if code/100 == 2 {
			t.Errorf("%s: message with a smuggling sequence accepted: %d %s", name, code, r.last)
		}
		// Whatever the server made of it, no second transaction may exist.
		r.cmd("QUIT")
	}
	if c := countMessages(t, n); c != 0 {
		t.Fatalf("%d messages queued from smuggling attempts, want 0", c)
	}
	for _, m := range n.Down.Messages() {
		if strings.Contains(string(m.Data), "smuggled") {
			t.Fatal("smuggled message delivered")
		}
	}
}

func TestNormalizeOnTrustedRelay(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) { c.Outbound.BareLF = "normalize" }})
	r := dialRaw(t, n.OutboundAddr(), "127.0.0.1")
	r.reply()
	r.expect("EHLO relay.example.test", 250)
	r.expect("MAIL FROM:<alice@example.test>", 250)
	r.expect("RCPT TO:<partner@external.test>", 250)
	r.expect("DATA", 354)
	r.send("Subject: lf\r\n\r\nline one\nline two\r\n.\r\n")
	if c := r.reply(); c != 250 {
		t.Fatalf("normalising listener refused: %d %s", c, r.last)
	}
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return n.Internet.Count() == 1 })
	if b := string(n.Internet.Messages()[0].Data); !strings.Contains(b, "line one\r\nline two\r\n") {
		t.Fatalf("bare LF not normalised: %q", b)
	}
}

func TestEarlyTalkerRefused(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) { c.Limits.GreetDelay = config.D(200 * time.Millisecond) }})
	r := dialRaw(t, n.InboundAddr(), "")
	r.send("EHLO impatient.example\r\nMAIL FROM:<a@b.test>\r\n")
	if c := r.reply(); c != 554 {
		t.Fatalf("early talker got %d %s, want 554", c, r.last)
	}
}

func TestMailLoopDetected(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<s@example.net>", 250)
	r.expect("RCPT TO:<alice@example.test>", 250)
	r.expect("DATA", 354)
	var b strings.Builder
	for i := 0; i < 51; i++ {
		fmt.Fprintf(&b, "Received: from hop%d.example by hop%d.example; Sun, 22 Nov 2026 10:00:00 +0000\r\n", i, i+1)
	}
	r.send(b.String() + "Subject: loop\r\n\r\nx\r\n.\r\n")
	if c := r.reply(); c != 554 || !strings.HasPrefix(r.last, "5.4.6") {
		t.Fatalf("loop: %d %s", c, r.last)
	}
}

func TestErrorLimitClosesSession(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) { c.Limits.MaxErrors = 5 }})
	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<s@example.net>", 250)
	var last int
	for i := 0; i < 5; i++ {
		last = r.cmd(fmt.Sprintf("RCPT TO:<guess%d@example.test>", i))
	}
	if last != 421 {
		t.Fatalf("after 5 errors: %d %s, want 421", last, r.last)
	}
	r.send("NOOP\r\n")
	if _, _, err := r.tp.ReadResponse(0); err == nil {
		t.Fatal("session still open after 421")
	}
}

func TestLowDiskSpaceTempFails(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) { c.Limits.MinFreeBytes = 1 << 62 }})
	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<s@example.net>", 452)
	if !strings.HasPrefix(r.last, "4.3.1") {
		t.Fatalf("low disk: %q", r.last)
	}
}

func TestRecipientsOfTwoTenantsSplit(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true})
	ctx := context.Background()
	t2, _ := n.Store.CreateTenant(ctx, "other")
	d2, _ := n.Store.CreateDomain(ctx, t2.ID, "other.test")
	n.Store.SetRoutes(ctx, t2.ID, d2.ID, []store.Route{{Priority: 1, Target: "smtp://" + n.Down.Addr(), TLS: "none"}})
	n.Store.CreateUser(ctx, t2.ID, "zed@other.test")
	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<s@example.net>", 250)
	r.expect("RCPT TO:<alice@example.test>", 250)
	r.expect("RCPT TO:<zed@other.test>", 452)
	r.expect("RSET", 250)
	r.expect("MAIL FROM:<s@example.net>", 250)
	r.expect("RCPT TO:<zed@other.test>", 250)
}

func TestConnectionLimitPerIP(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) { c.Inbound.MaxConnPerIP = 2 }})
	a := greet(t, n.InboundAddr())
	b := greet(t, n.InboundAddr())
	c := dialRaw(t, n.InboundAddr(), "")
	if code := c.reply(); code != 421 {
		t.Fatalf("third connection: %d %s", code, c.last)
	}
	// Another client address is not affected.
	d := dialRaw(t, n.InboundAddr(), "127.0.0.3")
	if code := d.reply(); code != 220 {
		t.Fatalf("other IP: %d", code)
	}
	a.cmd("QUIT")
	b.cmd("QUIT")
}
