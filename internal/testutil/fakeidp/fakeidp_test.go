package fakeidp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

const redirect = "http://127.0.0.1:1/cb"

type authReq struct {
	verifier, nonce, state string
	redirect               string
	clientID               string
	pkce                   bool
}

func defaultReq() authReq {
	return authReq{verifier: "v-" + strings.Repeat("x", 50), nonce: "n1", state: "st1", redirect: redirect, clientID: DefaultClientID, pkce: true}
}

// authorize does GET /authorize and returns the response (not followed).
func authorize(t *testing.T, p *IdP, r authReq) *http.Response {
	t.Helper()
	q := url.Values{
		"response_type": {"code"}, "client_id": {r.clientID}, "redirect_uri": {r.redirect},
		"scope": {"openid email"}, "state": {r.state}, "nonce": {r.nonce},
	}
	if r.pkce {
		q.Set("code_challenge", s256(r.verifier))
		q.Set("code_challenge_method", "S256")
	}
	resp, err := p.HTTPClient().Get(p.Issuer() + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func callback(t *testing.T, resp *http.Response) url.Values {
	t.Helper()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize status %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc.Query()
}

func token(t *testing.T, p *IdP, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.Issuer()+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(p.ClientID()), url.QueryEscape(secret))
	resp, err := p.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func codeForm(code string, r authReq) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {r.redirect}, "code_verifier": {r.verifier}}
}

func TestDiscoveryAndToken(t *testing.T) {
	t.Parallel()
	p := Start(t)
	p.SetUser("alice@example.com", "Alice")

	resp, err := p.HTTPClient().Get(p.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc map[string]any
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || disc["issuer"] != p.Issuer() || disc["token_endpoint"] != p.Issuer()+"/token" {
		t.Fatalf("discovery = %v, %v", disc, err)
	}

	r := defaultReq()
	q := callback(t, authorize(t, p, r))
	if q.Get("state") != r.state || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	status, body := token(t, p, p.ClientSecret(), codeForm(q.Get("code"), r))
	if status != http.StatusOK {
		t.Fatalf("token: %d %v", status, body)
	}
	raw, _ := body["id_token"].(string)

	// Verify the ID token against the published JWKS, independently of
	// the relying-party library under test elsewhere.
	resp, err = p.HTTPClient().Get(p.Issuer() + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: %v, %d keys", err, len(set.Keys))
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify(set.Keys[0])
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"iss": p.Issuer(), "aud": DefaultClientID, "nonce": r.nonce, "email": "alice@example.com", "email_verified": true, "name": "Alice", "sub": "sub-alice@example.com"} {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}

	// The code was used: a second redemption fails.
	if status, body := token(t, p, p.ClientSecret(), codeForm(q.Get("code"), r)); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("reused code: %d %v", status, body)
	}
}

func TestTokenChecks(t *testing.T) {
	t.Parallel()
	p := Start(t)
	p.SetUser("alice@example.com", "Alice")
	r := defaultReq()
	cases := []struct {
		name       string
		secret     string
		edit       func(url.Values)
		wantStatus int
		wantErr    string
	}{
		{"wrong secret", "nope", func(url.Values) {}, http.StatusUnauthorized, "invalid_client"},
		{"wrong verifier", DefaultClientSecret, func(f url.Values) { f.Set("code_verifier", "other-"+strings.Repeat("y", 50)) }, http.StatusBadRequest, "invalid_grant"},
		{"no verifier", DefaultClientSecret, func(f url.Values) { f.Del("code_verifier") }, http.StatusBadRequest, "invalid_grant"},
		{"other redirect", DefaultClientSecret, func(f url.Values) { f.Set("redirect_uri", "http://127.0.0.1:1/other") }, http.StatusBadRequest, "invalid_grant"},
		{"unknown code", DefaultClientSecret, func(f url.Values) { f.Set("code", "made-up") }, http.StatusBadRequest, "invalid_grant"},
		{"grant type", DefaultClientSecret, func(f url.Values) { f.Set("grant_type", "password") }, http.StatusBadRequest, "unsupported_grant_type"},
	}
	for _, tc := range cases {
		q := callback(t, authorize(t, p, r))
		form := codeForm(q.Get("code"), r)
		tc.edit(form)
		status, body := token(t, p, tc.secret, form)
		if status != tc.wantStatus || body["error"] != tc.wantErr || body["id_token"] != nil {
			t.Errorf("%s: %d %v; want %d %s", tc.name, status, body, tc.wantStatus, tc.wantErr)
		}
	}
}

func TestAuthorizeChecks(t *testing.T) {
	t.Parallel()
	p := Start(t, WithRedirectURIs(redirect))
	p.SetUser("alice@example.com", "Alice")

	noPKCE := defaultReq()
	noPKCE.pkce = false
	if q := callback(t, authorize(t, p, noPKCE)); q.Get("error") != "invalid_request" || q.Get("code") != "" {
		t.Errorf("without PKCE: %v", q)
	}
	otherClient := defaultReq()
	otherClient.clientID = "someone-else"
	if resp := authorize(t, p, otherClient); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown client: status %d", resp.StatusCode)
	}
	otherRedirect := defaultReq()
	otherRedirect.redirect = "http://127.0.0.1:1/evil"
	if resp := authorize(t, p, otherRedirect); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unregistered redirect: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestAuthorizeForm(t *testing.T) {
	t.Parallel()
	p := Start(t)
	r := defaultReq()
	resp := authorize(t, p, r)
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `name="login_email"`) || !strings.Contains(string(page), `value="`+r.state+`"`) {
		t.Fatalf("no form without a user: %d\n%s", resp.StatusCode, page)
	}
	// Submit the form as a browser would: hidden fields plus the address.
	form := url.Values{
		"response_type": {"code"}, "client_id": {DefaultClientID}, "redirect_uri": {r.redirect},
		"scope": {"openid"}, "state": {r.state}, "nonce": {r.nonce},
		"code_challenge": {s256(r.verifier)}, "code_challenge_method": {"S256"},
		"login_email": {"bob@example.com"}, "login_name": {"Bob"},
	}
	post, err := p.HTTPClient().PostForm(p.Issuer()+"/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	q := callback(t, post)
	status, body := token(t, p, p.ClientSecret(), codeForm(q.Get("code"), r))
	if status != http.StatusOK || body["id_token"] == nil {
		t.Fatalf("token after form: %d %v", status, body)
	}
}
