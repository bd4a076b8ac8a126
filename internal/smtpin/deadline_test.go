package smtpin_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store/sqlite"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// probe is a check that reports what its context looked like and, when
// block is set, waits for its context to end.
type probe struct {
	block   bool
	started chan struct{}

	mu        sync.Mutex
	remaining time.Duration // time left before the deadline when the check started
	ended     error         // ctx.Err() once the blocked check was released
}

func newProbe(block bool) *probe { return &probe{block: block, started: make(chan struct{}, 10)} }

func (p *probe) Name() string { return "probe" }

func (p *probe) Check(ctx context.Context, _ *policy.Message, _ policy.Settings) ([]policy.Finding, error) {
	dl, ok := ctx.Deadline()
	p.mu.Lock()
	if ok {
		p.remaining = time.Until(dl)
	}
	p.mu.Unlock()
	p.started <- struct{}{}
	if !p.block {
		return nil, nil
	}
	<-ctx.Done()
	p.mu.Lock()
	p.ended = ctx.Err()
	p.mu.Unlock()
	return nil, ctx.Err()
}

func (p *probe) state() (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remaining, p.ended
}

func sendOne(t *testing.T, r *raw) int {
	t.Helper()
	r.expect("MAIL FROM:<s@example.net>", 250)
	r.expect("RCPT TO:<alice@example.test>", 250)
	r.expect("DATA", 354)
	r.send("From: s@example.net\r\nSubject: deadline\r\n\r\nbody\r\n.\r\n")
	return r.reply()
}

// A check is given the deadline configured for it, not a shorter
// pipeline-wide one: with av_timeout at 90 s the anti-virus stage gets
// 95 s, and the budget of all checks follows.
func TestCheckDeadlineFromConfiguration(t *testing.T) {
	t.Parallel()
	p := newProbe(false)
	var budget time.Duration
	n := mgtest.Start(t, mgtest.Options{
		Config: func(c *config.Config) {
			c.Checks.AVTimeout = config.D(90 * time.Second)
			budget = c.Checks.ScanBudget()
		},
		Stages: []policy.Stage{{Check: p, Timeout: 95 * time.Second}},
	})
	if budget != 95*time.Second {
		t.Fatalf("derived budget %v, want the av deadline 95s", budget)
	}
	r := greet(t, n.InboundAddr())
	if c := sendOne(t, r); c != 250 {
		t.Fatalf("DATA: %d %s", c, r.last)
	}
	if rem, _ := p.state(); rem < 90*time.Second {
		t.Fatalf("the check had %v left, want its configured 95s", rem)
	}
}

// A check that uses up the whole budget still leaves time to keep the
// message: the commit has a deadline of its own.
func TestCommitAfterTheBudgetIsUsedUp(t *testing.T) {
	t.Parallel()
	p := newProbe(true)
	n := mgtest.Start(t, mgtest.Options{
		Config: func(c *config.Config) {
			c.Checks.Enabled = []string{"lists"}
			c.Checks.Timeout = config.D(100 * time.Millisecond)
			c.Checks.Budget = config.D(300 * time.Millisecond)
		},
		// The stage's own deadline is far away: only the budget stops it.
		Stages: []policy.Stage{{Check: p, Timeout: time.Hour, OnError: policy.Header}},
	})
	r := greet(t, n.InboundAddr())
	if c := sendOne(t, r); c != 250 {
		t.Fatalf("DATA after the budget ran out: %d %s, want 250", c, r.last)
	}
	if _, err := p.state(); err != context.DeadlineExceeded {
		t.Fatalf("check ended with %v, want the budget's deadline", err)
	}
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return n.Down.Count() == 1 })
	if b := string(n.Down.Messages()[0].Data); !strings.Contains(b, "X-Mailgate-Unchecked: probe") {
		t.Fatalf("unchecked message not marked:\n%s", b)
	}
}

// The checks of a message run on the connection's context: a shutdown
// that closes the connection stops them at once, and nothing is kept for
// a client that got no 250.
func TestShutdownStopsTheChecks(t *testing.T) {
	t.Parallel()
	p := newProbe(true)
	n := mgtest.Start(t, mgtest.Options{Stages: []policy.Stage{{Check: p, Timeout: time.Hour}}})
	r := greet(t, n.InboundAddr())
	r.expect("MAIL FROM:<s@example.net>", 250)
	r.expect("RCPT TO:<alice@example.test>", 250)
	r.expect("DATA", 354)
	r.send("From: s@example.net\r\nSubject: shutdown\r\n\r\nbody\r\n.\r\n")
	<-p.started
	now, cancel := context.WithCancel(context.Background())
	cancel() // no grace: say 421 and close at once
	n.Shutdown(now)
	mgtest.WaitFor(t, 10*time.Second, "the check to be cancelled", func() bool {
		_, err := p.state()
		return err != nil
	})
	if _, err := p.state(); err != context.Canceled {
		t.Fatalf("check ended with %v, want cancelled", err)
	}
	if c := r.reply(); c != 421 {
		t.Fatalf("client got %d %s, want 421", c, r.last)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(n.Dir, "mailgate.db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms, err := st.FindMessages(context.Background(), 0, "", 10)
	if err != nil || len(ms) != 0 {
		t.Fatalf("%d messages kept after the shutdown (err %v), want none", len(ms), err)
	}
}
