package admin

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/netguard"
	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/scan/lists"
	"github.com/mailgate/mailgate/internal/smtpin"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web/extauth"
)

// --- groups ---

func groupNameOK(name string) error {
	if name == "" || len(name) > 100 || strings.ContainsAny(name, "\r\n\x00") {
		return Invalidf("group name: 1 to 100 characters on one line")
	}
	return nil
}

// AddGroup creates a group in a's tenant.
func (s *Service) AddGroup(ctx context.Context, a Actor, name string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	tid, err := a.tenant()
	if err != nil {
		return err
	}
	name = strings.TrimSpace(name)
	if err := groupNameOK(name); err != nil {
		return err
	}
	if _, err := s.Store.CreateGroup(ctx, tid, name); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "group.add", name, "", name)
}

// ownGroup finds a group of a's tenant.
func (s *Service) ownGroup(ctx context.Context, a Actor, name string) (store.Group, error) {
	tid, err := a.tenant()
	if err != nil {
		return store.Group{}, err
	}
	gs, err := s.Store.Groups(ctx, tid)
	if err != nil {
		return store.Group{}, err
	}
	for _, g := range gs {
		if g.Name == name {
			return g, nil
		}
	}
	return store.Group{}, fmt.Errorf("group %q: %w", name, store.ErrNotFound)
}

// DeleteGroup deletes a group of a's tenant.
func (s *Service) DeleteGroup(ctx context.Context, a Actor, name string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	g, err := s.ownGroup(ctx, a, name)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteGroup(ctx, g.TenantID, name); err != nil {
		return err
	}
	return s.Audit(ctx, a, g.TenantID, "group.delete", name, jsonString(g.Members), "")
}

// GroupMember adds an address of the tenant to a group (add) or removes it.
func (s *Service) GroupMember(ctx context.Context, a Actor, group, address string, add bool) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	g, err := s.ownGroup(ctx, a, group)
	if err != nil {
		return err
	}
	_, key, err := s.ownAddress(ctx, a.In(g.TenantID), address)
	if err != nil {
		return err
	}
	if add {
		err = s.Store.AddGroupMember(ctx, g.TenantID, g.Name, key)
	} else {
		err = s.Store.RemoveGroupMember(ctx, g.TenantID, g.Name, key)
	}
	if err != nil {
		return err
	}
	act := map[bool]string{true: "group.join", false: "group.leave"}[add]
	return s.Audit(ctx, a, g.TenantID, act, g.Name, "", key)
}

// --- policy settings ---

// scopeOwner checks a policy scope and its owner belong to a's tenant and
// returns the tenant and the owner's normal form. An operator acting on
// every tenant names the tenant through a domain or an address owner.
func (s *Service) scopeOwner(ctx context.Context, a Actor, scope, owner string) (int64, string, error) {
	switch scope {
	case store.ScopeTenant:
		tid, err := a.tenant()
		return tid, "", err
	case store.ScopeDomain:
		d, err := s.servedDomain(ctx, a, owner)
		if err != nil {
			return 0, "", err
		}
		return d.TenantID, d.Name, nil
	case store.ScopeGroup:
		g, err := s.ownGroup(ctx, a, owner)
		if err != nil {
			return 0, "", err
		}
		return g.TenantID, g.Name, nil
	case store.ScopeAddress:
		return s.ownAddress(ctx, a, owner)
	}
	return 0, "", Invalidf("scope must be tenant, domain, group or address")
}

// ValidKey reports whether k is a well-formed policy key: lower-case
// words joined by dots.
func ValidKey(k string) bool {
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

func (s *Service) settingValue(ctx context.Context, tid int64, scope, owner, key string) string {
	ss, err := s.Store.Settings(ctx, tid)
	if err != nil {
		return ""
	}
	for _, st := range ss {
		if st.Scope == scope && st.Owner == owner && st.Key == key {
			return st.Value
		}
	}
	return ""
}

// SetSetting sets one policy value at a scope of a's tenant.
func (s *Service) SetSetting(ctx context.Context, a Actor, scope, owner, key, value string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	key = strings.TrimSpace(key)
	if !ValidKey(key) {
		return Invalidf("key %q: lower-case words joined by dots, e.g. spam.tag_at", key)
	}
	if len(value) > 4096 || strings.ContainsAny(value, "\r\n\x00") {
		return Invalidf("value too long or has line breaks")
	}
	if err := operatorKey(a, key); err != nil {
		return err
	}
	tid, owner, err := s.scopeOwner(ctx, a, scope, owner)
	if err != nil {
		return err
	}
	if err := s.checkUpstream(ctx, key, value); err != nil {
		return err
	}
	if err := continuitySetting(scope, owner, key, value); err != nil {
		return err
	}
	if key == smtpin.KeySendAs {
		if value, err = s.sendAsSetting(ctx, a.In(tid), scope, owner, value); err != nil {
			return err
		}
	}
	if err := outbound.CheckSetting(key, value); err != nil {
		return Invalidf("%v", err)
	}
	if value, err = CheckPolicyValue(key, value); err != nil {
		return err
	}
	before := s.settingValue(ctx, tid, scope, owner, key)
	if err := s.Store.SetSetting(ctx, store.Setting{TenantID: tid, Scope: scope, Owner: owner, Key: key, Value: value}); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "policy.set", scope+":"+owner+":"+key, before, value)
}

