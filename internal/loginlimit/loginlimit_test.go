package loginlimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

var ctx = context.Background()

func TestBurstThenOneEvery(t *testing.T) {
	l := New(Options{})
	for i := range DefaultBurst {
		if ok, _ := l.Take(ctx, t0, "ip:192.0.2.1", "login:alice"); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	ok, wait := l.Take(ctx, t0, "ip:192.0.2.1", "login:alice")
	if ok || wait != DefaultEvery {
		t.Fatalf("sixth attempt: ok=%v wait=%v", ok, wait)
	}
	if ok, wait := l.Take(ctx, t0.Add(DefaultEvery/2), "ip:192.0.2.1", "login:alice"); ok || wait != DefaultEvery/2 {
		t.Fatalf("half-way: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Take(ctx, t0.Add(DefaultEvery), "ip:192.0.2.1", "login:alice"); !ok {
		t.Fatal("a token came back after Every")
	}
}

// A refused Take spends nothing: another login from the exhausted address
// does not lose its own tokens.
func TestTakeIsAllOrNothing(t *testing.T) {
	l := New(Options{Burst: 2})
	for range 2 {
		l.Take(ctx, t0, "ip:a", "login:alice")
	}
	if ok, _ := l.Take(ctx, t0, "ip:a", "login:bob"); ok {
		t.Fatal("exhausted address let another login through")
	}
	for i := range 2 {
		if ok, _ := l.Take(ctx, t0, "ip:b", "login:bob"); !ok {
			t.Fatalf("bob from another address, attempt %d: the refused Take spent his token", i+1)
		}
	}
}

// The regression: concurrent attempts must not all pass a check made before
// the slow part and charged after it.
func TestConcurrentTakesGetExactlyTheBurst(t *testing.T) {
	l := New(Options{})
	var passed atomic.Int32
	var wg sync.WaitGroup
	for range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Take(ctx, t0, "ip:a", "login:alice"); ok {
				passed.Add(1)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != DefaultBurst {
		t.Fatalf("%d of 60 concurrent attempts passed, want %d", passed.Load(), DefaultBurst)
	}
}

func TestRefundGivesBackTheAttempt(t *testing.T) {
	l := New(Options{Burst: 1})
	if ok, _ := l.Take(ctx, t0, "ip:a", "login:alice"); !ok {
		t.Fatal("first")
	}
	l.Refund(ctx, t0, "ip:a", "login:alice")
	if ok, _ := l.Take(ctx, t0, "ip:a", "login:alice"); !ok {
		t.Fatal("a refunded attempt was still counted")
	}
	// Refunds never raise a key above its burst.
	l.Refund(ctx, t0, "ip:a", "login:alice")
	l.Refund(ctx, t0, "ip:a", "login:alice")
	l.Take(ctx, t0, "ip:a", "login:alice")
	if ok, _ := l.Take(ctx, t0, "ip:a", "login:alice"); ok {
		t.Fatal("refunds saved up more than the burst")
	}
}

// Spraying new keys never erases what is known about others; when the
// table is full of draining keys, new keys are refused.
func TestKeyBoundFailsClosed(t *testing.T) {
	l := New(Options{Burst: 1, MaxKeys: 4})
	l.Take(ctx, t0, "ip:a", "login:alice")
	l.Take(ctx, t0, "ip:b", "login:bob")
	if ok, _ := l.Take(ctx, t0, "ip:c", "login:carol"); ok {
		t.Fatal("a full table took new keys")
	}
	if ok, _ := l.Take(ctx, t0, "ip:a", "login:alice"); ok {
		t.Fatal("alice's record was dropped")
	}
	// Once the old keys are full again they carry nothing and make room.
	if ok, _ := l.Take(ctx, t0.Add(time.Minute), "ip:c", "login:carol"); !ok {
		t.Fatal("full buckets were not pruned")
	}
}

func TestIPKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                "ip:192.0.2.7",
		"::ffff:192.0.2.7":         "ip:192.0.2.7",
		"2001:db8:1:2:3:4:5:6":     "ip:2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":     "ip:2001:db8:1:2::/64",
		"fe80::1%eth0":             "ip:fe80::/64",
		"not an address":           "ip:not an address",
		" 198.51.100.1 ":           "ip:198.51.100.1",
		"2001:db8:1:3::1":          "ip:2001:db8:1:3::/64",
		"2001:0db8:0001:0002::abc": "ip:2001:db8:1:2::/64",
	} {
		if got := IPKey(in); got != want {
			t.Errorf("IPKey(%q) = %q, want %q", in, got, want)
		}
	}
	if LoginKey(" Alice@Example.TEST ") != "login:alice@example.test" {
		t.Error("login keys ignore case and spaces")
	}
}
