package queue_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/queue"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/syncbuf"
)

// gate holds every delivery until the test releases it with a reply code,
// or until the attempt's context ends.
type gate struct {
	entered chan []string
	release chan int
	mu      sync.Mutex
	calls   [][]string
	cut     int // attempts that ended by their context
}

func newGate() *gate { return &gate{entered: make(chan []string, 10), release: make(chan int)} }

func (g *gate) Deliver(ctx context.Context, _ []delivery.Target, req delivery.Request) []delivery.Result {
	g.mu.Lock()
	g.calls = append(g.calls, req.Rcpts)
	g.mu.Unlock()
	g.entered <- req.Rcpts
	code := 451
	select {
	case code = <-g.release:
	case <-ctx.Done():
		g.mu.Lock()
		g.cut++
		g.mu.Unlock()
	}
	out := make([]delivery.Result, len(req.Rcpts))
	for i, r := range req.Rcpts {
		out[i] = delivery.Result{Rcpt: r, Code: code, Enhanced: "5.1.1", Remote: "next.hop.test", Permanent: code >= 500}
		if code < 300 {
			out[i].Enhanced = "2.0.0"
		}
	}
	return out
}

func (g *gate) stats() (calls [][]string, cut int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]string(nil), g.calls...), g.cut
}

type leaseRig struct {
	n    *mgtest.Node
	q    *queue.Queue
	clk  *clock.Fake
	gate *gate
	logs *syncbuf.Buffer
}

// newLeaseRig runs a queue named node-a with workers delivering through
// a gate; the test plays node-b by claiming through the store directly.
func newLeaseRig(t *testing.T, workers int) *leaseRig {
	clk := clock.NewFake(t0)
	n := mgtest.Start(t, mgtest.Options{Clock: clk, NoStart: true, NoChecks: true})
	r := &leaseRig{n: n, clk: clk, gate: newGate(), logs: &syncbuf.Buffer{}}
	cfg := config.Default().Queue
	cfg.Workers, cfg.Jitter, cfg.PollInterval = workers, 0, config.D(time.Hour)
	r.q = queue.New(queue.Deps{Store: n.Store, Spool: n.Spool, Deliver: r.gate, Router: oneTarget{}, Clock: clk,
		Log: slog.New(slog.NewTextHandler(r.logs, nil)), Config: cfg, Node: "node-a", Hostname: "mx.mailgate.test"})
	if err := r.q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(r.gate.release) // lets a held attempt end
		r.q.Stop(context.Background())
	})
	return r
}

