package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// readyTimeout bounds each readiness probe, so /readyz answers within a
// few seconds even when a peer hangs.
const readyTimeout = 2 * time.Second

// healthz is liveness: the process serves HTTP and its spool can take mail.
func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	if err := a.Spool.Healthy(); err != nil {
		http.Error(w, "spool: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err := a.Spool.CheckSpace(); err != nil {
		http.Error(w, "spool: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// readyz is readiness: 200 "ready" when the node can take and pass on mail
// now, else 503 with one line per reason.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	problems := a.Readiness(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(strings.Join(problems, "\n") + "\n"))
		return
	}
	w.Write([]byte("ready\n"))
}

// schemaStore is a store that knows its schema version (both backends).
type schemaStore interface {
	SchemaVersion(ctx context.Context) (int, error)
	LatestSchema() int
}

// Readiness probes what the node needs to take mail, side by side, each
// with its own deadline, and returns what is wrong in words (none: ready):
// the store answers a query and its schema is not behind this mailgate's,
// the spool is writable with its free-space floor, and clamd answers PING
// when the virus check is enabled.
func (a *App) Readiness(ctx context.Context) []string {
	var (
		mu       sync.Mutex
		problems []string
		wg       sync.WaitGroup
	)
	add := func(p string) {
		mu.Lock()
		problems = append(problems, p)
		mu.Unlock()
	}
	wg.Go(func() {
		if err := a.Spool.Healthy(); err != nil {
			add("spool: " + err.Error())
		}
		if err := a.Spool.CheckSpace(); err != nil {
			add(fmt.Sprintf("spool: %v (limits.min_free_bytes = %d)", err, a.Config.Limits.MinFreeBytes))
		}
	})
	wg.Go(func() {
		if p := a.storeReady(ctx); p != "" {
			add(p)
		}
	})
	if cl, ok := a.clamdClient(); ok && a.Config.Checks.On("av") {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, readyTimeout)
			defer cancel()
			if err := cl.Ping(cctx); err != nil {
				add(fmt.Sprintf("clamd at %s does not answer PING: %v", a.Config.Checks.Clamd, err))
			}
		})
	}
	wg.Wait()
	// Stable order, whichever probe finished first.
	slices.Sort(problems)
	return problems
}

// storeReady queries the store with a deadline and compares its schema
// with this mailgate's; "" when both are fine.
func (a *App) storeReady(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	ss, ok := a.Store.(schemaStore)
	if !ok {
		// A store without a schema (a test double): a cheap read proves it usable.
		if _, err := a.Store.Tenants(ctx); err != nil {
			a.metrics.storeErrors.WithLabelValues("probe").Inc()
			return "store: not usable: " + err.Error()
		}
		return ""
	}
	v, err := ss.SchemaVersion(ctx)
	if err != nil {
		a.metrics.storeErrors.WithLabelValues("probe").Inc()
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Sprintf("store: no answer within %s", readyTimeout)
		}
		return "store: not usable: " + err.Error()
	}
	if want := ss.LatestSchema(); v < want {
		return fmt.Sprintf("store: schema version %d is behind this mailgate's %d; run mailgate migrate", v, want)
	}
	return ""
}
