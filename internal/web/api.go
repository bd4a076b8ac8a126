package web

import (
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/store"
)

// The REST API: JSON over /api/v1, authenticated by API tokens
// ("Authorization: Bearer mgt_..."). A tenant token acts on its tenant; an
// operator token names the tenant with ?tenant=NAME. Read tokens may only
// GET. Every call is rate limited per token.

//go:embed openapi.json
var openapiJSON []byte

type apiHandler func(w http.ResponseWriter, r *http.Request, p *principal) (any, error)

// APIRate is the API's limit per token: bursts of 100 calls, 20 a second
// sustained.
var APIRate = loginlimit.Options{Burst: 100, Every: 50 * time.Millisecond}

func (s *Server) api(pattern string, min store.Role, h apiHandler) {
	method, path, _ := strings.Cut(pattern, " ")
	rt := Route{Method: method, Pattern: method + " /api/v1" + path, Min: min, API: true, Write: method != http.MethodGet}
	s.routes = append(s.routes, rt)
	s.mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
		p, status, msg := s.tokenPrincipal(r)
		if p == nil {
			switch status {
			case http.StatusUnauthorized:
				w.Header().Set("WWW-Authenticate", `Bearer realm="mailgate"`)
			case http.StatusTooManyRequests:
				w.Header().Set("Retry-After", "1")
			}
			apiError(w, status, msg)
			return
		}
		if !roleAtLeast(p.role, min) || (rt.Write && !p.write) {
			apiError(w, http.StatusForbidden, "forbidden")
			return
		}
		if min != store.RoleOperator && p.role == store.RoleOperator && p.tenantID == 0 && !strings.HasPrefix(rt.Pattern, "GET /api/v1/audit") {
			apiError(w, http.StatusBadRequest, "operator tokens name the tenant: ?tenant=NAME")
			return
		}
		v, err := h(w, r, p)
		if err != nil {
			st := statusOf(err)
			if st == http.StatusInternalServerError {
				s.d.Log.Error("api", "path", r.URL.Path, "err", err)
			}
			apiError(w, st, publicError(err))
			return
		}
		if _, ok := v.(raw); ok {
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		status = http.StatusOK
		if method == http.MethodPost && rt.Write {
			if c, ok := v.(created); ok {
				v, status = c.v, http.StatusCreated
			}
		}
		writeJSON(w, status, v)
	})
}

type created struct{ v any }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// tokenPrincipal authenticates an API call.
func (s *Server) tokenPrincipal(r *http.Request) (*principal, int, string) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || !strings.HasPrefix(secret, "mgt_") {
		return nil, http.StatusUnauthorized, "API token required (Authorization: Bearer mgt_...)"
	}
	ctx := r.Context()
	t, err := s.d.Store.APITokenByHash(ctx, sha256Hex(strings.TrimSpace(secret)))
	now := s.d.Clock.Now()
	if err != nil || t.Revoked || (!t.Expires.IsZero() && now.After(t.Expires)) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.d.Log.Error("api token lookup", "err", err)
			return nil, http.StatusInternalServerError, "internal error"
		}
		return nil, http.StatusUnauthorized, "invalid, revoked or expired token"
	}
	if now.Sub(t.LastUsed) > time.Minute {
		s.d.Store.TouchAPIToken(ctx, t.ID, now)
	}
	p := &principal{token: &t, role: store.RoleAdmin, tenantID: t.TenantID, actor: "api:" + t.Name, ip: s.clientIP(r), write: t.Scope == "write"}
	// The rate limit applies before anything else is looked up, so tenant
	// names cannot be probed faster than the limit either.
	if ok, _ := s.d.APILimit.Take(ctx, now, "api:"+strconv.FormatInt(t.ID, 10)); !ok {
		return nil, http.StatusTooManyRequests, "rate limit exceeded"
	}
	if t.TenantID == 0 {
		p.role = store.RoleOperator
		if name := r.URL.Query().Get("tenant"); name != "" {
			tn, err := s.d.Store.TenantByName(ctx, name)
			if err != nil {
				return nil, http.StatusNotFound, "no such tenant"
			}
			p.tenantID = tn.ID
		}
	} else if s.checkIP(ctx, p) != nil {
		return nil, http.StatusForbidden, "forbidden"
	}
	return p, 0, ""
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("JSON body: %v", err)
	}
	return nil
}

