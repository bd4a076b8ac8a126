package blob

import (
	"context"
	"fmt"
	"iter"
	"sort"
)

// RecoveryReport says what Recover found.
type RecoveryReport struct {
	Kept      int               // this node's blobs of pending messages, intact
	Discarded int               // this node's blobs no pending message refers to
	Missing   []string          // keys of this node's pending messages with no blob
	Damaged   map[string]string // key → where it was moved: pending blobs of the wrong size
}

// legacyLister is a store that may hold blobs written before keys named
// their node (a local spool of a single-node install); they are this
// node's.
type legacyLister interface {
	ListLegacy(ctx context.Context) iter.Seq2[Info, error]
}

// Recover reconciles this node's blobs with the committed messages after a
// restart, before the node accepts mail. pending returns the blob keys of
// messages not yet done (every node's) with their recorded sizes.
//
// Only keys of this node are considered: another node may be writing its
// own blobs right now. Blobs that no pending message refers to were never
// acknowledged (or their message is done) and are removed; a pending blob
// whose size differs from the recorded one is moved aside, never deleted;
// pending keys with no blob are reported as missing. The blobs are listed
// before the pending messages are read, so a message another node
// finishes meanwhile (and whose blob it deletes) is never taken for one
// with a missing blob. Checksums are verified when a blob is read (Check
// before each delivery attempt), not here: reading every queued blob would
// hold up the start.
func Recover(ctx context.Context, s Store, pending func(context.Context) (map[string]int64, error)) (RecoveryReport, error) {
	rep := RecoveryReport{Damaged: map[string]string{}}
	if err := s.Sweep(ctx); err != nil {
		return rep, fmt.Errorf("blob recovery: %w", err)
	}
	found := map[string]int64{}
	lists := []iter.Seq2[Info, error]{s.List(ctx, s.Node()+"/")}
	ll, legacy := s.(legacyLister)
	if legacy {
		lists = append(lists, ll.ListLegacy(ctx))
	}
	for _, l := range lists {
		for in, err := range l {
			if err != nil {
				return rep, fmt.Errorf("blob recovery: %w", err)
			}
			found[in.Key] = in.Size
		}
	}
	want, err := pending(ctx)
	if err != nil {
		return rep, fmt.Errorf("blob recovery: %w", err)
	}
	keys := make([]string, 0, len(found))
	for k := range found {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		size, ok := want[k]
		switch {
		case !ok:
			if err := s.Delete(ctx, k); err != nil {
				return rep, fmt.Errorf("blob recovery: %w", err)
			}
			rep.Discarded++
		case found[k] != size:
			where, err := s.MoveAside(ctx, k)
			if err != nil {
				return rep, fmt.Errorf("blob recovery: move aside %s: %w", k, err)
			}
			rep.Damaged[k] = where
		default:
			rep.Kept++
		}
	}
	for k := range want {
		node, _, ok := Split(k)
		mine := node == s.Node() || node == "" && legacy
		if _, there := found[k]; ok && mine && !there {
			rep.Missing = append(rep.Missing, k)
		}
	}
	sort.Strings(rep.Missing)
	return rep, nil
}
