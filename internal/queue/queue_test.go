package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dsn"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// startQueued returns a node whose poller never fires on its own: the test
// moves the fake clock and calls ClaimDue, so every attempt is accounted for.
func startQueued(t *testing.T) (*mgtest.Node, *clock.Fake) {
	clk := clock.NewFake(t0)
	n := mgtest.Start(t, mgtest.Options{Clock: clk, NoChecks: true, Config: func(c *config.Config) {
		c.Queue.PollInterval = config.D(time.Hour)
	}})
	return n, clk
}

func send(t *testing.T, n *mgtest.Node, from string, to []string, subject string) string {
	t.Helper()
	c, err := smtp.Dial(n.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(from, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: %s\r\nSubject: %s\r\n\r\nbody\r\n", from, subject)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusText[strings.LastIndex(resp.StatusText, " ")+1:]
}

func recipients(t *testing.T, n *mgtest.Node, id string) []store.Recipient {
	t.Helper()
	_, rs, err := n.Store.Message(context.Background(), 0, id)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// attempts waits until the message's first recipient has made want attempts.
func waitAttempts(t *testing.T, n *mgtest.Node, id string, want int) store.Recipient {
	t.Helper()
	var r store.Recipient
	mgtest.WaitFor(t, 10*time.Second, fmt.Sprintf("attempt %d of %s", want, id), func() bool {
		r = recipients(t, n, id)[0]
		return r.Attempts >= want && r.LeaseOwner == ""
	})
	if r.Attempts != want {
		t.Fatalf("attempts = %d, want %d", r.Attempts, want)
	}
	return r
}

// waitNoticesRecorded waits until every notice queued about message id
// has its outcome recorded: no recipient of it still queued under a lease.
func waitNoticesRecorded(t *testing.T, n *mgtest.Node, id string) {
	t.Helper()
	evs, err := n.Store.Events(context.Background(), 0, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		_, notice, ok := strings.Cut(e.Detail, " queued as ")
		if e.Kind != "dsn" || !ok {
			continue
		}
		mgtest.WaitFor(t, 10*time.Second, "outcome of notice "+notice, func() bool {
			_, rs, err := n.Store.Message(context.Background(), 0, notice)
			if errors.Is(err, store.ErrNotFound) {
				return true
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.State == store.Queued && r.LeaseOwner != "" {
					return false
				}
			}
			return true
		})
	}
}

func dsns(t *testing.T, n *mgtest.Node) []*dsn.Parsed {
	t.Helper()
	var out []*dsn.Parsed
	for _, m := range n.Internet.Messages() {
		if m.From != "" {
			continue
		}
		p, err := dsn.Parse(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatalf("DSN does not parse: %v\n%s", err, m.Data)
		}
		out = append(out, p)
	}
	return out
}

// TestSecondaryMXSchedule follows one message through a week-long outage of
// the downstream server: an attempt every 30 minutes, exactly one delay
// notice after 4 hours, and a bounce after 7 days.
func TestSecondaryMXSchedule(t *testing.T) {
	t.Parallel()
	n, clk := startQueued(t)
	ctx := context.Background()
	n.Down.FailWith(451)
	id := send(t, n, "sender@example.net", []string{"alice@example.test"}, "outage")
	r := waitAttempts(t, n, id, 1)
	if want := t0.Add(30 * time.Minute); !r.NextAttempt.Equal(want) {
		t.Fatalf("next attempt %v, want %v", r.NextAttempt, want)
	}
	attempts := 1
	for {
		// Not due a minute early.
		clk.Advance(29 * time.Minute)
		if got, err := n.Queue.ClaimDue(ctx); err != nil || got != 0 {
			t.Fatalf("at %v: claimed %d jobs (err %v) before the retry time", clk.Now().Sub(t0), got, err)
		}
		clk.Advance(time.Minute)
		got, err := n.Queue.ClaimDue(ctx)
		if err != nil || got != 1 {
			t.Fatalf("at %v: claimed %d jobs (err %v), want 1", clk.Now().Sub(t0), got, err)
		}
		attempts++
		mgtest.WaitFor(t, 10*time.Second, "attempt recorded", func() bool {
			rs := recipients(t, n, id)
			return rs[0].LeaseOwner == "" && (rs[0].Attempts == attempts)
		})
		age := clk.Now().Sub(t0)
		ds := dsns(t, n)
		switch {
		case age < 4*time.Hour:
			if len(ds) != 0 {
				t.Fatalf("DSN before 4 hours (at %v)", age)
			}
		case age < 7*24*time.Hour:
			mgtest.WaitFor(t, 10*time.Second, "delay notice delivered", func() bool { return len(dsns(t, n)) >= 1 })
			// The server having the notice does not mean the queue has
			// recorded it: until then its lease, taken at this time, would
			// have run out by the next step and the notice be claimed again.
			waitNoticesRecorded(t, n, id)
			ds = dsns(t, n)
			if len(ds) != 1 || ds[0].Kind != dsn.Delay {
				t.Fatalf("at %v: want exactly one delay notice, have %d", age, len(ds))
			}
		}
		if recipients(t, n, id)[0].State != store.Queued {
			break
		}
		if attempts > 400 {
			t.Fatal("never bounced")
		}
	}
	age := clk.Now().Sub(t0)
	if age != 7*24*time.Hour {
		t.Fatalf("bounced at %v, want 7 days", age)
	}
	if want := 7*24*2 + 1; attempts != want {
		t.Fatalf("%d attempts, want %d", attempts, want)
	}
	// The bounce is queued with the outcome and delivered after it.
	mgtest.WaitFor(t, 10*time.Second, "failure DSN delivered", func() bool { return len(dsns(t, n)) >= 2 })
	ds := dsns(t, n)
	if len(ds) != 2 || ds[0].Kind != dsn.Delay || ds[1].Kind != dsn.Failure {
		t.Fatalf("DSNs %v", ds)
	}
	f := ds[1]
	if len(f.Recipients) != 1 || f.Recipients[0].FinalRecipient != "alice@example.test" || f.Recipients[0].Status != "4.4.7" && !strings.HasPrefix(f.Recipients[0].Status, "4.") {
		t.Fatalf("failure DSN recipients %+v", f.Recipients)
	}
	for _, m := range n.Internet.Messages() {
		if m.From == "" && (len(m.To) != 1 || m.To[0] != "sender@example.net") {
			t.Fatalf("DSN sent to %v", m.To)
		}
	}
	// The bounce DSN is itself in the tracking log.
	evs, _ := n.Store.Events(ctx, 0, id)
	var dsnEvents int
	for _, e := range evs {
		if e.Kind == "dsn" {
			dsnEvents++
		}
	}
	if dsnEvents != 2 {
		t.Fatalf("tracking shows %d DSN events, want 2", dsnEvents)
	}
}

func TestBacklogDrainsWhenServerReturns(t *testing.T) {
	t.Parallel()
	n, clk := startQueued(t)
	ctx := context.Background()
	n.Down.FailWith(421)
	var ids []string
	for i := 0; i < 20; i++ {
		ids = append(ids, send(t, n, "sender@example.net", []string{"alice@example.test", "bob@example.test"}, fmt.Sprintf("m%d", i)))
	}
	for _, id := range ids {
		waitAttempts(t, n, id, 1)
	}
	if n.Down.Count() != 0 {
		t.Fatal("delivered while down")
	}
	n.Down.FailWith(0)
	clk.Advance(30 * time.Minute)
	if _, err := n.Queue.ClaimDue(ctx); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 20*time.Second, "backlog drained", func() bool {
		es, err := n.Store.ListQueue(ctx, store.QueueFilter{})
		return err == nil && len(es) == 0
	})
	if c := n.Down.Count(); c != 20 {
		t.Fatalf("%d messages delivered after the outage, want 20", c)
	}
}

func TestFlushDeliversAtOnce(t *testing.T) {
	t.Parallel()
	n, _ := startQueued(t)
	ctx := context.Background()
	n.Down.FailWith(451)
	id := send(t, n, "sender@example.net", []string{"alice@example.test"}, "flush")
	waitAttempts(t, n, id, 1)
	n.Down.FailWith(0)
	if got, _ := n.Queue.ClaimDue(ctx); got != 0 {
		t.Fatal("due before flush")
	}
	if k, err := n.Queue.Flush(ctx, 0, "test"); err != nil || k != 1 {
		t.Fatalf("flush: %d %v", k, err)
	}
	if got, _ := n.Queue.ClaimDue(ctx); got != 1 {
		t.Fatal("flush did not make the message due")
	}
	mgtest.WaitFor(t, 10*time.Second, "delivery after flush", func() bool { return n.Down.Count() == 1 })
}

func TestPermanentFailureBouncesThatRecipientOnly(t *testing.T) {
	t.Parallel()
	n, _ := startQueued(t)
	n.Down.RejectRcpt("bob@example.test")
	id := send(t, n, "sender@example.net", []string{"alice@example.test", "bob@example.test"}, "partial")
	mgtest.WaitFor(t, 10*time.Second, "both recipients final", func() bool {
		rs := recipients(t, n, id)
		return rs[0].State.Final() && rs[1].State.Final()
	})
	rs := recipients(t, n, id)
	if rs[0].State != store.Delivered || rs[1].State != store.Bounced {
		t.Fatalf("states %s %s", rs[0].State, rs[1].State)
	}
	if !strings.Contains(rs[1].LastReply, "550 5.1.1") {
		t.Fatalf("remote reply not recorded: %q", rs[1].LastReply)
	}
	mgtest.WaitFor(t, 10*time.Second, "failure DSN", func() bool { return len(dsns(t, n)) == 1 })
	d := dsns(t, n)[0]
	if d.Kind != dsn.Failure || len(d.Recipients) != 1 || d.Recipients[0].FinalRecipient != "bob@example.test" || d.Recipients[0].Status != "5.1.1" {
		t.Fatalf("DSN %+v", d.Recipients)
	}
	if !strings.Contains(d.Recipients[0].DiagnosticCode, "no such user here") {
		t.Fatalf("diagnostic %q", d.Recipients[0].DiagnosticCode)
	}
}

func TestNoDSNForNullSender(t *testing.T) {
	t.Parallel()
	n, _ := startQueued(t)
	n.Down.RejectRcpt("bob@example.test")
	id := send(t, n, "", []string{"bob@example.test"}, "bounce of a bounce")
	mgtest.WaitFor(t, 10*time.Second, "bounced", func() bool { return recipients(t, n, id)[0].State == store.Bounced })
	time.Sleep(100 * time.Millisecond)
	if c := n.Internet.Count(); c != 0 {
		t.Fatalf("%d messages sent about a null-sender message", c)
	}
}

func TestOperatorActions(t *testing.T) {
	t.Parallel()
	n, clk := startQueued(t)
	ctx := context.Background()
	n.Down.FailWith(451)
	a := send(t, n, "sender@example.net", []string{"alice@example.test"}, "hold me")
	b := send(t, n, "sender@example.net", []string{"alice@example.test"}, "delete me")
	c := send(t, n, "sender@example.net", []string{"alice@example.test"}, "bounce me")
	for _, id := range []string{a, b, c} {
		waitAttempts(t, n, id, 1)
	}
	if k, err := n.Queue.Hold(ctx, 0, a, "op"); err != nil || k != 1 {
		t.Fatalf("hold %d %v", k, err)
	}
	if k, err := n.Queue.Delete(ctx, n.Tenant.ID, b, "op"); err != nil || k != 1 {
		t.Fatalf("delete %d %v", k, err)
	}
	if k, err := n.Queue.Bounce(ctx, n.Tenant.ID, c, "op"); err != nil || k != 1 {
		t.Fatalf("bounce %d %v", k, err)
	}
	// Another tenant's ID space is not reachable.
	if k, _ := n.Queue.Hold(ctx, n.Tenant.ID+99, a, "op"); k != 0 {
		t.Fatal("hold across tenants")
	}
	// The bounce DSN is handed to this node's workers at once, leased for
	// queue.lease. It must be out before the clock jumps past that lease,
	// or ClaimDue takes it over from the attempt still under way and it
	// goes out twice.
	mgtest.WaitFor(t, 10*time.Second, "bounce DSN", func() bool { return len(dsns(t, n)) == 1 })
	n.Down.FailWith(0)
	clk.Advance(time.Hour)
	n.Queue.ClaimDue(ctx)
	// Only the bounce DSN went out; the held and deleted messages do not move.
	mgtest.WaitFor(t, 10*time.Second, "one bounce DSN", func() bool { return len(dsns(t, n)) == 1 })
	if n.Down.Count() != 0 {
		t.Fatal("held or deleted message delivered")
	}
	if rs := recipients(t, n, a); rs[0].State != store.Held {
		t.Fatalf("held message state %s", rs[0].State)
	}
	if rs := recipients(t, n, b); rs[0].State != store.Deleted {
		t.Fatalf("deleted message state %s", rs[0].State)
	}
	if mb, _, err := n.Store.Message(ctx, n.Tenant.ID, b); err != nil {
		t.Fatal(err)
	} else if _, err := n.Spool.Open(ctx, mb.BlobKey); err == nil {
		t.Fatal("deleted message's blob kept")
	}
	if k, err := n.Queue.Release(ctx, 0, a, "op"); err != nil || k != 1 {
		t.Fatalf("release %d %v", k, err)
	}
	n.Queue.ClaimDue(ctx)
	mgtest.WaitFor(t, 10*time.Second, "released message delivered", func() bool {
		rs := recipients(t, n, a)
		return n.Down.Count() == 1 && rs[0].State == store.Delivered
	})
	evs, _ := n.Store.Events(ctx, 0, a)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if got := strings.Join(kinds, ","); got != "received,deferred,held,released,delivered" {
		t.Fatalf("tracking %s", got)
	}
}
