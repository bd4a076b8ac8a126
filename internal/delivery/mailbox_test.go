package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

// fakeMailbox records deliveries; errs makes a recipient's delivery fail.
type fakeMailbox struct {
	mu   sync.Mutex
	got  map[string][]byte // "queueID rcpt" → body
	meta []DeliverMeta
	errs map[string]error
}

func (f *fakeMailbox) Deliver(ctx context.Context, tenantID int64, rcpt string, body io.Reader, meta DeliverMeta) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[rcpt]; err != nil {
		return err
	}
	if f.got == nil {
		f.got = map[string][]byte{}
	}
	f.got[fmt.Sprintf("%d %s %s", tenantID, meta.QueueID, rcpt)] = b
	f.meta = append(f.meta, meta)
	return nil
}

type countingSMTP struct{ calls int }

func (c *countingSMTP) Deliver(ctx context.Context, targets []Target, req Request) []Result {
	c.calls++
	return allResults(req.Rcpts, Result{Code: 250, Enhanced: "2.0.0"})
}

// TestDispatcherMailbox: a mailbox target stores each recipient's copy
// with the queue ID, sender and receipt time; a full mailbox defers with
// 452 4.2.2 (never a bounce), a missing mailbox and a store error defer
// too, without the store's error text; SMTP targets go to SMTP.
func TestDispatcherMailbox(t *testing.T) {
	received := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	mb := &fakeMailbox{errs: map[string]error{
		"full@a.test":    fmt.Errorf("quota of full@a.test: %w", ErrOverQuota),
		"nobox@a.test":   fmt.Errorf("lookup: %w", ErrNoMailbox),
		"broken@a.test":  errors.New("disk /var/secret full"),
		"another@a.test": nil,
	}}
	smtp := &countingSMTP{}
	d := &Dispatcher{SMTP: smtp, Mailbox: mb}
	req := Request{From: "sender@x.test", Rcpts: []string{"ok@a.test", "full@a.test", "nobox@a.test", "broken@a.test"},
		Body: body("Subject: hi\r\n\r\nhello\r\n"), TenantID: 7, MessageID: "q1", Received: received}
	res := d.Deliver(context.Background(), []Target{MailboxTarget}, req)
	want := []struct {
		code     int
		enhanced string
	}{{250, "2.0.0"}, {452, "4.2.2"}, {450, "4.2.1"}, {451, "4.3.0"}}
	for i, w := range want {
		r := res[i]
		if r.Rcpt != req.Rcpts[i] || r.Code != w.code || r.Enhanced != w.enhanced || r.Permanent {
			t.Errorf("%s: %+v, want %d %s temporary", req.Rcpts[i], r, w.code, w.enhanced)
		}
	}
	if got := res[3].Text; got != "temporary local problem storing the message" {
		t.Errorf("store error text leaks into the reply: %q", got)
	}
	if string(mb.got["7 q1 ok@a.test"]) != "Subject: hi\r\n\r\nhello\r\n" || len(mb.got) != 1 {
		t.Fatalf("stored: %q", mb.got)
	}
	if m := mb.meta[0]; m.QueueID != "q1" || m.MailFrom != "sender@x.test" || !m.Received.Equal(received) || !m.Emergency {
		t.Fatalf("meta: %+v", m)
	}
	if smtp.calls != 0 {
		t.Fatal("mailbox delivery went to SMTP")
	}
	// A hosted domain's copy is not emergency mail (never handed back).
	d.Deliver(context.Background(), []Target{HostedTarget}, Request{From: "sender@x.test", Rcpts: []string{"another@a.test"},
		Body: body("x"), TenantID: 7, MessageID: "q2", Received: received})
	if m := mb.meta[len(mb.meta)-1]; m.QueueID != "q2" || m.Emergency {
		t.Fatalf("hosted meta: %+v", m)
	}
	delete(mb.got, "7 q2 another@a.test")
	// Without the queue ID the delivery cannot be idempotent: deferred.
	res = d.Deliver(context.Background(), []Target{MailboxTarget}, Request{Rcpts: []string{"ok@a.test"}, Body: body("x"), TenantID: 7})
	if res[0].Code != 451 || len(mb.got) != 1 {
		t.Fatalf("without queue ID: %+v", res)
	}
	// No mailbox store on the node: deferred.
	res = (&Dispatcher{SMTP: smtp}).Deliver(context.Background(), []Target{MailboxTarget}, req)
	if res[0].Code != 451 || res[0].Permanent {
		t.Fatalf("without a mailbox store: %+v", res[0])
	}
	d.Deliver(context.Background(), []Target{{Host: "127.0.0.1", Port: 25}}, req)
	if smtp.calls != 1 {
		t.Fatal("SMTP target not sent over SMTP")
	}
}

// TestRouterMode: a served domain's mode decides its targets at every
// call; PrimaryTargets always resolves the routes.
func TestRouterMode(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn, _ := st.CreateTenant(ctx, "a")
	d, _ := st.CreateDomain(ctx, tn.ID, "a.test")
	if err := st.SetRoutes(ctx, tn.ID, d.ID, []store.Route{{Priority: 10, Target: "smtp://192.0.2.10:2525", TLS: "required"}}); err != nil {
		t.Fatal(err)
	}
	r := &Router{Store: st, Client: newClient(t, nil, ""), SmartHost: "smtp://192.0.2.20:25"}
	ts, err := r.Targets(ctx, tn.ID, "a.test")
	if err != nil || len(ts) != 1 || ts[0].Mailbox || ts[0].Host != "192.0.2.10" || ts[0].Port != 2525 {
		t.Fatalf("primary: %+v %v", ts, err)
	}
	if ok, err := st.SetDomainMode(ctx, store.DomainMode{TenantID: tn.ID, DomainID: d.ID, Mode: store.ModeEmergency, Changed: time.Now()}, store.ModePrimary); !ok || err != nil {
		t.Fatal(ok, err)
	}
	ts, err = r.Targets(ctx, tn.ID, "a.test")
	if err != nil || len(ts) != 1 || !ts[0].Mailbox {
		t.Fatalf("emergency: %+v %v", ts, err)
	}
	ts, err = r.PrimaryTargets(ctx, "a.test")
	if err != nil || len(ts) != 1 || ts[0].Mailbox || ts[0].Host != "192.0.2.10" {
		t.Fatalf("primary targets in emergency mode: %+v %v", ts, err)
	}
	// A hosted domain (mode mailbox) lives in the mailboxes for good.
	if ok, err := st.SetDomainMode(ctx, store.DomainMode{TenantID: tn.ID, DomainID: d.ID, Mode: store.ModeMailbox, Changed: time.Now()}, store.ModeEmergency); !ok || err != nil {
		t.Fatal(ok, err)
	}
	ts, err = r.Targets(ctx, tn.ID, "a.test")
	if err != nil || len(ts) != 1 || !ts[0].Mailbox || !ts[0].Hosted {
		t.Fatalf("hosted: %+v %v", ts, err)
	}
	// Other domains are not affected.
	ts, err = r.Targets(ctx, tn.ID, "elsewhere.test")
	if err != nil || len(ts) != 1 || ts[0].Mailbox || ts[0].Host != "192.0.2.20" {
		t.Fatalf("unserved domain: %+v %v", ts, err)
	}
	if _, err := r.PrimaryTargets(ctx, "elsewhere.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("primary targets of an unserved domain: %v", err)
	}
}
