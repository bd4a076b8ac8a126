package delivery

import (
	"context"

	"github.com/mailgate/mailgate/internal/store"
)

// Store is what routing reads of the store: a domain's tenant (kept in
// memory at the store's addressing version), mode and routes. Any store
// backend satisfies it.
type Store interface {
	store.AddressingStore
	DomainMode(ctx context.Context, tenantID int64, domainID int64) (store.DomainMode, error)
	Routes(ctx context.Context, tenantID int64, domainID int64) ([]store.Route, error)
}
