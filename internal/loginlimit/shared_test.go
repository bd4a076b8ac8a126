package loginlimit

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/sqlite"
)

// Shared keeps Memory's rules (burst, one back every Every, refunds) in
// the store, so two limiters on one store are one limiter.
func TestSharedIsOneLimiterAcrossNodes(t *testing.T) {
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, b := NewShared(db, Options{}, nil), NewShared(db, Options{}, nil)
	for i := range DefaultBurst {
		l := a
		if i%2 == 1 {
			l = b
		}
		if ok, _ := l.Take(ctx, t0, IPKey("192.0.2.1"), LoginKey("Alice")); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if ok, wait := b.Take(ctx, t0, IPKey("192.0.2.1"), LoginKey("alice")); ok || wait != DefaultEvery {
		t.Fatalf("sixth attempt on the other node: %v %v", ok, wait)
	}
	a.Refund(ctx, t0, IPKey("192.0.2.1"), LoginKey("alice"))
	if ok, _ := b.Take(ctx, t0, IPKey("192.0.2.1"), LoginKey("alice")); !ok {
		t.Fatal("refund on one node not seen by the other")
	}
}

type brokenStore struct{ store.ThrottleStore }

func (brokenStore) ThrottleTake(context.Context, time.Time, store.Rate, []string) (bool, time.Duration, error) {
	return false, 0, errors.New("connection refused")
}

// A store that cannot be reached refuses the attempt.
func TestSharedFailsClosed(t *testing.T) {
	if ok, wait := NewShared(brokenStore{}, Options{}, nil).Take(ctx, t0, "login:alice"); ok || wait != DefaultEvery {
		t.Fatalf("%v %v", ok, wait)
	}
}
