package web

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/csvsafe"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/scan/lists"
	"github.com/mailgate/mailgate/internal/store"
)

// The operations below are shared by the console and the API: each checks
// that its objects belong to the caller's tenant, changes the store and
// writes an audit entry. Errors are userError (400, shown as is),
// store.ErrNotFound (404), errForbidden (403) or internal.

type userError struct{ msg string }

func (e userError) Error() string { return e.msg }

func badRequest(format string, a ...any) error { return userError{fmt.Sprintf(format, a...)} }

// statusOf maps an operation error to an HTTP status.
func statusOf(err error) int {
	var ue userError
	switch {
	case errors.As(err, &ue):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrExists):
		return http.StatusConflict
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// publicError is the text shown for err: internal details stay in the log.
func publicError(err error) string {
	switch statusOf(err) {
	case http.StatusInternalServerError:
		return "internal error"
	case http.StatusNotFound:
		return "not found"
	case http.StatusConflict:
		return "already exists"
	case http.StatusForbidden:
		return "forbidden"
	}
	return err.Error()
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
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

// --- tenants (operators) ---

func (s *Server) opAddTenant(ctx context.Context, p *principal, name string) (store.Tenant, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 || strings.ContainsAny(name, " \t\r\n/") {
		return store.Tenant{}, badRequest("tenant name: letters, digits, dots and dashes")
	}
	t, err := s.d.Store.CreateTenant(ctx, name)
	if err != nil {
		return t, err
	}
	return t, s.audit(ctx, p, t.ID, "tenant.add", name, "", jsonString(t))
}

func (s *Server) opDeleteTenant(ctx context.Context, p *principal, id int64) error {
	name := s.tenantName(ctx, id)
	if name == "" {
		return store.ErrNotFound
	}
	if err := s.d.Store.DeleteTenant(ctx, id); err != nil {
		return err
	}
	return s.audit(ctx, p, id, "tenant.delete", name, name, "")
}

// --- domains ---

func (s *Server) ownDomain(ctx context.Context, tid int64, name string) (store.Domain, error) {
	n, err := addr.NormalizeDomain(name)
	if err != nil {
		return store.Domain{}, badRequest("domain %q: %v", name, err)
	}
	d, err := s.d.Store.DomainByName(ctx, n)
	if err != nil {
		return d, err
	}
	if d.TenantID != tid {
		return store.Domain{}, store.ErrNotFound
	}
	return d, nil
}

func (s *Server) opAddDomain(ctx context.Context, p *principal, name string, routes []string, tlsMode string) (store.Domain, error) {
	tid, err := p.tid()
	if err != nil {
		return store.Domain{}, err
	}
	n, err := addr.NormalizeDomain(strings.TrimSpace(name))
	if err != nil {
		return store.Domain{}, badRequest("domain %q: %v", name, err)
	}
	rs, err := delivery.ParseRoutes(nonEmpty(routes), tlsMode)
	if err != nil {
		return store.Domain{}, badRequest("%v", err)
	}
	d, err := s.d.Store.CreateDomain(ctx, tid, n)
	if err != nil {
		return d, err
	}
	if len(rs) > 0 {
		if err := s.d.Store.SetRoutes(ctx, tid, d.ID, rs); err != nil {
			return d, err
		}
	}
	return d, s.audit(ctx, p, tid, "domain.add", n, "", jsonString(map[string]any{"domain": n, "routes": rs}))
}

func (s *Server) opSetRoutes(ctx context.Context, p *principal, domain string, routes []string, tlsMode string) error {
	tid, err := p.tid()
	if err != nil {
		return err
	}
	d, err := s.ownDomain(ctx, tid, domain)
	if err != nil {
		return err
	}
	rs, err := delivery.ParseRoutes(nonEmpty(routes), tlsMode)
	if err != nil {
		return badRequest("%v", err)
	}
	old, _ := s.d.Store.Routes(ctx, tid, d.ID)
	if err := s.d.Store.SetRoutes(ctx, tid, d.ID, rs); err != nil {
		return err
	}
	return s.audit(ctx, p, tid, "domain.routes", d.Name, jsonString(old), jsonString(rs))
}

func (s *Server) opDeleteDomain(ctx context.Context, p *principal, domain string) error {
	tid, err := p.tid()
	if err != nil {
		return err
	}
	d, err := s.ownDomain(ctx, tid, domain)
	if err != nil {
		return err
	}
	if err := s.d.Store.DeleteDomain(ctx, tid, d.Name); err != nil {
		return err
	}
	return s.audit(ctx, p, tid, "domain.delete", d.Name, d.Name, "")
}

func nonEmpty(xs []string) []string {
	var out []string
	for _, x := range xs {
		if strings.TrimSpace(x) != "" {
			out = append(out, strings.TrimSpace(x))
		}
	}
	return out
}

// --- users (addresses) ---

// ownAddress normalises an address and checks its domain is the tenant's.
func (s *Server) ownAddress(ctx context.Context, tid int64, a string) (string, error) {
	ad, err := addr.Parse(strings.TrimSpace(a))
	if err != nil {
		return "", badRequest("address %q: %v", a, err)
	}
	if _, err := s.ownDomain(ctx, tid, ad.Domain); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", badRequest("%s is not one of this tenant's domains", ad.Domain)
		}
		return "", err
	}
	return ad.Key(), nil
}

