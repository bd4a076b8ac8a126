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

// panicOnce panics in its first delivery and delivers everything after.
type panicOnce struct {
	mu        sync.Mutex
	calls     int
	delivered []string
}

func (d *panicOnce) Deliver(ctx context.Context, _ []delivery.Target, req delivery.Request) []delivery.Result {
	d.mu.Lock()
	d.calls++
	first := d.calls == 1
	if !first {
		d.delivered = append(d.delivered, req.Rcpts...)
	}
	d.mu.Unlock()
	if first {
		var m map[string]int
		m["boom"]++ // a nil map write: the kind of bug that takes a worker down
	}
	out := make([]delivery.Result, len(req.Rcpts))
	for i, r := range req.Rcpts {
		out[i] = delivery.Result{Rcpt: r, Code: 250, Enhanced: "2.0.0", Remote: "next.hop.test"}
	}
	return out
}

func (d *panicOnce) got() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.delivered...)
}

type oneTarget struct{}

func (oneTarget) Targets(context.Context, int64, string) ([]delivery.Target, error) {
	return []delivery.Target{{Host: "next.hop.test", Port: 25, TLS: delivery.TLSNone}}, nil
}

// A panic inside one delivery attempt defers that message by the retry
// schedule (recorded and logged with its stack), releases its lease, and
// leaves the only worker alive for the next message.
func TestPanicInDeliveryDefersAndWorkerLives(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	n := mgtest.Start(t, mgtest.Options{Clock: clk, NoStart: true, NoChecks: true})
	var logs syncbuf.Buffer
	cfg := config.Default().Queue
	cfg.Workers, cfg.Jitter, cfg.PollInterval = 1, 0, config.D(time.Hour)
	d := &panicOnce{}
	q := queue.New(queue.Deps{Store: n.Store, Spool: n.Spool, Deliver: d, Router: oneTarget{}, Clock: clk,
		Log: slog.New(slog.NewTextHandler(&logs, nil)), Config: cfg, Node: "node-a", Hostname: "mx.mailgate.test"})
	ctx := context.Background()
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Stop(context.Background()) })

	submit := func(rcpt string) string {
		id, err := q.Submit(ctx, store.Message{TenantID: n.Tenant.ID, Direction: store.Inbound, MailFrom: "s@example.net"},
			[]string{rcpt}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"), "test")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := submit("alice@example.test")
	var r store.Recipient
	mgtest.WaitFor(t, 10*time.Second, "the panicked attempt recorded", func() bool {
		r = recipients(t, n, first)[0]
		return r.Attempts == 1
	})
	if r.State != store.Queued || r.LeaseOwner != "" || !r.NextAttempt.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("after the panic: state %s lease %q next %v, want queued, no lease, next at +30m", r.State, r.LeaseOwner, r.NextAttempt)
	}
	if !strings.Contains(r.LastReply, "local error") {
		t.Fatalf("last reply %q", r.LastReply)
	}
	evs, err := n.Store.Events(ctx, 0, first)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Kind != "deferred" || !strings.Contains(last.Detail, "next attempt") {
		t.Fatalf("tracking event %+v", last)
	}
	if l := logs.String(); !strings.Contains(l, "delivery attempt panicked") || !strings.Contains(l, "panic_test.go") {
		t.Fatalf("panic not logged with its stack:\n%s", l)
	}

	// The single worker is still there.
	second := submit("bob@example.test")
	mgtest.WaitFor(t, 10*time.Second, "next message delivered", func() bool {
		return recipients(t, n, second)[0].State == store.Delivered
	})
	// And the deferred message goes out at its next attempt.
	clk.Advance(30 * time.Minute)
	if _, err := q.ClaimDue(ctx); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "deferred message delivered", func() bool {
		return recipients(t, n, first)[0].State == store.Delivered
	})
	if got := strings.Join(d.got(), ","); got != "bob@example.test,alice@example.test" {
		t.Fatalf("delivered %s", got)
	}
}
