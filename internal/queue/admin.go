package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/mailgate/mailgate/internal/dsn"
	"github.com/mailgate/mailgate/internal/store"
)

// The operator's queue actions. Each changes only recipients still in the
// queue, logs a tracking event naming who did it, and takes effect on a
// running server within one poll interval (the store is the only channel).
// tenantID 0 acts across tenants (system operator).

var open = []store.RcptState{store.Queued, store.Held}

// Hold stops delivery attempts for a message until Release.
func (q *Queue) Hold(ctx context.Context, tenantID int64, id, who string) (int, error) {
	return q.d.Store.SetState(ctx, tenantID, id, []store.RcptState{store.Queued}, store.Held, time.Time{},
		store.Event{At: q.d.Clock.Now(), Kind: "held", Detail: "held by " + who})
}

// Release returns a held message to the queue, due at once.
func (q *Queue) Release(ctx context.Context, tenantID int64, id, who string) (int, error) {
	return q.d.Store.SetState(ctx, tenantID, id, []store.RcptState{store.Held}, store.Queued, q.d.Clock.Now(),
		store.Event{At: q.d.Clock.Now(), Kind: "released", Detail: "released by " + who})
}

// RetryNow makes a queued message due at once.
func (q *Queue) RetryNow(ctx context.Context, tenantID int64, id, who string) (int, error) {
	return q.d.Store.SetState(ctx, tenantID, id, []store.RcptState{store.Queued}, store.Queued, q.d.Clock.Now(),
		store.Event{At: q.d.Clock.Now(), Kind: "retry", Detail: "retry requested by " + who})
}

// Flush makes every queued message due at once (after the destination is back).
func (q *Queue) Flush(ctx context.Context, tenantID int64, who string) (int, error) {
	entries, err := q.d.Store.ListQueue(ctx, store.QueueFilter{TenantID: tenantID, State: store.Queued, Limit: 1_000_000})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, e := range entries {
		n, err := q.RetryNow(ctx, tenantID, e.Message.ID, who)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// Delete removes a message from the queue without notifying the sender.
func (q *Queue) Delete(ctx context.Context, tenantID int64, id, who string) (int, error) {
	m, _, err := q.d.Store.Message(ctx, tenantID, id)
	if err != nil {
		return 0, err
	}
	n, err := q.d.Store.SetState(ctx, tenantID, id, open, store.Deleted, time.Time{},
		store.Event{At: q.d.Clock.Now(), Kind: "deleted", Detail: "deleted by " + who})
	if err == nil && n > 0 {
		q.removeIfDone(ctx, m)
	}
	return n, err
}

// Bounce gives up on a message now and sends the sender a failure DSN.
func (q *Queue) Bounce(ctx context.Context, tenantID int64, id, who string) (int, error) {
	m, rs, err := q.d.Store.Message(ctx, tenantID, id)
	if err != nil {
		return 0, err
	}
	var entries []dsn.Recipient
	now := q.d.Clock.Now()
	for _, r := range rs {
		if r.State.Final() || !wantsDSN(m, r, "FAILURE") {
			continue
		}
		e := dsn.Recipient{FinalRecipient: r.Addr, OriginalRecipient: r.ORcpt, Status: "5.3.0",
			RemoteMTA: r.RemoteMTA, DiagnosticCode: lastReply(r), LastAttempt: now}
		if r.LastCode == 0 && r.LastReply != "" {
			e.DiagnosticType, e.DiagnosticCode = "X-Mailgate", r.LastReply
		}
		entries = append(entries, e)
	}
	if len(entries) > 0 {
		if _, err := q.SendDSN(ctx, m, dsn.Failure, entries); err != nil {
			return 0, fmt.Errorf("bounce: %w", err)
		}
	}
	n, err := q.d.Store.SetState(ctx, tenantID, id, open, store.Bounced, time.Time{},
		store.Event{At: now, Kind: "bounced", Detail: "bounced by " + who})
	if err == nil && n > 0 {
		q.removeIfDone(ctx, m)
	}
	return n, err
}

func lastReply(r store.Recipient) string {
	if r.LastCode == 0 {
		return ""
	}
	return r.LastReply
}

func (q *Queue) removeIfDone(ctx context.Context, m store.Message) {
	m2, _, err := q.d.Store.Message(ctx, m.TenantID, m.ID)
	if err == nil && m2.Done {
		q.d.Spool.Delete(ctx, m.BlobKey)
	}
}