func (s *Server) opAddUser(ctx context.Context, p *principal, address, name string) (string, error) {
	tid, err := p.tid()
	if err != nil {
		return "", err
	}
	a, err := s.ownAddress(ctx, tid, address)
	if err != nil {
		return "", err
	}
	if _, err := s.d.Store.CreateUser(ctx, tid, a); err != nil {
		return "", err
	}
	if name = strings.TrimSpace(name); name != "" {
		if err := s.d.Store.SetDisplayName(ctx, tid, a, name); err != nil {
			return "", err
		}
	}
	return a, s.audit(ctx, p, tid, "user.add", a, "", jsonString(map[string]string{"address": a, "name": name}))
}

func (s *Server) opDeleteUser(ctx context.Context, p *principal, address string) error {
	tid, err := p.tid()
	if err != nil {
		return err
	}
	a, err := s.ownAddress(ctx, tid, address)
	if err != nil {
		return err
	}
	if err := s.d.Store.DeleteUser(ctx, tid, a); err != nil {
		return err
	}
	return s.audit(ctx, p, tid, "user.delete", a, a, "")
}

// opImportUsers reads CSV lines "address[,display name]" (a header line
// "address,..." is skipped). The whole file is checked before any change.
func (s *Server) opImportUsers(ctx context.Context, p *principal, r io.Reader) (int, error) {
	tid, err := p.tid()
	if err != nil {
		return 0, err
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	type row struct{ addr, name string }
	var rows []row
	seen := map[string]bool{}
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, badRequest("CSV line %d: %v", line, err)
		}
		if len(rec) == 0 || strings.TrimSpace(rec[0]) == "" || (line == 1 && strings.EqualFold(strings.TrimSpace(rec[0]), "address")) {
			continue
		}
		a, err := s.ownAddress(ctx, tid, strings.TrimPrefix(rec[0], "\ufeff"))
		if err != nil {
			return 0, badRequest("CSV line %d: %v", line, err)
		}
		if seen[a] {
			continue
		}
		seen[a] = true
		name := ""
		if len(rec) > 1 {
			name = strings.TrimSpace(rec[1])
		}
		rows = append(rows, row{a, name})
		if len(rows) > 100000 {
			return 0, badRequest("at most 100000 addresses per import")
		}
	}
	n := 0
	for _, r := range rows {
		if ok, err := s.d.Store.UserExists(ctx, tid, r.addr); err != nil {
			return n, err
		} else if !ok {
			if _, err := s.d.Store.CreateUser(ctx, tid, r.addr); err != nil {
				return n, err
			}
			n++
		}
		if r.name != "" {
			if err := s.d.Store.SetDisplayName(ctx, tid, r.addr, r.name); err != nil {
				return n, err
			}
		}
	}
	return n, s.audit(ctx, p, tid, "user.import", fmt.Sprintf("%d rows", len(rows)), "", fmt.Sprintf("%d added", n))
}

// writeUsersCSV exports the tenant's addresses with display names.
func (s *Server) writeUsersCSV(ctx context.Context, tid int64, w io.Writer) error {
	us, err := s.d.Store.Users(ctx, tid)
	if err != nil {
		return err
	}
	people, err := s.d.Store.People(ctx, tid)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, pp := range people {
		names[pp.Address] = pp.Name
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{"address", "name"})
	for _, u := range us {
		cw.Write(csvsafe.Cells([]string{u.Address, names[u.Address]}))
	}
	cw.Flush()
	return cw.Error()
}

// --- groups ---

func (s *Server) opAddGroup(ctx context.Context, p *principal, name string) error {
	tid, err := p.tid()
	if err != nil {
		return err
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return badRequest("group name required")
	}
	if _, err := s.d.Store.CreateGroup(ctx, tid, name); err != nil {
		return err
	}
	return s.audit(ctx, p, tid, "group.add", name, "", name)
}

