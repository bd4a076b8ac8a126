package app_test

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/continuity/continuitytest"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

var seqRe = regexp.MustCompile(`(?m)^X-Test-Seq: (\d+)\r$`)

// seqs counts the messages per X-Test-Seq value in raw messages.
func seqs(datas [][]byte) map[string]int {
	out := map[string]int{}
	for _, d := range datas {
		for _, m := range seqRe.FindAllSubmatch(d, -1) {
			out[string(m[1])]++
		}
	}
	return out
}

// sendPlain delivers one message in plaintext (the test node's certificate is
// self-signed).
func sendPlain(addr, from, to, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestSwitchUnderLoad: senders keep sending to the domain over SMTP while
// it is switched to emergency, back, to emergency and back again. When
// the queue is empty, every accepted message is in exactly one place,
// the primary service or a mailbox; after the hand-back every one is at
// the primary exactly once.
func TestSwitchUnderLoad(t *testing.T) {
	t.Parallel()
	mb := continuitytest.New(nil)
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Mailboxes: mb, Config: func(c *config.Config) {
		c.Continuity.HandbackTick = config.D(100 * time.Millisecond)
	}})
	mb.Users = n.Store
	ctx := context.Background()
	op := admin.Operator("cli:test")
	svc := n.Admin()
	if err := svc.SetSetting(ctx, op.In(n.Tenant.ID), store.ScopeDomain, "example.test", continuity.KeyHandback, "manual"); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	accepted := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := 0; s < 3; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seq := fmt.Sprintf("%d%04d", s+1, i)
				rcpt := []string{"alice@example.test", "bob@example.test"}[i%2]
				body := "From: sender@remote.test\r\nTo: " + rcpt + "\r\nSubject: load " + seq + "\r\nX-Test-Seq: " + seq + "\r\n\r\nhello\r\n"
				if err := sendPlain(n.InboundAddr(), "sender@remote.test", rcpt, body); err == nil {
					mu.Lock()
					accepted[seq] = true
					mu.Unlock()
				}
			}
		}(s)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	waitSent := func(k int) {
		mgtest.WaitFor(t, 30*time.Second, "messages sent", func() bool { return count() >= k })
	}
	for i, mode := range []string{store.ModeEmergency, store.ModePrimary, store.ModeEmergency, store.ModePrimary} {
		waitSent((i + 1) * 40)
		if _, err := svc.SwitchContinuity(ctx, op, "example.test", mode, fmt.Sprintf("drill %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitSent(200)
	close(stop)
	wg.Wait()

	total := count()
	mgtest.WaitFor(t, 60*time.Second, "queue empty", func() bool {
		es, err := n.Store.ListQueue(ctx, store.QueueFilter{TenantID: n.Tenant.ID, Limit: 10})
		return err == nil && len(es) == 0
	})
	var down [][]byte
	for _, m := range n.Down.Messages() {
		down = append(down, m.Data)
	}
	var boxed [][]byte
	for _, m := range mb.Messages() {
		boxed = append(boxed, m.Body)
	}
	atPrimary, inBox := seqs(down), seqs(boxed)
	if len(inBox) == 0 || len(atPrimary) == 0 {
		t.Fatalf("the switches had no effect: %d at the primary, %d in mailboxes", len(atPrimary), len(inBox))
	}
	mu.Lock()
	for seq := range accepted {
		if atPrimary[seq]+inBox[seq] != 1 {
			t.Errorf("message %s: %d at the primary, %d in mailboxes", seq, atPrimary[seq], inBox[seq])
		}
	}
	mu.Unlock()
	if len(atPrimary)+len(inBox) != total {
		t.Errorf("%d messages delivered, %d accepted", len(atPrimary)+len(inBox), total)
	}

	// The hand-back brings the mailboxes' mail to the primary.
	if _, err := svc.StartHandback(ctx, op, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 60*time.Second, "hand-back done", func() bool {
		st, err := svc.HandbackStatus(ctx, op, "example.test")
		return err == nil && len(st) == 1 && st[0].State == store.HandbackDone
	})
	down = nil
	for _, m := range n.Down.Messages() {
		down = append(down, m.Data)
	}
	atPrimary = seqs(down)
	mu.Lock()
	for seq := range accepted {
		if atPrimary[seq] != 1 {
			t.Errorf("message %s is %d times at the primary after the hand-back", seq, atPrimary[seq])
		}
	}
	mu.Unlock()
	handedBack := 0
	for _, m := range n.Down.Messages() {
		if strings.HasPrefix(string(m.Data), continuity.MarkerHeader+": ") {
			handedBack++
		}
	}
	if handedBack != len(inBox) {
		t.Errorf("%d messages handed back, %d were in mailboxes", handedBack, len(inBox))
	}
	// The log has the four switches.
	evs, _ := svc.ContinuityEvents(ctx, op, "example.test", 0, 100)
	switches := 0
	for _, e := range evs {
		if e.Kind == continuity.EventSwitch {
			switches++
		}
	}
	if switches != 4 {
		t.Errorf("%d switches logged, want 4", switches)
	}
}

// TestFailoverThroughTheNode: with failover on, the node's own probes
// find the primary service unreachable and switch the domain, through
// the administration layer (audited as the failover) with the
// administrators' notice; queued mail then goes into the mailboxes.
func TestFailoverThroughTheNode(t *testing.T) {
	t.Parallel()
	mb := continuitytest.New(nil)
	mb.AutoCreate = true
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Mailboxes: mb, Config: func(c *config.Config) {
		c.Continuity.ProbeTick = config.D(100 * time.Millisecond)
	}})
	mb.Users = n.Store
	ctx := context.Background()
	// The primary service is gone: nothing listens at its address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	if err := n.Store.SetRoutes(ctx, n.Tenant.ID, n.Domain.ID, []store.Route{{Priority: 10, Target: "smtp://" + dead, TLS: "opportunistic"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.CreateAccount(ctx, store.Account{TenantID: n.Tenant.ID, Login: "it@example.test", Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	op := admin.Operator("cli:test").In(n.Tenant.ID)
	svc := n.Admin()
	// Failover on last: the node's probes start as soon as it is.
	for _, kv := range [][2]string{{continuity.KeyFailAfter, "0s"}, {continuity.KeyProbeTimeout, "2s"},
		{continuity.KeyCanary, "alice@example.test"}, {continuity.KeyFailover, "on"}} {
		if err := svc.SetSetting(ctx, op, store.ScopeDomain, "example.test", kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	// The audit entry is written last, after the switch's work.
	var as []store.AuditEntry
	mgtest.WaitFor(t, 20*time.Second, "the failover switch", func() bool {
		as, _ = n.Store.AuditLog(ctx, store.AuditFilter{TenantID: n.Tenant.ID, Action: "continuity.switch"})
		return len(as) > 0
	})
	if m, _ := n.Store.DomainMode(ctx, n.Tenant.ID, n.Domain.ID); m.Mode != store.ModeEmergency || m.ChangedBy != continuity.FailoverActor {
		t.Fatalf("mode: %+v", m)
	}
	if len(as) != 1 || as[0].Actor != continuity.FailoverActor || !strings.HasPrefix(as[0].After, "emergency: automatic failover") {
		t.Fatalf("audit: %+v", as)
	}
	evs, _ := svc.ContinuityEvents(ctx, op, "example.test", 0, 100)
	var failed, switched int
	for _, e := range evs {
		switch e.Kind {
		case continuity.EventProbeFailed:
			failed++
		case continuity.EventSwitch:
			switched++
		}
	}
	if failed == 0 || switched != 1 {
		t.Fatalf("events: %+v", evs)
	}
	// The notice to the administrator and new mail land in the mailboxes.
	if err := sendPlain(n.InboundAddr(), "sender@remote.test", "bob@example.test", "Subject: during\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "mailbox deliveries", func() bool {
		var notice, mail bool
		for _, m := range mb.Messages() {
			notice = notice || m.User == "it@example.test" && strings.Contains(string(m.Body), "emergency")
			mail = mail || m.User == "bob@example.test" && strings.Contains(string(m.Body), "Subject: during")
		}
		return notice && mail
	})
}
