package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
)

// principal is the authenticated caller of one request.
type principal struct {
	acct     store.Account
	token    *store.APIToken
	sess     *store.WebSession
	role     store.Role
	tenantID int64  // bound tenant; for operators the selected one (0 = none yet)
	address  string // end users: their own address
	actor    string // for the audit log and tracking events
	ip       netip.Addr
	write    bool // may change things (API token scope)
}

func (p *principal) mfaDone() bool { return p.sess == nil || p.sess.MFADone }

const (
	sessionCookie = "mg_session"
	tenantCookie  = "mg_tenant"
	langCookie    = "mg_lang"
	loginCSRF     = "mg_login"
)

func (s *Server) secureCookies() bool { return s.d.Config.TLS }

// cookieName adds the __Host- prefix over HTTPS: the browser then accepts
// the cookie only from this host, over TLS, for the whole site, so a
// sibling subdomain cannot plant or shadow a session.
func (s *Server) cookieName(name string) string {
	if s.secureCookies() {
		return "__Host-" + name
	}
	return name
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: s.cookieName(name), Value: value, Path: "/", HttpOnly: true, Secure: s.secureCookies(),
		SameSite: http.SameSiteLaxMode}
	if maxAge < 0 {
		c.MaxAge = -1
	} else if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

// sessionPrincipal resolves the session cookie. It returns nil (no error)
// when there is no valid session.
func (s *Server) sessionPrincipal(r *http.Request) (*principal, error) {
	c, err := r.Cookie(s.cookieName(sessionCookie))
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ctx := r.Context()
	sess, err := s.d.Store.Session(ctx, sha256Hex(c.Value))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := s.d.Clock.Now()
	if now.After(sess.Expires) || now.Sub(sess.LastSeen) > s.idle() {
		s.d.Store.DeleteSession(ctx, sess.ID)
		return nil, nil
	}
	acct, err := s.d.Store.Account(ctx, sess.AccountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if acct.Disabled || acct.PasswordChanged.After(sess.Created) {
		s.d.Store.DeleteSession(ctx, sess.ID)
		return nil, nil
	}
	if now.Sub(sess.LastSeen) > time.Minute {
		// Sliding idle expiry, written at most once a minute per session.
		sess.LastSeen = now
		if err := s.d.Store.UpdateSession(ctx, sess); err != nil {
			return nil, err
		}
	}
	p := &principal{acct: acct, sess: &sess, role: acct.Role, tenantID: acct.TenantID, actor: acct.Login,
		ip: s.clientIP(r), write: true}
	if acct.Role == store.RoleUser {
		p.address = acct.Login
	}
	if acct.Role == store.RoleOperator {
		p.tenantID = 0
		if tc, err := r.Cookie(s.cookieName(tenantCookie)); err == nil {
			if id := atoi64(tc.Value); id > 0 {
				if ok, _ := s.tenantExists(ctx, id); ok {
					p.tenantID = id
				}
			}
		}
	}
	return p, nil
}

func (s *Server) tenantExists(ctx context.Context, id int64) (bool, error) {
	ts, err := s.d.Store.Tenants(ctx)
	if err != nil {
		return false, err
	}
	for _, t := range ts {
		if t.ID == id {
			return true, nil
		}
	}
	return false, nil
}

func (s *Server) idle() time.Duration {
	if d := s.d.Config.SessionIdle.Duration; d > 0 {
		return d
	}
	return 30 * time.Minute
}

func (s *Server) maxAge() time.Duration {
	if d := s.d.Config.SessionMax.Duration; d > 0 {
		return d
	}
	return 12 * time.Hour
}

// csrfOK checks the session's token in the form field or header, and that a
// browser-sent Origin (when present) is this site.
func (s *Server) csrfOK(r *http.Request, p *principal) bool {
	if p.sess == nil {
		return true // API tokens are not ambient credentials
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if !sameOrigin(o, r) {
			return false
		}
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p.sess.CSRF)) == 1
}

func sameOrigin(origin string, r *http.Request) bool {
	o := strings.TrimPrefix(strings.TrimPrefix(origin, "https://"), "http://")
	return strings.EqualFold(o, r.Host)
}

// requireTOTP says whether an account must give a second factor.
func (s *Server) requireTOTP(a store.Account) bool {
	if a.TOTPSecret != "" {
		return true
	}
	return s.d.Config.RequireTOTP && a.Role != store.RoleUser
}

// startSession logs an account in. The second factor is still owed when
// the account needs one.
func (s *Server) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, a store.Account) error {
	tok := randomToken(32)
	now := s.d.Clock.Now()
	sess := store.WebSession{ID: sha256Hex(tok), AccountID: a.ID, TenantID: a.TenantID, CSRF: randomToken(24),
		MFADone: !s.requireTOTP(a), RemoteIP: s.clientIP(r).String(), Created: now, LastSeen: now, Expires: now.Add(s.maxAge())}
	if err := s.d.Store.CreateSession(ctx, sess); err != nil {
		return err
	}
	s.setCookie(w, sessionCookie, tok, 0)
	return nil
}

