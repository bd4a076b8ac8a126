package queue

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Store is the queue's part of the store: acceptance, claims with fenced
// leases, outcomes and the operator's queue views.
type Store interface {
	Accept(ctx context.Context, a store.Acceptance) ([][]store.Recipient, error)
	ClaimDue(ctx context.Context, owner string, now time.Time, leaseUntil time.Time, limit int) ([]store.Job, error)
	Complete(ctx context.Context, c store.Completion) (store.Completed, error)
	ListQueue(ctx context.Context, f store.QueueFilter) ([]store.QueueEntry, error)
	MarkCorrupt(ctx context.Context, messageID string, reason string) error
	Message(ctx context.Context, tenantID int64, id string) (store.Message, []store.Recipient, error)
	ReleaseLeases(ctx context.Context, owner string) (int, error)
	RenewLeases(ctx context.Context, owner string, leases []store.Lease, until time.Time) (lost []int64, err error)
	SetState(ctx context.Context, tenantID int64, messageID string, from []store.RcptState, to store.RcptState, next time.Time, ev store.Event) (int, error)
}
