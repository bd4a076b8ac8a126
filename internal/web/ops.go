package web

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
)

// Every change the console and the API make goes through the
// administration layer (internal/admin), which the CLI calls too: it checks
// the caller's role and tenant, validates, changes the store and writes the
// audit entry. What is left here is the web's side: who the caller is
// (who) and which HTTP status an error becomes (statusOf).

// userError is a refusal of the caller's input, shown as is (400).
type userError = admin.Invalid

func badRequest(format string, a ...any) error { return admin.Invalidf(format, a...) }

// who is the administration layer's view of the caller.
func who(p *principal) admin.Actor {
	a := admin.Actor{Name: p.actor, Role: p.role, TenantID: p.tenantID, Address: p.address}
	if p.ip.IsValid() {
		a.IP = p.ip.String()
	}
	if p.token == nil {
		a.AccountID = p.acct.ID
	}
	return a
}

// statusOf maps an operation error to an HTTP status.
func statusOf(err error) int {
	var ue userError
	var ve *admin.VerifyError
	switch {
	case errors.As(err, &ve):
		if ve.Temporary() {
			return http.StatusServiceUnavailable
		}
		if ve.Reason == admin.VerifyTaken {
			return http.StatusConflict
		}
		return http.StatusBadRequest
	case errors.As(err, &ue):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrExists):
		return http.StatusConflict
	case errors.Is(err, errForbidden), errors.Is(err, admin.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, passwd.ErrBusy):
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// publicError is the text shown for err: internal details stay in the log.
func publicError(err error) string {
	var ve *admin.VerifyError
	if errors.As(err, &ve) {
		return err.Error() // says what to publish; the console's is translated
	}
	switch statusOf(err) {
	case http.StatusInternalServerError:
		return "internal error"
	case http.StatusNotFound:
		return "not found"
	case http.StatusConflict:
		return "already exists"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusTooManyRequests:
		return "too many password checks at once: try again in a moment"
	}
	return err.Error()
}

// tid is the tenant the caller acts on; operators must have chosen one.
func (p *principal) tid() (int64, error) {
	if p.tenantID == 0 {
		return 0, badRequest("choose a tenant first")
	}
	return p.tenantID, nil
}

func (s *Server) tenantName(ctx context.Context, id int64) string {
	ts, err := s.d.Store.Tenants(ctx)
	if err != nil {
		return ""
	}
	for _, t := range ts {
		if t.ID == id {
			return t.Name
		}
	}
	return ""
}

// The operations of the console and the API, by the names their handlers
// use.

func (s *Server) opAddTenant(ctx context.Context, p *principal, name string) (store.Tenant, error) {
	return s.admin.AddTenant(ctx, who(p), name)
}

func (s *Server) opDeleteTenant(ctx context.Context, p *principal, id int64) error {
	return s.admin.DeleteTenant(ctx, who(p), id)
}

func (s *Server) opAddDomain(ctx context.Context, p *principal, name string, routes []string, tlsMode string) (admin.DomainState, error) {
	return s.admin.AddDomain(ctx, who(p), name, routes, tlsMode)
}

func (s *Server) opSetRoutes(ctx context.Context, p *principal, domain string, routes []string, tlsMode string) error {
	_, err := s.admin.SetRoutes(ctx, who(p), domain, routes, tlsMode)
	return err
}

func (s *Server) opDeleteDomain(ctx context.Context, p *principal, domain string) error {
	return s.admin.DeleteDomain(ctx, who(p), domain)
}

func (s *Server) opAddUser(ctx context.Context, p *principal, address, name string) (string, error) {
	return s.admin.AddUser(ctx, who(p), address, name)
}

func (s *Server) opDeleteUser(ctx context.Context, p *principal, address string) error {
	return s.admin.DeleteUser(ctx, who(p), address)
}

func (s *Server) opImportUsers(ctx context.Context, p *principal, r io.Reader) (int, error) {
	return s.admin.ImportUsers(ctx, who(p), r)
}

// writeUsersCSV exports the tenant's addresses with display names; the
// caller has checked the tenant is the principal's.
func (s *Server) writeUsersCSV(ctx context.Context, tid int64, w io.Writer) error {
	return s.admin.ExportUsers(ctx, admin.Actor{Role: store.RoleAdmin, TenantID: tid}, w)
}

func (s *Server) opAddGroup(ctx context.Context, p *principal, name string) error {
	return s.admin.AddGroup(ctx, who(p), name)
}

func (s *Server) opDeleteGroup(ctx context.Context, p *principal, name string) error {
	return s.admin.DeleteGroup(ctx, who(p), name)
}

func (s *Server) opGroupMember(ctx context.Context, p *principal, group, address string, add bool) error {
	return s.admin.GroupMember(ctx, who(p), group, address, add)
}

func (s *Server) opSetSetting(ctx context.Context, p *principal, scope, owner, key, value string) error {
	return s.admin.SetSetting(ctx, who(p), scope, owner, key, value)
}

func (s *Server) opUnsetSetting(ctx context.Context, p *principal, scope, owner, key string) error {
	return s.admin.UnsetSetting(ctx, who(p), scope, owner, key)
}

func (s *Server) opAddListEntry(ctx context.Context, p *principal, e store.ListEntry) (store.ListEntry, error) {
	return s.admin.AddListEntry(ctx, who(p), e)
}

func (s *Server) opDeleteListEntry(ctx context.Context, p *principal, id int64) error {
	return s.admin.DeleteListEntry(ctx, who(p), id)
}

func (s *Server) opQueue(ctx context.Context, p *principal, id, action string) (int, error) {
	return s.admin.QueueAction(ctx, who(p), id, action)
}

func (s *Server) opCreateAccount(ctx context.Context, p *principal, login string, role store.Role, password string) (store.Account, error) {
	return s.admin.CreateAccount(ctx, who(p), login, role, password)
}

func (s *Server) opDeleteAccount(ctx context.Context, p *principal, id int64) error {
	return s.admin.DeleteAccount(ctx, who(p), id)
}

func (s *Server) opSetPassword(ctx context.Context, p *principal, id int64, password string) error {
	return s.admin.SetPassword(ctx, who(p), id, password)
}

func (s *Server) opResetTOTP(ctx context.Context, p *principal, id int64) error {
	return s.admin.ResetTOTP(ctx, who(p), id)
}

// NewAPISecret makes an API token secret and the hash the store keeps.
func NewAPISecret() (secret, hash string) { return admin.NewAPISecret() }

func (s *Server) opCreateToken(ctx context.Context, p *principal, name, scope string) (store.APIToken, string, error) {
	return s.admin.CreateToken(ctx, who(p), name, scope)
}

func (s *Server) opRevokeToken(ctx context.Context, p *principal, id int64) error {
	return s.admin.RevokeToken(ctx, who(p), id)
}