// LoginThrottle limits password and TOTP guessing (loginlimit.Memory, or
// loginlimit.Shared whose record every node shares). Take
// reserves one attempt for every key, or none, before anything is checked,
// so concurrent attempts cannot all pass; it reports how long to wait when
// refused. Refund returns the attempt of a success, so only failures count.
type LoginThrottle interface {
	Take(ctx context.Context, now time.Time, keys ...string) (bool, time.Duration)
	Refund(ctx context.Context, now time.Time, keys ...string)
}

// PasswordVerifier checks passwords within the process-wide memory budget
// (passwd.Verifier, shared with SMTP AUTH). Both methods return
// passwd.ErrBusy when the budget is taken, without checking anything.
type PasswordVerifier interface {
	Verify(ctx context.Context, encoded, password string) error
	// VerifyDummy costs what Verify costs and never matches.
	VerifyDummy(ctx context.Context, password string) error
}

var (
	_ LoginThrottle    = (*loginlimit.Memory)(nil)
	_ LoginThrottle    = (*loginlimit.Shared)(nil)
	_ PasswordVerifier = (*passwd.Verifier)(nil)
)

// setRetryAfter says in whole seconds (at least one) when to come back.
func setRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
}

var (
	errBadLogin = errors.New("wrong login or password")
	// errLoginBusy: the password could not be checked now (the memory
	// budget for password checks is taken); nothing was learnt about it.
	errLoginBusy = errors.New("too many password checks at once")
)

// checkPassword verifies a local password, or delegates to the tenant's
// upstream mail service for end users without one. A login that neither has
// a password nor is delegated costs a dummy check, so that the time of the
// answer does not tell which logins exist.
func (s *Server) checkPassword(ctx context.Context, login, pass string) (store.Account, error) {
	login = strings.ToLower(strings.TrimSpace(login))
	a, err := s.d.Store.AccountByLogin(ctx, login)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return a, err
	}
	exists := err == nil
	if exists && a.Hash != "" {
		// A disabled account's password is checked too: refusing it sooner
		// would tell that it exists.
		if err := s.verifyPassword(ctx, a.Hash, pass); err != nil {
			return a, err
		}
		if a.Disabled {
			return a, errBadLogin
		}
		return a, nil
	}
	if !exists || !a.Disabled {
		// No local password: try the tenant's delegated login.
		acct, err := s.delegatedLogin(ctx, login, pass, a, exists)
		if !errors.Is(err, errNotDelegated) {
			return acct, err
		}
	}
	if err := s.d.Passwords.VerifyDummy(ctx, pass); errors.Is(err, passwd.ErrBusy) {
		return a, errLoginBusy
	}
	return a, errBadLogin
}

// verifyPassword checks pass against a stored hash; it returns nil,
// errBadLogin, errLoginBusy or ctx's error.
func (s *Server) verifyPassword(ctx context.Context, hash, pass string) error {
	err := s.d.Passwords.Verify(ctx, hash, pass)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, passwd.ErrBusy):
		return errLoginBusy
	case errors.Is(err, passwd.ErrMismatch):
		return errBadLogin
	case ctx.Err() != nil:
		return ctx.Err()
	}
	s.d.Log.Error("stored password hash cannot be checked", "err", err)
	return errBadLogin
}

// totpValidate checks a TOTP code (RFC 6238, 30 s steps, one step of clock
// skew either way) and refuses a code whose time step was already used by
// this account, so a code seen over someone's shoulder cannot be replayed.
func (s *Server) totpValidate(ctx context.Context, a store.Account, secret, code string) bool {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return false
	}
	now := s.d.Clock.Now()
	opts := totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	for _, skew := range []int{0, -1, 1} {
		at := now.Add(time.Duration(skew) * 30 * time.Second)
		want, err := totp.GenerateCodeCustom(secret, at, opts)
		if err != nil || subtle.ConstantTimeCompare([]byte(want), []byte(code)) != 1 {
			continue
		}
		step := time.Unix(at.Unix()/30*30, 0)
		key := "totp-step:" + a.Login
		last, err := s.d.Store.Mark(ctx, a.TenantID, key)
		if err != nil || !step.After(last) {
			return false
		}
		// Compare-and-set: of concurrent uses of one code (on any node)
		// exactly one moves the mark from last to step.
		won, err := s.d.Store.ClaimMark(ctx, a.TenantID, key, last, step)
		return err == nil && won
	}
	return false
}

// audit writes an audit entry; a failure is logged, never hidden.
func (s *Server) audit(ctx context.Context, p *principal, tenantID int64, action, target, before, after string) error {
	e := store.AuditEntry{TenantID: tenantID, At: s.d.Clock.Now(), Actor: p.actor, IP: p.ip.String(),
		Action: action, Target: target, Before: before, After: after}
	if err := s.d.Store.AddAudit(ctx, e); err != nil {
		s.d.Log.Error("audit log write failed", "action", action, "err", err)
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}
