package admin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Console logins are unique across tenants. So that a tenant administrator
// learns nothing about other tenants' or the operators' logins, the logins
// they create must be addresses of their tenant's own verified domains, and
// a login that is taken gets the same refusal as one outside those domains
// (errLoginUnavailable), with or without an account behind it. Operators may
// create any login.

var errLoginUnavailable = Invalidf("login: use an address of one of this tenant's verified domains that has no login yet")

// PasswordOK is the rule every console password follows.
func PasswordOK(pw string) error {
	if len([]rune(pw)) < 10 {
		return Invalidf("password: at least 10 characters")
	}
	if len(pw) > 1024 {
		return Invalidf("password too long")
	}
	return nil
}

// CreateAccount creates a console login of role in a's tenant (operators:
// no tenant). An empty password makes a login without a local password
// (delegated login for users). Only operators create operators; a login may
// not rank above its creator.
func (s *Service) CreateAccount(ctx context.Context, a Actor, login string, role store.Role, password string) (store.Account, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return store.Account{}, err
	}
	var tid int64
	switch role {
	case store.RoleOperator:
		if a.Role != store.RoleOperator {
			return store.Account{}, ErrForbidden
		}
	case store.RoleAdmin, store.RoleUser:
		var err error
		if tid, err = a.tenant(); err != nil {
			return store.Account{}, err
		}
	default:
		return store.Account{}, Invalidf("role must be operator, admin or user")
	}
	login = strings.ToLower(strings.TrimSpace(login))
	if login == "" || len(login) > 254 || strings.ContainsAny(login, " \t\r\n\x00") {
		return store.Account{}, Invalidf("login name required")
	}
	// A user's login is their address; an administrator's login that
	// looks like an address must be one of the tenant's own, so nobody
	// takes a name in another tenant's domain (whose users would then be
	// refused). Tenant administrators create address logins only.
	if role == store.RoleUser || (role == store.RoleAdmin && (strings.Contains(login, "@") || a.Role != store.RoleOperator)) {
		_, key, err := s.ownAddress(ctx, a.In(tid), login)
		if err != nil {
			if a.Role != store.RoleOperator {
				return store.Account{}, errLoginUnavailable
			}
			return store.Account{}, err
		}
		login = key
	}
	if a.Role != store.RoleOperator {
		// Refuse a taken login before the slow hash, so that the answer
		// takes as long as a refusal of a login outside the tenant.
		if _, err := s.Store.AccountByLogin(ctx, login); err == nil {
			return store.Account{}, errLoginUnavailable
		} else if !errors.Is(err, store.ErrNotFound) {
			return store.Account{}, err
		}
	}
	hash := ""
	if password != "" {
		if err := PasswordOK(password); err != nil {
			return store.Account{}, err
		}
		var err error
		if hash, err = s.hash(ctx, password); err != nil {
			return store.Account{}, err
		}
	}
	acct, err := s.Store.CreateAccount(ctx, store.Account{TenantID: tid, Login: login, Role: role, Hash: hash, Created: s.now().Now()})
	if errors.Is(err, store.ErrExists) && a.Role != store.RoleOperator {
		return store.Account{}, errLoginUnavailable
	}
	if err != nil {
		return acct, err
	}
	return acct, s.Audit(ctx, a, tid, "account.add", login, "", string(role))
}

// Accounts lists the console logins a manages: its tenant's, or for an
// operator with no tenant selected, the operators'.
func (s *Service) Accounts(ctx context.Context, a Actor) ([]store.Account, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return nil, err
	}
	return s.Store.Accounts(ctx, a.TenantID)
}

// Account loads an account a may manage: an administrator's of their own
// tenant except operators; an operator's of the selected tenant, or any
// with none selected. Anything else is not found.
func (s *Service) Account(ctx context.Context, a Actor, id int64) (store.Account, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return store.Account{}, err
	}
	acct, err := s.Store.Account(ctx, id)
	if err != nil {
		return acct, err
	}
	if a.Role != store.RoleOperator && (acct.TenantID != a.TenantID || acct.Role == store.RoleOperator) {
		return store.Account{}, fmt.Errorf("account %d: %w", id, store.ErrNotFound)
	}
	if a.Role == store.RoleOperator && acct.TenantID != 0 && a.TenantID != 0 && acct.TenantID != a.TenantID {
		return store.Account{}, fmt.Errorf("account %d: %w", id, store.ErrNotFound)
	}
	return acct, nil
}

// AccountByLogin is Account by login name.
func (s *Service) AccountByLogin(ctx context.Context, a Actor, login string) (store.Account, error) {
	acct, err := s.Store.AccountByLogin(ctx, strings.ToLower(strings.TrimSpace(login)))
	if err != nil {
		return acct, err
	}
	return s.Account(ctx, a, acct.ID)
}

