// Package fakeidp is an in-process OpenID Connect identity provider for
// tests: discovery, JWKS, an authorization endpoint that logs in a user
// chosen by the test, and a token endpoint that issues RS256-signed ID
// tokens. It implements the authorization-code flow of OpenID Connect Core
// 1.0 section 3.1 with PKCE (RFC 7636, S256 only, and required), client
// authentication by client_secret_basic or client_secret_post (RFC 6749
// 2.3.1), and single-use codes.
//
// It serves on 127.0.0.1 only, over plain HTTP by default (so a headless
// browser can follow its redirects without certificate trouble) or HTTPS
// with WithTLS. Faults (SetFault) make it misbehave for negative tests.
//
// All methods are safe for concurrent use; setters take effect for the
// next request.
package fakeidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Default client registration.
const (
	DefaultClientID     = "mailgate-test"
	DefaultClientSecret = "fakeidp-secret"
)

// codeLifetime is how long an authorization code may wait for the token
// request (RFC 6749 4.1.2 recommends at most ten minutes).
const codeLifetime = time.Minute

// tokenLifetime is the ID token's validity.
const tokenLifetime = 5 * time.Minute

// Fault makes the provider misbehave.
type Fault int

const (
	// FaultNone: behave.
	FaultNone Fault = iota
	// FaultWrongAudience issues ID tokens for another client.
	FaultWrongAudience
	// FaultExpired issues ID tokens that expired ten minutes ago (beyond
	// any clock-skew allowance).
	FaultExpired
	// FaultBadSignature signs ID tokens with a key not in the JWKS, under
	// the published key's ID.
	FaultBadSignature
	// FaultWrongNonce puts another nonce in the ID token.
	FaultWrongNonce
	// FaultWrongIssuer names another issuer in the ID token.
	FaultWrongIssuer
	// FaultAccessDenied makes /authorize redirect back with
	// error=access_denied, as when the user cancels.
	FaultAccessDenied
	// FaultNoIDToken answers the token request without an id_token.
	FaultNoIDToken
)

// User is the account /authorize logs in.
type User struct {
	Subject       string // "sub"; SetUser derives it from the address
	Email         string
	EmailVerified bool
	Name          string
	// Claims are added to the ID token as they are (for example
	// preferred_username and tid as Entra ID sends them, hd as Google
	// does); they may override the standard ones above.
	Claims map[string]any
}

// Option configures New and Start.
type Option func(*options)

type options struct {
	clientID, clientSecret string
	redirectURIs           []string
	tls                    bool
}

// WithRedirectURIs restricts /authorize to these redirect URIs (exact
// match, as OpenID Connect Core 3.1.2.1 requires). Without it any http or
// https URI is accepted; /token still checks it equals the one authorized.
func WithRedirectURIs(uris ...string) Option {
	return func(o *options) { o.redirectURIs = append(o.redirectURIs, uris...) }
}

// WithTLS serves HTTPS with httptest's certificate; use HTTPClient, which
// trusts it.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// IdP is a running fake identity provider.
type IdP struct {
	opts   options
	srv    *httptest.Server
	client *http.Client

	kid      string
	key      *rsa.PrivateKey // published in the JWKS
	rogueKey *rsa.PrivateKey // for FaultBadSignature

	mu    sync.Mutex
	user  *User
	fault Fault
	codes map[string]grant
	now   func() time.Time
}

// grant is what an authorization code stands for.
type grant struct {
	clientID, redirectURI, nonce, challenge string
	user                                    User
	expires                                 time.Time
}

