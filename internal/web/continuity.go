package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/store"
)

// Mail continuity in the console and the API: each domain's delivery mode
// with the switch (one button, then a confirmation page), the failover
// state, the hand-backs with their progress, each user's emergency
// mailbox and the continuity log. Every change goes through the
// administration layer.

func (s *Server) continuityRoutes() {
	s.handle("GET /continuity", store.RoleAdmin, s.continuityPage)
	s.handle("POST /continuity/credentials", store.RoleAdmin, s.credentialsPost)
	s.handle("POST /continuity/credentials/delete", store.RoleAdmin, s.credentialsDelete)
	s.handle("GET /domains/{name}/continuity", store.RoleAdmin, s.continuityDomainPage)
	s.handle("GET /domains/{name}/continuity/switch", store.RoleAdmin, s.switchConfirmPage)
	s.handle("POST /domains/{name}/continuity/switch", store.RoleAdmin, s.switchPost)
	s.handle("POST /domains/{name}/continuity/purge", store.RoleAdmin, s.purgePost)
	s.handle("POST /domains/{name}/handback", store.RoleAdmin, s.handbackPost)
	s.handle("POST /domains/{name}/handback/retry", store.RoleAdmin, s.handbackRetryPost)
}

type continuityData struct {
	Domains     []continuity.DomainStatus
	Credentials []continuity.CredentialInfo
}

// continuityPage is the overview: every domain's mode and hand-back, and
// the hand-back paths' credentials.
func (s *Server) continuityPage(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := p.tid(); err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	st, err := s.admin.ContinuityStatus(ctx, who(p), "")
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := continuityData{Domains: st}
	for _, prov := range []string{continuity.PathGraph, continuity.PathGmail} {
		info, err := s.admin.HandbackCredentials(ctx, who(p), prov)
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		d.Credentials = append(d.Credentials, info)
	}
	v := s.newView(r, p, "nav_continuity")
	v.Data = d
	s.render(w, http.StatusOK, "continuity", v)
}

type continuityDomainData struct {
	continuity.DomainStatus
	Events []store.ContinuityEvent
	Users  []continuity.UserUsage
	// More pages the log backwards.
	More url.Values
}

// continuityDomainPage is one domain: mode, failover, hand-backs, users
// and the log.
func (s *Server) continuityDomainPage(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	name := r.PathValue("name")
	st, err := s.admin.ContinuityStatus(ctx, who(p), name)
	if err == nil && len(st) != 1 {
		err = store.ErrNotFound
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	before := atoi64(r.URL.Query().Get("before"))
	const page = 100
	evs, err := s.admin.ContinuityEvents(ctx, who(p), name, before, page)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	users, err := s.admin.EmergencyUsage(ctx, who(p), name)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := continuityDomainData{DomainStatus: st[0], Events: evs, Users: users}
	if len(evs) == page {
		d.More = url.Values{"before": {strconv.FormatInt(evs[len(evs)-1].ID, 10)}}
	}
	v := s.newView(r, p, "continuity_domain_title")
	v.Title = v.T("continuity_domain_title", "Domain", st[0].Domain)
	v.Data = d
	s.render(w, http.StatusOK, "continuity_domain", v)
}

// switchConfirmPage asks before a switch, saying what it does.
func (s *Server) switchConfirmPage(w http.ResponseWriter, r *http.Request, p *principal) {
	st, err := s.admin.ContinuityStatus(r.Context(), who(p), r.PathValue("name"))
	if err == nil && len(st) != 1 {
		err = store.ErrNotFound
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	to := store.ModeEmergency
	switch {
	case st[0].Mode != store.ModePrimary:
		to = store.ModePrimary
	case r.URL.Query().Get("to") == store.ModeMailbox:
		// A domain hosted in mailgate's mailboxes for good.
		to = store.ModeMailbox
	}
	v := s.newView(r, p, "continuity_switch_title")
	v.Title = v.T("continuity_switch_title", "Domain", st[0].Domain)
	v.Data = struct {
		continuity.DomainStatus
		To string
	}{st[0], to}
	s.render(w, http.StatusOK, "continuity_switch", v)
}

func domainPage(name string) string { return "/domains/" + url.PathEscape(name) + "/continuity" }

func (s *Server) switchPost(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	if _, err := s.admin.SwitchContinuity(r.Context(), who(p), name, r.PostFormValue("mode"), r.PostFormValue("reason")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, domainPage(name), "switched")
}

func (s *Server) handbackPost(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	if _, err := s.admin.StartHandback(r.Context(), who(p), name, r.PostFormValue("user")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, domainPage(name), "handback_started")
}

func (s *Server) handbackRetryPost(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	if _, err := s.admin.RetryHandback(r.Context(), who(p), name); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, domainPage(name), "done")
}

func (s *Server) purgePost(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	if _, err := s.admin.PurgeContinuity(r.Context(), who(p), name); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, domainPage(name), "deleted")
}