func (s *Server) ownGroup(ctx context.Context, tid int64, name string) (store.Group, error) {
	gs, err := s.d.Store.Groups(ctx, tid)
	if err != nil {
		return store.Group{}, err
	}
	for _, g := range gs {
		if g.Name == name {
			return g, nil
		}
	}
	return store.Group{}, store.ErrNotFound
}

func (s *Server) opDeleteGroup(ctx context.Context, p *principal, name string) error {
	tid, err := p.tid()
	if err != nil {
		return err
	}
	g, err := s.ownGroup(ctx, tid, name)
	if err != nil {
		return err
	}
	if err := s.d.Store.DeleteGroup(ctx, tid, name); err != nil {
		return err
	}
	return s.audit(ctx, p, tid, "group.delete", name, jsonString(g.Members), "")
}

func (s *Server) opGroupMember(ctx context.Context, p *principal, group, address string, add bool) error {
	tid, err := p.tid()
	if err != nil {
		return err
	}
	if _, err := s.ownGroup(ctx, tid, group); err != nil {
		return err
	}
	a, err := s.ownAddress(ctx, tid, address)
	if err != nil {
		return err
	}
	if add {
		err = s.d.Store.AddGroupMember(ctx, tid, group, a)
	} else {
		err = s.d.Store.RemoveGroupMember(ctx, tid, group, a)
	}
	if err != nil {
		return err
	}
	act := map[bool]string{true: "group.join", false: "group.leave"}[add]
	return s.audit(ctx, p, tid, act, group, "", a)
}

// --- policy settings and lists ---

// scopeOwner checks a policy scope and its owner belong to the tenant.
func (s *Server) scopeOwner(ctx context.Context, tid int64, scope, owner string) (string, error) {
	switch scope {
	case store.ScopeTenant:
		return "", nil
	case store.ScopeDomain:
		d, err := s.ownDomain(ctx, tid, owner)
		if err != nil {
			return "", err
		}
		return d.Name, nil
	case store.ScopeGroup:
		g, err := s.ownGroup(ctx, tid, owner)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	case store.ScopeAddress:
		return s.ownAddress(ctx, tid, owner)
	}
	return "", badRequest("scope must be tenant, domain, group or address")
}

func validKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return strings.Contains(k, ".")
}

func (s *Server) opSetSetting(ctx context.Context, p *principal, scope, owner, key, value string) error {
	tid, err := p.tid()
	if err != nil {
		return err
	}
	key = strings.TrimSpace(key)
	if !validKey(key) {
		return badRequest("key %q: lower-case words joined by dots, e.g. spam.tag_at", key)
	}
	if len(value) > 4096 || strings.ContainsAny(value, "\r\n\x00") {
		return badRequest("value too long or has line breaks")
	}
	owner, err = s.scopeOwner(ctx, tid, scope, owner)
	if err != nil {
		return err
	}
	before := ""
	if ss, err := s.d.Store.Settings(ctx, tid); err == nil {
		for _, st := range ss {
			if st.Scope == scope && st.Owner == owner && st.Key == key {
				before = st.Value
			}
		}
	}
	if err := s.d.Store.SetSetting(ctx, store.Setting{TenantID: tid, Scope: scope, Owner: owner, Key: key, Value: value}); err != nil {
		return err
	}
	return s.audit(ctx, p, tid, "policy.set", scope+":"+owner+":"+key, before, value)
}

func (s *Server) opUnsetSetting(ctx context.Context, p *principal, scope, owner, key string) error {
	tid, err := p.tid()
	if err != nil {
		return err
	}
	owner, err = s.scopeOwner(ctx, tid, scope, owner)
	if err != nil {
		return err
	}
	before := ""
	if ss, err := s.d.Store.Settings(ctx, tid); err == nil {
		for _, st := range ss {
			if st.Scope == scope && st.Owner == owner && st.Key == key {
				before = st.Value
			}
		}
	}
	if err := s.d.Store.DeleteSetting(ctx, store.Setting{TenantID: tid, Scope: scope, Owner: owner, Key: key}); err != nil {
		return err
	}
	return s.audit(ctx, p, tid, "policy.unset", scope+":"+owner+":"+key, before, "")
}

