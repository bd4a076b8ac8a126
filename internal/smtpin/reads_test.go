package smtpin_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/smtpin"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

// readCounts counts the store reads a relayed message may make.
type readCounts struct {
	store.Store
	mu sync.Mutex
	n  map[string]int
}

func (c *readCounts) count(name string) {
	c.mu.Lock()
	c.n[name]++
	c.mu.Unlock()
}

// take returns the counts so far and starts again.
func (c *readCounts) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

func (c *readCounts) TenantForRelayIP(ctx context.Context, ip netip.Addr) (int64, bool, error) {
	c.count("TenantForRelayIP")
	return c.Store.TenantForRelayIP(ctx, ip)
}

func (c *readCounts) DomainByName(ctx context.Context, name string) (store.Domain, error) {
	c.count("DomainByName")
	return c.Store.DomainByName(ctx, name)
}

func (c *readCounts) Domains(ctx context.Context, tenantID int64) ([]store.Domain, error) {
	c.count("Domains")
	return c.Store.Domains(ctx, tenantID)
}

func (c *readCounts) Settings(ctx context.Context, tenantID int64) ([]store.Setting, error) {
	c.count("Settings")
	return c.Store.Settings(ctx, tenantID)
}

func (c *readCounts) MailingListsByAddress(ctx context.Context, addresses []string) ([]store.MailingList, error) {
	c.count("MailingListsByAddress")
	return c.Store.MailingListsByAddress(ctx, addresses)
}

func (c *readCounts) PolicyVersion(ctx context.Context, tenantID int64) (int64, error) {
	c.count("PolicyVersion")
	return c.Store.PolicyVersion(ctx, tenantID)
}

func (c *readCounts) AddressingVersion(ctx context.Context) (int64, error) {
	c.count("AddressingVersion")
	return c.Store.AddressingVersion(ctx)
}

func (c *readCounts) Versions(ctx context.Context, tenantID int64) (int64, int64, error) {
	c.count("Versions")
	return c.Store.Versions(ctx, tenantID)
}

func (c *readCounts) Addressing(ctx context.Context) (store.Addressing, error) {
	c.count("Addressing")
	return c.Store.Addressing(ctx)
}

// accepted keeps what the outbound pipeline commits.
type accepted struct {
	mu  sync.Mutex
	got []store.Acceptance
}

func (a *accepted) Accept(_ context.Context, acc store.Acceptance) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, acc)
	return nil
}

// readsStore opens a SQLite store and a spool in a fresh directory.
func readsStore(t *testing.T) (*sqlite.DB, *local.Store, *slog.Logger) {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sp, err := local.Open(filepath.Join(dir, "spool"), "reads", 0, log)
	if err != nil {
		t.Fatal(err)
	}
	return db, sp, log
}