func (s *Server) apiRoutes() {
	s.mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openapiJSON)
	})
	s.routes = append(s.routes, Route{Method: "GET", Pattern: "GET /api/v1/openapi.json", API: true, Public: true})

	s.api("GET /tenants", store.RoleOperator, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		ts, err := s.d.Store.Tenants(r.Context())
		return nonNil(ts), err
	})
	s.api("POST /tenants", store.RoleOperator, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct{ Name string }
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		t, err := s.opAddTenant(r.Context(), p, in.Name)
		return created{t}, err
	})
	s.api("DELETE /tenants/{name}", store.RoleOperator, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		t, err := s.d.Store.TenantByName(r.Context(), r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		return nil, s.opDeleteTenant(r.Context(), p, t.ID)
	})

	// Domains, with their state: an administrator's new domain is
	// unverified (not served) until POST /domains/{name}/verify finds the
	// TXT record given in "record".
	s.api("GET /domains", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return s.admin.Domains(r.Context(), who(p))
	})
	type domainIn struct {
		Name   string   `json:"name"`
		Routes []string `json:"routes"`
		TLS    string   `json:"tls"`
	}
	s.api("POST /domains", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in domainIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		d, err := s.opAddDomain(r.Context(), p, in.Name, in.Routes, apiTLS(in.TLS))
		return created{d}, err
	})
	s.api("POST /domains/{name}/verify", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return s.admin.VerifyDomain(r.Context(), who(p), r.PathValue("name"))
	})
	s.api("PUT /domains/{name}/routes", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Routes []string `json:"routes"`
			TLS    string   `json:"tls"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, s.opSetRoutes(r.Context(), p, r.PathValue("name"), in.Routes, apiTLS(in.TLS))
	})
	s.api("DELETE /domains/{name}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.opDeleteDomain(r.Context(), p, r.PathValue("name"))
	})

	s.api("GET /users", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		us, err := s.d.Store.Users(r.Context(), p.tenantID)
		if err != nil {
			return nil, err
		}
		people, _ := s.d.Store.People(r.Context(), p.tenantID)
		names := map[string]string{}
		for _, pp := range people {
			names[pp.Address] = pp.Name
		}
		out := []map[string]string{}
		for _, u := range us {
			out = append(out, map[string]string{"address": u.Address, "name": names[u.Address]})
		}
		return out, nil
	})
	s.api("POST /users", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Address string `json:"address"`
			Name    string `json:"name"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		a, err := s.opAddUser(r.Context(), p, in.Address, in.Name)
		return created{map[string]string{"address": a}}, err
	})
	s.api("DELETE /users/{address}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.opDeleteUser(r.Context(), p, r.PathValue("address"))
	})

	s.accountAPIRoutes()

	s.api("GET /groups", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		gs, err := s.d.Store.Groups(r.Context(), p.tenantID)
		return nonNil(gs), err
	})
	s.api("POST /groups", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Name string `json:"name"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return created{in}, s.opAddGroup(r.Context(), p, in.Name)
	})
	s.api("DELETE /groups/{name}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.opDeleteGroup(r.Context(), p, r.PathValue("name"))
	})
	s.api("PUT /groups/{name}/members/{address}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.opGroupMember(r.Context(), p, r.PathValue("name"), r.PathValue("address"), true)
	})
	s.api("DELETE /groups/{name}/members/{address}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.opGroupMember(r.Context(), p, r.PathValue("name"), r.PathValue("address"), false)
	})

	s.api("GET /policy", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		ss, err := s.d.Store.Settings(r.Context(), p.tenantID)
		return nonNil(ss), err
	})
	type settingIn struct {
		Scope string `json:"scope"`
		Owner string `json:"owner"`
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	s.api("PUT /policy", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in settingIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, s.opSetSetting(r.Context(), p, in.Scope, in.Owner, in.Key, in.Value)
	})
	s.api("DELETE /policy", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		q := r.URL.Query()
		return nil, s.opUnsetSetting(r.Context(), p, q.Get("scope"), q.Get("owner"), q.Get("key"))
	})
	s.api("POST /policy/dry-run", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Scope  string            `json:"scope"`
			Owner  string            `json:"owner"`
			Values map[string]string `json:"values"`
			Days   int               `json:"days"`
			Limit  int               `json:"limit"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return s.admin.PolicyDryRun(r.Context(), who(p), in.Scope, in.Owner, admin.SettingsChange(in.Values), in.Days, in.Limit)
	})

	s.api("GET /lists", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		es, err := s.d.Store.ListEntries(r.Context(), p.tenantID)
		return nonNil(es), err
	})
	s.api("POST /lists", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Scope, Owner, Kind, Field, Mode, Value, Action, Comment string
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		e, err := s.opAddListEntry(r.Context(), p, store.ListEntry{Scope: in.Scope, Owner: in.Owner, Kind: in.Kind, Field: in.Field,
			Mode: in.Mode, Value: in.Value, Action: in.Action, Comment: in.Comment})
		return created{e}, err
	})
	s.api("DELETE /lists/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.opDeleteListEntry(r.Context(), p, atoi64(r.PathValue("id")))
	})

	s.api("GET /queue", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		st := store.RcptState(r.URL.Query().Get("state"))
		es, err := s.d.Store.ListQueue(r.Context(), store.QueueFilter{TenantID: p.tenantID, State: st, Limit: 1000})
		return nonNil(es), err
	})
	s.api("POST /queue/{id}/{action}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		n, err := s.opQueue(r.Context(), p, r.PathValue("id"), r.PathValue("action"))
		return map[string]int{"recipients": n}, err
	})

	s.api("GET /messages", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		f, err := s.trackFilter(r, p.tenantID)
		if err != nil {
			return nil, err
		}
		rows, err := s.d.Store.SearchMessages(r.Context(), f)
		return nonNil(rows), err
	})
	s.api("GET /messages/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		m, rcpts, err := s.d.Store.Message(r.Context(), p.tenantID, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		evs, err := s.d.Store.Events(r.Context(), p.tenantID, m.ID)
		return map[string]any{"message": m, "recipients": rcpts, "events": nonNil(evs)}, err
	})

	s.api("GET /audit", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		es, err := s.d.Store.AuditLog(r.Context(), s.auditFilter(r, p))
		return nonNil(es), err
	})

	s.api("GET /stats", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		d, err := s.dashboardData(r, p.tenantID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"today": d.Today, "month": d.Month, "queued": d.Queued, "held": d.Held}, nil
	})
	s.quarantineAPI()
	s.continuityAPI()
	s.directoryAPI()
	s.outboundAPI()
	s.linkAPI()
	s.onboardAPI()
	s.mlAPI()
}

func apiTLS(m string) string {
	switch m {
	case "required", "verify", "none":
		return m
	}
	return "opportunistic"
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}