func (r *leaseRig) submit(t *testing.T, rcpt string) string {
	t.Helper()
	id, err := r.q.Submit(context.Background(), store.Message{TenantID: r.n.Tenant.ID, Direction: store.Inbound, MailFrom: "s@example.net"},
		[]string{rcpt}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// steal claims every due recipient for node-b once node-a's leases ran out.
func (r *leaseRig) steal(t *testing.T) []store.Job {
	t.Helper()
	now := r.clk.Now()
	jobs, err := r.n.Store.ClaimDue(context.Background(), "node-b", now, now.Add(10*time.Minute), 100)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func (r *leaseRig) waitLog(t *testing.T, s string) {
	t.Helper()
	mgtest.WaitFor(t, 10*time.Second, "log "+s, func() bool { return strings.Contains(r.logs.String(), s) })
}

func kinds(t *testing.T, n *mgtest.Node, id string) string {
	t.Helper()
	evs, err := n.Store.Events(context.Background(), 0, id)
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, e := range evs {
		ks = append(ks, e.Kind)
	}
	return strings.Join(ks, " ")
}

// A worker whose lease ran out and was claimed by another node while it
// delivered records nothing: not the delivery, not the bounce, not the
// DSN; the recipients stay the new holder's.
func TestStolenLeaseOutcomeNotRecorded(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		code int
	}{{"delivered", 250}, {"bounced", 550}} {
		t.Run(c.name, func(t *testing.T) {
			r := newLeaseRig(t, 1)
			id := r.submit(t, "alice@example.test")
			<-r.gate.entered
			r.clk.Advance(11 * time.Minute)
			if jobs := r.steal(t); len(jobs) != 1 || jobs[0].Message.ID != id {
				t.Fatalf("node-b claimed %+v", jobs)
			}
			r.gate.release <- c.code
			r.waitLog(t, "outcome not recorded")
			rc := recipients(t, r.n, id)[0]
			if rc.State != store.Queued || rc.Attempts != 0 || rc.LeaseOwner != "node-b" || rc.LeaseToken != 2 {
				t.Fatalf("recipient after the stale outcome: %+v", rc)
			}
			if k := kinds(t, r.n, id); k != "received" {
				t.Fatalf("events %q", k)
			}
			q, err := r.n.Store.ListQueue(context.Background(), store.QueueFilter{})
			if err != nil || len(q) != 1 {
				t.Fatalf("queue holds %d messages (a DSN of the stale bounce?) %v", len(q), err)
			}
		})
	}
}

// A renewed lease outlives its first expiry: another node finds nothing
// to claim, and the attempt's outcome is recorded.
func TestRenewedLeaseKeepsOwnership(t *testing.T) {
	t.Parallel()
	r := newLeaseRig(t, 1)
	id := r.submit(t, "alice@example.test")
	<-r.gate.entered
	r.clk.Advance(8 * time.Minute)
	if err := r.q.RenewLeases(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(5 * time.Minute) // 13 minutes after the claim
	if jobs := r.steal(t); len(jobs) != 0 {
		t.Fatalf("renewed lease claimed by node-b: %+v", jobs)
	}
	r.gate.release <- 250
	mgtest.WaitFor(t, 10*time.Second, "delivery recorded", func() bool { return recipients(t, r.n, id)[0].State == store.Delivered })
	if rc := recipients(t, r.n, id)[0]; rc.Attempts != 1 || rc.LeaseOwner != "" {
		t.Fatalf("recipient %+v", rc)
	}
}

// A renewal that finds the lease taken over stops the attempt at once.
func TestLostLeaseStopsAttempt(t *testing.T) {
	t.Parallel()
	r := newLeaseRig(t, 1)
	id := r.submit(t, "alice@example.test")
	<-r.gate.entered
	r.clk.Advance(11 * time.Minute)
	r.steal(t)
	if err := r.q.RenewLeases(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.waitLog(t, "outcome not recorded")
	if _, cut := r.gate.stats(); cut != 1 {
		t.Fatalf("%d attempts stopped, want 1", cut)
	}
	if !strings.Contains(r.logs.String(), "attempt stopped: lease lost") {
		t.Fatalf("log:\n%s", r.logs.String())
	}
	if rc := recipients(t, r.n, id)[0]; rc.Attempts != 0 || rc.LeaseOwner != "node-b" {
		t.Fatalf("recipient %+v", rc)
	}
}

// A job that waited in memory behind a long attempt while its lease ran
// out and another node claimed it is not attempted by this node.
func TestJobClaimedElsewhereWhileWaitingIsSkipped(t *testing.T) {
	t.Parallel()
	r := newLeaseRig(t, 1)
	first := r.submit(t, "alice@example.test")
	<-r.gate.entered
	second := r.submit(t, "bob@example.test") // waits for the only worker
	r.clk.Advance(11 * time.Minute)
	got := map[string]bool{}
	for _, j := range r.steal(t) {
		got[j.Message.ID] = true
	}
	if !got[first] || !got[second] {
		t.Fatalf("node-b claimed %v", got)
	}
	r.gate.release <- 250
	r.waitLog(t, "lease lost before the attempt")
	calls, _ := r.gate.stats()
	if len(calls) != 1 || calls[0][0] != "alice@example.test" {
		t.Fatalf("deliveries attempted: %v", calls)
	}
	if rc := recipients(t, r.n, second)[0]; rc.LeaseOwner != "node-b" || rc.Attempts != 0 {
		t.Fatalf("second recipient %+v", rc)
	}
}
