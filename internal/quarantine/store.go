package quarantine

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Store is the quarantine's part of the store: held copies, their states
// and audit, the tenants' allow and deny lists and settings, and the marks
// that make its scheduled jobs run once across nodes.
type Store interface {
	AddAudit(ctx context.Context, a store.AuditEntry) error
	AddListEntry(ctx context.Context, e store.ListEntry) (store.ListEntry, error)
	ClaimMark(ctx context.Context, tenantID int64, key string, old time.Time, at time.Time) (bool, error)
	ExpiredQuarantine(ctx context.Context, now time.Time, limit int) ([]store.QuarantineItem, error)
	Groups(ctx context.Context, tenantID int64) ([]store.Group, error)
	ListEntries(ctx context.Context, tenantID int64) ([]store.ListEntry, error)
	Mark(ctx context.Context, tenantID int64, key string) (time.Time, error)
	QuarantineItem(ctx context.Context, tenantID int64, id string) (store.QuarantineItem, error)
	QuarantineRecipients(ctx context.Context, since time.Time) ([]store.QuarantineOwner, error)
	QuarantineUsage(ctx context.Context, tenantID int64, rcpt string) (bytes int64, count int, err error)
	SearchQuarantine(ctx context.Context, f store.QuarantineFilter) (items []store.QuarantineItem, total int, err error)
	SetQuarantineState(ctx context.Context, tenantID int64, id string, from store.QuarantineState, to store.QuarantineState, ev store.Event) (bool, error)
	Settings(ctx context.Context, tenantID int64) ([]store.Setting, error)
}