// sendAsSetting checks the addresses a user may send as on the
// submission listener: set for one user's address, each an address of a
// domain the tenant serves (not the user's own). It returns the value
// normalised (lower case, ", " between addresses).
func (s *Service) sendAsSetting(ctx context.Context, a Actor, scope, owner, value string) (string, error) {
	if scope != store.ScopeAddress {
		return "", Invalidf("%s is set per user (address scope)", smtpin.KeySendAs)
	}
	var keys []string
	for _, v := range strings.Split(value, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		_, key, err := s.ownAddress(ctx, a, v)
		if err != nil {
			return "", err
		}
		if key != owner && !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	if len(keys) > 100 {
		return "", Invalidf("%s: at most 100 addresses", smtpin.KeySendAs)
	}
	return strings.Join(keys, ", "), nil
}

// operatorKey keeps plan limits the operator's: a tenant administrator
// does not raise its own.
func operatorKey(a Actor, key string) error {
	if key == mlist.KeyMaxLists && a.Role != store.RoleOperator {
		return Invalidf("%s is the plan's limit, set by the operator", key)
	}
	return nil
}

// continuitySetting checks a continuity.* value: set for a domain or the
// tenant, and usable (continuity.ValidateSetting); a canary is a
// domain's own address, so it is set per domain.
func continuitySetting(scope, owner, key, value string) error {
	if !strings.HasPrefix(key, "continuity.") {
		return nil
	}
	if scope != store.ScopeDomain && scope != store.ScopeTenant {
		return Invalidf("%s is set per domain or for the tenant", key)
	}
	if key == continuity.KeyCanary && scope != store.ScopeDomain {
		return Invalidf("%s is set per domain (an address of that domain)", key)
	}
	domain := ""
	if scope == store.ScopeDomain {
		domain = owner
	}
	if err := continuity.ValidateSetting(key, value, domain); err != nil {
		return Invalidf("%v", err)
	}
	return nil
}

// UnsetSetting removes one policy value (the less specific one applies).
func (s *Service) UnsetSetting(ctx context.Context, a Actor, scope, owner, key string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	key = strings.TrimSpace(key)
	if err := operatorKey(a, key); err != nil {
		return err
	}
	tid, owner, err := s.scopeOwner(ctx, a, scope, owner)
	if err != nil {
		return err
	}
	before := s.settingValue(ctx, tid, scope, owner, key)
	if err := s.Store.DeleteSetting(ctx, store.Setting{TenantID: tid, Scope: scope, Owner: owner, Key: key}); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "policy.unset", scope+":"+owner+":"+key, before, "")
}

// UpstreamRefused refuses a login.* setting naming a server that delegated
// logins must not connect to (an Invalid refusal).
type UpstreamRefused struct {
	Reason    string // "internal" (an internal network) or "unresolved"
	Key, Host string
}

func (e *UpstreamRefused) Error() string {
	if e.Reason == "internal" {
		return fmt.Sprintf("%s: %s is in an internal network (loopback, private or link-local); only the operator can allow such networks ([auth] upstream_allow)", e.Key, e.Host)
	}
	return fmt.Sprintf("%s: the name %s cannot be resolved", e.Key, e.Host)
}

func (e *UpstreamRefused) Unwrap() error { return Invalid{e.Error()} }

