package imapd_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store"
)

// readAll reads until the server closes the connection.
func (r *raw) readAll() string {
	r.t.Helper()
	b, _ := io.ReadAll(r.r)
	return string(b)
}

// Unknown commands get BAD, and a client that sends nothing else is
// disconnected with a reason; before login the first one ends it.
func TestUnknownCommands(t *testing.T) {
	n := start(t, nodeOptions{})
	r := dialRaw(t, n.tlsAddr, n.clientTL)
	r.send("HELO example.com")
	if rest := r.readAll(); !strings.Contains(rest, "* BYE") {
		t.Fatalf("unknown command before login: %q", rest)
	}
	r = n.loginRaw(t, "alice@example.test")
	for i := 0; i < 19; i++ {
		if _, tagged := r.do("XYZZY"); !strings.Contains(tagged, "BAD") {
			t.Fatalf("unknown command %d: %q", i, tagged)
		}
	}
	r.ok("NOOP") // a good command resets the count
	for i := 0; i < 19; i++ {
		r.do("XYZZY")
	}
	r.send("XYZZY")
	if rest := r.readAll(); !strings.Contains(rest, "BAD") || !strings.Contains(rest, "* BYE Too many invalid commands") {
		t.Fatalf("20th bad command: %q", rest)
	}
}

// Thousands of pipelined commands are answered in order, one at a time
// (the server reads the next only after answering), and the session goes
// on.
func TestPipelinedFlood(t *testing.T) {
	n := start(t, nodeOptions{})
	r := n.loginRaw(t, "bob@example.test")
	r.ok("SELECT INBOX")
	const count = 5000
	var b strings.Builder
	for i := 0; i < count; i++ {
		fmt.Fprintf(&b, "f%d NOOP\r\nf%d UID FETCH 1:* (FLAGS)\r\n", i, i)
	}
	go func() { io.WriteString(r.c, b.String()) }()
	sc := bufio.NewScanner(r.r)
	got := 0
	for got < 2*count && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "f") && strings.Contains(sc.Text(), " OK ") {
			got++
		}
	}
	if got != 2*count {
		t.Fatalf("%d of %d pipelined commands answered: %v", got, 2*count, sc.Err())
	}
	r.r = bufio.NewReader(r.c)
	r.ok("NOOP")
}

// Literals: malformed ones get BAD; one too large for APPEND is refused
// before it is sent; a LITERAL+ one over quota is refused and the
// connection closed, its bytes never read as commands; long literals in
// other commands are refused.
func TestHostileLiterals(t *testing.T) {
	n := start(t, nodeOptions{maxBytes: 4 << 20})
	r := n.loginRaw(t, "alice@example.test")
	if _, tagged := r.do("APPEND INBOX {12x}"); !strings.Contains(tagged, "BAD") {
		t.Fatalf("malformed literal: %q", tagged)
	}
	tag := r.send("APPEND INBOX {99999999999}")
	u, tagged := r.wait(tag)
	if !strings.Contains(tagged, "NO [TOOBIG]") || len(u) != 0 {
		t.Fatalf("huge literal: %q %q", u, tagged)
	}
	if _, tagged := r.do("SELECT {5000}"); !strings.Contains(tagged, "NO [TOOBIG]") {
		t.Fatalf("long literal in SELECT: %q", tagged)
	}
	if _, tagged := r.do("SELECT {5}\r\nINBOX"); !strings.Contains(tagged, "BAD") && !strings.Contains(tagged, "OK") {
		t.Fatalf("literal in SELECT: %q", tagged)
	}
	if _, tagged := r.do("APPEND INBOX {0}"); !strings.Contains(tagged, "NO") {
		t.Fatalf("empty message: %q", tagged)
	}
	// A blank line or garbage is no command: BAD, and the session goes on.
	io.WriteString(r.c, "\r\n")
	if l := r.line(); !strings.HasPrefix(l, "* BAD") {
		t.Fatalf("blank line: %q", l)
	}
	io.WriteString(r.c, "\x00\x01\x02 ??? \r\n")
	if l := r.line(); !strings.HasPrefix(l, "* BAD") {
		t.Fatalf("garbage: %q", l)
	}
	r.ok("NOOP")
	if err := n.Svc.SetQuota(context.Background(), n.Tenant.ID, "alice@example.test", 1); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("z99 LOGOUT\r\n", 100000) // 1.2 MB, over the quota
	fmt.Fprintf(r.c, "z1 APPEND INBOX {%d+}\r\n%s\r\n", len(body), body)
	rest := r.readAll()
	if !strings.Contains(rest, "z1 NO [OVERQUOTA]") || !strings.Contains(rest, "* BYE") || strings.Contains(rest, "z99") {
		t.Fatalf("LITERAL+ over quota: %.300q", rest)
	}
	mb, _ := n.Store.MailboxByAddress(context.Background(), n.Tenant.ID, "alice@example.test")
	if mb.Messages != 0 {
		t.Fatalf("%d messages stored", mb.Messages)
	}
	// A literal cut short by a disconnect stores nothing.
	r = n.loginRaw(t, "alice@example.test")
	if err := n.Svc.SetQuota(context.Background(), n.Tenant.ID, "alice@example.test", 0); err != nil {
		t.Fatal(err)
	}
	r.send("APPEND INBOX {1000}")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	io.WriteString(r.c, "Subject: cut\r\n\r\nonly part")
	r.c.Close()
	n2 := n.loginRaw(t, "alice@example.test")
	u = n2.ok("STATUS INBOX (MESSAGES)")
	if !has(u, "MESSAGES 0") {
		t.Fatalf("cut literal stored: %q", u)
	}
}

