// Package loginlimit throttles password guessing: a token bucket per key
// (a client network, a login name), from which every attempt takes a token
// before the password is checked. Console logins, delegated logins and SMTP
// AUTH share one limiter per node, and the API's per-token rate limit is
// one too. Memory keeps the buckets in the process (one node); Shared keeps
// them in the store, so that several nodes see every attempt. The users of
// this package define the small interface they need (Limiter's methods).
package loginlimit

import (
	"context"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Limiter is what Memory and Shared offer.
type Limiter interface {
	Take(ctx context.Context, now time.Time, keys ...string) (bool, time.Duration)
	Refund(ctx context.Context, now time.Time, keys ...string)
}

var (
	_ Limiter = (*Memory)(nil)
	_ Limiter = (*Shared)(nil)
)

// Defaults: a burst of 5 attempts, then one every 12 seconds (300 guesses
// an hour per key, not millions).
const (
	DefaultBurst   = 5
	DefaultEvery   = 12 * time.Second
	DefaultMaxKeys = 200000
)

// Options configure a Memory limiter.
type Options struct {
	Burst int           // tokens a key starts with and can save up (DefaultBurst when 0)
	Every time.Duration // one token comes back per Every (DefaultEvery when 0)
	// MaxKeys bounds the keys tracked (DefaultMaxKeys when 0). Keys whose
	// bucket is full again carry no information and are dropped first; if
	// every tracked key is still draining, attempts for new keys are refused
	// rather than the table reset, so spraying names never erases the
	// record of guesses already made.
	MaxKeys int
}

type bucket struct {
	tokens float64
	at     time.Time
}

// Memory is the in-process limiter. Safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	burst   float64
	every   time.Duration
	maxKeys int
	m       map[string]*bucket
	pruned  time.Time
}

// New returns an in-memory limiter.
func New(o Options) *Memory {
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	return &Memory{burst: float64(o.Burst), every: o.Every, maxKeys: o.MaxKeys, m: map[string]*bucket{}}
}

// level returns the key's tokens at now (a missing key is full).
func (l *Memory) level(key string, now time.Time) float64 {
	b := l.m[key]
	if b == nil {
		return l.burst
	}
	el := now.Sub(b.at)
	if el < 0 {
		el = 0
	}
	return math.Min(l.burst, b.tokens+float64(el)/float64(l.every))
}

func (l *Memory) set(key string, now time.Time, tokens float64) {
	if tokens >= l.burst {
		delete(l.m, key) // a full bucket is the same as none
		return
	}
	if b := l.m[key]; b != nil {
		b.tokens, b.at = tokens, now
		return
	}
	l.m[key] = &bucket{tokens: tokens, at: now}
}

// room reports whether there is room for n new keys, dropping full buckets
// when the table is at its bound (at most once a second, so a flood of new
// keys cannot make every attempt sweep the whole table).
func (l *Memory) room(now time.Time, n int) bool {
	if len(l.m)+n <= l.maxKeys {
		return true
	}
	if now.Sub(l.pruned) < time.Second && !now.Before(l.pruned) {
		return false
	}
	l.pruned = now
	for k := range l.m {
		if l.level(k, now) >= l.burst {
			delete(l.m, k)
		}
	}
	return len(l.m)+n <= l.maxKeys
}

// Take reserves one attempt for every key at once, or for none: it returns
// true when each key had a token (all are then spent), or false and how
// long until every key has one again. Reserving before the password check,
// not charging after it, is what keeps concurrent attempts from all passing.
func (l *Memory) Take(_ context.Context, now time.Time, keys ...string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	fresh := 0
	for _, k := range keys {
		if _, ok := l.m[k]; !ok {
			fresh++
		}
		if lv := l.level(k, now); lv < 1 {
			wait = max(wait, time.Duration(math.Ceil((1-lv)*float64(l.every))))
		}
	}
	if wait > 0 {
		return false, wait
	}
	if fresh > 0 && !l.room(now, fresh) {
		return false, l.every
	}
	for _, k := range keys {
		l.set(k, now, l.level(k, now)-1)
	}
	return true, 0
}

// Refund gives back the tokens a successful attempt took (only failures
// count against a key).
func (l *Memory) Refund(_ context.Context, now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if _, ok := l.m[k]; ok {
			l.set(k, now, l.level(k, now)+1)
		}
	}
}

// Shared is a limiter whose buckets are in the store (store.ThrottleStore),
// shared by every node: an attacker gains nothing by spreading attempts
// over them. Each Take is one atomic store write. When the store cannot be
// reached an attempt is refused (and logged): the login it guards needs
// the store too.
type Shared struct {
	st   store.ThrottleStore
	rate store.Rate
	log  *slog.Logger
}

// NewShared returns a limiter on st with o's burst and rate (MaxKeys does
// not apply: the store bounds nothing, and PurgeThrottle drops full buckets).
func NewShared(st store.ThrottleStore, o Options, log *slog.Logger) *Shared {
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if log == nil {
		log = slog.Default()
	}
	return &Shared{st: st, rate: store.Rate{Burst: o.Burst, Every: o.Every}, log: log}
}

// Take reserves one attempt for every key at once, or for none, as
// Memory.Take does.
func (l *Shared) Take(ctx context.Context, now time.Time, keys ...string) (bool, time.Duration) {
	ok, wait, err := l.st.ThrottleTake(ctx, now, l.rate, keys)
	if err != nil {
		l.log.Error("throttle not readable; attempt refused", "err", err)
		return false, l.rate.Every
	}
	return ok, wait
}

// Refund gives back the tokens a successful attempt took.
func (l *Shared) Refund(ctx context.Context, now time.Time, keys ...string) {
	if err := l.st.ThrottleRefund(ctx, now, l.rate, keys); err != nil {
		l.log.Warn("throttle refund not recorded", "err", err)
	}
}

// IPKey is the key of a client address: the address itself for IPv4, its
// /64 for IPv6 (one subscriber usually holds a whole /64). A string that is
// not an address is used as it is.
func IPKey(ip string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return "ip:" + ip
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return "ip:" + netip.PrefixFrom(a, 64).Masked().String()
	}
	return "ip:" + a.String()
}

// LoginKey is the key of a login name (case-insensitive).
func LoginKey(login string) string {
	return "login:" + strings.ToLower(strings.TrimSpace(login))
}
