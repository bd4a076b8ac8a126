package store

import (
	"context"
	"slices"
	"time"
)

// Rate is a token bucket: Burst tokens at most, one more back every Every.
type Rate struct {
	Burst int
	Every time.Duration
}

// ThrottleStore keeps token buckets (login throttling, API rate limits)
// shared by every node, so that spreading attempts over the nodes gains
// an attacker nothing. A bucket is stored as the time it is full again.
type ThrottleStore interface {
	// ThrottleTake takes one token from the bucket of every key, or from
	// none, atomically: ok reports whether each key had one; when not,
	// wait is how long until each has one again.
	ThrottleTake(ctx context.Context, now time.Time, r Rate, keys []string) (ok bool, wait time.Duration, err error)
	// ThrottleRefund gives one token back to every key (never above Burst).
	ThrottleRefund(ctx context.Context, now time.Time, r Rate, keys []string) error
	// PurgeThrottle deletes the buckets that are full at now (they hold
	// nothing a missing bucket does not).
	PurgeThrottle(ctx context.Context, now time.Time) (int, error)
}

// ThrottleKeys returns keys without repeats, sorted, so that concurrent
// takes lock buckets in one order.
func ThrottleKeys(keys []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// ThrottleStep is one take from a bucket full again at full (0: none
// yet): the new full time, and whether the take fits in the burst.
func ThrottleStep(full, now time.Time, r Rate) (next time.Time, ok bool, wait time.Duration) {
	base := now
	if full.After(now) {
		base = full
	}
	next = base.Add(r.Every)
	over := next.Sub(now) - time.Duration(r.Burst)*r.Every
	return next, over <= 0, max(over, 0)
}