// readsListener serves a listener of kind on a loopback port until the
// test ends, over st, handing accepted messages to q; it returns the
// address.
func readsListener(t *testing.T, kind smtpin.Kind, lc config.ListenerConfig, st store.Store, sp *local.Store, q smtpin.Enqueuer, log *slog.Logger) string {
	t.Helper()
	lim := config.Default().Limits
	lim.MinFreeBytes = 0
	lim.CommandTimeout = config.D(10 * time.Second)
	srv := smtpin.New(smtpin.Deps{Kind: kind, Hostname: "mx.mailgate.test", Listener: lc,
		Limits: lim, Store: st, Spool: sp, Queue: q, Lists: &mlist.Service{Store: st, Spool: sp, Log: log}, Log: log,
		ScanBudget: 30 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return ln.Addr().String()
}

// A message relayed through the outbound listener and its pipeline reads
// two versions of the store, once each — the addressing version (relay
// networks, domains, list addresses) and the tenant's policy version —
// and none of the tables behind them while those do not change; after
// the client's first message, both in one query. A change made through
// the store, as the CLI makes it, applies from the next message on.
func TestRelayedMessageReadsVersionsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sp, log := readsStore(t)
	tn, _ := db.CreateTenant(ctx, "acme")
	dom, _ := db.CreateDomain(ctx, tn.ID, "example.test")
	relayNet := netip.MustParsePrefix("127.0.0.1/32")
	if err := db.AddRelayNet(ctx, tn.ID, relayNet); err != nil {
		t.Fatal(err)
	}
	st := &readCounts{Store: db, n: map[string]int{}}
	acc := &accepted{}
	p := &outbound.Pipeline{Store: st, Spool: sp, Queue: acc, Engine: &outbound.Engine{Store: st}, Hostname: "mx.mailgate.test", Log: log}
	addr := readsListener(t, smtpin.Outbound, config.Default().Outbound, st, sp, p, log)

	// send relays one message and returns the SMTP error, nil when accepted.
	send := func(from, rcpt, author string) error {
		t.Helper()
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.SendMail(from, []string{rcpt}, strings.NewReader("From: "+author+"\r\nTo: "+rcpt+"\r\nSubject: reads\r\n\r\nbody\r\n"))
	}
	code := func(err error) int {
		if se, ok := err.(*smtp.SMTPError); ok {
			return se.Code
		}
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		return 250
	}
	if err := send("alice@example.test", "partner@dest.test", "alice@example.test"); err != nil {
		t.Fatalf("first message: %v", err)
	}
	first := st.take()
	if err := send("alice@example.test", "partner@dest.test", "alice@example.test"); err != nil {
		t.Fatalf("second message: %v", err)
	}
	checkReads := func(what string, want map[string]int) {
		t.Helper()
		got := st.take()
		for name, n := range got {
			if n != want[name] {
				t.Errorf("%s read %s %d times, want %d (all reads: %v)", what, name, n, want[name], got)
			}
		}
		for name, n := range want {
			if got[name] != n {
				t.Errorf("%s read %s %d times, want %d (all reads: %v)", what, name, got[name], n, got)
			}
		}
	}
	checkReads("the client's second message", map[string]int{"Versions": 1})
	// The client's first message: its tenant is not known before the
	// relay networks are read.
	if first["AddressingVersion"] != 1 || first["PolicyVersion"] != 1 || first["Versions"] != 0 {
		t.Errorf("the client's first message read %v, want each version once", first)
	}
	// Two messages in one session: the second reads both versions at once
	// too.
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := c.SendMail("alice@example.test", []string{"partner@dest.test"},
			strings.NewReader("From: alice@example.test\r\nSubject: reads\r\n\r\nbody\r\n")); err != nil {
			t.Fatalf("message %d of one session: %v", i, err)
		}
		if i == 0 {
			st.take()
		}
	}
	c.Close()
	checkReads("a session's second message", map[string]int{"Versions": 1})

	// A domain added to the tenant: its author is the tenant's from the
	// next message on.
	if c := code(send("alice@example.test", "partner@dest.test", "bob@new.test")); c != 550 {
		t.Fatalf("author in a domain not served yet: %d, want 550", c)
	}
	if _, err := db.CreateDomain(ctx, tn.ID, "new.test"); err != nil {
		t.Fatal(err)
	}
	if c := code(send("alice@example.test", "partner@dest.test", "bob@new.test")); c != 250 {
		t.Fatalf("author in a domain added since: %d, want 250", c)
	}
	// relay.foreign_from set: a foreign author passes.
	if err := db.SetSetting(ctx, store.Setting{TenantID: tn.ID, Scope: store.ScopeTenant, Key: "relay.foreign_from", Value: "allow"}); err != nil {
		t.Fatal(err)
	}
	if c := code(send("alice@example.test", "partner@dest.test", "ceo@bank.test")); c != 250 {
		t.Fatalf("foreign author after relay.foreign_from=allow: %d, want 250", c)
	}
	// A mailing list created: its posting policy applies to the next RCPT.
	if _, err := db.CreateMailingList(ctx, store.MailingList{TenantID: tn.ID, DomainID: dom.ID, Address: "staff@example.test",
		Name: "staff", Posting: store.PostMembers}, 10); err != nil {
		t.Fatal(err)
	}
	if c := code(send("alice@example.test", "staff@example.test", "alice@example.test")); c != 550 {
		t.Fatalf("non-member posting to a list created since: %d, want 550", c)
	}
	// The relay network removed: the next MAIL is refused.
	if err := db.DeleteRelayNet(ctx, tn.ID, relayNet); err != nil {
		t.Fatal(err)
	}
	if c := code(send("alice@example.test", "partner@dest.test", "alice@example.test")); c != 530 {
		t.Fatalf("relay from a network removed since: %d, want 530 (authentication required)", c)
	}
	acc.mu.Lock()
	defer acc.mu.Unlock()
	if len(acc.got) != 6 {
		t.Fatalf("%d messages accepted, want 6", len(acc.got))
	}
}

// policyReader stands for the inbound pipeline: it asks for the message's
// tenant's policy version, as the pipeline's caches do.
type policyReader struct {
	st    store.Store
	mu    sync.Mutex
	taken int
}

func (p *policyReader) Enqueue(ctx context.Context, m store.Message, _ []store.Recipient, _ []store.Event) error {
	if _, err := store.MemoPolicyVersion(ctx, p.st, m.TenantID); err != nil {
		return err
	}
	p.mu.Lock()
	p.taken++
	p.mu.Unlock()
	return nil
}

// A message delivered to the inbound listener reads the addressing version
// and its tenant's policy version, in one query once the client has sent
// for that tenant before; a client's message for another tenant reads the
// policy version it needs on its own.
func TestInboundMessageReadsVersionsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, sp, log := readsStore(t)
	for _, n := range []string{"acme", "beta"} {
		tn, _ := db.CreateTenant(ctx, n)
		if _, err := db.CreateDomain(ctx, tn.ID, n+".test"); err != nil {
			t.Fatal(err)
		}
	}
	st := &readCounts{Store: db, n: map[string]int{}}
	q := &policyReader{st: st}
	addr := readsListener(t, smtpin.Inbound, config.Default().Inbound, st, sp, q, log)
	send := func(rcpt string) map[string]int {
		t.Helper()
		st.take()
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.SendMail("sender@outside.test", []string{rcpt},
			strings.NewReader("From: sender@outside.test\r\nTo: "+rcpt+"\r\nSubject: reads\r\n\r\nbody\r\n")); err != nil {
			t.Fatalf("to %s: %v", rcpt, err)
		}
		return st.take()
	}
	want := func(what string, got, want map[string]int) {
		t.Helper()
		for _, name := range []string{"Versions", "AddressingVersion", "PolicyVersion"} {
			if got[name] != want[name] {
				t.Errorf("%s read %s %d times, want %d (all reads: %v)", what, name, got[name], want[name], got)
			}
		}
	}
	first := send("postmaster@acme.test")
	want("the client's first message", first, map[string]int{"AddressingVersion": 1, "PolicyVersion": 1})
	want("its second message", send("postmaster@acme.test"), map[string]int{"Versions": 1})
	// Another tenant: the guess was acme, so beta's policy version is read
	// on its own; the guess is then beta.
	want("a message for another tenant", send("postmaster@beta.test"), map[string]int{"Versions": 1, "PolicyVersion": 1})
	want("the next message for it", send("postmaster@beta.test"), map[string]int{"Versions": 1})
	if q.taken != 4 {
		t.Fatalf("%d messages accepted, want 4", q.taken)
	}
}
