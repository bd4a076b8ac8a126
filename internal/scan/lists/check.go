package lists

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/policy"
)

// Defaults of Options.
const (
	DefaultRefresh  = time.Second
	DefaultMaxStale = 5 * time.Minute
)

// Options configure a Check. Zero values take the defaults.
type Options struct {
	Clock clock.Clock // default clock.System
	// Refresh is how often, at most, a tenant's ListsVersion is asked.
	Refresh time.Duration
	// MaxStale is how long a tenant's last index is still used while the
	// Source fails; after that Check returns an error.
	MaxStale time.Duration
	Log      *slog.Logger // default slog.Default()
}

// Check is the "lists" body check. It is safe for concurrent use: each
// tenant's index is immutable and swapped atomically, and one caller per
// tenant refreshes it while the others keep using the previous one.
type Check struct {
	src      Source
	clk      clock.Clock
	refresh  time.Duration
	maxStale time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	tenants map[int64]*tenantState
}

var _ policy.BodyCheck = (*Check)(nil)

type tenantState struct {
	sem chan struct{} // one refresher at a time; a channel so waiting honours ctx
	cur atomic.Pointer[snapshot]
}

type snapshot struct {
	version int64
	idx     *Index    // nil when no load has succeeded yet
	err     error     // why, when idx is nil
	checked time.Time // last time the Source was asked
	good    time.Time // last time the Source confirmed version
}

