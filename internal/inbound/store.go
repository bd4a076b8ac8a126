package inbound

import (
	"context"

	"github.com/mailgate/mailgate/internal/store"
)

// Store is what the inbound pipeline reads and writes of the store besides
// the acceptance itself (which goes through the queue).
type Store interface {
	AddEvents(ctx context.Context, events []store.Event) error
	Groups(ctx context.Context, tenantID int64) ([]store.Group, error)
	PolicyVersion(ctx context.Context, tenantID int64) (int64, error)
	Settings(ctx context.Context, tenantID int64) ([]store.Setting, error)
	TrustedNets(ctx context.Context, tenantID int64) ([]store.TrustedNet, error)
}
