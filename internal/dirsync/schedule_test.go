package dirsync_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/dirsync"
	"github.com/mailgate/mailgate/internal/store"
)

// TestDue: of two nodes looking for due directories at the same time, one
// synchronises each directory; a directory is due again an interval
// later; domains checked otherwise are never synchronised.
func TestDue(t *testing.T) {
	e := newEnv(t)
	other, err := e.st.CreateDomain(e.ctx, e.tenant.ID, "callout.test")
	e.must(err)
	e.must(e.st.SetRecipientCheck(e.ctx, store.RecipientCheck{TenantID: e.tenant.ID, DomainID: e.dom.ID, Mode: store.RcptCheckDirectory, Source: store.DirectoryGraph}))
	e.must(e.st.SetRecipientCheck(e.ctx, store.RecipientCheck{TenantID: e.tenant.ID, DomainID: other.ID, Mode: store.RcptCheckCallout}))
	var mu sync.Mutex
	var synced []string
	run := func(ctx context.Context, d store.Domain) error {
		mu.Lock()
		synced = append(synced, d.Name)
		mu.Unlock()
		return nil
	}
	tick := func(at time.Time) int {
		var wg sync.WaitGroup
		total := 0
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := dirsync.Due(e.ctx, e.st, at, time.Hour, run)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		return total
	}
	if n := tick(t0); n != 1 || len(synced) != 1 || synced[0] != "example.test" {
		t.Fatalf("first tick: %d %v", n, synced)
	}
	if n := tick(t0.Add(30 * time.Minute)); n != 0 {
		t.Fatalf("not due yet: %d", n)
	}
	if n := tick(t0.Add(time.Hour)); n != 1 || len(synced) != 2 {
		t.Fatalf("an hour later: %d %v", n, synced)
	}
}
