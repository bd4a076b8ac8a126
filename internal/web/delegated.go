package web

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web/extauth"
)

// Delegated login lets end users sign in with the credentials of their
// upstream mail service (tenant settings login.method = imap | smtp, with
// login.imap / login.smtp naming the server) or with OpenID Connect
// (login.method = oidc; Microsoft Entra ID, Google or another issuer). Only
// addresses that are users of the tenant may log in this way; their console
// account is created at the first successful login.

// tenantLogin finds the tenant serving an address and its login settings.
func (s *Server) tenantLogin(ctx context.Context, login string) (int64, string, extauth.Config, error) {
	ad, err := addr.Parse(login)
	if err != nil {
		return 0, "", extauth.Config{}, errBadLogin
	}
	d, err := s.d.Store.DomainByName(ctx, ad.Domain)
	if errors.Is(err, store.ErrNotFound) {
		return 0, "", extauth.Config{}, errBadLogin
	}
	if err != nil {
		return 0, "", extauth.Config{}, err
	}
	get, err := s.tenantSettings(ctx, d.TenantID)
	if err != nil {
		return 0, "", extauth.Config{}, err
	}
	cfg, err := extauth.ConfigFromSettings(get)
	if err != nil {
		return 0, "", cfg, fmt.Errorf("tenant %d login settings: %w", d.TenantID, err)
	}
	return d.TenantID, ad.Key(), cfg, nil
}

// userAccount returns the end-user account of a tenant's address, creating
// it (without a local password) when the address is a user.
func (s *Server) userAccount(ctx context.Context, tid int64, address string) (store.Account, error) {
	a, err := s.d.Store.AccountByLogin(ctx, address)
	if err == nil {
		if a.TenantID != tid || a.Role != store.RoleUser || a.Disabled {
			return a, errBadLogin
		}
		return a, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return a, err
	}
	ok, err := s.d.Store.UserExists(ctx, tid, address)
	if err != nil {
		return a, err
	}
	if !ok {
		return a, errBadLogin
	}
	return s.d.Store.CreateAccount(ctx, store.Account{TenantID: tid, Login: address, Role: store.RoleUser, Created: s.d.Clock.Now()})
}

// errNotDelegated: the login is not one the tenant's upstream may check
// (no such tenant or user, a login method without a password check, not an
// end user); nothing was asked.
var errNotDelegated = fmt.Errorf("%w (not a delegated login)", errBadLogin)

// delegatedLogin checks a password against the tenant's upstream service.
// An upstream that failed a moment ago is not asked again until
// upstreamRetry has passed, so a flood of logins does not become a flood of
// connections to it.
func (s *Server) delegatedLogin(ctx context.Context, login, pass string, a store.Account, exists bool) (store.Account, error) {
	if exists && a.Role != store.RoleUser {
		return a, errNotDelegated
	}
	tid, address, cfg, err := s.tenantLogin(ctx, login)
	if errors.Is(err, errBadLogin) {
		return a, errNotDelegated
	}
	if err != nil {
		return a, err
	}
	if cfg.Method != extauth.MethodIMAP && cfg.Method != extauth.MethodSMTP {
		return a, errNotDelegated
	}
	if ok, err := s.d.Store.UserExists(ctx, tid, address); err != nil || !ok {
		if err != nil {
			return a, err
		}
		return a, errNotDelegated
	}
	target := cfg.Target.String()
	now := s.d.Clock.Now()
	if s.upstreamDown.recent(target, now) {
		return a, fmt.Errorf("delegated login: %w: %s failed less than %s ago", extauth.ErrUpstream, target, upstreamRetry)
	}
	switch err := cfg.CheckPassword(ctx, s.upstream, login, pass); {
	case errors.Is(err, extauth.ErrBadCredentials):
		return a, errBadLogin
	case err != nil:
		if errors.Is(err, extauth.ErrUpstream) {
			s.upstreamDown.add(target, now)
		}
		return a, fmt.Errorf("delegated login: %w", err)
	}
	return s.userAccount(ctx, tid, address)
}

// upstreamRetry is how long a failed upstream (delegated login server or
// OIDC provider) is left alone.
const upstreamRetry = 30 * time.Second

// failureCache remembers upstreams that failed recently. Bounded: past
// maxFailures entries it starts afresh (it only saves connections).
type failureCache struct {
	mu sync.Mutex
	m  map[string]time.Time
}

const maxFailures = 10000

func (c *failureCache) recent(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.m[key]
	if ok && now.Sub(at) >= upstreamRetry {
		delete(c.m, key)
		return false
	}
	return ok
}

func (c *failureCache) add(key string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxFailures {
		c.m = map[string]time.Time{}
	}
	c.m[key] = now
}

// oidcClients caches one OIDC client per tenant configuration (it holds the
// provider's keys).
type oidcClients struct {
	mu sync.Mutex
	m  map[string]*extauth.OIDC
}

// maxOIDCClients bounds the cache: the key includes the redirect URL, which
// follows the Host header when http.base_url is not set.
const maxOIDCClients = 1000

