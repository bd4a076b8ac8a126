package queue_test

import (
	"context"
	"io"
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
	"github.com/mailgate/mailgate/internal/versioned"
)

// memoSeen records the versions memo each attempt's lookups ran under.
type memoSeen struct {
	mu    sync.Mutex
	memos []*versioned.Memo
}

func (l *memoSeen) Take(ctx context.Context, _ store.Message, _ []store.Recipient, _ func() (io.ReadCloser, error)) []queue.Taken {
	l.mu.Lock()
	l.memos = append(l.memos, versioned.MemoOf(ctx))
	l.mu.Unlock()
	return nil
}

func (l *memoSeen) seen() []*versioned.Memo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*versioned.Memo(nil), l.memos...)
}

// failFirst defers the first delivery and accepts every later one.
type failFirst struct {
	mu    sync.Mutex
	calls int
}

func (d *failFirst) Deliver(ctx context.Context, _ []delivery.Target, req delivery.Request) []delivery.Result {
	d.mu.Lock()
	d.calls++
	first := d.calls == 1
	d.mu.Unlock()
	out := make([]delivery.Result, len(req.Rcpts))
	for i, r := range req.Rcpts {
		out[i] = delivery.Result{Rcpt: r, Code: 250, Enhanced: "2.0.0", Remote: "next.hop.test"}
		if first {
			out[i] = delivery.Result{Rcpt: r, Code: 451, Enhanced: "4.3.0", Text: "later", Remote: "next.hop.test"}
		}
	}
	return out
}

// The first attempt, handed to a worker at acceptance, keeps the versions
// the acceptance read (one store read fewer per message); a later attempt,
// claimed from the store, reads them afresh under a memo of its own.
func TestFirstAttemptKeepsTheAcceptancesVersions(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	n := mgtest.Start(t, mgtest.Options{Clock: clk, NoStart: true, NoChecks: true})
	cfg := config.Default().Queue
	cfg.Workers, cfg.Jitter, cfg.PollInterval = 1, 0, config.D(time.Hour)
	lists := &memoSeen{}
	q := queue.New(queue.Deps{Store: n.Store, Spool: n.Spool, Deliver: &failFirst{}, Router: oneTarget{}, Lists: lists, Clock: clk,
		Log: slog.New(slog.DiscardHandler), Config: cfg, Node: "node-a", Hostname: "mx.mailgate.test"})
	ctx := context.Background()
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Stop(context.Background()) })

	accepting := versioned.WithMemo(ctx)
	id, err := q.Submit(accepting, store.Message{TenantID: n.Tenant.ID, Direction: store.Inbound, MailFrom: "s@example.net"},
		[]string{"alice@example.test"}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	waitAttempts(t, n, id, 1)
	clk.Advance(2 * time.Hour)
	if _, err := q.ClaimDue(ctx); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "the second attempt", func() bool {
		return recipients(t, n, id)[0].State == store.Delivered
	})
	seen := lists.seen()
	if len(seen) != 2 {
		t.Fatalf("%d attempts looked up lists, want 2", len(seen))
	}
	if seen[0] != versioned.MemoOf(accepting) {
		t.Errorf("the first attempt ran under memo %p, not the acceptance's %p", seen[0], versioned.MemoOf(accepting))
	}
	if seen[1] == nil || seen[1] == seen[0] {
		t.Errorf("the retry ran under memo %p (first attempt's %p): want a memo of its own", seen[1], seen[0])
	}
}