// opAddListEntry adds an allow/deny entry. End users may only touch their
// own address's list, and allow entries only when the tenant lets them
// (setting console.user_allow, default true).
func (s *Server) opAddListEntry(ctx context.Context, p *principal, e store.ListEntry) (store.ListEntry, error) {
	tid, err := p.tid()
	if err != nil {
		return e, err
	}
	e.TenantID = tid
	if p.role == store.RoleUser {
		e.Scope, e.Owner = store.ScopeAddress, p.address
		if e.Kind == "allow" {
			if v, _ := s.tenantSetting(ctx, tid, "console.user_allow"); v == "false" {
				return e, errForbidden
			}
		}
	}
	if e.Scope == store.ScopeTenant {
		return e, badRequest("lists belong to a domain, group or address")
	}
	if e.Owner, err = s.scopeOwner(ctx, tid, e.Scope, e.Owner); err != nil {
		return e, err
	}
	if e.Field == "" {
		e.Field = "from_addr"
	}
	if e.Mode == "" {
		e.Mode = "exact"
	}
	if err := lists.Validate(lists.Entry(e)); err != nil {
		return e, badRequest("%v", err)
	}
	e, err = s.d.Store.AddListEntry(ctx, e)
	if err != nil {
		return e, err
	}
	return e, s.audit(ctx, p, tid, "list.add", fmt.Sprintf("%s:%s", e.Scope, e.Owner), "", jsonString(e))
}

func (s *Server) opDeleteListEntry(ctx context.Context, p *principal, id int64) error {
	tid, err := p.tid()
	if err != nil {
		return err
	}
	es, err := s.d.Store.ListEntries(ctx, tid)
	if err != nil {
		return err
	}
	var found *store.ListEntry
	for i := range es {
		if es[i].ID == id {
			found = &es[i]
		}
	}
	if found == nil || (p.role == store.RoleUser && (found.Scope != store.ScopeAddress || found.Owner != p.address)) {
		return store.ErrNotFound
	}
	if err := s.d.Store.DeleteListEntry(ctx, tid, id); err != nil {
		return err
	}
	return s.audit(ctx, p, tid, "list.delete", fmt.Sprintf("%s:%s", found.Scope, found.Owner), jsonString(found), "")
}

// --- queue ---

func (s *Server) opQueue(ctx context.Context, p *principal, id, action string) (int, error) {
	tid, err := p.tid()
	if err != nil {
		return 0, err
	}
	if _, _, err := s.d.Store.Message(ctx, tid, id); err != nil {
		return 0, err
	}
	who := p.actor + " (console)"
	var n int
	switch action {
	case "hold":
		n, err = s.d.Queue.Hold(ctx, tid, id, who)
	case "release":
		n, err = s.d.Queue.Release(ctx, tid, id, who)
	case "retry":
		n, err = s.d.Queue.RetryNow(ctx, tid, id, who)
	case "delete":
		n, err = s.d.Queue.Delete(ctx, tid, id, who)
	case "bounce":
		n, err = s.d.Queue.Bounce(ctx, tid, id, who)
	default:
		return 0, badRequest("unknown queue action %q", action)
	}
	if err != nil {
		return n, err
	}
	return n, s.audit(ctx, p, tid, "queue."+action, id, "", fmt.Sprintf("%d recipients", n))
}

// --- accounts ---

func (s *Server) opCreateAccount(ctx context.Context, p *principal, login string, role store.Role, password string) (store.Account, error) {
	var tid int64
	if role != store.RoleOperator {
		var err error
		if tid, err = p.tid(); err != nil {
			return store.Account{}, err
		}
	}
	if !roleAtLeast(p.role, role) || (role == store.RoleOperator && p.role != store.RoleOperator) {
		return store.Account{}, errForbidden
	}
	login = strings.ToLower(strings.TrimSpace(login))
	switch role {
	case store.RoleUser:
		a, err := s.ownAddress(ctx, tid, login)
		if err != nil {
			return store.Account{}, err
		}
		login = a
	case store.RoleAdmin, store.RoleOperator:
		if login == "" || len(login) > 254 || strings.ContainsAny(login, " \t\r\n") {
			return store.Account{}, badRequest("login name required")
		}
		// A login that looks like an address must be one of the tenant's
		// own, so an administrator cannot take a name in another tenant's
		// domain (which that tenant's users would then be refused).
		if strings.Contains(login, "@") && role == store.RoleAdmin {
			a, err := s.ownAddress(ctx, tid, login)
			if err != nil {
				return store.Account{}, err
			}
			login = a
		}
	default:
		return store.Account{}, badRequest("role must be operator, admin or user")
	}
	hash := ""
	if password != "" {
		if err := passwordOK(password); err != nil {
			return store.Account{}, err
		}
		var err error
		if hash, err = passwd.Hash(password); err != nil {
			return store.Account{}, err
		}
	}
	a, err := s.d.Store.CreateAccount(ctx, store.Account{TenantID: tid, Login: login, Role: role, Hash: hash, Created: s.d.Clock.Now()})
	if err != nil {
		return a, err
	}
	return a, s.audit(ctx, p, tid, "account.add", login, "", string(role))
}