// A silent client is told why the connection ends.
func TestIdleTimeoutSaysBye(t *testing.T) {
	n := start(t, nodeOptions{config: func(c *config.IMAPConfig) {
		c.IdleTimeout = config.D(300 * time.Millisecond)
		c.CommandTimeout = config.D(300 * time.Millisecond)
	}})
	r := n.loginRaw(t, "alice@example.test")
	if rest := r.readAll(); !strings.Contains(rest, "* BYE Autologout") {
		t.Fatalf("idle logged-in client: %q", rest)
	}
	r = dialRaw(t, n.tlsAddr, n.clientTL)
	if rest := r.readAll(); !strings.Contains(rest, "* BYE") {
		t.Fatalf("silent client before login: %q", rest)
	}
	// A command line longer than any command.
	r = n.loginRaw(t, "alice@example.test")
	io.WriteString(r.c, "a1 SELECT "+strings.Repeat("x", 100<<10)+"\r\n")
	if rest := r.readAll(); !strings.Contains(rest, "* BYE Command line too long") {
		t.Fatalf("long line: %.200q", rest)
	}
	// A command line that never ends.
	r = n.loginRaw(t, "alice@example.test")
	io.WriteString(r.c, "a1 SELECT INB")
	if rest := r.readAll(); !strings.Contains(rest, "* BYE") {
		t.Fatalf("unfinished command: %q", rest)
	}
	// Every connection's slot comes back once the server has closed it.
	for deadline := time.Now().Add(10 * time.Second); n.srv.Conns() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left", n.srv.Conns())
		}
	}
}

// Another tenant's user sees none of this tenant's mail, folders or
// quota, and a login is per tenant.
func TestTenantsApart(t *testing.T) {
	n := start(t, nodeOptions{})
	ctx := context.Background()
	n.deliver(t, "alice@example.test", []byte("Subject: secret\r\n\r\nsecret\r\n"))
	other, err := n.Store.CreateTenant(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	n.Store.CreateDomain(ctx, other.ID, "other.test")
	n.Store.CreateUser(ctx, other.ID, "eve@other.test")
	acct, _ := n.Store.AccountByLogin(ctx, "alice@example.test")
	n.Store.CreateAccount(ctx, store.Account{Login: "eve@other.test", Role: store.RoleUser, TenantID: other.ID, Hash: acct.Hash, Created: time.Now()})
	r := n.loginRaw(t, "eve@other.test")
	u := r.ok("SELECT INBOX")
	if !has(u, "* 0 EXISTS") {
		t.Fatalf("eve's inbox: %q", u)
	}
	if u := r.ok("SEARCH TEXT secret"); !has(u, "* SEARCH") || has(u, "* SEARCH 1") {
		t.Fatalf("search: %q", u)
	}
}
