// Package dirsynctest has in-process fakes of Microsoft Graph's and the
// Google Directory API's user and group listings, with their token
// endpoints. Each checks every request it gets (token grant, client and
// scope, the bearer token, the query parameters, the paging) and reports
// a deviation as a test error when the test ends.
package dirsynctest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fake is the common part: problems found and counters.
type fake struct {
	mu       sync.Mutex
	problems []string
	tokens   int
	lists    int
	// fail, when not 0, is the HTTP status of every listing.
	fail int
}

func (f *fake) problem(format string, a ...any) {
	f.mu.Lock()
	f.problems = append(f.problems, fmt.Sprintf(format, a...))
	f.mu.Unlock()
}

func (f *fake) check(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.problems {
		t.Error(p)
	}
}

// Tokens is how many tokens were issued.
func (f *fake) Tokens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens
}

// Lists is how many listing pages were served.
func (f *fake) Lists() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

// Fail makes every listing answer status (0: serve again).
func (f *fake) Fail(status int) {
	f.mu.Lock()
	f.fail = status
	f.mu.Unlock()
}

func page[T any](all []T, q string, size int) ([]T, int, error) {
	start := 0
	if q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 0 || n > len(all) {
			return nil, 0, fmt.Errorf("bad page token %q", q)
		}
		start = n
	}
	end := min(start+size, len(all))
	next := 0
	if end < len(all) {
		next = end
	}
	return all[start:end], next, nil
}

// GraphObject is a Graph user or group.
type GraphObject struct {
	DisplayName    string   `json:"displayName"`
	Mail           string   `json:"mail"`
	ProxyAddresses []string `json:"proxyAddresses"`
}

// Graph fakes Microsoft Graph: the token endpoint of tenant Tenant
// (client credentials of ClientID/Secret) and GET /v1.0/users and
// /v1.0/groups, PageSize objects a page.
type Graph struct {
	fake
	URL      string
	Tenant   string
	ClientID string
	Secret   string
	PageSize int
	// NextBase, when set, replaces URL in the next links (a Graph that
	// sends the client elsewhere).
	NextBase string
	users    []GraphObject
	groups   []GraphObject
}

// NewGraph starts the fake; its problems are test errors at cleanup.
func NewGraph(t testing.TB) *Graph {
	g := &Graph{Tenant: "contoso.example", ClientID: "app-1", Secret: "s3cret", PageSize: 2}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	g.URL = srv.URL
	t.Cleanup(func() { srv.Close(); g.check(t) })
	return g
}

// Credentials are the JSON credentials to store for the fake.
func (g *Graph) Credentials() []byte {
	b, _ := json.Marshal(map[string]string{"tenant": g.Tenant, "client_id": g.ClientID, "client_secret": g.Secret})
	return b
}

// Set replaces the directory.
func (g *Graph) Set(users, groups []GraphObject) {
	g.mu.Lock()
	g.users, g.groups = users, groups
	g.mu.Unlock()
}