// Start starts an IdP for the test and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *IdP {
	t.Helper()
	p, err := New(opts...)
	if err != nil {
		t.Fatalf("fakeidp: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// New starts an IdP on a free port of 127.0.0.1; the caller must Close it.
// It fails only if key generation fails.
func New(opts ...Option) (*IdP, error) {
	o := options{clientID: DefaultClientID, clientSecret: DefaultClientSecret}
	for _, opt := range opts {
		opt(&o)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	rogue, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating rogue key: %w", err)
	}
	p := &IdP{
		opts:     o,
		kid:      randomString(8),
		key:      key,
		rogueKey: rogue,
		codes:    make(map[string]grant),
		now:      time.Now,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	// httptest servers listen on 127.0.0.1 (or ::1 without IPv4).
	p.srv = httptest.NewUnstartedServer(mux)
	// Negative tests make clients reject the certificate on purpose.
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if o.tls {
		p.srv.StartTLS()
		p.client = p.srv.Client()
		p.client.Timeout = 10 * time.Second
	} else {
		p.srv.Start()
		p.client = &http.Client{Timeout: 10 * time.Second}
	}
	return p, nil
}

// Close stops the server. Safe to call more than once.
func (p *IdP) Close() { p.srv.Close() }

// Issuer returns the issuer URL, the base of discovery.
func (p *IdP) Issuer() string { return p.srv.URL }

// ClientID returns the registered client ID.
func (p *IdP) ClientID() string { return p.opts.clientID }

// ClientSecret returns the registered client secret.
func (p *IdP) ClientSecret() string { return p.opts.clientSecret }

// HTTPClient returns a client that reaches the IdP (trusting its
// certificate under WithTLS) and does not follow redirects, so a test can
// read the /authorize redirect to the relying party's callback.
func (p *IdP) HTTPClient() *http.Client {
	c := *p.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// SetUser makes /authorize log in a user with a verified address and the
// subject "sub-" + email, without asking.
func (p *IdP) SetUser(email, name string) {
	p.SetUserInfo(User{Subject: "sub-" + strings.ToLower(email), Email: email, EmailVerified: true, Name: name})
}

// SetUserInfo makes /authorize log in u without asking.
func (p *IdP) SetUserInfo(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u.Claims = cloneClaims(u.Claims)
	p.user = &u
}

// SetFault sets how the provider misbehaves from the next request on.
func (p *IdP) SetFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

func (p *IdP) state() (*User, Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.user == nil {
		return nil, p.fault
	}
	u := *p.user
	u.Claims = cloneClaims(u.Claims)
	return &u, p.fault
}

func (p *IdP) discovery(w http.ResponseWriter, _ *http.Request) {
	iss := p.Issuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + "/authorize",
		"token_endpoint":                        iss + "/token",
		"jwks_uri":                              iss + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256"},
		"grant_types_supported":                 []string{"authorization_code"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nonce", "email", "email_verified", "name"},
	})
}

func (p *IdP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &p.key.PublicKey, KeyID: p.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}})
}

