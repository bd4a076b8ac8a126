package continuity_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/store"
)

func msg(subject string) string {
	return "Received: from client.example.net by mx.mailgate.test; Mon, 11 May 2026 09:00:00 +0000\r\n" +
		"From: sender@remote.test\r\nTo: someone\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@remote.test>\r\n\r\nbody " + subject + "\r\n"
}

// TestHandbackSMTP: received mail goes back to the primary routes with
// its original envelope and the marker header (a Return-Path the
// mailbox added is dropped), sent mail is skipped on this path, a 5xx
// fails the message until retried, a 4xx defers it; every message is
// marked in its mailbox and the job finishes.
func TestHandbackSMTP(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	e.deliverToMailbox("q1", "sender@remote.test", "alice@example.test", "Return-Path: <sender@remote.test>\r\n"+msg("one"))
	e.deliverToMailbox("q2", "", "bob@example.test", msg("two"))
	e.deliverToMailbox("q3", "other@remote.test", "bob@example.test", msg("three"))
	sent := e.mb.AddSent(e.tenant.ID, "alice@example.test", []byte(msg("sent")))
	e.primary.RejectRcpt("bob@example.test")

	j, err := e.svc.StartHandback(ctx, e.dom, "", "it@example.test")
	if err != nil {
		t.Fatal(err)
	}
	h := e.handback("n1")
	if _, err := h.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	got := e.primary.Messages()
	if len(got) != 1 {
		t.Fatalf("primary got %d messages", len(got))
	}
	m := got[0]
	if m.From != "sender@remote.test" || strings.Join(m.To, ",") != "alice@example.test" {
		t.Fatalf("envelope: %s %v", m.From, m.To)
	}
	data := string(m.Data)
	if !strings.HasPrefix(data, continuity.MarkerHeader+": 1; received=Mon, 11 May 2026 09:00:00 +0000; by=mx.mailgate.test\r\nReceived: ") ||
		strings.Contains(data, "Return-Path") || !strings.Contains(data, "body one") {
		t.Fatalf("handed back:\n%s", data)
	}
	ps, _ := e.svc.HandbackStatus(ctx, e.tenant.ID, "example.test")
	if p := ps[0]; p.Total != 4 || p.Done != 1 || p.Failed != 2 || p.Skipped != 1 || p.State != store.HandbackDone || p.Searching {
		t.Fatalf("progress: %+v", p)
	}
	if evs := e.events(continuity.EventHandbackFailed); len(evs) != 2 || !strings.Contains(evs[0].Detail, "550") {
		t.Fatalf("failure events: %+v", evs)
	}
	for _, mm := range e.mb.Messages() {
		if (mm.ID == 1) != !mm.HandedBack.IsZero() {
			t.Errorf("message %d handed back at %v", mm.ID, mm.HandedBack)
		}
	}
	if len(e.events(continuity.EventHandbackDone)) != 1 {
		t.Fatal("job end not logged")
	}

	// The primary takes bob again: the failed ones are retried (the sent
	// message is tried again too, and skipped again on SMTP).
	first := e.primary
	e.newPrimary()
	n, err := e.svc.RetryHandback(ctx, e.dom, "it")
	if err != nil || n != 3 {
		t.Fatalf("retry: %d %v", n, err)
	}
	if _, err := h.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := byMarker(e.primary.Messages()); len(got) != 2 || got["2"] != 1 || got["3"] != 1 {
		t.Fatalf("after retry the primary got %v", got)
	}
	if len(first.Messages()) != 1 {
		t.Fatal("the first primary got more")
	}
	for _, mm := range e.mb.Messages() {
		if (mm.ID == sent) != mm.HandedBack.IsZero() {
			t.Errorf("message %d handed back at %v", mm.ID, mm.HandedBack)
		}
	}
	ps, _ = e.svc.HandbackStatus(ctx, e.tenant.ID, "example.test")
	if p := ps[0]; p.ID != j.ID || p.Done != 3 || p.Skipped != 1 || p.State != store.HandbackDone {
		t.Fatalf("after retry: %+v", p)
	}
}

// gate wraps an SMTP deliverer: the call numbered at (from 1) signals
// entered and waits for release; fake, when set, answers 250 instead of
// delivering (a node that froze and whose send never left it).
type gate struct {
	d       delivery.SMTPDeliverer
	at      int32
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
	fake    bool
}

func newGate(d delivery.SMTPDeliverer, at int32, fake bool) *gate {
	return &gate{d: d, at: at, entered: make(chan struct{}), release: make(chan struct{}), fake: fake}
}

func (g *gate) Deliver(ctx context.Context, targets []delivery.Target, req delivery.Request) []delivery.Result {
	if g.calls.Add(1) == g.at {
		close(g.entered)
		<-g.release
		if g.fake {
			return []delivery.Result{{Rcpt: req.Rcpts[0], Code: 250, Enhanced: "2.0.0", Text: "ok"}}
		}
	}
	return g.d.Deliver(ctx, targets, req)
}

func (e *env) alicesMail(n int) {
	e.t.Helper()
	for i := 1; i <= n; i++ {
		e.deliverToMailbox(fmt.Sprintf("q%d", i), "sender@remote.test", "alice@example.test", msg(fmt.Sprintf("m%d", i)))
	}
}

// exactlyOnce checks the primary got each of the n messages once and
// every message is marked handed back.
func (e *env) exactlyOnce(n int) {
	e.t.Helper()
	got := byMarker(e.primary.Messages())
	for i := 1; i <= n; i++ {
		if got[fmt.Sprint(i)] != 1 {
			e.t.Errorf("message %d handed back %d times", i, got[fmt.Sprint(i)])
		}
	}
	if len(got) != n {
		e.t.Errorf("primary got %v", got)
	}
	for _, m := range e.mb.Messages() {
		if m.HandedBack.IsZero() {
			e.t.Errorf("message %d not marked handed back", m.ID)
		}
	}
}

