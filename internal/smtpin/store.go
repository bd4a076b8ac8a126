package smtpin

import (
	"context"

	"github.com/mailgate/mailgate/internal/store"
)

// Store is what the SMTP listeners read of the store: who may relay or
// submit, which domains and users exist, and the legacy enqueue. The
// domains, relay networks (store.AddressingStore) and the tenants'
// settings (PolicyVersion) are kept in memory at their versions.
type Store interface {
	store.AddressingStore
	store.VersionsStore
	PolicyVersion(ctx context.Context, tenantID int64) (int64, error)
	AccountByLogin(ctx context.Context, login string) (store.Account, error)
	Enqueue(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event) ([]store.Recipient, error)
	RelayLogin(ctx context.Context, username string) (store.RelayLogin, error)
	Settings(ctx context.Context, tenantID int64) ([]store.Setting, error)
	UserExists(ctx context.Context, tenantID int64, address string) (bool, error)
}
