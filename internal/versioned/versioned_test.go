package versioned

import (
	"context"
	"errors"
	"testing"
)

// Get loads once per version and tenant, keeps a newer value over an
// older one loaded late, and passes errors on without caching them.
func TestGet(t *testing.T) {
	ctx := context.Background()
	var c Cache[string]
	versions := map[int64]int64{1: 5, 2: 9}
	version := func(_ context.Context, tid int64) (int64, error) {
		if tid == 3 {
			return 0, errors.New("no version")
		}
		return versions[tid], nil
	}
	loads := 0
	loader := func(tid int64, val string) func(context.Context, int64) (string, error) {
		return func(_ context.Context, v int64) (string, error) {
			loads++
			if v != versions[tid] {
				t.Errorf("load of tenant %d at version %d, want %d", tid, v, versions[tid])
			}
			return val, nil
		}
	}
	for i := 0; i < 3; i++ {
		if got, err := c.Get(ctx, 1, version, loader(1, "a5")); err != nil || got != "a5" {
			t.Fatalf("Get 1: %q %v", got, err)
		}
	}
	if loads != 1 {
		t.Fatalf("%d loads for three Gets at one version, want 1", loads)
	}
	if got, _ := c.Get(ctx, 2, version, loader(2, "b9")); got != "b9" || loads != 2 {
		t.Fatalf("tenant 2: %q after %d loads", got, loads)
	}
	versions[1] = 6
	if got, _ := c.Get(ctx, 1, version, loader(1, "a6")); got != "a6" || loads != 3 {
		t.Fatalf("after a version change: %q after %d loads", got, loads)
	}
	// A load that finished late, at an older version, does not replace
	// the newer value.
	stale := func(context.Context, int64) (string, error) { return "a4", nil }
	versions[1] = 4
	if got, _ := c.Get(ctx, 1, version, stale); got != "a4" {
		t.Fatalf("stale load returned %q", got)
	}
	versions[1] = 6
	if got, _ := c.Get(ctx, 1, version, loader(1, "x")); got != "a6" {
		t.Fatalf("the version 6 value was replaced by an older one: %q", got)
	}
	if _, err := c.Get(ctx, 3, version, loader(3, "c")); err == nil {
		t.Fatal("a version error was not returned")
	}
	boom := errors.New("boom")
	if _, err := c.Get(ctx, 2, func(context.Context, int64) (int64, error) { return 10, nil },
		func(context.Context, int64) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("load error: %v", err)
	}
	if got, _ := c.Get(ctx, 2, version, loader(2, "y")); got != "b9" {
		t.Fatalf("a failed load changed the cache: %q", got)
	}
}

// Memoized reads each version once per memo, per kind and tenant, and
// every read when the context has no memo; an error is not remembered.
func TestMemoized(t *testing.T) {
	reads := map[int64]int{}
	version := map[int64]int64{1: 5, 2: 9}
	fail := false
	read := func(_ context.Context, tid int64) (int64, error) {
		if fail {
			return 0, errors.New("down")
		}
		reads[tid]++
		return version[tid], nil
	}
	bg := context.Background()
	for i := 0; i < 2; i++ {
		if v, err := Memoized(bg, "policy", 1, read); err != nil || v != 5 {
			t.Fatalf("without a memo: %d %v", v, err)
		}
	}
	if reads[1] != 2 {
		t.Fatalf("%d reads without a memo, want 2", reads[1])
	}
	ctx := WithMemo(bg)
	fail = true
	if _, err := Memoized(ctx, "policy", 1, read); err == nil {
		t.Fatal("a read error was not returned")
	}
	fail = false
	for i := 0; i < 3; i++ {
		if v, _ := Memoized(ctx, "policy", 1, read); v != 5 {
			t.Fatalf("memoized %d", v)
		}
		version[1] = 6 // a change during the message applies to the next one
	}
	if reads[1] != 3 {
		t.Fatalf("%d reads, want one more under the memo", reads[1])
	}
	if v, _ := Memoized(ctx, "policy", 2, read); v != 9 || reads[2] != 1 {
		t.Fatalf("tenant 2: %d after %d reads", v, reads[2])
	}
	if v, _ := Memoized(ctx, "lists", 1, read); v != 6 || reads[1] != 4 {
		t.Fatalf("another kind: %d after %d reads", v, reads[1])
	}
	if v, _ := Memoized(WithMemo(bg), "policy", 1, read); v != 6 {
		t.Fatalf("the next message's memo: %d", v)
	}
}
