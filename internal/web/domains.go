package web

import (
	"errors"
	"net/http"

	"github.com/mailgate/mailgate/internal/admin"
)

// --- domains (console) ---

// domainsPage lists the tenant's domains: served ones with their delivery
// targets, unverified ones with the TXT record that proves ownership.
func (s *Server) domainsPage(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := p.tid(); err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	ds, err := s.admin.Domains(r.Context(), who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "nav_domains")
	v.Data = ds
	s.render(w, http.StatusOK, "domains", v)
}

func (s *Server) domainsPost(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := s.opAddDomain(r.Context(), p, r.PostFormValue("name"), []string{r.PostFormValue("route")}, tlsMode(r)); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/domains", "added")
}

func tlsMode(r *http.Request) string {
	switch m := r.PostFormValue("tls"); m {
	case "required", "verify", "none":
		return m
	}
	return "opportunistic"
}

func (s *Server) domainRoutes(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opSetRoutes(r.Context(), p, r.PathValue("name"), []string{r.PostFormValue("route")}, tlsMode(r)); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/domains", "saved")
}

func (s *Server) domainDelete(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opDeleteDomain(r.Context(), p, r.PathValue("name")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/domains", "deleted")
}

// domainVerify looks up the ownership record of an unverified domain; a
// failure is explained in the page's language with the record to publish.
func (s *Server) domainVerify(w http.ResponseWriter, r *http.Request, p *principal) {
	_, err := s.admin.VerifyDomain(r.Context(), who(p), r.PathValue("name"))
	var ve *admin.VerifyError
	if errors.As(err, &ve) {
		tr := s.i18n.translator(s.i18n.lang(r, s.cookieName(langCookie), p.acct.Lang))
		err = badRequest("%s", tr.T("domain_verify_"+string(ve.Reason), "Name", ve.Record.Name, "Value", ve.Record.Value))
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/domains", "verified")
}
