package admin

import (
	"context"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
)

// NewAPISecret makes an API token secret and the hash the store keeps (the
// hex SHA-256 the API looks tokens up by).
func NewAPISecret() (secret, hash string) {
	secret = "mgt_" + randomHex(24)
	return secret, sha256Hex(secret)
}

// CreateToken makes an API token of a's tenant (an operator without a
// tenant: an operator token, for every tenant). The secret is returned
// once and never stored.
func (s *Service) CreateToken(ctx context.Context, a Actor, name, scope string) (store.APIToken, string, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return store.APIToken{}, "", err
	}
	tid := a.TenantID
	if a.Role != store.RoleOperator {
		var err error
		if tid, err = a.tenant(); err != nil {
			return store.APIToken{}, "", err
		}
	}
	if scope != "read" && scope != "write" {
		return store.APIToken{}, "", Invalidf("scope must be read or write")
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 || strings.ContainsAny(name, "\r\n\x00") {
		return store.APIToken{}, "", Invalidf("token name required")
	}
	secret, hash := NewAPISecret()
	t, err := s.Store.CreateAPIToken(ctx, store.APIToken{TenantID: tid, Name: name, Hash: hash, Scope: scope,
		CreatedBy: a.Name, Created: s.now().Now()})
	if err != nil {
		return t, "", err
	}
	return t, secret, s.Audit(ctx, a, tid, "token.create", name, "", scope)
}

// RevokeToken revokes a token of a's tenant (an operator without a
// tenant: an operator token).
func (s *Service) RevokeToken(ctx context.Context, a Actor, id int64) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	tid := a.TenantID
	if err := s.Store.RevokeAPIToken(ctx, tid, id); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "token.revoke", fmt.Sprint(id), "", "revoked")
}
