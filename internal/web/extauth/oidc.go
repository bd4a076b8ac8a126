package extauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcHTTPTimeout bounds each request to the provider (discovery, keys,
// token) when the caller passes no HTTP client of its own.
const oidcHTTPTimeout = 15 * time.Second

// Identity is what a verified ID token says about the user.
type Identity struct {
	Subject       string // "sub": stable per provider (per client for Entra's pairwise subjects)
	Email         string // the verified address, as the provider spells it
	EmailVerified bool   // always true from Exchange; kept for logging and audits
	Name          string // display name, may be empty
	TenantHint    string // Entra "tid" or Google "hd", empty when absent
}

// OIDC runs the OpenID Connect authorization-code flow (OpenID Connect
// Core 1.0 section 3.1) with PKCE (RFC 7636) for one tenant's provider.
// Its methods are safe for concurrent use; it caches the provider's
// signing keys, so the console should keep one per tenant configuration
// rather than build one per request.
type OIDC struct {
	provider Provider
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	client   *http.Client
}

// NewOIDC fetches the provider's discovery document from cfg.OIDC.Issuer
// (which must name itself as that issuer) and prepares the flow with the
// console's callback URL redirectURL. httpClient is used for every request
// to the provider; nil means a client with a 15 s timeout. ctx bounds
// discovery only. Errors wrap ErrUpstream when the provider cannot be
// reached or its document is unusable.
//
// cfg should come from ConfigFromSettings, which also pins the Entra and
// Google issuers; NewOIDC checks only what the flow itself needs.
func NewOIDC(ctx context.Context, cfg Config, redirectURL string, httpClient *http.Client) (*OIDC, error) {
	if cfg.Method != MethodOIDC {
		return nil, fmt.Errorf("extauth: NewOIDC with login method %q", cfg.Method)
	}
	if err := cfg.OIDC.validate(); err != nil {
		return nil, err
	}
	if redirectURL == "" {
		return nil, errors.New("extauth: NewOIDC needs a redirect URL")
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: oidcHTTPTimeout}
	}
	// go-oidc keeps this context (without its cancellation) for later
	// key fetches, so the client travels with it.
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, httpClient), cfg.OIDC.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: OIDC discovery at %s: %w", ErrUpstream, cfg.OIDC.Issuer, err)
	}
	return &OIDC{
		provider: cfg.OIDC.Provider,
		oauth: oauth2.Config{
			ClientID:     cfg.OIDC.ClientID,
			ClientSecret: cfg.OIDC.ClientSecret,
			RedirectURL:  redirectURL,
			Endpoint:     p.Endpoint(),
			Scopes:       []string{oidc.ScopeOpenID, "email", "profile"},
		},
		// Issuer, audience (client ID), expiry and signature (with the
		// algorithms the provider advertises) are checked by Verify.
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.OIDC.ClientID}),
		client:   httpClient,
	}, nil
}

// AuthURL returns the provider URL to redirect the browser to. state and
// nonce come from the FlowState the console seals into its cookie;
// pkceVerifier is its Verifier, sent only as its S256 challenge.
func (o *OIDC) AuthURL(state, nonce, pkceVerifier string) string {
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkceVerifier)}
	if o.provider == ProviderGoogle || o.provider == ProviderEntra {
		// Let the user pick among signed-in accounts instead of silently
		// reusing the browser's current one.
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "select_account"))
	}
	return o.oauth.AuthCodeURL(state, opts...)
}

// idClaims are the ID token claims Exchange reads. email_verified is
// decoded leniently: some providers send it as the string "true".
type idClaims struct {
	Email             string    `json:"email"`
	EmailVerified     boolClaim `json:"email_verified"`
	PreferredUsername string    `json:"preferred_username"`
	Name              string    `json:"name"`
	TenantID          string    `json:"tid"`
	HostedDomain      string    `json:"hd"`
}

type boolClaim bool

func (b *boolClaim) UnmarshalJSON(data []byte) error {
	switch strings.Trim(string(data), `"`) {
	case "true":
		*b = true
	case "false", "null":
		*b = false
	default:
		return fmt.Errorf("email_verified: unexpected value %s", data)
	}
	return nil
}

// Exchange trades the callback's code for tokens at the provider's token
// endpoint (sending pkceVerifier), verifies the ID token (signature,
// issuer, audience, expiry) and checks its nonce against nonce. The
// console must have checked the callback's state (FlowState.MatchState)
// before calling it.
//
// The e-mail address must be vouched for: for Google and generic
// providers, email with email_verified true; for Entra ID,
// preferred_username (the UPN, whose domain the tenant has verified) when
// it is an address, else email. Otherwise it returns ErrEmailNotVerified.
// Provider errors wrap ErrUpstream; token verification failures do not,
// since they point at a forged or replayed callback.
func (o *OIDC) Exchange(ctx context.Context, code, nonce, pkceVerifier string) (Identity, error) {
	if code == "" {
		return Identity{}, errors.New("extauth: callback without code")
	}
	ctx = oidc.ClientContext(ctx, o.client)
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(pkceVerifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			// A used, expired or foreign code: the user's doing, not an outage.
			return Identity{}, fmt.Errorf("extauth: token endpoint refused the code: %w", err)
		}
		return Identity{}, fmt.Errorf("%w: token exchange: %w", ErrUpstream, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, fmt.Errorf("%w: token response has no id_token", ErrUpstream)
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("extauth: ID token: %w", err)
	}
	// go-oidc leaves the nonce to the caller (OpenID Connect Core 3.1.3.7
	// step 11).
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Identity{}, errors.New("extauth: ID token nonce does not match the login flow")
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		return Identity{}, fmt.Errorf("extauth: ID token claims: %w", err)
	}
	id := Identity{Subject: idt.Subject, Name: c.Name}
	switch o.provider {
	case ProviderEntra:
		// Entra's email claim is user-editable in some directories and
		// unverified; the UPN's domain is one the tenant verified.
		id.TenantHint = c.TenantID
		if strings.Contains(c.PreferredUsername, "@") {
			id.Email, id.EmailVerified = c.PreferredUsername, true
		} else if c.Email != "" && bool(c.EmailVerified) {
			id.Email, id.EmailVerified = c.Email, true
		}
	default:
		if o.provider == ProviderGoogle {
			id.TenantHint = c.HostedDomain
		}
		id.Email, id.EmailVerified = c.Email, bool(c.EmailVerified)
	}
	if id.Subject == "" {
		return Identity{}, errors.New("extauth: ID token has no subject")
	}
	if id.Email == "" || !id.EmailVerified {
		return Identity{}, ErrEmailNotVerified
	}
	return id, nil
}