var formTmpl = template.Must(template.New("form").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Fake IdP sign-in</title></head>
<body><h1>Fake IdP sign-in</h1>
<form method="post" action="/authorize">
{{range $k, $v := .}}<input type="hidden" name="{{$k}}" value="{{index $v 0}}">
{{end}}<label>E-mail <input type="email" name="login_email" id="login_email" required></label>
<label>Name <input type="text" name="login_name" id="login_name"></label>
<button type="submit" id="login_submit">Sign in</button>
</form></body></html>
`))

// authorize implements OpenID Connect Core 3.1.2. Errors about the client
// or redirect URI are shown here, never redirected (3.1.2.6 and RFC 6749
// 4.1.2.1); others go back to the client.
func (p *IdP) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	q := r.Form
	redirectURI := q.Get("redirect_uri")
	if q.Get("client_id") != p.opts.clientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	if !p.redirectAllowed(redirectURI) {
		http.Error(w, "redirect_uri not registered", http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		u, _ := url.Parse(redirectURI) // parsed by redirectAllowed
		vals := u.Query()
		for k, v := range params {
			vals[k] = v
		}
		if s := q.Get("state"); s != "" {
			vals.Set("state", s)
		}
		u.RawQuery = vals.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, desc string) {
		back(url.Values{"error": {code}, "error_description": {desc}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only code is supported")
		return
	case !hasScope(q.Get("scope"), "openid"):
		fail("invalid_scope", "openid scope required")
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "PKCE with S256 required")
		return
	}
	user, fault := p.state()
	if fault == FaultAccessDenied {
		fail("access_denied", "the user declined")
		return
	}
	if user == nil {
		email := strings.TrimSpace(r.PostForm.Get("login_email"))
		if r.Method != http.MethodPost || email == "" {
			hidden := url.Values{}
			for _, k := range []string{"response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method"} {
				hidden.Set(k, q.Get(k))
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_ = formTmpl.Execute(w, hidden)
			return
		}
		user = &User{Subject: "sub-" + strings.ToLower(email), Email: email, EmailVerified: true, Name: r.PostForm.Get("login_name")}
	}
	code := randomString(24)
	p.mu.Lock()
	p.codes[code] = grant{
		clientID:    p.opts.clientID,
		redirectURI: redirectURI,
		nonce:       q.Get("nonce"),
		challenge:   q.Get("code_challenge"),
		user:        *user,
		expires:     p.now().Add(codeLifetime),
	}
	p.mu.Unlock()
	back(url.Values{"code": {code}})
}

func (p *IdP) redirectAllowed(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
		return false
	}
	if len(p.opts.redirectURIs) == 0 {
		return true
	}
	for _, r := range p.opts.redirectURIs {
		if r == uri {
			return true
		}
	}
	return false
}

// token implements the authorization-code grant (RFC 6749 4.1.3, OpenID
// Connect Core 3.1.3) with the PKCE check of RFC 7636 4.6.
func (p *IdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 2.3.1: form-encoded before base64 in the header.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if !equal(id, p.opts.clientID) || !equal(secret, p.opts.clientSecret) {
		w.Header().Set("WWW-Authenticate", `Basic realm="fakeidp"`)
		tokenError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code")
		return
	}
	code := r.PostForm.Get("code")
	p.mu.Lock()
	g, ok := p.codes[code]
	delete(p.codes, code) // single use, even when the request fails (RFC 6749 4.1.2)
	p.mu.Unlock()
	now := p.now()
	switch {
	case !ok || now.After(g.expires):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired code")
		return
	case g.clientID != id:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "code issued to another client")
		return
	case r.PostForm.Get("redirect_uri") != g.redirectURI:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request")
		return
	case !equal(s256(r.PostForm.Get("code_verifier")), g.challenge):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "PKCE verifier does not match")
		return
	}
	_, fault := p.state()
	resp := map[string]any{
		"access_token": randomString(24),
		"token_type":   "Bearer",
		"expires_in":   int(tokenLifetime / time.Second),
	}
	if fault != FaultNoIDToken {
		idToken, err := p.idToken(g, now, fault)
		if err != nil {
			tokenError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
		resp["id_token"] = idToken
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

func (p *IdP) idToken(g grant, now time.Time, fault Fault) (string, error) {
	claims := map[string]any{
		"iss":            p.Issuer(),
		"sub":            g.user.Subject,
		"aud":            g.clientID,
		"iat":            now.Unix(),
		"exp":            now.Add(tokenLifetime).Unix(),
		"email":          g.user.Email,
		"email_verified": g.user.EmailVerified,
	}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	if g.user.Name != "" {
		claims["name"] = g.user.Name
	}
	for k, v := range g.user.Claims {
		claims[k] = v
	}
	key := p.key
	switch fault {
	case FaultWrongAudience:
		claims["aud"] = "another-client"
	case FaultExpired:
		claims["iat"] = now.Add(-tokenLifetime - 10*time.Minute).Unix()
		claims["exp"] = now.Add(-10 * time.Minute).Unix()
	case FaultBadSignature:
		key = p.rogueKey
	case FaultWrongNonce:
		claims["nonce"] = randomString(16)
	case FaultWrongIssuer:
		claims["iss"] = p.Issuer() + "/other"
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: p.kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return "", fmt.Errorf("signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	return jws.CompactSerialize()
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func hasScope(scopes, want string) bool {
	for _, s := range strings.Fields(scopes) {
		if s == want {
			return true
		}
	}
	return false
}

// s256 is the PKCE S256 transformation (RFC 7636 4.2).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func cloneClaims(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
