package extauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/fakeidp"
)

const testRedirect = "http://127.0.0.1:1/login/oidc/callback"

func oidcConfig(idp *fakeidp.IdP, provider Provider) Config {
	return Config{Method: MethodOIDC, TLSVerify: true, OIDC: OIDCConfig{
		Provider: provider, Issuer: idp.Issuer(), ClientID: idp.ClientID(), ClientSecret: idp.ClientSecret(),
	}}
}

func newTestOIDC(t *testing.T, idp *fakeidp.IdP, provider Provider) *OIDC {
	t.Helper()
	o, err := NewOIDC(t.Context(), oidcConfig(idp, provider), testRedirect, idp.HTTPClient())
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	return o
}

// authorize plays the browser: it follows AuthURL to the IdP and reads
// the redirect back to the console's callback, returning its query.
func authorize(t *testing.T, idp *fakeidp.IdP, authURL string) url.Values {
	t.Helper()
	resp, err := idp.HTTPClient().Get(authURL)
	if err != nil {
		t.Fatalf("GET authorize: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), testRedirect+"?") {
		t.Fatalf("redirected to %s, want the callback", loc)
	}
	return loc.Query()
}

// login runs AuthURL → authorize → state check → Exchange, carrying the
// flow state through a sealed cookie as the console does.
func login(t *testing.T, idp *fakeidp.IdP, o *OIDC) (Identity, error) {
	t.Helper()
	key := []byte(strings.Repeat("k", 32))
	now := time.Now()
	cookie := SealState(key, NewFlowState("tenant-1", now))

	fs, err := OpenState(key, cookie, now)
	if err != nil {
		t.Fatalf("OpenState before redirect: %v", err)
	}
	q := authorize(t, idp, o.AuthURL(fs.State, fs.Nonce, fs.Verifier))

	fs, err = OpenState(key, cookie, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("OpenState on callback: %v", err)
	}
	if !fs.MatchState(q.Get("state")) {
		t.Fatalf("callback state %q does not match the flow's", q.Get("state"))
	}
	if fs.Tenant != "tenant-1" {
		t.Fatalf("tenant lost in the cookie: %q", fs.Tenant)
	}
	return o.Exchange(t.Context(), q.Get("code"), fs.Nonce, fs.Verifier)
}

func TestOIDCFlow(t *testing.T) {
	t.Parallel()
	idp := fakeidp.Start(t)
	idp.SetUser("Alice@Example.COM", "Alice Liddell")
	o := newTestOIDC(t, idp, ProviderGeneric)

	id, err := login(t, idp, o)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	want := Identity{Subject: "sub-alice@example.com", Email: "Alice@Example.COM", EmailVerified: true, Name: "Alice Liddell"}
	if id != want {
		t.Fatalf("Identity = %+v, want %+v", id, want)
	}
	addr, err := MatchAddress(id.Email, []string{"example.com"})
	if err != nil || addr != "alice@example.com" {
		t.Fatalf("MatchAddress = %q, %v", addr, err)
	}
}

func TestOIDCAuthURL(t *testing.T) {
	t.Parallel()
	idp := fakeidp.Start(t)
	o := newTestOIDC(t, idp, ProviderGoogle)
	fs := NewFlowState("", time.Now())
	u, err := url.Parse(o.AuthURL(fs.State, fs.Nonce, fs.Verifier))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sum := sha256.Sum256([]byte(fs.Verifier))
	checks := map[string]string{
		"response_type":         "code",
		"client_id":             idp.ClientID(),
		"redirect_uri":          testRedirect,
		"state":                 fs.State,
		"nonce":                 fs.Nonce,
		"code_challenge_method": "S256",
		"code_challenge":        base64.RawURLEncoding.EncodeToString(sum[:]),
		"prompt":                "select_account",
	}
	for k, v := range checks {
		if got := q.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if scopes := strings.Fields(q.Get("scope")); len(scopes) != 3 || scopes[0] != "openid" {
		t.Errorf("scope = %q, want openid email profile", q.Get("scope"))
	}
	if strings.Contains(u.String(), fs.Verifier) {
		t.Error("the PKCE verifier itself is in the authorization URL")
	}
	if !strings.HasPrefix(u.String(), idp.Issuer()+"/authorize?") {
		t.Errorf("AuthURL %s is not the discovered endpoint", u)
	}
}

func TestOIDCRejectsBadTokens(t *testing.T) {
	t.Parallel()
	idp := fakeidp.Start(t)
	idp.SetUser("alice@example.com", "Alice")
	o := newTestOIDC(t, idp, ProviderGeneric)
	for _, tc := range []struct {
		name  string
		fault fakeidp.Fault
		want  string // in the error
	}{
		{"wrong audience", fakeidp.FaultWrongAudience, "audience"},
		{"expired", fakeidp.FaultExpired, "expired"},
		{"bad signature", fakeidp.FaultBadSignature, "signature"},
		{"wrong nonce", fakeidp.FaultWrongNonce, "nonce"},
		{"wrong issuer", fakeidp.FaultWrongIssuer, "different provider"},
		{"no id_token", fakeidp.FaultNoIDToken, "id_token"},
	} {
		// Sequential: the fault is the IdP's global setting.
		idp.SetFault(tc.fault)
		id, err := login(t, idp, o)
		if err == nil {
			t.Errorf("%s: accepted, identity %+v", tc.name, id)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.name, err, tc.want)
		}
	}
	idp.SetFault(fakeidp.FaultNone)
	if _, err := login(t, idp, o); err != nil {
		t.Fatalf("after clearing the fault: %v", err)
	}
}

func TestOIDCExchangeMisuse(t *testing.T) {
	t.Parallel()
	idp := fakeidp.Start(t)
	idp.SetUser("alice@example.com", "Alice")
	o := newTestOIDC(t, idp, ProviderGeneric)

	start := func() (FlowState, string) {
		fs := NewFlowState("", time.Now())
		q := authorize(t, idp, o.AuthURL(fs.State, fs.Nonce, fs.Verifier))
		return fs, q.Get("code")
	}
	t.Run("nonce of another flow", func(t *testing.T) {
		fs, code := start()
		if _, err := o.Exchange(t.Context(), code, RandomToken(), fs.Verifier); err == nil || !strings.Contains(err.Error(), "nonce") {
			t.Fatalf("Exchange = %v, want a nonce mismatch", err)
		}
	})
	t.Run("wrong verifier", func(t *testing.T) {
		_, code := start()
		other := NewFlowState("", time.Now())
		_, err := o.Exchange(t.Context(), code, other.Nonce, other.Verifier)
		if err == nil || errors.Is(err, ErrUpstream) {
			t.Fatalf("Exchange = %v, want a refused code (not an outage)", err)
		}
	})
	t.Run("code reuse", func(t *testing.T) {
		fs, code := start()
		if _, err := o.Exchange(t.Context(), code, fs.Nonce, fs.Verifier); err != nil {
			t.Fatalf("first Exchange: %v", err)
		}
		if _, err := o.Exchange(t.Context(), code, fs.Nonce, fs.Verifier); err == nil {
			t.Fatal("a used code was accepted again")
		}
	})
	t.Run("empty code", func(t *testing.T) {
		fs := NewFlowState("", time.Now())
		if _, err := o.Exchange(t.Context(), "", fs.Nonce, fs.Verifier); err == nil {
			t.Fatal("empty code accepted")
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		cfg := oidcConfig(idp, ProviderGeneric)
		cfg.OIDC.ClientSecret = "not-the-secret"
		bad, err := NewOIDC(t.Context(), cfg, testRedirect, idp.HTTPClient())
		if err != nil {
			t.Fatal(err)
		}
		fs := NewFlowState("", time.Now())
		q := authorize(t, idp, bad.AuthURL(fs.State, fs.Nonce, fs.Verifier))
		if _, err := bad.Exchange(t.Context(), q.Get("code"), fs.Nonce, fs.Verifier); !errors.Is(err, ErrUpstream) {
			t.Fatalf("Exchange = %v, want ErrUpstream (misconfigured client)", err)
		}
	})
	t.Run("access denied", func(t *testing.T) {
		denied := fakeidp.Start(t)
		denied.SetFault(fakeidp.FaultAccessDenied)
		o := newTestOIDC(t, denied, ProviderGeneric)
		fs := NewFlowState("", time.Now())
		q := authorize(t, denied, o.AuthURL(fs.State, fs.Nonce, fs.Verifier))
		if q.Get("error") != "access_denied" || q.Get("code") != "" || !fs.MatchState(q.Get("state")) {
			t.Fatalf("callback query %v, want error=access_denied with the state", q)
		}
	})
}

func TestOIDCProviderClaims(t *testing.T) {
	t.Parallel()
	const tid = "0b2c8f3e-4d5a-4b6c-9d7e-8f9a0b1c2d3e"
	cases := []struct {
		name     string
		provider Provider
		user     fakeidp.User
		want     Identity
		wantErr  error
	}{
		{
			name:     "entra uses preferred_username",
			provider: ProviderEntra,
			user: fakeidp.User{Subject: "s1", Email: "personal@other.example", Name: "Bob",
				Claims: map[string]any{"preferred_username": "bob@example.com", "tid": tid}},
			want: Identity{Subject: "s1", Email: "bob@example.com", EmailVerified: true, Name: "Bob", TenantHint: tid},
		},
		{
			name:     "entra without UPN and unverified email",
			provider: ProviderEntra,
			user:     fakeidp.User{Subject: "s2", Email: "bob@example.com", Claims: map[string]any{"preferred_username": "bob", "tid": tid}},
			wantErr:  ErrEmailNotVerified,
		},
		{
			name:     "google with hosted domain",
			provider: ProviderGoogle,
			user:     fakeidp.User{Subject: "s3", Email: "carol@example.com", EmailVerified: true, Claims: map[string]any{"hd": "example.com"}},
			want:     Identity{Subject: "s3", Email: "carol@example.com", EmailVerified: true, TenantHint: "example.com"},
		},
		{
			name:     "google unverified",
			provider: ProviderGoogle,
			user:     fakeidp.User{Subject: "s4", Email: "carol@example.com", EmailVerified: false},
			wantErr:  ErrEmailNotVerified,
		},
		{
			name:     "generic verified as string",
			provider: ProviderGeneric,
			user:     fakeidp.User{Subject: "s5", Email: "dan@example.com", Claims: map[string]any{"email_verified": "true"}},
			want:     Identity{Subject: "s5", Email: "dan@example.com", EmailVerified: true},
		},
		{
			name:     "generic without email",
			provider: ProviderGeneric,
			user:     fakeidp.User{Subject: "s6", EmailVerified: true},
			wantErr:  ErrEmailNotVerified,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			idp := fakeidp.Start(t)
			idp.SetUserInfo(tc.user)
			id, err := login(t, idp, newTestOIDC(t, idp, tc.provider))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("login = %+v, %v; want %v", id, err, tc.wantErr)
				}
				return
			}
			if err != nil || id != tc.want {
				t.Fatalf("login = %+v, %v; want %+v", id, err, tc.want)
			}
		})
	}
}

