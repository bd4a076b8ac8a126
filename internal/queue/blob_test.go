package queue_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/blobtest"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/queue"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// A queued message whose blob was damaged after it was accepted (a bit
// flipped on disk) is held as corrupt before any byte goes out: nothing is
// delivered, and the blob is moved aside, not deleted.
func TestDamagedBlobIsHeldNotDelivered(t *testing.T) {
	t.Parallel()
	n, clk := startQueued(t)
	ctx := context.Background()
	n.Down.FailWith(451)
	id := send(t, n, "sender@example.net", []string{"alice@example.test"}, "invoice")
	waitAttempts(t, n, id, 1)
	m, _, err := n.Store.Message(ctx, n.Tenant.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(n.Dir, "spool", filepath.FromSlash(m.BlobKey))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n.Down.FailWith(0)
	clk.Advance(time.Hour)
	n.Queue.ClaimDue(ctx)
	mgtest.WaitFor(t, 10*time.Second, "message held", func() bool { return recipients(t, n, id)[0].State == store.Held })
	if c := n.Down.Count(); c != 0 {
		t.Fatalf("%d messages delivered from a damaged blob", c)
	}
	evs, err := n.Store.Events(ctx, n.Tenant.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		found = found || e.Kind == "corrupt" && strings.Contains(e.Detail, "blob damaged") && strings.Contains(e.Detail, "moved to")
	}
	if !found {
		t.Fatalf("no corrupt event naming the damage: %+v", evs)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "spool-corrupt", filepath.FromSlash(m.BlobKey))); err != nil {
		t.Fatalf("damaged blob not kept aside: %v", err)
	}
}

// countingQueue is a queue of one worker over n's spool, counting the
// spool's reads, delivering to a recordingDeliverer; not started.
func countingQueue(t *testing.T) (*mgtest.Node, *blobtest.Counting, *recordingDeliverer, *queue.Queue) {
	clk := clock.NewFake(t0)
	n := mgtest.Start(t, mgtest.Options{Clock: clk, NoStart: true, NoChecks: true})
	cfg := config.Default().Queue
	cfg.Workers, cfg.Jitter, cfg.PollInterval = 1, 0, config.D(time.Hour)
	spool := blobtest.NewCounting(n.Spool)
	d := &recordingDeliverer{}
	q := queue.New(queue.Deps{Store: n.Store, Spool: spool, Deliver: d, Router: oneTarget{}, Clock: clk,
		Config: cfg, Node: "node-a", Hostname: "mx.mailgate.test"})
	return n, spool, d, q
}

// A small message is read from the spool once per attempt: the bytes
// whose checksum was verified are the bytes delivered, with the message's
// prefix in front.
func TestSmallMessageReadOncePerAttempt(t *testing.T) {
	t.Parallel()
	n, spool, d, q := countingQueue(t)
	ctx := context.Background()
	body := "Subject: x\r\n\r\n" + strings.Repeat("a line of the body\r\n", 500)
	key, size, err := blob.Put(ctx, n.Spool, "small-msg", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	m := store.Message{ID: "small-msg", TenantID: n.Tenant.ID, Direction: store.Outbound, MailFrom: "s@example.net",
		BlobKey: key, Size: size + 12, Prefix: "X-Prefix: 1\r\n", ReceivedAt: t0}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Stop(context.Background()) })
	if err := q.Enqueue(ctx, m, []store.Recipient{{Addr: "alice@example.test", State: store.Queued}}, nil); err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "message delivered", func() bool {
		return recipients(t, n, m.ID)[0].State == store.Delivered
	})
	if got := d.body(); got != m.Prefix+body {
		t.Fatalf("delivered %d bytes, want the prefix and the blob (%d bytes)", len(got), len(m.Prefix+body))
	}
	if c := spool.Opens(key); c != 1 {
		t.Fatalf("blob opened %d times for one attempt, want 1", c)
	}
}

// recordingDeliverer accepts everything and keeps the last body sent.
type recordingDeliverer struct {
	mu   sync.Mutex
	last string
}

func (d *recordingDeliverer) Deliver(_ context.Context, _ []delivery.Target, req delivery.Request) []delivery.Result {
	out := make([]delivery.Result, len(req.Rcpts))
	for i, r := range req.Rcpts {
		out[i] = delivery.Result{Rcpt: r, Code: 250, Enhanced: "2.0.0", Remote: "next.hop.test"}
	}
	rc, err := req.Body()
	if err != nil {
		for i := range out {
			out[i] = delivery.Result{Rcpt: req.Rcpts[i], Enhanced: "4.3.0", Text: err.Error()}
		}
		return out
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	d.mu.Lock()
	d.last = string(b)
	d.mu.Unlock()
	return out
}

func (d *recordingDeliverer) body() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// A message whose bytes its writer handed over (Remember) is delivered
// from them on its first attempt, without opening the spool; bytes that
// do not fit the message's size are not used.
func TestRememberedBodyDeliveredWithoutReadingTheSpool(t *testing.T) {
	t.Parallel()
	n, spool, d, q := countingQueue(t)
	ctx := context.Background()
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Stop(context.Background()) })
	for _, c := range []struct {
		id, remembered string
		opens          int
	}{
		{"kept", "Subject: x\r\n\r\n" + strings.Repeat("a line of the body\r\n", 500), 0},
		{"short", "Subject: x\r\n\r\n", 1},
	} {
		body := "Subject: x\r\n\r\n" + strings.Repeat("a line of the body\r\n", 500)
		key, size, err := blob.Put(ctx, n.Spool, c.id, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		m := store.Message{ID: c.id, TenantID: n.Tenant.ID, Direction: store.Outbound, MailFrom: "s@example.net",
			BlobKey: key, Size: size + 13, Prefix: "X-Prefix: 1\r\n", ReceivedAt: t0}
		q.Remember(key, []byte(c.remembered))
		if err := q.Enqueue(ctx, m, []store.Recipient{{Addr: "alice@example.test", State: store.Queued}}, nil); err != nil {
			t.Fatal(err)
		}
		mgtest.WaitFor(t, 10*time.Second, "message delivered", func() bool {
			return recipients(t, n, m.ID)[0].State == store.Delivered
		})
		if got := d.body(); got != m.Prefix+body {
			t.Fatalf("%s: delivered %q..., want the prefix and the blob", c.id, got[:min(len(got), 40)])
		}
		if o := spool.Opens(key); o != c.opens {
			t.Fatalf("%s: blob opened %d times, want %d", c.id, o, c.opens)
		}
	}
}