// checkUpstream validates the settings that name a server mailgate
// connects to on the tenant's behalf (login.imap, login.smtp,
// login.oidc_issuer): the host must resolve, through the configured
// resolver, to addresses outside the internal networks the operator has not
// allowed (Upstreams). The dialer checks again at connect time; this check
// gives a clear error when the value is saved.
func (s *Service) checkUpstream(ctx context.Context, key, value string) error {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil
	}
	var host string
	switch key {
	case extauth.KeyIMAP, extauth.KeySMTP:
		t, err := extauth.ParseTarget(value)
		if err != nil {
			return Invalidf("%s: %v", key, err)
		}
		host = t.Host
	case extauth.KeyOIDCIssuer:
		u, err := url.Parse(value)
		if err != nil || u.Hostname() == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return Invalidf("%s: %q is not an https:// URL", key, value)
		}
		host = u.Hostname()
	default:
		return nil
	}
	err := s.Upstreams.CheckHost(ctx, s.Resolver, host)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, netguard.ErrForbidden):
		return &UpstreamRefused{Reason: "internal", Key: key, Host: host}
	case ctx.Err() != nil:
		return ctx.Err()
	}
	s.log().Info("login server setting refused", "key", key, "err", err)
	return &UpstreamRefused{Reason: "unresolved", Key: key, Host: host}
}

// --- allow/deny lists ---

// checkListEntry applies the tenant and role rules and the list check's
// own validation to e, filling its tenant, normal owner and defaults. End
// users may only touch their own address's list, and add allow entries
// only when the tenant lets them (setting console.user_allow, default
// true).
func (s *Service) checkListEntry(ctx context.Context, a Actor, e store.ListEntry) (store.ListEntry, error) {
	if err := a.require(store.RoleUser); err != nil {
		return e, err
	}
	if a.Role == store.RoleUser {
		e.Scope, e.Owner = store.ScopeAddress, a.Address
	}
	if e.Scope == store.ScopeTenant {
		return e, Invalidf("lists belong to a domain, group or address")
	}
	tid, owner, err := s.scopeOwner(ctx, a, e.Scope, e.Owner)
	if err != nil {
		return e, err
	}
	e.TenantID, e.Owner = tid, owner
	if a.Role == store.RoleUser && e.Kind == "allow" {
		if v, _ := s.tenantSetting(ctx, tid, "console.user_allow"); v == "false" {
			return e, ErrForbidden
		}
	}
	if e.Field == "" {
		e.Field = "from_addr"
	}
	if e.Mode == "" {
		e.Mode = "exact"
	}
	if err := lists.Validate(lists.Entry(e)); err != nil {
		return e, Invalidf("%v", err)
	}
	return e, nil
}

// AddListEntry adds an allow or deny entry to a list of a's tenant.
func (s *Service) AddListEntry(ctx context.Context, a Actor, e store.ListEntry) (store.ListEntry, error) {
	e, err := s.checkListEntry(ctx, a, e)
	if err != nil {
		return e, err
	}
	e, err = s.Store.AddListEntry(ctx, e)
	if err != nil {
		return e, err
	}
	return e, s.Audit(ctx, a, e.TenantID, "list.add", fmt.Sprintf("%s:%s", e.Scope, e.Owner), "", jsonString(e))
}

// ImportListEntries checks every entry, then adds them all. It returns
// the index of a refused entry with the error.
func (s *Service) ImportListEntries(ctx context.Context, a Actor, es []store.ListEntry) (int, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return 0, err
	}
	checked := make([]store.ListEntry, 0, len(es))
	for i, e := range es {
		e, err := s.checkListEntry(ctx, a, e)
		if err != nil {
			return i, err
		}
		checked = append(checked, e)
	}
	count := map[int64]int{}
	for i, e := range checked {
		if _, err := s.Store.AddListEntry(ctx, e); err != nil {
			return i, err
		}
		count[e.TenantID]++
	}
	for tid, n := range count {
		if err := s.Audit(ctx, a, tid, "list.import", fmt.Sprintf("%d entries", n), "", ""); err != nil {
			return len(es), err
		}
	}
	return len(es), nil
}

// DeleteListEntry deletes an entry of a's tenant (an end user: of their
// own list).
func (s *Service) DeleteListEntry(ctx context.Context, a Actor, id int64) error {
	if err := a.require(store.RoleUser); err != nil {
		return err
	}
	tid, err := a.tenant()
	if err != nil {
		return err
	}
	es, err := s.Store.ListEntries(ctx, tid)
	if err != nil {
		return err
	}
	var found *store.ListEntry
	for i := range es {
		if es[i].ID == id {
			found = &es[i]
		}
	}
	if found == nil || (a.Role == store.RoleUser && (found.Scope != store.ScopeAddress || found.Owner != a.Address)) {
		return fmt.Errorf("list entry %d: %w", id, store.ErrNotFound)
	}
	if err := s.Store.DeleteListEntry(ctx, tid, id); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "list.delete", fmt.Sprintf("%s:%s", found.Scope, found.Owner), jsonString(found), "")
}
