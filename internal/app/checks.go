package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/auth"
	"github.com/mailgate/mailgate/internal/scan/av"
	"github.com/mailgate/mailgate/internal/scan/av/clamd"
	"github.com/mailgate/mailgate/internal/scan/bec"
	"github.com/mailgate/mailgate/internal/scan/extspam"
	"github.com/mailgate/mailgate/internal/scan/lists"
	"github.com/mailgate/mailgate/internal/scan/spam"
	"github.com/mailgate/mailgate/internal/scan/structure"
	"github.com/mailgate/mailgate/internal/store"
)

// stages builds the configured inbound checks in their merge order.
func (a *App) stages() []policy.Stage {
	cc := a.Config.Checks
	var out []policy.Stage
	for _, name := range cc.Enabled {
		switch name {
		case "lists":
			out = append(out, policy.Stage{Check: lists.New(listSource{a.Store}, lists.Options{Clock: a.Clock, Log: a.Log}), Timeout: cc.Deadline(name)})
		case "auth":
			out = append(out, policy.Stage{Check: auth.New(auth.Config{Resolver: a.Resolver, Domains: storeDirectory{a.Store},
				Hostname: a.Config.Hostname, Timeout: cc.Timeout.Duration, Now: a.Clock.Now, Took: a.metrics.partTook}), Timeout: cc.Deadline(name)})
		case "av":
			if st, ok := a.avCheck(); ok {
				out = append(out, st)
			}
		case "spam":
			out = append(out, policy.Stage{Check: &spam.Check{Classifier: a.SpamClassifier(), Resolver: a.Resolver, Now: a.Clock.Now}, Timeout: cc.Deadline(name)})
		case "rspamd":
			if cc.Rspamd == "" {
				continue // Start warns about it
			}
			c, err := extspam.NewRspamd(extspam.RspamdConfig{URL: cc.Rspamd, Password: cc.RspamdPassword, Timeout: cc.Timeout.Duration})
			if err != nil {
				a.Log.Error("rspamd check disabled", "err", err)
				continue
			}
			out = append(out, policy.Stage{Check: c, Timeout: cc.Deadline(name)})
		case "spamassassin":
			if cc.Spamd == "" {
				continue
			}
			sc := extspam.SpamdConfig{Network: "tcp", Address: cc.Spamd, Timeout: cc.Timeout.Duration}
			if strings.Contains(cc.Spamd, "/") {
				sc.Network = "unix"
			}
			c, err := extspam.NewSpamd(sc)
			if err != nil {
				a.Log.Error("spamassassin check disabled", "err", err)
				continue
			}
			out = append(out, policy.Stage{Check: c, Timeout: cc.Deadline(name)})
		case "structure":
			out = append(out, policy.Stage{Check: structure.Check{}, Timeout: cc.Deadline(name)})
		case "bec":
			c, err := bec.New(bec.Config{Directory: storeDirectory{a.Store}, History: a.senderHistory(), Now: a.Clock.Now})
			if err != nil {
				a.Log.Error("impersonation check disabled", "err", err)
				continue
			}
			out = append(out, policy.Stage{Check: c, Timeout: cc.Deadline(name)})
		}
	}
	return out
}

// avCheck is the virus scan stage when clamd is configured (Start warns
// when it is enabled without).
func (a *App) avCheck() (policy.Stage, bool) {
	cc := a.Config.Checks
	cl, ok := a.clamdClient()
	if !ok {
		return policy.Stage{}, false
	}
	onErr := policy.TempFail
	if cc.ClamdOnError == "pass" {
		onErr = policy.Header
	}
	return policy.Stage{Check: av.New(av.Config{Client: cl, Timeout: cc.AVTimeout.Duration}), Timeout: cc.Deadline("av"), OnError: onErr}, true
}

// clamdClient is the client of checks.clamd; false when none is configured.
// The inbound and outbound checks and the readiness probe share it, so the
// node keeps one pool of idle clamd sessions (at most clamd.MaxIdle), not
// one per pipeline: each idle session holds one of clamd's MaxQueue slots.
func (a *App) clamdClient() (*clamd.Client, bool) {
	a.clamdOnce.Do(func() { a.clamd, _ = ClamdClient(a.Config.Checks) })
	return a.clamd, a.clamd != nil
}

// ClamdClient is the client of checks.clamd (a unix socket path or
// host:port); false when none is configured.
func ClamdClient(cc config.ChecksConfig) (*clamd.Client, bool) {
	if cc.Clamd == "" {
		return nil, false
	}
	cl := &clamd.Client{Address: cc.Clamd, DialTimeout: 5 * time.Second, ScanTimeout: cc.AVTimeout.Duration}
	if strings.Contains(cc.Clamd, "/") {
		cl.Network = "unix"
		// A local clamd reads the message from a passed memory file,
		// which costs it less than copying a stream to a file first.
		cl.FDPassMax = clamd.DefaultFDPassMax
	} else {
		cl.Network = "tcp"
	}
	return cl, true
}

// listSource adapts the store to the list check.
type listSource struct{ s store.Store }

func (l listSource) ListEntries(ctx context.Context, tenantID int64) ([]lists.Entry, error) {
	es, err := l.s.ListEntries(ctx, tenantID)
	out := make([]lists.Entry, len(es))
	for i, e := range es {
		out[i] = lists.Entry(e)
	}
	return out, err
}

func (l listSource) ListsVersion(ctx context.Context, tenantID int64) (int64, error) {
	return l.s.ListsVersion(ctx, tenantID)
}

// storeDirectory adapts the store to the authentication and impersonation checks.
type storeDirectory struct{ s store.Store }