func TestNewOIDCUnreachable(t *testing.T) {
	t.Parallel()
	idp := fakeidp.Start(t)
	cfg := oidcConfig(idp, ProviderGeneric)
	idp.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := NewOIDC(ctx, cfg, testRedirect, nil); !errors.Is(err, ErrUpstream) {
		t.Fatalf("NewOIDC = %v, want ErrUpstream", err)
	}
	cfg.Method = MethodIMAP
	if _, err := NewOIDC(ctx, cfg, testRedirect, nil); err == nil {
		t.Fatal("NewOIDC accepted a non-OIDC config")
	}
}

func TestOIDCOverTLS(t *testing.T) {
	t.Parallel()
	idp := fakeidp.Start(t, fakeidp.WithTLS())
	idp.SetUser("erin@example.com", "Erin")
	if _, err := NewOIDC(t.Context(), oidcConfig(idp, ProviderGeneric), testRedirect, &http.Client{Timeout: 5 * time.Second}); !errors.Is(err, ErrUpstream) {
		t.Fatalf("NewOIDC trusting only system roots = %v, want ErrUpstream", err)
	}
	id, err := login(t, idp, newTestOIDC(t, idp, ProviderGeneric))
	if err != nil || id.Email != "erin@example.com" {
		t.Fatalf("login over TLS = %+v, %v", id, err)
	}
}