// TestHandbackResumesAfterStop: the node stops (its context is
// cancelled) in the middle of a hand-back; the message under way is
// finished and recorded, the rest is left for the next start, and after
// the restart every message has been handed back exactly once.
func TestHandbackResumesAfterStop(t *testing.T) {
	e := newEnv(t)
	e.alicesMail(6)
	if _, err := e.svc.StartHandback(e.ctx, e.dom, "", "it"); err != nil {
		t.Fatal(err)
	}
	h := e.handback("n1")
	h.Workers = 1
	g := newGate(e.dl, 3, false)
	h.SMTP = g
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { h.Tick(ctx); close(done) }()
	<-g.entered
	cancel() // the node is told to stop while message 3 is being sent
	close(g.release)
	<-done
	if n := len(e.primary.Messages()); n != 3 {
		t.Fatalf("before the restart the primary has %d messages, want 3", n)
	}
	// The restarted node.
	h2 := e.handback("n1")
	if err := h2.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Tick(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.exactlyOnce(6)
	ps, _ := e.svc.HandbackStatus(e.ctx, e.tenant.ID, "example.test")
	if ps[0].State != store.HandbackDone || ps[0].Done != 6 {
		t.Fatalf("job: %+v", ps[0])
	}
}

// TestHandbackLeaseTakenOver: a node freezes in the middle of an attempt
// and its lease runs out; another node hands every message back; when
// the first wakes up, its late outcome is refused (the claim is fenced),
// and nothing is handed back twice.
func TestHandbackLeaseTakenOver(t *testing.T) {
	e := newEnv(t)
	e.alicesMail(3)
	if _, err := e.svc.StartHandback(e.ctx, e.dom, "", "it"); err != nil {
		t.Fatal(err)
	}
	a := e.handback("node-a")
	a.Workers = 1
	g := newGate(e.dl, 1, true)
	a.SMTP = g
	done := make(chan struct{})
	go func() { a.Tick(e.ctx); close(done) }()
	<-g.entered
	e.clk.Advance(6 * time.Minute) // past node-a's lease
	b := e.handback("node-b")
	if _, err := b.Tick(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.exactlyOnce(3)
	close(g.release)
	<-done
	e.exactlyOnce(3)
}

// TestRetention: local copies handed back more than
// continuity.retention_days ago are deleted; copies not handed back and
// recent ones stay; old events go too.
func TestRetention(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.Switch(e.ctx, e.dom, store.ModeEmergency, "it", ""); err != nil {
		t.Fatal(err)
	}
	e.set(store.ScopeDomain, "example.test", continuity.KeyRetentionDays, "10")
	e.alicesMail(3)
	e.must(e.mb.MarkHandedBack(e.ctx, e.tenant.ID, 1, "smtp"))
	e.clk.Advance(9 * 24 * time.Hour)
	e.must(e.mb.MarkHandedBack(e.ctx, e.tenant.ID, 2, "smtp"))
	e.clk.Advance(2 * 24 * time.Hour) // message 1 was handed back 11 days ago, message 2 two days ago
	n, err := e.svc.Retention(e.ctx, 5)
	if err != nil || n != 1 {
		t.Fatalf("retention: %d %v", n, err)
	}
	var left []int64
	for _, m := range e.mb.Messages() {
		left = append(left, m.ID)
	}
	if fmt.Sprint(left) != "[2 3]" {
		t.Fatalf("left: %v", left)
	}
	if evs := e.events(""); len(evs) != 1 || evs[0].Kind != continuity.EventPurged || evs[0].Actor != "retention" {
		t.Fatalf("events after retention: %+v", evs) // the switch event (11 days old) is gone
	}
}

// TestHandbackSkipsMailDeliveredDirectly: a copy that reached the mailbox
// but whose delivery the queue had not recorded (a crash), and that the
// queue then delivered to the primary after the switch back, is not
// handed back a second time.
func TestHandbackSkipsMailDeliveredDirectly(t *testing.T) {
	e := newEnv(t)
	e.alicesMail(2)
	now := e.clk.Now()
	for _, id := range []string{"q1", "q2"} {
		m := store.Message{ID: id, TenantID: e.tenant.ID, Direction: store.Inbound, MailFrom: "sender@remote.test", BlobKey: id, ReceivedAt: now}
		if _, err := e.st.Enqueue(e.ctx, m, []store.Recipient{{Addr: "alice@example.test", State: store.Queued, NextAttempt: now}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	e.must(e.st.AddEvents(e.ctx, []store.Event{
		{MessageID: "q1", TenantID: e.tenant.ID, At: now, Kind: "delivered", Rcpt: "alice@example.test", Remote: "127.0.0.1"},
		{MessageID: "q2", TenantID: e.tenant.ID, At: now, Kind: "delivered", Rcpt: "alice@example.test", Remote: "mailbox"},
	}))
	if _, err := e.svc.StartHandback(e.ctx, e.dom, "", "it"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.handback("n1").Tick(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := byMarker(e.primary.Messages()); len(got) != 1 || got["2"] != 1 {
		t.Fatalf("handed back: %v", got)
	}
	for _, m := range e.mb.Messages() {
		if m.ID == 1 && !strings.HasPrefix(m.How, "already delivered to the primary service") {
			t.Fatalf("message 1: %q", m.How)
		}
	}
}
