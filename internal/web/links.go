package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/attachlink"
	"github.com/mailgate/mailgate/internal/store"
)

// Attachment download links of sent mail: senders see and revoke their
// own, administrators every link of the tenant.
func (s *Server) linkRoutes() {
	s.handle("GET /links", store.RoleUser, s.linksPage)
	s.handle("GET /links/{id}", store.RoleUser, s.sentLinkPage)
	s.handle("POST /links/{id}/revoke", store.RoleUser, s.linkRevoke)
}

func (s *Server) linkAPI() {
	s.api("GET /links", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		return s.admin.Links(r.Context(), who(p), r.URL.Query().Get("sender"), limit)
	})
	s.api("GET /links/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		l, ds, err := s.admin.Link(r.Context(), who(p), r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return linkDetail{Link: l, Downloads: ds}, nil
	})
	s.api("POST /links/{id}/revoke", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.admin.RevokeLink(r.Context(), who(p), r.PathValue("id"))
	})
}

// linkDetail is one link with its download log.
type linkDetail struct {
	Link      admin.LinkView        `json:"link"`
	Downloads []attachlink.Download `json:"downloads"`
}

type linksData struct {
	Links  []admin.LinkView
	Sender string
}

func (s *Server) linksPage(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := p.tid(); err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	sender := strings.TrimSpace(r.URL.Query().Get("sender"))
	ls, err := s.admin.Links(r.Context(), who(p), sender, 0)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "nav_links")
	v.Data = linksData{Links: ls, Sender: sender}
	s.render(w, http.StatusOK, "links", v)
}

func (s *Server) sentLinkPage(w http.ResponseWriter, r *http.Request, p *principal) {
	l, ds, err := s.admin.Link(r.Context(), who(p), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "link_title")
	v.Data = linkDetail{Link: l, Downloads: ds}
	s.render(w, http.StatusOK, "link_log", v)
}

func (s *Server) linkRevoke(w http.ResponseWriter, r *http.Request, p *principal) {
	id := r.PathValue("id")
	if err := s.admin.RevokeLink(r.Context(), who(p), id); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/links/"+id, "saved")
}
