package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// forgetNodesAfter is how long a node's row outlives its last heartbeat
// (cluster status shows it as dead until then).
const forgetNodesAfter = 7 * 24 * time.Hour

// node is this node's heartbeat row.
func (a *App) node(addrs []string) store.Node {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = a.Config.Hostname
	}
	return store.Node{ID: a.Config.NodeID, Hostname: host, Version: a.version, Started: a.started, Addrs: addrs}
}

// joinCluster runs at start, before the queue takes any lease: it refuses
// a node_id that a live node on another host already uses (their leases
// would be one owner's), sends the first heartbeat and refuses to start
// when this machine's clock is too far from the database server's.
func (a *App) joinCluster(ctx context.Context) error {
	a.started = a.wall()
	cfg := a.Config.Cluster
	prev, err := a.Store.NodeByID(ctx, a.Config.NodeID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("cluster: %w", err)
	}
	var addrs []string
	addrs = append(append(append(addrs, a.Config.Inbound.Listen...), a.Config.Outbound.Listen...), a.Config.HTTP.Listen)
	me := a.node(addrs)
	skew, bound, storeNow, err := measureSkew(ctx, func(ctx context.Context) (time.Time, error) { return a.Store.Heartbeat(ctx, me) }, a.wall)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if prev.ID != "" && prev.Hostname != me.Hostname && storeNow.Sub(prev.Seen) < cfg.DeadAfter.Duration {
		return fmt.Errorf("node_id %q is in use by a running node on host %s (seen %s ago); give every node its own node_id",
			a.Config.NodeID, prev.Hostname, storeNow.Sub(prev.Seen).Round(time.Second))
	}
	if a.Config.Store.Driver != "sqlite" {
		if err := skewError(skew, bound, cfg.MaxClockSkew.Duration); err != nil {
			return err
		}
	}
	return nil
}

// startHeartbeat records every [cluster] heartbeat that this node is
// alive, with its bound listen addresses, checks the clock skew again
// (an error in the log each time it is beyond the limit: the node goes on,
// its leases have a margin far larger than the limit), and forgets nodes
// silent for a week. It stops when the App closes.
func (a *App) startHeartbeat() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	a.stopHeartbeat = func() { once.Do(func() { close(stop) }); wg.Wait() }
	me := a.node(a.Addrs())
	log := a.Log.With("stage", "cluster")
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(a.Config.Cluster.Heartbeat.Duration)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-a.done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), a.Config.Cluster.DeadAfter.Duration)
			a.beat(ctx, me, log)
			cancel()
		}
	}()
}

// beat is one heartbeat of startHeartbeat.
func (a *App) beat(ctx context.Context, me store.Node, log *slog.Logger) {
	skew, bound, storeNow, err := measureSkew(ctx, func(ctx context.Context) (time.Time, error) { return a.Store.Heartbeat(ctx, me) }, a.wall)
	if err != nil {
		log.Error("heartbeat not recorded", "err", err)
		return
	}
	if a.Config.Store.Driver != "sqlite" {
		if err := skewError(skew, bound, a.Config.Cluster.MaxClockSkew.Duration); err != nil {
			log.Error(err.Error())
		}
	}
	if _, err := a.Store.ForgetNodes(ctx, storeNow.Add(-forgetNodesAfter)); err != nil {
		log.Error("forgetting silent nodes", "err", err)
	}
}

// measureSkew runs one heartbeat and compares the store's clock it returns
// with wall's: skew > 0 means this node's clock is ahead. bound is half the
// round trip, the measurement's uncertainty.
func measureSkew(ctx context.Context, beat func(context.Context) (time.Time, error), wall func() time.Time) (skew, bound time.Duration, storeNow time.Time, err error) {
	t0 := wall()
	storeNow, err = beat(ctx)
	t1 := wall()
	if err != nil {
		return 0, 0, storeNow, err
	}
	half := t1.Sub(t0) / 2
	return t0.Add(half).Sub(storeNow), half, storeNow, nil
}

// skewError is the one-line error for a skew certainly beyond limit (0 =
// no limit).
func skewError(skew, bound, limit time.Duration) error {
	if limit <= 0 {
		return nil
	}
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	if abs-bound <= limit {
		return nil
	}
	dir := "ahead of"
	if skew < 0 {
		dir = "behind"
	}
	return fmt.Errorf("clock skew: this node's clock is %s %s the database server's (cluster.max_clock_skew is %s); synchronise the clocks (NTP)",
		abs.Round(100*time.Millisecond), dir, limit)
}