func (s *Server) oidcFor(ctx context.Context, cfg extauth.Config, redirect string) (*extauth.OIDC, error) {
	key := cfg.OIDC.Issuer + "\x00" + cfg.OIDC.ClientID + "\x00" + cfg.OIDC.ClientSecret + "\x00" + redirect
	s.oidc.mu.Lock()
	defer s.oidc.mu.Unlock()
	if o := s.oidc.m[key]; o != nil {
		return o, nil
	}
	now := s.d.Clock.Now()
	if s.upstreamDown.recent("oidc:"+cfg.OIDC.Issuer, now) {
		return nil, fmt.Errorf("%w: %s failed less than %s ago", extauth.ErrUpstream, cfg.OIDC.Issuer, upstreamRetry)
	}
	// The provider's discovery document names further URLs (keys, token
	// endpoint): all of them are fetched through the guarded dialer.
	o, err := extauth.NewOIDC(ctx, cfg, redirect, s.upstream.HTTPClient(15*time.Second))
	if err != nil {
		s.upstreamDown.add("oidc:"+cfg.OIDC.Issuer, now)
		return nil, err
	}
	if s.oidc.m == nil || len(s.oidc.m) >= maxOIDCClients {
		s.oidc.m = map[string]*extauth.OIDC{}
	}
	s.oidc.m[key] = o
	return o, nil
}

// baseURL is the console's public URL.
func (s *Server) baseURL(r *http.Request) string {
	if b := strings.TrimRight(s.d.Config.BaseURL, "/"); b != "" {
		return b
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

const oidcCookie = "mg_oidc"

func (s *Server) stateKey(ctx context.Context) ([]byte, error) {
	return s.d.Store.Secret(ctx, "oidc-state-key", func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	})
}

// oidcStart sends the browser to the identity provider of the tenant that
// serves the given address.
func (s *Server) oidcStart(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	email := strings.TrimSpace(r.URL.Query().Get("email"))
	tid, _, cfg, err := s.tenantLogin(ctx, email)
	if err != nil || cfg.Method != extauth.MethodOIDC {
		if err != nil && !errors.Is(err, errBadLogin) {
			s.d.Log.Error("oidc login", "err", err)
		}
		s.loginError(w, r, http.StatusBadRequest, "login_oidc_unavailable")
		return
	}
	o, err := s.oidcFor(ctx, cfg, s.baseURL(r)+"/login/oidc/callback")
	if err != nil {
		s.d.Log.Error("oidc provider", "err", err)
		s.loginError(w, r, http.StatusServiceUnavailable, "login_unavailable")
		return
	}
	key, err := s.stateKey(ctx)
	if err != nil {
		s.loginError(w, r, http.StatusServiceUnavailable, "login_unavailable")
		return
	}
	fs := extauth.NewFlowState(fmt.Sprint(tid), s.d.Clock.Now())
	s.setCookie(w, oidcCookie, extauth.SealState(key, fs), extauth.FlowStateMaxAge)
	http.Redirect(w, r, o.AuthURL(fs.State, fs.Nonce, fs.Verifier), http.StatusSeeOther)
}

func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := r.Cookie(s.cookieName(oidcCookie))
	s.setCookie(w, oidcCookie, "", -1) // one use
	if err != nil {
		s.loginError(w, r, http.StatusBadRequest, "login_failed")
		return
	}
	key, err := s.stateKey(ctx)
	if err != nil {
		s.loginError(w, r, http.StatusServiceUnavailable, "login_unavailable")
		return
	}
	fs, err := extauth.OpenState(key, c.Value, s.d.Clock.Now())
	if err != nil || !fs.MatchState(r.URL.Query().Get("state")) || r.URL.Query().Get("error") != "" {
		s.loginError(w, r, http.StatusUnauthorized, "login_failed")
		return
	}
	tid := atoi64(fs.Tenant)
	ds, err := s.d.Store.Domains(ctx, tid)
	if err != nil || len(ds) == 0 {
		s.loginError(w, r, http.StatusUnauthorized, "login_failed")
		return
	}
	_, _, cfg, err := s.tenantLogin(ctx, "x@"+ds[0].Name)
	if err != nil || cfg.Method != extauth.MethodOIDC {
		s.loginError(w, r, http.StatusBadRequest, "login_oidc_unavailable")
		return
	}
	o, err := s.oidcFor(ctx, cfg, s.baseURL(r)+"/login/oidc/callback")
	if err != nil {
		s.loginError(w, r, http.StatusServiceUnavailable, "login_unavailable")
		return
	}
	id, err := o.Exchange(ctx, r.URL.Query().Get("code"), fs.Nonce, fs.Verifier)
	if err != nil {
		s.d.Log.Info("oidc login refused", "err", err)
		status, msg := http.StatusUnauthorized, "login_failed"
		if errors.Is(err, extauth.ErrUpstream) {
			status, msg = http.StatusServiceUnavailable, "login_unavailable"
		}
		s.loginError(w, r, status, msg)
		return
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	address, err := extauth.MatchAddress(id.Email, names)
	if err != nil {
		s.loginError(w, r, http.StatusForbidden, "login_failed")
		return
	}
	a, err := s.userAccount(ctx, tid, address)
	if err != nil {
		s.loginError(w, r, http.StatusForbidden, "login_failed")
		return
	}
	if s.checkIP(ctx, &principal{role: a.Role, tenantID: a.TenantID, ip: s.clientIP(r)}) != nil {
		s.loginError(w, r, http.StatusForbidden, "login_ip")
		return
	}
	if err := s.startSession(ctx, w, r, a); err != nil {
		s.loginError(w, r, http.StatusServiceUnavailable, "login_unavailable")
		return
	}
	if s.requireTOTP(a) {
		http.Redirect(w, r, "/login/totp", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// loginError shows the login page with a message.
func (s *Server) loginError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := s.newView(r, nil, "login_title")
	v.Err = v.T(msg)
	v.Data = loginData{Next: "/", Token: v.CSRF}
	s.render(w, status, "login", v)
}