// New returns the check reading entries from src.
func New(src Source, o Options) *Check {
	c := &Check{src: src, clk: o.Clock, refresh: o.Refresh, maxStale: o.MaxStale, log: o.Log,
		tenants: make(map[int64]*tenantState)}
	if c.clk == nil {
		c.clk = clock.System{}
	}
	if c.refresh <= 0 {
		c.refresh = DefaultRefresh
	}
	if c.maxStale <= 0 {
		c.maxStale = DefaultMaxStale
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// Name returns "lists".
func (c *Check) Name() string { return "lists" }

// Invalidate makes the next Check for tenant ask the Source for its version
// (and reload on change) without waiting for the refresh interval, for
// callers that just edited the tenant's lists in this process.
func (c *Check) Invalidate(tenantID int64) {
	ts := c.state(tenantID)
	if s := ts.cur.Load(); s != nil {
		cp := *s
		cp.checked = time.Time{}
		ts.cur.CompareAndSwap(s, &cp)
	}
}

func (c *Check) state(tenantID int64) *tenantState {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts, ok := c.tenants[tenantID]
	if !ok {
		ts = &tenantState{sem: make(chan struct{}, 1)}
		c.tenants[tenantID] = ts
	}
	return ts
}

// Index returns the tenant's current index, asking the Source for the
// version when the last answer is older than the refresh interval and
// reloading entries when it changed. While another caller refreshes, the
// previous index is returned without waiting; only the very first load of a
// tenant waits (bounded by ctx). When the Source fails, the previous index
// is used for up to MaxStale; after that, or when there is none, the error
// is returned (and, without a previous index, repeated for the refresh
// interval without asking the Source again).
func (c *Check) Index(ctx context.Context, tenantID int64) (*Index, error) {
	ts := c.state(tenantID)
	s := ts.cur.Load()
	if s != nil && c.fresh(s) {
		return s.idx, s.err
	}
	if s != nil && s.idx != nil {
		select {
		case ts.sem <- struct{}{}:
		default:
			return s.idx, nil // someone else is refreshing
		}
	} else {
		select {
		case ts.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("lists: tenant %d: waiting for index: %w", tenantID, ctx.Err())
		}
	}
	defer func() { <-ts.sem }()
	if s = ts.cur.Load(); s != nil && c.fresh(s) {
		return s.idx, s.err
	}
	now := c.clk.Now()
	idx, version, err := c.load(ctx, tenantID, s)
	if err != nil {
		if s == nil || s.idx == nil {
			// Remembered for the refresh interval, so a store outage is
			// not asked again by every message; this caller's own
			// deadline is not the store's fault and is not remembered.
			if ctx.Err() == nil {
				ts.cur.Store(&snapshot{checked: now, err: err})
			}
			return nil, err
		}
		next := *s
		next.checked = now
		ts.cur.Store(&next)
		if now.Sub(s.good) > c.maxStale {
			return nil, fmt.Errorf("%w (last good index from %s)", err, s.good.Format(time.RFC3339))
		}
		c.log.Warn("lists: using previous index", "tenant", tenantID, "err", err)
		return s.idx, nil
	}
	ts.cur.Store(&snapshot{version: version, idx: idx, checked: now, good: now})
	return idx, nil
}

// fresh reports whether s was checked within the refresh interval. A clock
// that went backwards counts as stale, so a refresh realigns it.
func (c *Check) fresh(s *snapshot) bool {
	d := c.clk.Now().Sub(s.checked)
	return d >= 0 && d < c.refresh
}

// load asks the version and, when it differs from prev's, reads and
// compiles the entries.
func (c *Check) load(ctx context.Context, tenantID int64, prev *snapshot) (*Index, int64, error) {
	v, err := c.src.ListsVersion(ctx, tenantID)
	if err != nil {
		return nil, 0, fmt.Errorf("lists: tenant %d: version: %w", tenantID, err)
	}
	if prev != nil && prev.idx != nil && prev.version == v {
		return prev.idx, v, nil
	}
	entries, err := c.src.ListEntries(ctx, tenantID)
	if err != nil {
		return nil, 0, fmt.Errorf("lists: tenant %d: entries: %w", tenantID, err)
	}
	own := entries[:0:0]
	for _, e := range entries {
		// Every row belongs to a tenant; a row of another one is a store
		// bug and must not filter this tenant's mail.
		if e.TenantID == tenantID {
			own = append(own, e)
		}
	}
	idx := Compile(own)
	if n := len(entries) - len(own); n > 0 {
		c.log.Error("lists: entries of another tenant ignored", "tenant", tenantID, "count", n)
	}
	if sk := idx.skipped; len(sk) > 0 {
		c.log.Warn("lists: entries skipped", "tenant", tenantID, "version", v, "count", len(sk), "first", sk[0])
	}
	return idx, v, nil
}

// rcptLists are the list keys of one recipient.
type rcptLists struct {
	address string
	groups  []string
	domain  string
}

func listsOf(r policy.Rcpt) rcptLists {
	rl := rcptLists{address: listKey(ScopeAddress, r.Addr)}
	d := r.Domain
	if d == "" {
		if at := strings.LastIndexByte(r.Addr, '@'); at >= 0 {
			d = r.Addr[at+1:]
		}
	}
	rl.domain = listKey(ScopeDomain, d)
	for _, g := range r.Groups {
		rl.groups = append(rl.groups, listKey(ScopeGroup, g))
	}
	return rl
}

// Check evaluates every recipient's lists against m and returns at most
// one finding per recipient (recipients with the same outcome share one).
// Findings come in recipient order. It fails only when the tenant's lists
// cannot be loaded (see Index) or the message cannot be parsed.
func (c *Check) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	if m.Env == nil || m.Env.Outbound || len(m.Env.Rcpts) == 0 {
		return nil, nil
	}
	idx, err := c.Index(ctx, m.Env.TenantID)
	if err != nil {
		return nil, err
	}
	if idx.Len() == 0 {
		return nil, nil
	}
	rls := make([]rcptLists, len(m.Env.Rcpts))
	want := make(map[string]bool)
	for i, r := range m.Env.Rcpts {
		rls[i] = listsOf(r)
		for _, k := range append([]string{rls[i].address, rls[i].domain}, rls[i].groups...) {
			if idx.hasList(k) {
				want[k] = true
			}
		}
	}
	if len(want) == 0 {
		return nil, nil // no recipient has a list: no need to parse
	}
	t, err := messageTexts(ctx, m, idx.usesHeader())
	if err != nil {
		return nil, err
	}
	hits, err := idx.match(ctx, t, want)
	if err != nil {
		return nil, err
	}
	if len(hits) == 0 {
		return nil, nil
	}
	byList := make(map[string][]int32)
	for _, i := range hits {
		k := idx.entries[i].list
		byList[k] = append(byList[k], i)
	}
	var out []policy.Finding
	same := make(map[decision]int) // decision → index in out
	for i, r := range m.Env.Rcpts {
		rs := policy.ForRcpt(s, r.Addr)
		d, ok := decide(idx, byList, rls[i], rs)
		if !ok {
			continue
		}
		if j, ok := same[d]; ok {
			out[j].Rcpts = append(out[j].Rcpts, r.Addr)
			continue
		}
		same[d] = len(out)
		out = append(out, finding(idx, d, r.Addr))
	}
	return out, nil
}

// decision is the outcome for one recipient: the deciding entry and the
// action it gives.
type decision struct {
	entry  int32
	action policy.Action
}

// decide walks the recipient's lists in priority order; the first level
// with a matching entry decides, deny over allow, the strongest deny action
// first, then the lowest entry ID.
func decide(idx *Index, byList map[string][]int32, rl rcptLists, s policy.Settings) (decision, bool) {
	levels := [][]string{{rl.address}, rl.groups, {rl.domain}}
	if v, _ := s.Get("lists.priority"); strings.EqualFold(strings.TrimSpace(v), "domain") {
		levels[0], levels[2] = levels[2], levels[0]
	}
	setting := denyAction(s)
	for _, keys := range levels {
		best := decision{entry: -1}
		for _, k := range keys {
			for _, i := range byList[k] {
				c := &idx.entries[i]
				a := policy.Allow
				if c.deny {
					a = c.action
					if a == policy.Continue {
						a = setting
					}
				}
				if best.entry < 0 || better(idx, i, a, best) {
					best = decision{entry: i, action: a}
				}
			}
		}
		if best.entry >= 0 {
			return best, true
		}
	}
	return decision{}, false
}

// better reports whether entry i with action a beats cur: a deny beats an
// allow, a stronger action a weaker one, and a lower ID (entries are in ID
// order) breaks ties.
func better(idx *Index, i int32, a policy.Action, cur decision) bool {
	di, dc := idx.entries[i].deny, idx.entries[cur.entry].deny
	if di != dc {
		return di
	}
	if a != cur.action {
		return a > cur.action
	}
	return i < cur.entry
}

// denyAction reads lists.deny_action: discard (default), reject or quarantine.
func denyAction(s policy.Settings) policy.Action {
	v, _ := s.Get("lists.deny_action")
	switch strings.ToLower(strings.TrimSpace(v)) {
	case ActionReject:
		return policy.Reject
	case ActionQuarantine:
		return policy.Quarantine
	}
	return policy.Discard
}

func finding(idx *Index, d decision, rcpt string) policy.Finding {
	c := &idx.entries[d.entry]
	f := policy.Finding{
		Check:  "lists",
		Action: d.action,
		Rcpts:  []string{rcpt},
		Reason: fmt.Sprintf("%s list of %s %q: entry %d (%s %s %q)",
			c.Kind, c.Scope, c.Owner, c.ID, c.Field, c.Mode, c.Value),
	}
	if !c.deny {
		f.Symbol = "ALLOW_" + fieldSymbol(c.field)
		return f
	}
	f.Symbol = "DENY_" + fieldSymbol(c.field)
	if d.action == policy.Reject {
		f.Code, f.Enhanced = 550, "5.7.1" // RFC 3463 3.8: delivery not authorized
		f.Public = "Message refused by recipient policy"
	}
	return f
}
