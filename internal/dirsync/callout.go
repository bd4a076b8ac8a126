package dirsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/store"
)

// Callout defaults (Postfix's address_verify_positive_expire_time and
// address_verify_negative_expire_time).
const (
	DefaultPositiveTTL   = 7 * 24 * time.Hour
	DefaultNegativeTTL   = 3 * time.Hour
	DefaultCalloutWait   = 15 * time.Second
	DefaultMaxCallouts   = 20
	DefaultMaxCacheItems = 100000
)

// ErrUnverified is a callout that got no definite answer: the primary
// service is unreachable, timed out, answered with a temporary error or
// refused the null sender, or too many callouts are running. The
// recipient is then deferred (450), never refused and never accepted.
var ErrUnverified = errors.New("recipient could not be verified now")

// Router resolves a served domain's own routes (delivery.Router).
type Router interface {
	PrimaryTargets(ctx context.Context, domain string) ([]delivery.Target, error)
}

// ProbeFunc asks targets whether they take mail for rcpt
// (delivery.Client.Probe): nil when one does; an error wrapping
// *delivery.RcptRefused when one refused it permanently.
type ProbeFunc func(ctx context.Context, targets []delivery.Target, rcpt string) (string, error)

// Callout verifies recipients at the primary service's servers and caches
// the answers in memory (per node): known addresses for PositiveTTL,
// unknown ones for NegativeTTL. At most MaxConcurrent callouts run at
// once; each, including its wait for a turn, ends after Wait. Concurrent
// checks of one address share one callout.
type Callout struct {
	Router Router
	Probe  ProbeFunc
	Clock  clock.Clock
	Log    *slog.Logger

	PositiveTTL   time.Duration
	NegativeTTL   time.Duration
	Wait          time.Duration
	MaxConcurrent int
	MaxCache      int

	init     sync.Once
	sem      chan struct{}
	mu       sync.Mutex
	cache    map[string]cached
	inflight map[string]*flight
}

type cached struct {
	known bool
	until time.Time
}

type flight struct {
	done  chan struct{}
	known bool
	err   error
}

func (c *Callout) setup() {
	c.init.Do(func() {
		if c.PositiveTTL <= 0 {
			c.PositiveTTL = DefaultPositiveTTL
		}
		if c.NegativeTTL <= 0 {
			c.NegativeTTL = DefaultNegativeTTL
		}
		if c.Wait <= 0 {
			c.Wait = DefaultCalloutWait
		}
		if c.MaxConcurrent <= 0 {
			c.MaxConcurrent = DefaultMaxCallouts
		}
		if c.MaxCache <= 0 {
			c.MaxCache = DefaultMaxCacheItems
		}
		if c.Clock == nil {
			c.Clock = clock.System{}
		}
		if c.Log == nil {
			c.Log = slog.Default()
		}
		c.sem = make(chan struct{}, c.MaxConcurrent)
		c.cache = map[string]cached{}
		c.inflight = map[string]*flight{}
	})
}

// Check reports whether the primary service of d takes mail for address
// (lower-case), from the cache or by a callout; ErrUnverified (wrapped)
// when it could not tell.
func (c *Callout) Check(ctx context.Context, d store.Domain, address string) (bool, error) {
	c.setup()
	key := fmt.Sprintf("%d/%s", d.TenantID, address)
	now := c.Clock.Now()
	c.mu.Lock()
	if e, ok := c.cache[key]; ok && now.Before(e.until) {
		c.mu.Unlock()
		return e.known, nil
	}
	f := c.inflight[key]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		c.inflight[key] = f
		c.mu.Unlock()
		// The callout belongs to every waiter, not to the first session:
		// it runs to its own deadline.
		go c.run(context.WithoutCancel(ctx), d, address, key, f)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-f.done:
		return f.known, f.err
	case <-ctx.Done():
		return false, fmt.Errorf("%w: %v", ErrUnverified, ctx.Err())
	}
}

func (c *Callout) run(ctx context.Context, d store.Domain, address, key string, f *flight) {
	ctx, cancel := context.WithTimeout(ctx, c.Wait)
	defer cancel()
	f.known, f.err = c.callout(ctx, d, address)
	c.mu.Lock()
	delete(c.inflight, key)
	if f.err == nil {
		ttl := c.NegativeTTL
		if f.known {
			ttl = c.PositiveTTL
		}
		if len(c.cache) >= c.MaxCache {
			c.pruneLocked()
		}
		c.cache[key] = cached{known: f.known, until: c.Clock.Now().Add(ttl)}
	}
	c.mu.Unlock()
	close(f.done)
}

// pruneLocked drops expired answers, and then, if the cache is still
// full, half of it (the entries are refreshed by the next callouts).
func (c *Callout) pruneLocked() {
	now := c.Clock.Now()
	for k, e := range c.cache {
		if !now.Before(e.until) {
			delete(c.cache, k)
		}
	}
	for k := range c.cache {
		if len(c.cache) < c.MaxCache/2 {
			break
		}
		delete(c.cache, k)
	}
}

func (c *Callout) callout(ctx context.Context, d store.Domain, address string) (bool, error) {
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return false, fmt.Errorf("%w: too many callouts running", ErrUnverified)
	}
	targets, err := c.Router.PrimaryTargets(ctx, d.Name)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrUnverified, err)
	}
	host, err := c.Probe(ctx, targets, address)
	if err == nil {
		c.Log.Debug("callout: known", "rcpt", address, "host", host)
		return true, nil
	}
	var refused *delivery.RcptRefused
	if errors.As(err, &refused) {
		c.Log.Info("callout: unknown", "rcpt", address, "reply", refused.Error())
		return false, nil
	}
	c.Log.Warn("callout: no answer", "rcpt", address, "err", err)
	return false, fmt.Errorf("%w: %v", ErrUnverified, err)
}
