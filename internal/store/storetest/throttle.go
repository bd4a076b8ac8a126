package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// testThrottle: token buckets taken all-or-none, refunded, waited for,
// shared by concurrent takers, and purged once full.
func testThrottle(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	r := store.Rate{Burst: 5, Every: 12 * time.Second}
	take := func(at time.Time, keys ...string) (bool, time.Duration) {
		t.Helper()
		ok, wait, err := st.ThrottleTake(ctx, at, r, keys)
		if err != nil {
			t.Fatal(err)
		}
		return ok, wait
	}
	for i := range 5 {
		if ok, _ := take(now, "ip:a", "login:alice"); !ok {
			t.Fatalf("take %d refused", i)
		}
	}
	if ok, wait := take(now, "ip:a", "login:alice"); ok || wait != 12*time.Second {
		t.Fatalf("sixth take: %v %v, want refused for 12s", ok, wait)
	}
	if ok, wait := take(now.Add(6*time.Second), "ip:a", "login:alice"); ok || wait != 6*time.Second {
		t.Fatalf("half-way: %v %v", ok, wait)
	}
	if ok, _ := take(now.Add(12*time.Second), "ip:a", "login:alice"); !ok {
		t.Fatal("a token came back but was refused")
	}
	// All or none: the empty login bucket refuses the pair, and the other
	// network's bucket is not charged for it.
	if ok, _ := take(now.Add(12*time.Second), "ip:b", "login:alice"); ok {
		t.Fatal("empty bucket of one key ignored")
	}
	for i := range 5 {
		if ok, _ := take(now.Add(12*time.Second), "ip:b"); !ok {
			t.Fatalf("ip:b charged by a refused take (take %d)", i)
		}
	}
	// Refunds give back what a success took, never more than the burst.
	if ok, _ := take(now, "login:bob"); !ok {
		t.Fatal("bob")
	}
	for range 2 {
		if err := st.ThrottleRefund(ctx, now, r, []string{"login:bob", "login:nobody"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if ok, _ := take(now, "login:bob", "login:bob"); !ok {
			t.Fatalf("after refunds take %d refused", i)
		}
	}
	if ok, _ := take(now, "login:bob"); ok {
		t.Fatal("refunds went above the burst")
	}
	// Concurrent takers on one key: exactly the burst passes.
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, _, err := st.ThrottleTake(ctx, now, r, []string{"login:carol", fmt.Sprintf("ip:c%d", i)})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if passed != 5 {
		t.Fatalf("%d concurrent takes passed, want 5", passed)
	}
	// Purge: buckets full again hold nothing.
	// The five ip:cN buckets that were charged are full 12s later (the
	// others were never written).
	if n, err := st.PurgeThrottle(ctx, now.Add(11*time.Second)); err != nil || n != 0 {
		t.Fatalf("purge before any bucket is full: %d %v", n, err)
	}
	if n, err := st.PurgeThrottle(ctx, now.Add(12*time.Second)); err != nil || n != 5 {
		t.Fatalf("purge of the ip:cN buckets: %d %v", n, err)
	}
	if n, err := st.PurgeThrottle(ctx, now.Add(time.Hour)); err != nil || n != 5 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if n := sumSQL(t, st, `SELECT count(*) FROM throttle`); n != 0 {
		t.Fatalf("%d buckets left", n)
	}
}
