package inbound_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/blobtest"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/inbound"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// The bytes the listener wrote, carried by the request (blob.Written), are
// the ones the checks read: the pipeline does not open the blob for them.
// Without them (a message re-judged from the queue), the blob is read, once.
func TestChecksReadTheWrittenBytes(t *testing.T) {
	dir := t.TempDir()
	st := mgtest.OpenStore(t, dir)
	spool := blobtest.NewCounting(mgtest.OpenBlobs(t, dir, "spool"))
	var mu sync.Mutex
	var seen []string
	read := func(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
		for range 2 { // two checks' worth of reads
			r, err := m.Open()
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				return nil, err
			}
			mu.Lock()
			seen = append(seen, string(b))
			mu.Unlock()
		}
		return nil, nil
	}
	p := &inbound.Pipeline{
		Store: st, Spool: spool, Quarantine: mgtest.OpenBlobs(t, dir, "quarantine"), Queue: &storeQueue{st: st},
		Runner:   &policy.Runner{Stages: stage("reader", read)},
		Hostname: "mx.test", Clock: clock.System{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx := context.Background()
	const msg = "From: s@example.net\r\nSubject: hello\r\n\r\nbody\r\n"
	for _, c := range []struct {
		id        string
		written   bool
		wantOpens int
	}{{"written", true, 0}, {"spooled", false, 1}} {
		key, size, err := blob.Put(ctx, spool, c.id, strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		m := store.Message{ID: c.id, TenantID: 1, Direction: store.Inbound, MailFrom: "s@example.net", BlobKey: key,
			Size: size, ReceivedAt: time.Now(), ClientIP: "192.0.2.1"}
		ectx := ctx
		if c.written {
			ectx = blob.WithWritten(ctx, key, []byte(msg))
		}
		seen = nil
		if err := p.Enqueue(ectx, m, []store.Recipient{{Addr: "alice@example.test", State: store.Queued}}, nil); err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		if o := spool.Opens(key); o != c.wantOpens {
			t.Errorf("%s: blob opened %d times, want %d", c.id, o, c.wantOpens)
		}
		if len(seen) != 2 || seen[0] != msg || seen[1] != msg {
			t.Errorf("%s: checks read %q, want the message twice", c.id, seen)
		}
	}
}
