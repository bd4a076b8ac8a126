package queue_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/queue"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// pendingReads counts the archive's separate check of a blob.
type pendingReads struct {
	store.Store
	n atomic.Int64
}

func (p *pendingReads) ArchivePendingBlob(ctx context.Context, key string) (bool, error) {
	p.n.Add(1)
	return p.Store.ArchivePendingBlob(ctx, key)
}

// A delivered message's blob is removed, or left to the archiver when the
// tenant archives it, as the transaction that finished the message found:
// the archive is not asked again for each message. Archiving switched on
// through the store applies from the next message on.
func TestDeliveredBlobLeftToTheArchiveWithoutAnotherRead(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(t0)
	n := mgtest.Start(t, mgtest.Options{Clock: clk, NoStart: true, NoChecks: true})
	ctx := context.Background()
	cfg := config.Default().Queue
	cfg.Workers, cfg.Jitter, cfg.PollInterval = 1, 0, config.D(time.Hour)
	pending := &pendingReads{Store: n.Store}
	q := queue.New(queue.Deps{Store: n.Store, Spool: archive.Guard{Store: n.Spool, Pending: pending}, Deliver: &recordingDeliverer{},
		Router: oneTarget{}, Clock: clk, Config: cfg, Node: "node-a", Hostname: "mx.mailgate.test"})
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Stop(context.Background()) })
	deliver := func(id string) string {
		t.Helper()
		key, size, err := blob.Put(ctx, n.Spool, id, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		m := store.Message{ID: id, TenantID: n.Tenant.ID, Direction: store.Outbound, MailFrom: "s@example.test",
			BlobKey: key, Size: size, ReceivedAt: t0, ClientIP: "192.0.2.1"}
		if err := q.Enqueue(ctx, m, []store.Recipient{{Addr: "partner@dest.test", State: store.Queued}}, nil); err != nil {
			t.Fatal(err)
		}
		mgtest.WaitFor(t, 10*time.Second, id+" delivered", func() bool {
			if recipients(t, n, id)[0].State != store.Delivered {
				return false
			}
			mm, _, err := n.Store.Message(ctx, n.Tenant.ID, id)
			return err == nil && mm.Done
		})
		return key
	}
	blobGone := func(key string) bool {
		_, err := n.Spool.Open(ctx, key)
		return err != nil
	}
	key := deliver("not-archived")
	mgtest.WaitFor(t, 10*time.Second, "blob removed", func() bool { return blobGone(key) })
	if err := n.Store.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: n.Tenant.ID, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	key = deliver("archived")
	// Stopping waits for the worker to finish the attempt, its removal of
	// the blob included.
	if err := q.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if blobGone(key) {
		t.Fatal("the blob of a message waiting to be archived was removed")
	}
	if c := pending.n.Load(); c != 0 {
		t.Fatalf("the archive was asked %d times about delivered blobs, want none", c)
	}
}