func (d storeDirectory) TenantDomains(ctx context.Context, tenantID int64) ([]string, error) {
	return d.Domains(ctx, tenantID)
}

func (d storeDirectory) Domains(ctx context.Context, tenantID int64) ([]string, error) {
	ds, err := d.s.Domains(ctx, tenantID)
	names := make([]string, len(ds))
	for i, x := range ds {
		names[i] = x.Name
	}
	return names, err
}

func (d storeDirectory) People(ctx context.Context, tenantID int64) ([]bec.Person, error) {
	ps, err := d.s.People(ctx, tenantID)
	out := make([]bec.Person, len(ps))
	for i, p := range ps {
		out[i] = bec.Person{Name: p.Name, Addr: p.Address}
	}
	return out, err
}

func (d storeDirectory) SeenSender(ctx context.Context, tenantID int64, sender string) (bool, error) {
	return d.s.SeenSender(ctx, tenantID, sender)
}

// senderHistory records senders off the accept path: the impersonation
// check notes every sender, and a durable write per message before the 250
// would cost more than the check itself. Records are coalesced and written
// once a second; a failed write keeps its record and the ones after it for
// the next round, and Close writes what is left before the store closes. A
// crash loses at most that second of "seen" marks, which only makes a
// sender look new once more.
func (a *App) senderHistory() *asyncHistory {
	h := newAsyncHistory(a.Store, a.Log.With("stage", "sender-history"), a.Clock.Now)
	a.history = append(a.history, h)
	go h.run(time.Second)
	return h
}

type senderKey struct {
	tenant int64
	sender string
}

// maxPendingSenders bounds the records held between writes; past it new
// senders are not noted (they look new once more, nothing worse).
const maxPendingSenders = 100000

type asyncHistory struct {
	s       store.Store
	log     *slog.Logger
	now     func() time.Time
	mu      sync.Mutex
	pending map[senderKey]time.Time
	// seen are senders the store has confirmed: history is never deleted
	// (only with its tenant), so a yes stays true and needs no second read.
	// Bounded by maxSeenSenders; emptied when full.
	seen map[senderKey]struct{}

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func newAsyncHistory(s store.Store, log *slog.Logger, now func() time.Time) *asyncHistory {
	return &asyncHistory{s: s, log: log, now: now, pending: map[senderKey]time.Time{}, seen: map[senderKey]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (h *asyncHistory) SeenSender(ctx context.Context, tenantID int64, sender string) (bool, error) {
	k := senderKey{tenantID, sender}
	h.mu.Lock()
	_, queued := h.pending[k]
	_, known := h.seen[k]
	h.mu.Unlock()
	if queued || known {
		return true, nil
	}
	ok, err := h.s.SeenSender(ctx, tenantID, sender)
	if ok && err == nil {
		h.mu.Lock()
		if len(h.seen) >= maxSeenSenders {
			h.seen = map[senderKey]struct{}{}
		}
		h.seen[k] = struct{}{}
		h.mu.Unlock()
	}
	return ok, err
}

// maxSeenSenders bounds the confirmed senders kept in memory (about 100
// bytes each).
const maxSeenSenders = 200_000

func (h *asyncHistory) RecordSender(ctx context.Context, tenantID int64, sender string) error {
	h.mu.Lock()
	if len(h.pending) < maxPendingSenders {
		h.pending[senderKey{tenantID, sender}] = h.now()
	}
	h.mu.Unlock()
	return nil
}

// run writes the pending records every interval until Stop, then once more.
func (h *asyncHistory) run(interval time.Duration) {
	defer close(h.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			// Shutdown: one last bounded try, so a stop does not forget the
			// senders of the last second.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := h.flush(ctx); err != nil {
				h.mu.Lock()
				n := len(h.pending)
				h.mu.Unlock()
				h.log.Warn("sender history not written at shutdown", "err", err, "senders", n)
			}
			cancel()
			return
		case <-t.C:
		}
		if err := h.flush(context.Background()); err != nil {
			h.log.Warn("recording sender history; will retry", "err", err)
		}
	}
}

// Stop ends run after its final write. Safe to call more than once.
func (h *asyncHistory) Stop() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
}

// flushParallel bounds the records of one flush written at once. Each
// record is a write of its own; issued together, they share the store's
// group commit (one fsync for the round) instead of one commit each.
const flushParallel = 64

// flush writes the pending records. At the first failure it starts no
// more (the store is likely down for all of them) and puts back every
// record not written, unless a newer record of the same sender arrived
// meanwhile.
func (h *asyncHistory) flush(ctx context.Context) error {
	h.mu.Lock()
	batch := h.pending
	h.pending = map[senderKey]time.Time{}
	h.mu.Unlock()
	var (
		mu     sync.Mutex
		failed error
		left   = map[senderKey]time.Time{}
		wg     sync.WaitGroup
		slots  = make(chan struct{}, flushParallel)
	)
	for k, at := range batch {
		slots <- struct{}{}
		mu.Lock()
		stopped := failed != nil
		if stopped {
			left[k] = at
		}
		mu.Unlock()
		if stopped {
			<-slots
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			if err := h.s.RecordSender(ctx, k.tenant, k.sender, at); err != nil {
				mu.Lock()
				if failed == nil {
					failed = fmt.Errorf("sender history: %w", err)
				}
				left[k] = at
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(left) > 0 {
		h.mu.Lock()
		for k, at := range left {
			if _, newer := h.pending[k]; !newer && len(h.pending) < maxPendingSenders {
				h.pending[k] = at
			}
		}
		h.mu.Unlock()
	}
	return failed
}
