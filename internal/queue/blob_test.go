package queue_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
