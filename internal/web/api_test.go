package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx/dnstest"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/consoletest"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/web"
)

// --- OpenAPI description, as served ---

// apiSpec is the parts of the served OpenAPI document the tests check
// responses against.
type apiSpec struct {
	OpenAPI    string                                `json:"openapi"`
	Servers    []struct{ URL string }                `json:"servers"`
	Security   []map[string][]string                 `json:"security"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes map[string]map[string]any  `json:"securitySchemes"`
		Responses       map[string]specResponse    `json:"responses"`
		Schemas         map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

type specResponse struct {
	Ref     string                                      `json:"$ref"`
	Headers map[string]json.RawMessage                  `json:"headers"`
	Content map[string]struct{ Schema json.RawMessage } `json:"content"`
}

type specOp struct {
	Security  *[]map[string][]string  `json:"security"`
	Responses map[string]specResponse `json:"responses"`
}

func loadSpec(t *testing.T, e *consoletest.Env) *apiSpec {
	t.Helper()
	resp, err := http.Get(e.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("openapi.json: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var s apiSpec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return &s
}

// routeKey is "METHOD /api/v1/path" as in web.Route.Pattern.
func (s *apiSpec) routeKeys() map[string]bool {
	out := map[string]bool{}
	for p, ops := range s.Paths {
		for m := range ops {
			switch m {
			case "get", "put", "post", "delete", "patch", "head", "options":
				out[strings.ToUpper(m)+" /api/v1"+p] = true
			}
		}
	}
	return out
}

// op finds the operation serving method and a concrete path under /api/v1.
func (s *apiSpec) op(t *testing.T, method, path string) (string, specOp) {
	t.Helper()
	path, _, _ = strings.Cut(path, "?")
	segs := strings.Split(path, "/")
	for p, ops := range s.Paths {
		ps := strings.Split(p, "/")
		if len(ps) != len(segs) {
			continue
		}
		ok := true
		for i := range ps {
			if !strings.HasPrefix(ps[i], "{") && ps[i] != segs[i] {
				ok = false
				break
			}
		}
		raw, has := ops[strings.ToLower(method)]
		if !ok || !has {
			continue
		}
		var o specOp
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatalf("spec %s %s: %v", method, p, err)
		}
		return method + " " + p, o
	}
	t.Fatalf("no operation in the spec for %s %s", method, path)
	return "", specOp{}
}

// response resolves the documented response of op for status.
func (s *apiSpec) response(o specOp, status int) (specResponse, bool) {
	r, ok := o.Responses[strconv.Itoa(status)]
	if !ok {
		return r, false
	}
	if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
		r, ok = s.Components.Responses[name]
		return r, ok
	}
	return r, true
}

// check asserts that status is documented for the call and that a JSON
// body matches the documented schema.
func (s *apiSpec) check(t *testing.T, method, path string, status int, hdr http.Header, body []byte) {
	t.Helper()
	name, o := s.op(t, method, path)
	r, ok := s.response(o, status)
	if !ok {
		t.Errorf("%s (%s %s): status %d is not documented (body %.200s)", name, method, path, status, body)
		return
	}
	for h := range r.Headers {
		if hdr.Get(h) == "" {
			t.Errorf("%s: status %d documents header %s, response has none", name, status, h)
		}
	}
	ct, _, _ := mime.ParseMediaType(hdr.Get("Content-Type"))
	if len(r.Content) == 0 {
		if len(bytes.TrimSpace(body)) != 0 {
			t.Errorf("%s: status %d documents no body, got %.200s", name, status, body)
		}
		return
	}
	c, ok := r.Content[ct]
	if !ok {
		t.Errorf("%s: status %d: content type %q is not documented", name, status, ct)
		return
	}
	if ct != "application/json" {
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("%s: status %d: body is not JSON: %v", name, status, err)
		return
	}
	if err := s.validate(c.Schema, v, "$"); err != nil {
		t.Errorf("%s: status %d: body does not match the schema: %v\n%.400s", name, status, err, body)
	}
}

// validate checks v against the subset of JSON Schema the description
// uses: $ref, type (one or a list), enum, properties, required, items and
// additionalProperties.
func (s *apiSpec) validate(raw json.RawMessage, v any, at string) error {
	var sc struct {
		Ref        string                     `json:"$ref"`
		Type       any                        `json:"type"`
		Enum       []any                      `json:"enum"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
		Items      json.RawMessage            `json:"items"`
		AddProps   json.RawMessage            `json:"additionalProperties"`
	}
	if err := json.Unmarshal(raw, &sc); err != nil {
		return fmt.Errorf("%s: bad schema: %w", at, err)
	}
	if name, ok := strings.CutPrefix(sc.Ref, "#/components/schemas/"); ok {
		ref, found := s.Components.Schemas[name]
		if !found {
			return fmt.Errorf("%s: unknown schema %s", at, name)
		}
		return s.validate(ref, v, at)
	}
	var types []string
	switch tt := sc.Type.(type) {
	case string:
		types = []string{tt}
	case []any:
		for _, x := range tt {
			types = append(types, fmt.Sprint(x))
		}
	}
	kind := "null"
	switch x := v.(type) {
	case string:
		kind = "string"
	case bool:
		kind = "boolean"
	case float64:
		kind = "number"
		if x == float64(int64(x)) {
			kind = "integer"
		}
	case []any:
		kind = "array"
	case map[string]any:
		kind = "object"
	}
	if len(types) > 0 && !slices.Contains(types, kind) && !(kind == "integer" && slices.Contains(types, "number")) {
		return fmt.Errorf("%s: %s, want %v", at, kind, types)
	}
	if len(sc.Enum) > 0 && !slices.Contains(sc.Enum, v) {
		return fmt.Errorf("%s: %v is not one of %v", at, v, sc.Enum)
	}
	switch x := v.(type) {
	case []any:
		if sc.Items != nil {
			for i, it := range x {
				if err := s.validate(sc.Items, it, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	case map[string]any:
		for _, r := range sc.Required {
			if _, ok := x[r]; !ok {
				return fmt.Errorf("%s: required property %q missing", at, r)
			}
		}
		for k, pv := range x {
			if ps, ok := sc.Properties[k]; ok {
				if err := s.validate(ps, pv, at+"."+k); err != nil {
					return err
				}
			} else if sc.AddProps != nil {
				if err := s.validate(sc.AddProps, pv, at+"."+k); err != nil {
					return err
				}
			} else if sc.Properties != nil {
				return fmt.Errorf("%s: undocumented property %q", at, k)
			}
		}
	}
	return nil
}

// --- calling the API ---

// apiClient calls /api/v1 and checks every answer against the served
// description.
type apiClient struct {
	t    *testing.T
	e    *consoletest.Env
	spec *apiSpec
}

func newAPIClient(t *testing.T, e *consoletest.Env) *apiClient {
	return &apiClient{t: t, e: e, spec: loadSpec(t, e)}
}

// do sends one call with the token secret (none when "") and a JSON body
// (none when nil); it returns status, headers and body.
func (a *apiClient) do(secret, method, path string, body any) (int, http.Header, []byte) {
	a.t.Helper()
	auth := ""
	if secret != "" {
		auth = "Bearer " + secret
	}
	st, h, b := a.e.RawAPI(a.t, auth, method, path, body)
	a.spec.check(a.t, method, path, st, h, b)
	return st, h, b
}

// call is do with a named fixture token, decoding a JSON answer into out.
func (a *apiClient) call(token, method, path string, body, out any) int {
	a.t.Helper()
	secret := ""
	if token != "" {
		secret = a.e.Tokens[token]
	}
	st, _, b := a.do(secret, method, path, body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %d %q: %v", method, path, st, b, err)
		}
	}
	return st
}

// want fails the test unless the call answers status.
func (a *apiClient) want(status int, token, method, path string, body, out any) {
	a.t.Helper()
	if st := a.call(token, method, path, body, out); st != status {
		a.t.Fatalf("%s %s as %q: %d, want %d", method, path, token, st, status)
	}
}

// newToken stores an extra API token and returns its secret and ID.
func newToken(t testing.TB, e *consoletest.Env, name string, tenantID int64, scope string, expires time.Time) (string, int64) {
	t.Helper()
	secret, h := web.NewAPISecret()
	tk, err := e.Store.CreateAPIToken(context.Background(), store.APIToken{TenantID: tenantID, Name: name, Hash: h, Scope: scope,
		CreatedBy: "test", Created: time.Now(), Expires: expires})
	if err != nil {
		t.Fatal(err)
	}
	return secret, tk.ID
}

// --- tests ---

func TestOpenAPIDescribesEveryAPIRoute(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	a := newAPIClient(t, e)
	s := a.spec
	if !strings.HasPrefix(s.OpenAPI, "3.1") || len(s.Servers) != 1 || s.Servers[0].URL != "/api/v1" {
		t.Fatalf("openapi %q servers %+v", s.OpenAPI, s.Servers)
	}
	if sc := s.Components.SecuritySchemes["bearer"]; sc["type"] != "http" || sc["scheme"] != "bearer" ||
		len(s.Security) != 1 || s.Security[0]["bearer"] == nil {
		t.Fatalf("bearer security scheme missing: %+v %+v", s.Components.SecuritySchemes, s.Security)
	}
	var errSchema struct {
		Properties map[string]struct{ Type string }
		Required   []string
	}
	json.Unmarshal(s.Components.Schemas["Error"], &errSchema)
	if errSchema.Properties["error"].Type != "string" || !slices.Equal(errSchema.Required, []string{"error"}) {
		t.Fatalf("error schema: %+v", errSchema)
	}

	// The same set of (method, path) both ways.
	documented := s.routeKeys()
	served := map[string]bool{}
	for _, r := range e.Web.Routes() {
		if r.API {
			served[r.Pattern] = true
		}
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("route %s is not in openapi.json", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("openapi.json documents %s, which is not served", k)
		}
	}
	if len(served) < 30 {
		t.Fatalf("only %d API routes registered", len(served))
	}

	// Every operation but the description itself: the tenant parameter,
	// and what a client without a token, a read token and an operator token
	// without ?tenant= get back is documented (checked by apiClient.do).
	readSecret := e.Tokens["a-read"]
	// Each token makes a call or two per route, more than the API's burst
	// per token: a 429 is waited out as a client would (Retry-After), so
	// the checks below see each route's own answer.
	do := func(tok, method, path string) (int, http.Header) {
		t.Helper()
		for range 100 {
			st, h, _ := a.do(tok, method, path, nil)
			if st != http.StatusTooManyRequests {
				return st, h
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s %s: still 429 after 10 s", method, path)
		return 0, nil
	}
	for _, r := range e.Web.Routes() {
		if !r.API || r.Public {
			if r.Public && r.API {
				_, o := s.op(t, r.Method, strings.TrimPrefix(strings.TrimPrefix(r.Pattern, r.Method+" "), "/api/v1"))
				if o.Security == nil || len(*o.Security) != 0 {
					t.Errorf("%s: public route must have security: []", r.Pattern)
				}
			}
			continue
		}
		path := strings.TrimPrefix(strings.TrimPrefix(r.Pattern, r.Method+" "), "/api/v1")
		path = regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(path, "nope")
		var raw map[string]json.RawMessage
		json.Unmarshal(s.Paths[strings.TrimPrefix(strings.TrimPrefix(r.Pattern, r.Method+" "), "/api/v1")][strings.ToLower(r.Method)], &raw)
		if !bytes.Contains(raw["parameters"], []byte(`#/components/parameters/Tenant`)) {
			t.Errorf("%s: no tenant parameter", r.Pattern)
		}
		st, h := do("", r.Method, path)
		if st != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s without a token: %d %q", r.Pattern, st, h.Get("WWW-Authenticate"))
		}
		st, _ = do(readSecret, r.Method, path)
		switch {
		case r.Min == store.RoleOperator || r.Write:
			if st != http.StatusForbidden {
				t.Errorf("%s with a read token: %d, want 403", r.Pattern, st)
			}
		case st == http.StatusForbidden || st == http.StatusUnauthorized || st >= 500:
			t.Errorf("%s with a read token: %d", r.Pattern, st)
		}
		st, _ = do(e.Tokens["op"], r.Method, path)
		if r.Min != store.RoleOperator && !strings.HasPrefix(path, "/audit") && st != http.StatusBadRequest {
			t.Errorf("%s with an operator token without ?tenant=: %d, want 400", r.Pattern, st)
		}
		if r.Method == http.MethodGet {
			do(e.Tokens["op"], r.Method, path+"?tenant=acme") // 200 or 404, body checked
		}
	}
}

func TestAPIManagesTenantObjects(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	a := newAPIClient(t, e)
	ctx := context.Background()

	type domainOut struct {
		Name     string `json:"name"`
		Verified bool   `json:"verified"`
		Routes   []store.Route
		Record   *struct{ Name, Type, Value string } `json:"record"`
	}
	// A tenant token's domain is unverified: not served, listed with the
	// record to publish; its routes wait for the verification.
	var claim domainOut
	a.want(http.StatusCreated, "a-write", "POST", "/domains", map[string]any{"name": "Claim.test", "routes": []string{"mx"}}, &claim)
	if claim.Name != "claim.test" || claim.Verified || claim.Record == nil || claim.Record.Name != "_mailgate.claim.test" ||
		claim.Record.Type != "TXT" || !strings.HasPrefix(claim.Record.Value, "mailgate-verify=") || len(claim.Routes) != 1 {
		t.Fatalf("created %+v", claim)
	}
	if _, err := e.Store.DomainByName(ctx, "claim.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an unverified domain is served: %v", err)
	}
	a.want(http.StatusBadRequest, "a-write", "PUT", "/domains/claim.test/routes", map[string]any{"routes": []string{"mx"}}, nil)
	a.want(http.StatusConflict, "a-write", "POST", "/domains", map[string]any{"name": "claim.test"}, nil)
	a.want(http.StatusNoContent, "a-write", "DELETE", "/domains/claim.test", nil, nil)
	if cs, _ := e.Store.DomainClaims(ctx, e.Tenant.ID); len(cs) != 0 {
		t.Fatalf("claim not deleted: %+v", cs)
	}

	// Domains an operator adds are served at once: add with routes,
	// change routes, refuse a duplicate, delete.
	var dn domainOut
	a.want(http.StatusCreated, "op", "POST", "/domains?tenant=acme", map[string]any{"name": "API.test", "routes": []string{"smtp://127.0.0.1:2525"}, "tls": "required"}, &dn)
	if dn.Name != "api.test" || !dn.Verified || dn.Record != nil {
		t.Fatalf("created %+v", dn)
	}
	if d, err := e.Store.DomainByName(ctx, "api.test"); err != nil || d.TenantID != e.Tenant.ID {
		t.Fatalf("domain in store: %+v %v", d, err)
	}
	findDomain := func(token, name string) *domainOut {
		var ds []domainOut
		a.want(http.StatusOK, token, "GET", "/domains", nil, &ds)
		for _, d := range ds {
			if d.Name == name {
				return &d
			}
		}
		return nil
	}
	if d := findDomain("a-write", "api.test"); d == nil || len(d.Routes) != 1 || d.Routes[0].Target != "smtp://127.0.0.1:2525" || d.Routes[0].TLS != "required" {
		t.Fatalf("listed %+v", d)
	}
	if findDomain("b-write", "api.test") != nil || findDomain("a-write", "other.test") != nil {
		t.Fatal("a domain is listed to another tenant")
	}
	a.want(http.StatusNoContent, "a-write", "PUT", "/domains/api.test/routes", map[string]any{"routes": []string{"mx"}}, nil)
	if d := findDomain("a-write", "api.test"); d == nil || len(d.Routes) != 1 || d.Routes[0].Target != "mx" || d.Routes[0].TLS != "opportunistic" {
		t.Fatalf("routes not replaced: %+v", d)
	}
	a.want(http.StatusConflict, "a-write", "POST", "/domains", map[string]any{"name": "api.test"}, nil)
	a.want(http.StatusBadRequest, "a-write", "POST", "/domains", map[string]any{"name": "api.test", "bogus": 1}, nil)
	a.want(http.StatusNoContent, "a-write", "DELETE", "/domains/api.test", nil, nil)
	if findDomain("a-write", "api.test") != nil {
		t.Fatal("deleted domain still listed")
	}
	a.want(http.StatusNotFound, "a-write", "DELETE", "/domains/api.test", nil, nil)

	// Users, with a display name; an address outside the tenant's domains is refused.
	var ua map[string]string
	a.want(http.StatusCreated, "a-write", "POST", "/users", map[string]string{"address": "Zed@Example.test", "name": "Zed Zeta"}, &ua)
	if ua["address"] != "zed@example.test" {
		t.Fatalf("created %v", ua)
	}
	var us []map[string]string
	a.want(http.StatusOK, "a-write", "GET", "/users", nil, &us)
	if !slices.ContainsFunc(us, func(u map[string]string) bool { return u["address"] == "zed@example.test" && u["name"] == "Zed Zeta" }) {
		t.Fatalf("users: %v", us)
	}
	a.want(http.StatusBadRequest, "a-write", "POST", "/users", map[string]string{"address": "zed@other.test"}, nil)
	if ok, _ := e.Store.UserExists(ctx, e.TenantB.ID, "zed@other.test"); ok {
		t.Fatal("user added to another tenant's domain")
	}
	a.want(http.StatusNoContent, "a-write", "DELETE", "/users/zed@example.test", nil, nil)
	if ok, _ := e.Store.UserExists(ctx, e.Tenant.ID, "zed@example.test"); ok {
		t.Fatal("user not deleted")
	}

	// Groups and members.
	a.want(http.StatusCreated, "a-write", "POST", "/groups", map[string]string{"name": "sales"}, nil)
	a.want(http.StatusNoContent, "a-write", "PUT", "/groups/sales/members/alice@example.test", nil, nil)
	groups := func(token string) []store.Group {
		var gs []store.Group
		a.want(http.StatusOK, token, "GET", "/groups", nil, &gs)
		return gs
	}
	if gs := groups("a-write"); len(gs) != 1 || gs[0].Name != "sales" || !slices.Equal(gs[0].Members, []string{"alice@example.test"}) {
		t.Fatalf("groups: %+v", gs)
	}
	if gs := groups("b-write"); len(gs) != 0 {
		t.Fatalf("other tenant sees groups %+v", gs)
	}
	a.want(http.StatusNotFound, "b-write", "DELETE", "/groups/sales", nil, nil)
	a.want(http.StatusNoContent, "a-write", "DELETE", "/groups/sales/members/alice@example.test", nil, nil)
	if gs := groups("a-write"); len(gs) != 1 || len(gs[0].Members) != 0 {
		t.Fatalf("member not removed: %+v", gs)
	}
	a.want(http.StatusNoContent, "a-write", "DELETE", "/groups/sales", nil, nil)
	if gs := groups("a-write"); len(gs) != 0 {
		t.Fatalf("group not deleted: %+v", gs)
	}

	// Policy: set, list, unset; bad keys and foreign owners are refused.
	set := map[string]string{"scope": "domain", "owner": "example.test", "key": "spam.tag_at", "value": "80"}
	a.want(http.StatusNoContent, "a-write", "PUT", "/policy", set, nil)
	policy := func() []store.Setting {
		var ss []store.Setting
		a.want(http.StatusOK, "a-write", "GET", "/policy", nil, &ss)
		return ss
	}
	want := store.Setting{TenantID: e.Tenant.ID, Scope: "domain", Owner: "example.test", Key: "spam.tag_at", Value: "80"}
	if ss := policy(); !slices.Contains(ss, want) {
		t.Fatalf("policy: %+v", ss)
	}
	a.want(http.StatusBadRequest, "a-write", "PUT", "/policy", map[string]string{"scope": "tenant", "key": "Bad Key", "value": "1"}, nil)
	a.want(http.StatusNotFound, "a-write", "PUT", "/policy", map[string]string{"scope": "domain", "owner": "other.test", "key": "spam.tag_at", "value": "1"}, nil)
	a.want(http.StatusNoContent, "a-write", "DELETE", "/policy?scope=domain&owner=example.test&key=spam.tag_at", nil, nil)
	if ss := policy(); slices.Contains(ss, want) {
		t.Fatalf("setting not removed: %+v", ss)
	}

	// List entries.
	var le store.ListEntry
	a.want(http.StatusCreated, "a-write", "POST", "/lists", map[string]string{"Scope": "domain", "Owner": "example.test", "Kind": "deny",
		"Field": "from_addr", "Value": "bad@spam.test", "Action": "reject", "Comment": "api"}, &le)
	if le.ID == 0 || le.TenantID != e.Tenant.ID || le.Value != "bad@spam.test" || le.Mode != "exact" {
		t.Fatalf("created %+v", le)
	}
	var es []store.ListEntry
	a.want(http.StatusOK, "a-write", "GET", "/lists", nil, &es)
	if !slices.ContainsFunc(es, func(x store.ListEntry) bool { return x.ID == le.ID }) {
		t.Fatalf("lists: %+v", es)
	}
	a.want(http.StatusOK, "b-write", "GET", "/lists", nil, &es)
	if slices.ContainsFunc(es, func(x store.ListEntry) bool { return x.ID == le.ID }) {
		t.Fatal("other tenant sees the entry")
	}
	a.want(http.StatusNotFound, "b-write", "DELETE", fmt.Sprintf("/lists/%d", le.ID), nil, nil)
	a.want(http.StatusBadRequest, "a-write", "POST", "/lists", map[string]string{"Scope": "domain", "Owner": "example.test", "Kind": "deny", "Mode": "regex", "Value": "("}, nil)
	a.want(http.StatusNoContent, "a-write", "DELETE", fmt.Sprintf("/lists/%d", le.ID), nil, nil)
	a.want(http.StatusNotFound, "a-write", "DELETE", fmt.Sprintf("/lists/%d", le.ID), nil, nil)

	// Every change is in the tenant's audit log under the token's name.
	var au []store.AuditEntry
	a.want(http.StatusOK, "a-read", "GET", "/audit", nil, &au)
	var acts []string
	for _, x := range au {
		if x.Actor == "api:a-write" && x.TenantID == e.Tenant.ID {
			acts = append(acts, x.Action)
		}
	}
	for _, w := range []string{"domain.add", "domain.routes", "domain.delete", "user.add", "user.delete", "group.add", "group.join",
		"group.leave", "group.delete", "policy.set", "policy.unset", "list.add", "list.delete"} {
		if !slices.Contains(acts, w) {
			t.Errorf("no audit entry %s (have %v)", w, acts)
		}
	}
	a.want(http.StatusOK, "b-write", "GET", "/audit", nil, &au)
	for _, x := range au {
		if x.TenantID != e.TenantB.ID {
			t.Fatalf("tenant other sees audit entry %+v", x)
		}
	}
}

func TestAPITokensAndTenantSelection(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	a := newAPIClient(t, e)
	ctx := context.Background()

	// Read tokens read, and change nothing.
	a.want(http.StatusOK, "a-read", "GET", "/domains", nil, nil)
	a.want(http.StatusForbidden, "a-read", "POST", "/domains", map[string]string{"name": "ro.test"}, nil)
	a.want(http.StatusForbidden, "a-read", "DELETE", "/domains/example.test", nil, nil)
	a.want(http.StatusForbidden, "a-read", "PUT", "/policy", map[string]string{"scope": "tenant", "key": "spam.reject_at", "value": "0"}, nil)
	a.want(http.StatusForbidden, "a-read", "POST", "/users", map[string]string{"address": "ro@example.test"}, nil)
	if _, err := e.Store.DomainByName(ctx, "ro.test"); err == nil {
		t.Fatal("read token added a domain")
	}
	if _, err := e.Store.DomainByName(ctx, "example.test"); err != nil {
		t.Fatal("read token deleted a domain")
	}
	if ss, _ := e.Store.Settings(ctx, e.Tenant.ID); len(ss) != 0 {
		t.Fatalf("read token set %+v", ss)
	}

	// Unknown, malformed, revoked and expired tokens are 401.
	for _, auth := range []string{"", "Bearer ", "Bearer mgt_unknown", "Basic cm9vdDpwdw==", "bearer " + e.Tokens["a-write"], e.Tokens["a-write"]} {
		st, h, b := e.RawAPI(t, auth, "GET", "/domains", nil)
		a.spec.check(t, "GET", "/domains", st, h, b)
		if st != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %d", auth, st)
		}
	}
	secret, id := newToken(t, e, "temp", e.Tenant.ID, "write", time.Time{})
	if st, _, _ := a.do(secret, "GET", "/domains", nil); st != http.StatusOK {
		t.Fatalf("new token: %d", st)
	}
	if err := e.Store.RevokeAPIToken(ctx, e.Tenant.ID, id); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := a.do(secret, "GET", "/domains", nil); st != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", st)
	}
	expired, _ := newToken(t, e, "old", e.Tenant.ID, "write", time.Now().Add(-time.Minute))
	if st, _, _ := a.do(expired, "GET", "/domains", nil); st != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", st)
	}

	// Operator tokens must name the tenant on tenant routes.
	a.want(http.StatusBadRequest, "op", "GET", "/domains", nil, nil)
	a.want(http.StatusBadRequest, "op", "POST", "/groups", map[string]string{"name": "nowhere"}, nil)
	a.want(http.StatusNotFound, "op", "GET", "/domains?tenant=nosuch", nil, nil)
	names := func(token, q string) []string {
		var ds []struct {
			Name string `json:"name"`
		}
		a.want(http.StatusOK, token, "GET", "/domains"+q, nil, &ds)
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return out
	}
	if got := names("op", "?tenant=acme"); !slices.Equal(got, []string{"example.test"}) {
		t.Fatalf("acme domains: %v", got)
	}
	if got := names("op", "?tenant=other"); !slices.Equal(got, []string{"other.test"}) {
		t.Fatalf("other domains: %v", got)
	}
	// A tenant token cannot pick another tenant.
	if got := names("a-write", "?tenant=other"); !slices.Equal(got, []string{"example.test"}) {
		t.Fatalf("tenant token with ?tenant=other: %v", got)
	}
	a.want(http.StatusCreated, "op", "POST", "/groups?tenant=other", map[string]string{"name": "ops"}, nil)
	if gs, _ := e.Store.Groups(ctx, e.TenantB.ID); len(gs) != 1 || gs[0].Name != "ops" {
		t.Fatalf("operator's group not in tenant other: %+v", gs)
	}
	if gs, _ := e.Store.Groups(ctx, e.Tenant.ID); len(gs) != 0 {
		t.Fatalf("operator's group landed in acme: %+v", gs)
	}

	// Tenants are for operators only.
	var ts []store.Tenant
	a.want(http.StatusOK, "op", "GET", "/tenants", nil, &ts)
	if len(ts) != 2 {
		t.Fatalf("tenants: %+v", ts)
	}
	a.want(http.StatusForbidden, "a-write", "GET", "/tenants", nil, nil)
	a.want(http.StatusForbidden, "a-write", "POST", "/tenants", map[string]string{"Name": "mine"}, nil)
	var nt store.Tenant
	a.want(http.StatusCreated, "op", "POST", "/tenants", map[string]string{"Name": "third"}, &nt)
	if nt.ID == 0 || nt.Name != "third" {
		t.Fatalf("created %+v", nt)
	}
	a.want(http.StatusConflict, "op", "POST", "/tenants", map[string]string{"Name": "third"}, nil)
	a.want(http.StatusForbidden, "b-write", "DELETE", "/tenants/third", nil, nil)
	a.want(http.StatusNoContent, "op", "DELETE", "/tenants/third", nil, nil)
	a.want(http.StatusNotFound, "op", "DELETE", "/tenants/third", nil, nil)
	// Operator tokens see the whole audit log without ?tenant=.
	var au []store.AuditEntry
	a.want(http.StatusOK, "op", "GET", "/audit", nil, &au)
	seen := map[int64]bool{}
	for _, x := range au {
		seen[x.TenantID] = true
	}
	if !seen[e.TenantB.ID] || !seen[nt.ID] {
		t.Fatalf("operator audit view misses tenants: %v", seen)
	}
}

