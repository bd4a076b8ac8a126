package admin

import (
	"context"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
)

// AddTenant creates a tenant (operators).
func (s *Service) AddTenant(ctx context.Context, a Actor, name string) (store.Tenant, error) {
	if err := a.require(store.RoleOperator); err != nil {
		return store.Tenant{}, err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 || strings.ContainsAny(name, " \t\r\n/\x00") {
		return store.Tenant{}, Invalidf("tenant name: letters, digits, dots and dashes")
	}
	t, err := s.Store.CreateTenant(ctx, name)
	if err != nil {
		return t, err
	}
	return t, s.Audit(ctx, a, t.ID, "tenant.add", name, "", jsonString(t))
}

// DeleteTenant deletes a tenant with everything it has (operators).
func (s *Service) DeleteTenant(ctx context.Context, a Actor, id int64) error {
	if err := a.require(store.RoleOperator); err != nil {
		return err
	}
	ts, err := s.Store.Tenants(ctx)
	if err != nil {
		return err
	}
	name := ""
	for _, t := range ts {
		if t.ID == id {
			name = t.Name
		}
	}
	if name == "" {
		return store.ErrNotFound
	}
	if err := s.Store.DeleteTenant(ctx, id); err != nil {
		return err
	}
	return s.Audit(ctx, a, id, "tenant.delete", name, name, "")
}
