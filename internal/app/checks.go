package app

import (
	"context"
	"strings"
	"sync"
	"time"

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
			out = append(out, policy.Stage{Check: lists.New(listSource{a.Store}, lists.Options{Clock: a.Clock, Log: a.Log}), Timeout: cc.Timeout.Duration})
		case "auth":
			out = append(out, policy.Stage{Check: auth.New(auth.Config{Resolver: a.Resolver, Domains: storeDirectory{a.Store},
				Hostname: a.Config.Hostname, Timeout: cc.Timeout.Duration, Now: a.Clock.Now}), Timeout: cc.Timeout.Duration + 5*time.Second})
		case "av":
			if cc.Clamd == "" {
				continue // Start warns about it
			}
			onErr := policy.TempFail
			if cc.ClamdOnError == "pass" {
				onErr = policy.Header
			}
			cl := &clamd.Client{Address: cc.Clamd, DialTimeout: 5 * time.Second, ScanTimeout: cc.AVTimeout.Duration}
			if strings.Contains(cc.Clamd, "/") {
				cl.Network = "unix"
			} else {
				cl.Network = "tcp"
			}
			out = append(out, policy.Stage{Check: av.New(av.Config{Client: cl, Timeout: cc.AVTimeout.Duration}), Timeout: cc.AVTimeout.Duration + 5*time.Second, OnError: onErr})
		case "spam":
			out = append(out, policy.Stage{Check: &spam.Check{Classifier: a.SpamClassifier(), Resolver: a.Resolver, Now: a.Clock.Now}, Timeout: cc.Timeout.Duration})
		case "rspamd":
			if cc.Rspamd == "" {
				continue // Start warns about it
			}
			c, err := extspam.NewRspamd(extspam.RspamdConfig{URL: cc.Rspamd, Password: cc.RspamdPassword, Timeout: cc.Timeout.Duration})
			if err != nil {
				a.Log.Error("rspamd check disabled", "err", err)
				continue
			}
			out = append(out, policy.Stage{Check: c, Timeout: cc.Timeout.Duration + 5*time.Second})
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
			out = append(out, policy.Stage{Check: c, Timeout: cc.Timeout.Duration + 5*time.Second})
		case "structure":
			out = append(out, policy.Stage{Check: structure.Check{}, Timeout: cc.Timeout.Duration})
		case "bec":
			c, err := bec.New(bec.Config{Directory: storeDirectory{a.Store}, History: a.senderHistory(), Now: a.Clock.Now})
			if err != nil {
				a.Log.Error("impersonation check disabled", "err", err)
				continue
			}
			out = append(out, policy.Stage{Check: c, Timeout: cc.Timeout.Duration})
		}
	}
	return out
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
// once a second; a crash loses at most that second of "seen" marks, which
// only makes a sender look new once more.
func (a *App) senderHistory() *asyncHistory {
	h := &asyncHistory{s: a.Store, log: a.Log, pending: map[senderKey]time.Time{}}
	go h.loop(a.done)
	return h
}

type senderKey struct {
	tenant int64
	sender string
}

type asyncHistory struct {
	s       store.Store
	log     interface{ Warn(string, ...any) }
	mu      sync.Mutex
	pending map[senderKey]time.Time
}

func (h *asyncHistory) SeenSender(ctx context.Context, tenantID int64, sender string) (bool, error) {
	h.mu.Lock()
	_, queued := h.pending[senderKey{tenantID, sender}]
	h.mu.Unlock()
	if queued {
		return true, nil
	}
	return h.s.SeenSender(ctx, tenantID, sender)
}

func (h *asyncHistory) RecordSender(ctx context.Context, tenantID int64, sender string) error {
	h.mu.Lock()
	if len(h.pending) < 100000 {
		h.pending[senderKey{tenantID, sender}] = time.Now()
	}
	h.mu.Unlock()
	return nil
}

func (h *asyncHistory) loop(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		h.mu.Lock()
		batch := h.pending
		h.pending = map[senderKey]time.Time{}
		h.mu.Unlock()
		for k, at := range batch {
			if err := h.s.RecordSender(context.Background(), k.tenant, k.sender, at); err != nil {
				h.log.Warn("recording sender history", "err", err)
				break
			}
		}
	}
}
