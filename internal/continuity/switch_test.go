package continuity_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/store"
)

// TestSwitch: the switch to emergency creates the users' mailboxes, makes
// the domain's queued mail due at once (and no other), logs the event and
// mails the tenant's administrators from the null sender; the same switch
// again is refused; the switch back starts the hand-back.
func TestSwitch(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	for _, a := range []store.Account{
		{TenantID: e.tenant.ID, Login: "it@example.test", Role: store.RoleAdmin},
		{TenantID: e.tenant.ID, Login: "boss", Role: store.RoleAdmin},                              // not an address: no mail
		{TenantID: e.tenant.ID, Login: "gone@example.test", Role: store.RoleAdmin, Disabled: true}, // disabled
		{TenantID: e.tenant.ID, Login: "alice@example.test", Role: store.RoleUser},                 // not an administrator
	} {
		if _, err := e.st.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	e.set(store.ScopeTenant, "", continuity.KeyNotify, "oncall@elsewhere.test")
	later := t0.Add(time.Hour)
	enq := func(id, rcpt string) {
		m := store.Message{ID: id, TenantID: e.tenant.ID, Direction: store.Inbound, MailFrom: "s@x.test", BlobKey: id, ReceivedAt: t0}
		if _, err := e.st.Enqueue(ctx, m, []store.Recipient{{Addr: rcpt, State: store.Queued, NextAttempt: later}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	enq("q1", "alice@example.test")
	enq("q2", "someone@elsewhere.test")

	res, err := e.svc.Switch(ctx, e.dom, store.ModeEmergency, "it@example.test", "Microsoft 365 outage")
	if err != nil {
		t.Fatal(err)
	}
	if res.Woken != 1 || res.Created != 2 || res.From != store.ModePrimary || len(res.Warnings) != 0 {
		t.Fatalf("switch: %+v", res)
	}
	if m := e.mode(); m.Mode != store.ModeEmergency || m.ChangedBy != "it@example.test" || m.Reason != "Microsoft 365 outage" || !m.Changed.Equal(t0) {
		t.Fatalf("mode: %+v", m)
	}
	if !e.mb.HasMailbox(e.tenant.ID, "alice@example.test") || !e.mb.HasMailbox(e.tenant.ID, "bob@example.test") {
		t.Fatal("mailboxes not created")
	}
	_, rs, _ := e.st.Message(ctx, e.tenant.ID, "q1")
	if rs[0].NextAttempt.After(t0) {
		t.Fatalf("queued mail of the domain not due: %v", rs[0].NextAttempt)
	}
	_, rs, _ = e.st.Message(ctx, e.tenant.ID, "q2")
	if !rs[0].NextAttempt.Equal(later) {
		t.Fatalf("another domain's mail woken: %v", rs[0].NextAttempt)
	}
	evs := e.events(continuity.EventSwitch)
	if len(evs) != 1 || evs[0].Actor != "it@example.test" || !strings.Contains(evs[0].Detail, "primary → emergency") ||
		!strings.Contains(evs[0].Detail, "Microsoft 365 outage") {
		t.Fatalf("events: %+v", evs)
	}
	ns := e.queue.all()
	if len(ns) != 1 {
		t.Fatalf("notices: %+v", ns)
	}
	n := ns[0]
	if strings.Join(n.Rcpts, ",") != "it@example.test,oncall@elsewhere.test" || n.Msg.MailFrom != "" || n.Msg.Direction != store.DSN ||
		!strings.Contains(n.Body, "To: <it@example.test>,") || !strings.Contains(n.Body, "Auto-Submitted: auto-generated") ||
		!strings.Contains(n.Body, "emergency") {
		t.Fatalf("notice: %+v", n)
	}

	// The same switch again (another administrator, another node) is refused.
	if _, err := e.svc.Switch(ctx, e.dom, store.ModeEmergency, "other", ""); !errors.Is(err, continuity.ErrSameMode) {
		t.Fatalf("second switch: %v", err)
	}
	if len(e.events(continuity.EventSwitch)) != 1 || len(e.queue.all()) != 1 {
		t.Fatal("a refused switch left traces")
	}

	// Back to primary: the hand-back starts (policy default auto, SMTP).
	e.clk.Advance(3 * time.Hour)
	res, err = e.svc.Switch(ctx, e.dom, store.ModePrimary, "it@example.test", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Handback == nil || res.Handback.Path != continuity.PathSMTP || res.Handback.Domain != "example.test" || res.Handback.User != "" {
		t.Fatalf("switch back: %+v", res)
	}
	if len(e.events(continuity.EventHandbackStarted)) != 1 {
		t.Fatal("hand-back start not logged")
	}
	if ns := e.queue.all(); len(ns) != 2 || !strings.Contains(ns[1].Body, "primary") {
		t.Fatalf("notices: %+v", ns)
	}
	// A second start while it runs returns the running job.
	if j, err := e.svc.StartHandback(ctx, e.dom, "alice@example.test", "it"); !errors.Is(err, continuity.ErrHandbackRunning) || j.ID != res.Handback.ID {
		t.Fatalf("second hand-back: %+v %v", j, err)
	}
}

// TestSwitchBackManualHandback: with continuity.handback = manual the
// switch back starts nothing; an API path without credentials cannot
// start.
func TestSwitchBackManualHandback(t *testing.T) {
	e := newEnv(t)
	e.set(store.ScopeDomain, "example.test", continuity.KeyHandback, "manual")
	if _, err := e.svc.Switch(e.ctx, e.dom, store.ModeEmergency, "it", ""); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Switch(e.ctx, e.dom, store.ModePrimary, "it", "")
	if err != nil || res.Handback != nil {
		t.Fatalf("switch back: %+v %v", res, err)
	}
	e.set(store.ScopeDomain, "example.test", continuity.KeyHandbackPath, continuity.PathGraph)
	if _, err := e.svc.StartHandback(e.ctx, e.dom, "", "it"); !errors.Is(err, continuity.ErrNoCredentials) {
		t.Fatalf("graph hand-back without credentials: %v", err)
	}
	if _, err := e.svc.Switch(e.ctx, e.dom, "broken", "it", ""); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

// TestSwitchWithoutMailboxStore: the switch stands when the node has no
// mailbox store; mail then waits in the queue, and the warning says so.
func TestSwitchWithoutMailboxStore(t *testing.T) {
	e := newEnv(t)
	e.svc.Mailboxes = nil
	res, err := e.svc.Switch(e.ctx, e.dom, store.ModeEmergency, "it", "")
	if err != nil || e.mode().Mode != store.ModeEmergency || len(res.Warnings) != 1 {
		t.Fatalf("switch: %+v %v", res, err)
	}
	if len(e.events(continuity.EventWarning)) != 1 {
		t.Fatal("warning not logged")
	}
}

// TestSwitchHosted: mode mailbox (a hosted domain) is entered from primary
// like emergency, with the users' mailboxes made; leaving it for primary
// starts no hand-back (the mail lives in the mailboxes for good), and the
// notices say which switch it was.
func TestSwitchHosted(t *testing.T) {
	e := newEnv(t)
	if _, err := e.st.CreateAccount(e.ctx, store.Account{TenantID: e.tenant.ID, Login: "it@example.test", Role: store.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Switch(e.ctx, e.dom, store.ModeMailbox, "it", "hosted plan")
	if err != nil || res.From != store.ModePrimary || res.To != store.ModeMailbox || res.Created != 2 {
		t.Fatalf("to mailbox: %+v %v", res, err)
	}
	if m := e.mode(); m.Mode != store.ModeMailbox || !e.mb.HasMailbox(e.tenant.ID, "alice@example.test") {
		t.Fatalf("mode %+v", m)
	}
	if _, err := e.svc.Switch(e.ctx, e.dom, store.ModeEmergency, "it", ""); !errors.Is(err, continuity.ErrSameMode) {
		t.Fatalf("emergency from mailbox: %v", err)
	}
	res, err = e.svc.Switch(e.ctx, e.dom, store.ModePrimary, "it", "")
	if err != nil || res.From != store.ModeMailbox || res.Handback != nil || e.mode().Mode != store.ModePrimary {
		t.Fatalf("back to primary: %+v %v", res, err)
	}
	if n := len(e.events(continuity.EventHandbackStarted)); n != 0 {
		t.Fatalf("%d hand-backs started", n)
	}
	if _, err := e.svc.Switch(e.ctx, e.dom, store.ModePrimary, "it", ""); !errors.Is(err, continuity.ErrSameMode) {
		t.Fatalf("primary twice: %v", err)
	}
	ns := e.queue.all()
	if len(ns) != 2 || !strings.Contains(ns[0].Body, "for good") {
		t.Fatalf("notices: %+v", ns)
	}
}