func passwordOK(pw string) error {
	if len([]rune(pw)) < 10 {
		return badRequest("password: at least 10 characters")
	}
	if len(pw) > 1024 {
		return badRequest("password too long")
	}
	return nil
}

// accountFor loads an account the caller may manage.
func (s *Server) accountFor(ctx context.Context, p *principal, id int64) (store.Account, error) {
	a, err := s.d.Store.Account(ctx, id)
	if err != nil {
		return a, err
	}
	if p.role != store.RoleOperator && (a.TenantID != p.tenantID || a.Role == store.RoleOperator) {
		return store.Account{}, store.ErrNotFound
	}
	if p.role == store.RoleOperator && a.TenantID != 0 && p.tenantID != 0 && a.TenantID != p.tenantID {
		return store.Account{}, store.ErrNotFound
	}
	return a, nil
}

func (s *Server) opDeleteAccount(ctx context.Context, p *principal, id int64) error {
	a, err := s.accountFor(ctx, p, id)
	if err != nil {
		return err
	}
	if a.ID == p.acct.ID {
		return badRequest("you cannot delete your own account")
	}
	if err := s.d.Store.DeleteAccount(ctx, a.TenantID, a.ID); err != nil {
		return err
	}
	s.d.Store.DeleteSessions(ctx, a.ID)
	return s.audit(ctx, p, a.TenantID, "account.delete", a.Login, string(a.Role), "")
}

// opSetPassword sets an account's password (its own, or one it manages)
// and ends every session of that account.
func (s *Server) opSetPassword(ctx context.Context, p *principal, id int64, password string) error {
	a, err := s.accountFor(ctx, p, id)
	if err != nil {
		return err
	}
	if err := passwordOK(password); err != nil {
		return err
	}
	if a.Hash, err = passwd.Hash(password); err != nil {
		return err
	}
	a.PasswordChanged = s.d.Clock.Now()
	if err := s.d.Store.UpdateAccount(ctx, a); err != nil {
		return err
	}
	if _, err := s.d.Store.DeleteSessions(ctx, a.ID); err != nil {
		return err
	}
	return s.audit(ctx, p, a.TenantID, "account.password", a.Login, "", "changed")
}

func (s *Server) opResetTOTP(ctx context.Context, p *principal, id int64) error {
	a, err := s.accountFor(ctx, p, id)
	if err != nil {
		return err
	}
	a.TOTPSecret = ""
	a.PasswordChanged = s.d.Clock.Now() // ends its sessions too
	if err := s.d.Store.UpdateAccount(ctx, a); err != nil {
		return err
	}
	s.d.Store.DeleteSessions(ctx, a.ID)
	return s.audit(ctx, p, a.TenantID, "account.totp_reset", a.Login, "", "")
}

// --- API tokens ---

// NewAPISecret makes an API token secret and the hash the store keeps.
func NewAPISecret() (secret, hash string) {
	secret = "mgt_" + randomToken(30)
	return secret, sha256Hex(secret)
}

// opCreateToken makes a token; the secret is returned once.
func (s *Server) opCreateToken(ctx context.Context, p *principal, name, scope string) (store.APIToken, string, error) {
	tid := p.tenantID
	if p.role != store.RoleOperator {
		var err error
		if tid, err = p.tid(); err != nil {
			return store.APIToken{}, "", err
		}
	}
	if scope != "read" && scope != "write" {
		return store.APIToken{}, "", badRequest("scope must be read or write")
	}
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return store.APIToken{}, "", badRequest("token name required")
	}
	secret, hash := NewAPISecret()
	t, err := s.d.Store.CreateAPIToken(ctx, store.APIToken{TenantID: tid, Name: name, Hash: hash, Scope: scope,
		CreatedBy: p.actor, Created: s.d.Clock.Now()})
	if err != nil {
		return t, "", err
	}
	return t, secret, s.audit(ctx, p, tid, "token.create", name, "", scope)
}

func (s *Server) opRevokeToken(ctx context.Context, p *principal, id int64) error {
	tid := p.tenantID
	if err := s.d.Store.RevokeAPIToken(ctx, tid, id); err != nil {
		return err
	}
	return s.audit(ctx, p, tid, "token.revoke", fmt.Sprint(id), "", "revoked")
}