func (s *Server) credentialsPost(w http.ResponseWriter, r *http.Request, p *principal) {
	raw := r.PostFormValue("credentials")
	if strings.TrimSpace(raw) == "" {
		s.fail(w, r, p, badRequest("paste the credentials (JSON)"))
		return
	}
	if _, err := s.admin.SetHandbackCredentials(r.Context(), who(p), r.PostFormValue("provider"), []byte(raw)); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/continuity", "saved")
}

func (s *Server) credentialsDelete(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := s.admin.SetHandbackCredentials(r.Context(), who(p), r.PostFormValue("provider"), nil); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/continuity", "deleted")
}

// --- API ---

// eventJSON is a continuity event in the API.
type eventJSON struct {
	ID     int64     `json:"id"`
	Domain string    `json:"domain"`
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Actor  string    `json:"actor"`
	Detail string    `json:"detail"`
}

func (s *Server) continuityAPI() {
	s.api("GET /continuity", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return s.admin.ContinuityStatus(r.Context(), who(p), "")
	})
	s.api("GET /domains/{name}/continuity", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		st, err := s.admin.ContinuityStatus(r.Context(), who(p), r.PathValue("name"))
		if err == nil && len(st) != 1 {
			err = store.ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		return st[0], nil
	})
	s.api("POST /domains/{name}/continuity", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Mode   string `json:"mode"`
			Reason string `json:"reason"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return s.admin.SwitchContinuity(r.Context(), who(p), r.PathValue("name"), in.Mode, in.Reason)
	})
	s.api("GET /domains/{name}/continuity/events", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		evs, err := s.admin.ContinuityEvents(r.Context(), who(p), r.PathValue("name"), atoi64(q.Get("before")), limit)
		out := []eventJSON{}
		for _, e := range evs {
			out = append(out, eventJSON{ID: e.ID, Domain: e.Domain, At: e.At, Kind: e.Kind, Actor: e.Actor, Detail: e.Detail})
		}
		return out, err
	})
	s.api("GET /domains/{name}/continuity/users", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return s.admin.EmergencyUsage(r.Context(), who(p), r.PathValue("name"))
	})
	s.api("POST /domains/{name}/continuity/purge", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		n, err := s.admin.PurgeContinuity(r.Context(), who(p), r.PathValue("name"))
		return map[string]int{"deleted": n}, err
	})
	s.api("GET /domains/{name}/handback", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return s.admin.HandbackStatus(r.Context(), who(p), r.PathValue("name"))
	})
	s.api("POST /domains/{name}/handback", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			User string `json:"user"`
		}
		if r.ContentLength != 0 {
			if err := decode(r, &in); err != nil {
				return nil, err
			}
		}
		h, err := s.admin.StartHandback(r.Context(), who(p), r.PathValue("name"), in.User)
		return created{h}, err
	})
	s.api("POST /domains/{name}/handback/retry", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		n, err := s.admin.RetryHandback(r.Context(), who(p), r.PathValue("name"))
		return map[string]int{"messages": n}, err
	})
	s.api("GET /continuity/credentials", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return s.admin.HandbackCredentials(r.Context(), who(p), r.URL.Query().Get("provider"))
	})
	s.api("PUT /continuity/credentials", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Provider    string          `json:"provider"`
			Credentials json.RawMessage `json:"credentials"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		if len(in.Credentials) == 0 || string(in.Credentials) == "null" {
			return nil, badRequest("credentials: a JSON object is required (DELETE removes them)")
		}
		return s.admin.SetHandbackCredentials(r.Context(), who(p), in.Provider, in.Credentials)
	})
	s.api("DELETE /continuity/credentials", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		_, err := s.admin.SetHandbackCredentials(r.Context(), who(p), r.URL.Query().Get("provider"), nil)
		return nil, err
	})
}
