package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/onboard"
	"github.com/mailgate/mailgate/internal/store"
)

// --- the onboarding wizard of a domain (console) ---

func (s *Server) onboardRoutes() {
	s.handle("GET /domains/{name}/onboard", store.RoleAdmin, s.onboardPage)
	s.handle("POST /domains/{name}/onboard/verify", store.RoleAdmin, s.onboardVerify)
	s.handle("POST /domains/{name}/onboard/service", store.RoleAdmin, s.onboardService)
	s.handle("POST /domains/{name}/onboard/test", store.RoleAdmin, s.onboardTest)
	s.handle("POST /domains/{name}/onboard/done", store.RoleAdmin, s.onboardDone)
}

// onboardView is the wizard page's data.
type onboardView struct {
	admin.Wizard
	Services []string
	// Rcpt is the test message's recipient field.
	Rcpt string
}

// ServiceName names a primary service in lang.
func (onboardView) ServiceName(service, lang string) string {
	return onboard.ServiceName(service).In(lang)
}

// MXRecords are the records of the last step.
func (v onboardView) MXRecords() []string { return onboard.MXRecords(v.Domain, v.Facts.Hostname) }

// Delivered says whether the test message reached every recipient.
func (v onboardView) Delivered() bool { return v.Test.Delivered() }

func onboardURL(domain string, step int) string {
	return "/domains/" + url.PathEscape(domain) + "/onboard?step=" + strconv.Itoa(step)
}

// onboardPage shows one step of the wizard with its checks run now. A
// refused action of the step comes back here with its reason (problem).
func (s *Server) onboardPage(w http.ResponseWriter, r *http.Request, p *principal) {
	step, _ := strconv.Atoi(r.URL.Query().Get("step"))
	s.renderOnboard(w, r, p, step, nil)
}

func (s *Server) renderOnboard(w http.ResponseWriter, r *http.Request, p *principal, step int, problem error) {
	if _, err := p.tid(); err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	wz, err := s.admin.Onboard(r.Context(), who(p), r.PathValue("name"), step)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "nav_domains")
	v.Data = onboardView{Wizard: wz, Services: onboard.Services, Rcpt: r.PostFormValue("rcpt")}
	status := http.StatusOK
	if problem != nil {
		v.Err, status = s.onboardProblem(r, p, problem), http.StatusBadRequest
	}
	s.render(w, status, "onboard", v)
}

// onboardProblem is a refused step's reason in the page's language.
func (s *Server) onboardProblem(r *http.Request, p *principal, err error) string {
	lang := s.i18n.lang(r, s.cookieName(langCookie), p.acct.Lang)
	var ve *admin.VerifyError
	var ref admin.OnboardRefusal
	switch {
	case errors.As(err, &ve):
		return s.i18n.translator(lang).T("domain_verify_"+string(ve.Reason), "Name", ve.Record.Name, "Value", ve.Record.Value)
	case errors.As(err, &ref):
		return ref.In(lang)
	}
	return err.Error()
}

// after finishes a wizard action: back to step on success, or the step
// shown again with the reason of a refusal the administrator can fix.
func (s *Server) after(w http.ResponseWriter, r *http.Request, p *principal, step int, to int, err error) {
	var inv admin.Invalid
	var ve *admin.VerifyError
	switch {
	case errors.As(err, &inv) || errors.As(err, &ve):
		s.renderOnboard(w, r, p, step, err)
	case err != nil:
		s.fail(w, r, p, err)
	default:
		done(w, r, onboardURL(r.PathValue("name"), to), "saved")
	}
}

func (s *Server) onboardVerify(w http.ResponseWriter, r *http.Request, p *principal) {
	err := s.admin.OnboardVerify(r.Context(), who(p), r.PathValue("name"))
	s.after(w, r, p, onboard.StepOwnership, onboard.StepService, err)
}

func (s *Server) onboardService(w http.ResponseWriter, r *http.Request, p *principal) {
	err := s.admin.OnboardService(r.Context(), who(p), r.PathValue("name"), r.PostFormValue("service"))
	s.after(w, r, p, onboard.StepService, onboard.StepService, err)
}

func (s *Server) onboardTest(w http.ResponseWriter, r *http.Request, p *principal) {
	_, err := s.admin.OnboardSendTest(r.Context(), who(p), r.PathValue("name"), r.PostFormValue("rcpt"))
	s.after(w, r, p, onboard.StepTest, onboard.StepTest, err)
}

func (s *Server) onboardDone(w http.ResponseWriter, r *http.Request, p *principal) {
	step, _ := strconv.Atoi(r.PostFormValue("step"))
	err := s.admin.OnboardComplete(r.Context(), who(p), r.PathValue("name"), step)
	next := step + 1
	if next > onboard.Steps {
		next = onboard.Steps
	}
	s.after(w, r, p, step, next, err)
}

// onboardAPI is the wizard for API tokens: GET shows a step with its
// checks run now; POST takes one of the console's actions and answers
// with the wizard at the step it concerns.
func (s *Server) onboardAPI() {
	s.api("GET /domains/{name}/onboarding", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		step, _ := strconv.Atoi(r.URL.Query().Get("step"))
		return s.admin.Onboard(r.Context(), who(p), r.PathValue("name"), step)
	})
	s.api("POST /domains/{name}/onboarding", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Action  string `json:"action"` // verify, service, test, done
			Service string `json:"service"`
			Rcpt    string `json:"rcpt"`
			Step    int    `json:"step"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		ctx, a, domain := r.Context(), who(p), r.PathValue("name")
		var err error
		step := in.Step
		switch in.Action {
		case "verify":
			err = s.admin.OnboardVerify(ctx, a, domain)
			step = onboard.StepOwnership
		case "service":
			err = s.admin.OnboardService(ctx, a, domain, in.Service)
			step = onboard.StepService
		case "test":
			_, err = s.admin.OnboardSendTest(ctx, a, domain, in.Rcpt)
			step = onboard.StepTest
		case "done":
			err = s.admin.OnboardComplete(ctx, a, domain, in.Step)
		default:
			return nil, badRequest("action: verify, service, test or done")
		}
		if err != nil {
			return nil, err
		}
		return s.admin.Onboard(ctx, a, domain, step)
	})
}