// DeleteAccount deletes a login and ends its sessions.
func (s *Service) DeleteAccount(ctx context.Context, a Actor, id int64) error {
	acct, err := s.Account(ctx, a, id)
	if err != nil {
		return err
	}
	if a.AccountID != 0 && acct.ID == a.AccountID {
		return Invalidf("you cannot delete your own account")
	}
	if _, err := s.Store.DeleteSessions(ctx, acct.ID); err != nil {
		return err
	}
	if err := s.Store.DeleteAccount(ctx, acct.TenantID, acct.ID); err != nil {
		return err
	}
	return s.Audit(ctx, a, acct.TenantID, "account.delete", acct.Login, string(acct.Role), "")
}

// SetPassword sets the password of a login (the caller's own, or one it
// manages) and ends every session of that login.
func (s *Service) SetPassword(ctx context.Context, a Actor, id int64, password string) error {
	acct, err := s.ownOrManaged(ctx, a, id) // everyone may change their own
	if err != nil {
		return err
	}
	if err := PasswordOK(password); err != nil {
		return err
	}
	if acct.Hash, err = s.hash(ctx, password); err != nil {
		return err
	}
	acct.PasswordChanged = s.now().Now()
	if err := s.Store.UpdateAccount(ctx, acct); err != nil {
		return err
	}
	if _, err := s.Store.DeleteSessions(ctx, acct.ID); err != nil {
		return err
	}
	// A new password is what ends access after a password leaked, so it
	// ends the mail apps' too: a mail app password may have been made with
	// the old one.
	if acct.AppHash != "" {
		if err := s.Store.SetAppPassword(ctx, acct.TenantID, acct.ID, "", time.Time{}); err != nil {
			return err
		}
	}
	return s.Audit(ctx, a, acct.TenantID, "account.password", acct.Login, "", "changed")
}

// appAlphabet has no letters or digits that read alike (0/o, 1/l/i), so
// the password can be typed from the screen into a phone.
const appAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// AppPasswordLen is the length of a mail app password: 16 symbols of 31,
// about 79 bits, far beyond guessing through the login throttle.
const AppPasswordLen = 16

// NewAppPassword makes a new mail app password for a login (the caller's
// own, or one it manages), replacing any it had, and returns it: it is
// shown once and stored only as an argon2id hash. IMAP and submission take
// it instead of the console password, which an account with a second
// factor cannot use there (store.Account.MailHash). Only logins that can
// have a mailbox (a tenant's users and administrators) get one.
func (s *Service) NewAppPassword(ctx context.Context, a Actor, id int64) (string, error) {
	acct, err := s.ownOrManaged(ctx, a, id)
	if err != nil {
		return "", err
	}
	if acct.TenantID == 0 || acct.Role == store.RoleOperator || !strings.Contains(acct.Login, "@") {
		return "", Invalidf("mail app passwords are for a tenant's users and administrators whose login is their address")
	}
	b := make([]byte, AppPasswordLen)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("app password: %w", err)
	}
	for i := range b {
		// 256 % 31 = 8: the first symbols are slightly more likely,
		// which costs under a tenth of a bit in all.
		b[i] = appAlphabet[int(b[i])%len(appAlphabet)]
	}
	pw := string(b)
	h, err := s.hash(ctx, pw)
	if err != nil {
		return "", err
	}
	if err := s.Store.SetAppPassword(ctx, acct.TenantID, acct.ID, h, s.now().Now()); err != nil {
		return "", err
	}
	return pw, s.Audit(ctx, a, acct.TenantID, "account.app_password", acct.Login, "", "created")
}

// RemoveAppPassword removes a login's mail app password: its mail apps
// are refused from the next login on (sessions already open continue).
func (s *Service) RemoveAppPassword(ctx context.Context, a Actor, id int64) error {
	acct, err := s.ownOrManaged(ctx, a, id)
	if err != nil {
		return err
	}
	if acct.AppHash == "" {
		return nil
	}
	if err := s.Store.SetAppPassword(ctx, acct.TenantID, acct.ID, "", time.Time{}); err != nil {
		return err
	}
	return s.Audit(ctx, a, acct.TenantID, "account.app_password", acct.Login, "created", "removed")
}

// ownOrManaged loads the caller's own account, or one it manages.
func (s *Service) ownOrManaged(ctx context.Context, a Actor, id int64) (store.Account, error) {
	if a.AccountID != 0 && id == a.AccountID {
		return s.Store.Account(ctx, id)
	}
	return s.Account(ctx, a, id)
}

// ResetTOTP removes a login's second factor (it enrols again at its next
// login) and ends its sessions.
func (s *Service) ResetTOTP(ctx context.Context, a Actor, id int64) error {
	acct, err := s.Account(ctx, a, id)
	if err != nil {
		return err
	}
	acct.TOTPSecret = ""
	acct.PasswordChanged = s.now().Now() // ends its sessions too
	if err := s.Store.UpdateAccount(ctx, acct); err != nil {
		return err
	}
	if _, err := s.Store.DeleteSessions(ctx, acct.ID); err != nil {
		return err
	}
	return s.Audit(ctx, a, acct.TenantID, "account.totp_reset", acct.Login, "", "")
}