// sendMail sends one message over SMTP to the node's inbound listener and
// returns the server's verdict on it.
func sendMail(t *testing.T, e *consoletest.Env, from, to, data string) error {
	t.Helper()
	c, err := smtp.Dial(e.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// startWithDNS starts the environment with a loopback DNS server that
// passes SPF for example.net from 127.0.0.1.
func startWithDNS(t *testing.T) *consoletest.Env {
	dns := dnstest.Start(t)
	dns.Add(`example.net. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`)
	return consoletest.Start(t, consoletest.Options{Config: func(c *config.Config) { c.DNS.Resolver = dns.Addr() }})
}

func TestAPITrackingAndPolicyOverSMTP(t *testing.T) {
	e := startWithDNS(t)
	a := newAPIClient(t, e)

	// A message with a Japanese subject, sent as an RFC 2047 encoded word.
	subject := "請求書のご確認"
	encoded := mime.BEncoding.Encode("UTF-8", subject+" 0421")
	msg := func(n int) string {
		return fmt.Sprintf("From: Sender <sender@example.net>\r\nTo: alice@example.test\r\nSubject: %s\r\nMessage-ID: <m%d@example.net>\r\n"+
			"Date: Mon, 2 Mar 2026 10:00:00 +0900\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello %d\r\n", encoded, n, n)
	}
	if err := sendMail(t, e, "sender@example.net", "alice@example.test", msg(1)); err != nil {
		t.Fatalf("send: %v", err)
	}
	var rows []store.TrackRow
	q := "/messages?subject=" + url.QueryEscape(subject)
	mgtest.WaitFor(t, 10*time.Second, "the message in tracking", func() bool {
		a.want(http.StatusOK, "a-read", "GET", q, nil, &rows)
		return len(rows) == 1
	})
	m := rows[0].Message
	if !strings.HasPrefix(encoded, "=?UTF-8?b?") || m.Subject != subject+" 0421" {
		t.Fatalf("subject %q sent as %q, tracked as %q", subject, encoded, m.Subject)
	}
	if m.TenantID != e.Tenant.ID || m.MailFrom != "sender@example.net" || m.Direction != store.Inbound {
		t.Fatalf("message %+v", m)
	}
	// Another tenant finds nothing, and cannot open it.
	a.want(http.StatusOK, "b-write", "GET", q, nil, &rows)
	if len(rows) != 0 {
		t.Fatalf("tenant other finds %+v", rows)
	}
	a.want(http.StatusNotFound, "b-write", "GET", "/messages/"+m.ID, nil, nil)
	a.want(http.StatusOK, "op", "GET", "/messages?tenant=acme&subject="+url.QueryEscape("ご確認"), nil, &rows)
	if len(rows) != 1 || rows[0].Message.ID != m.ID {
		t.Fatalf("operator search: %+v", rows)
	}

	// The timeline ends in delivery to the tenant's server.
	var detail struct {
		Message    store.Message     `json:"message"`
		Recipients []store.Recipient `json:"recipients"`
		Events     []store.Event     `json:"events"`
	}
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool {
		a.want(http.StatusOK, "a-read", "GET", "/messages/"+m.ID, nil, &detail)
		return len(detail.Recipients) == 1 && detail.Recipients[0].State == store.Delivered
	})
	var kinds []string
	for _, ev := range detail.Events {
		kinds = append(kinds, ev.Kind)
	}
	if detail.Message.ID != m.ID || len(kinds) < 2 || kinds[0] != "received" || !slices.Contains(kinds, "delivered") ||
		detail.Recipients[0].Addr != "alice@example.test" {
		t.Fatalf("timeline %v of %+v", kinds, detail.Recipients)
	}
	if e.Down.Count() != 1 {
		t.Fatalf("downstream got %d messages", e.Down.Count())
	}

	// A policy change through the API applies to the very next message:
	// spam.reject_at 0 makes alice refuse everything, bob is untouched.
	a.want(http.StatusNoContent, "a-write", "PUT", "/policy", map[string]string{"scope": "address", "owner": "alice@example.test", "key": "spam.reject_at", "value": "0"}, nil)
	err := sendMail(t, e, "sender@example.net", "alice@example.test", msg(2))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("after spam.reject_at=0: %v, want a 550 reply", err)
	}
	if err := sendMail(t, e, "sender@example.net", "bob@example.test", msg(3)); err != nil {
		t.Fatalf("bob must still get mail: %v", err)
	}
	a.want(http.StatusNoContent, "a-write", "DELETE", "/policy?scope=address&owner=alice@example.test&key=spam.reject_at", nil, nil)
	if err := sendMail(t, e, "sender@example.net", "alice@example.test", msg(4)); err != nil {
		t.Fatalf("after unset: %v", err)
	}
	mgtest.WaitFor(t, 10*time.Second, "two more deliveries", func() bool { return e.Down.Count() == 3 })
	// The refusal is in tracking too.
	a.want(http.StatusOK, "a-read", "GET", "/messages?verdict=rejected&subject="+url.QueryEscape(subject), nil, &rows)
	if len(rows) != 1 || rows[0].Message.ID == m.ID || rows[0].Message.MessageID != "<m2@example.net>" {
		t.Fatalf("rejected messages: %+v", rows)
	}
}

func TestAPIRateLimit(t *testing.T) {
	e := consoletest.Start(t, consoletest.Options{})
	a := newAPIClient(t, e)
	secret, _ := newToken(t, e, "busy", e.Tenant.ID, "read", time.Time{})
	ok := 0
	for i := 0; i < 3000; i++ {
		st, h, b := e.RawAPI(t, "Bearer "+secret, "GET", "/groups", nil)
		if st == http.StatusOK {
			ok++
			continue
		}
		a.spec.check(t, "GET", "/groups", st, h, b)
		if st != http.StatusTooManyRequests {
			t.Fatalf("call %d: %d", i, st)
		}
		if n, err := strconv.Atoi(h.Get("Retry-After")); err != nil || n < 1 {
			t.Fatalf("Retry-After %q", h.Get("Retry-After"))
		}
		if ok < 100 {
			t.Fatalf("limited after %d calls; the burst is 100", ok)
		}
		// Other tokens of the same tenant have their own budget.
		a.want(http.StatusOK, "a-read", "GET", "/groups", nil, nil)
		return
	}
	t.Fatalf("%d calls in a row were never limited", ok)
}