func (g *Graph) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/"+g.Tenant+"/oauth2/v2.0/token" {
		r.ParseForm()
		if r.Method != http.MethodPost || r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("client_id") != g.ClientID ||
			r.Form.Get("client_secret") != g.Secret || r.Form.Get("scope") != g.URL+"/.default" {
			g.problem("graph token request: %s %v", r.Method, r.Form)
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		g.mu.Lock()
		g.tokens++
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"graph-token","token_type":"Bearer","expires_in":3600}`)
		return
	}
	if r.Header.Get("Authorization") != "Bearer graph-token" {
		g.problem("graph %s %s: authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	if r.Method != http.MethodGet || (r.URL.Path != "/v1.0/users" && r.URL.Path != "/v1.0/groups") {
		g.problem("graph: unexpected %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	sel := "," + q.Get("$select") + ","
	if !strings.Contains(sel, ",proxyAddresses,") || !strings.Contains(sel, ",mail,") || q.Get("$top") != "999" {
		g.problem("graph %s: query %v", r.URL.Path, q)
	}
	g.mu.Lock()
	g.lists++
	fail := g.fail
	all := g.users
	if r.URL.Path == "/v1.0/groups" {
		all = g.groups
	}
	g.mu.Unlock()
	if fail != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fail)
		fmt.Fprint(w, `{"error":{"code":"serviceNotAvailable","message":"try later"}}`)
		return
	}
	items, next, err := page(all, q.Get("$skiptoken"), g.PageSize)
	if err != nil {
		g.problem("graph %s: %v", r.URL.Path, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	out := map[string]any{"value": items}
	if items == nil {
		out["value"] = []GraphObject{}
	}
	if next > 0 {
		nq := q
		nq.Set("$skiptoken", strconv.Itoa(next))
		base := g.URL
		if g.NextBase != "" {
			base = g.NextBase
		}
		out["@odata.nextLink"] = base + r.URL.Path + "?" + nq.Encode()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// GoogleUser is a Directory API user.
type GoogleUser struct {
	PrimaryEmail       string   `json:"primaryEmail"`
	Aliases            []string `json:"aliases,omitempty"`
	NonEditableAliases []string `json:"nonEditableAliases,omitempty"`
	Name               struct {
		FullName string `json:"fullName"`
	} `json:"name"`
}

// GoogleGroup is a Directory API group.
type GoogleGroup struct {
	Email              string   `json:"email"`
	Name               string   `json:"name"`
	Aliases            []string `json:"aliases,omitempty"`
	NonEditableAliases []string `json:"nonEditableAliases,omitempty"`
}

// Google fakes Google's token endpoint (/token: a service account's JWT
// grant, RFC 7523, for Admin with the directory read-only scopes) and the
// Directory API's users and groups listings of Domain.
type Google struct {
	fake
	URL         string
	ClientEmail string
	Admin       string
	Domain      string
	PageSize    int
	key         *rsa.PrivateKey
	users       []GoogleUser
	groups      []GoogleGroup
}

// NewGoogle starts the fake with a fresh service account key.
func NewGoogle(t testing.TB, domain, admin string) *Google {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	g := &Google{ClientEmail: "mailgate@project.iam.example", Admin: admin, Domain: domain, PageSize: 2, key: key}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	g.URL = srv.URL
	t.Cleanup(func() { srv.Close(); g.check(t) })
	return g
}

// ServiceAccount is the service account key file to store.
func (g *Google) ServiceAccount() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(g.key)
	b, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": g.ClientEmail, "private_key_id": "key-1",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), "project_id": "p"})
	return b
}

// Set replaces the directory.
func (g *Google) Set(users []GoogleUser, groups []GoogleGroup) {
	g.mu.Lock()
	g.users, g.groups = users, groups
	g.mu.Unlock()
}

// User makes a GoogleUser.
func User(primary, name string, aliases ...string) GoogleUser {
	u := GoogleUser{PrimaryEmail: primary, Aliases: aliases}
	u.Name.FullName = name
	return u
}

const directoryScopes = "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.readonly"

func (g *Google) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		r.ParseForm()
		err := g.verifyAssertion(r.Form.Get("assertion"), g.URL+"/token")
		if r.Method != http.MethodPost || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || err != nil {
			g.problem("google token request %v: %v", r.Form, err)
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.tokens++
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"dir-token","token_type":"Bearer","expires_in":3600}`)
		return
	}
	if r.Header.Get("Authorization") != "Bearer dir-token" {
		g.problem("google %s %s: authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	want := map[string]string{"/admin/directory/v1/users": "500", "/admin/directory/v1/groups": "200"}
	max, ok := want[r.URL.Path]
	if r.Method != http.MethodGet || !ok {
		g.problem("google: unexpected %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if q.Get("domain") != g.Domain || q.Get("maxResults") != max || q.Has("customer") {
		g.problem("google %s: query %v", r.URL.Path, q)
	}
	g.mu.Lock()
	g.lists++
	fail := g.fail
	users, groups := g.users, g.groups
	g.mu.Unlock()
	if fail != 0 {
		w.WriteHeader(fail)
		fmt.Fprint(w, `{"error":{"code":503,"message":"backend error"}}`)
		return
	}
	out := map[string]any{"kind": "admin#directory#users"}
	var next int
	var err error
	if strings.HasSuffix(r.URL.Path, "/users") {
		var items []GoogleUser
		items, next, err = page(users, q.Get("pageToken"), g.PageSize)
		if len(items) > 0 {
			out["users"] = items
		}
	} else {
		var items []GoogleGroup
		items, next, err = page(groups, q.Get("pageToken"), g.PageSize)
		if len(items) > 0 {
			out["groups"] = items
		}
	}
	if err != nil {
		g.problem("google %s: %v", r.URL.Path, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if next > 0 {
		out["nextPageToken"] = strconv.Itoa(next)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// verifyAssertion checks the service account's JWT (RS256) for the token
// endpoint aud: issuer, key ID, subject (the administrator) and scopes.
func (g *Google) verifyAssertion(jws, aud string) error {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a JWS")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&g.key.PublicKey, crypto.SHA256, h[:], sig); err != nil {
		return fmt.Errorf("signature: %v", err)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var head struct{ Alg, Kid string }
	json.Unmarshal(hdr, &head)
	body, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Iss, Sub, Scope, Aud string
		Iat, Exp             int64
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return err
	}
	if head.Alg != "RS256" || head.Kid != "key-1" || c.Iss != g.ClientEmail || c.Aud != aud || c.Exp <= c.Iat ||
		c.Scope != directoryScopes || c.Sub != g.Admin {
		return fmt.Errorf("claims %+v header %+v", c, head)
	}
	return nil
}
