package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/store"
)

// Mailboxes for administrators: every user's mailbox (quota, usage, last
// login), the disk-allocation warning, a quota change, a password reset
// and an invitation; and the public page where an invited user chooses a
// password. Every change goes through the administration layer.

func (s *Server) mailboxesRoutes() {
	s.handle("GET /mailboxes", store.RoleAdmin, s.mailboxesPage)
	s.handle("POST /mailboxes/{address}/quota", store.RoleAdmin, s.mailboxQuotaPost)
	s.handle("POST /mailboxes/{address}/password", store.RoleAdmin, s.mailboxPasswordPost)
	s.handle("POST /mailboxes/{address}/invite", store.RoleAdmin, s.mailboxInvitePost)
	s.public("GET /invite", s.invitePage)
	s.public("POST /invite", s.invitePost)
}

type mailboxesData struct {
	admin.MailboxesView
	// AllocatedPct is the allocations against the contract, in percent.
	AllocatedPct int64
}

func (s *Server) mailboxesPage(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := p.tid(); err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	mv, err := s.admin.MailboxesOverview(r.Context(), who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := mailboxesData{MailboxesView: mv}
	if mv.ContractMB > 0 {
		d.AllocatedPct = mv.AllocatedMB * 100 / mv.ContractMB
	}
	v := s.newView(r, p, "webmail_mailboxes")
	v.Data = d
	s.render(w, http.StatusOK, "mailboxes", v)
}

func (s *Server) mailboxQuotaPost(w http.ResponseWriter, r *http.Request, p *principal) {
	n, err := strconv.ParseInt(strings.TrimSpace(r.PostFormValue("quota_mb")), 10, 64)
	if err != nil {
		s.fail(w, r, p, badRequest("quota: a number of MB, 0 for no limit"))
		return
	}
	if err := s.admin.SetMailboxQuota(r.Context(), who(p), r.PathValue("address"), n); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/mailboxes", "saved")
}

func (s *Server) mailboxPasswordPost(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.admin.SetUserPassword(r.Context(), who(p), r.PathValue("address"), r.PostFormValue("password")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/mailboxes", "password_changed")
}

// consoleBase is the console's public root URL for links in mail.
func (s *Server) consoleBase(r *http.Request) string {
	if s.d.ConsoleURL != "" {
		return strings.TrimRight(s.d.ConsoleURL, "/")
	}
	scheme := "http"
	if s.d.Config.TLS {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// inviteLink makes an invitation's one-time link to the console.
func (s *Server) inviteLink(r *http.Request) func(address, token string) string {
	base := s.consoleBase(r)
	return func(address, token string) string {
		return base + "/invite?" + url.Values{"a": {address}, "t": {token}}.Encode()
	}
}

func (s *Server) mailboxInvitePost(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.admin.Invite(r.Context(), who(p), r.PathValue("address"), s.inviteLink(r), s.d.Hostname); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/mailboxes", "invited")
}

type inviteData struct {
	Address, Token string
	Done           bool
}

// invitePage asks an invited user for a password; a GET changes nothing
// (mail scanners open links).
func (s *Server) invitePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := s.newView(r, nil, "webmail_invite_title")
	d := inviteData{Address: q.Get("a"), Token: q.Get("t")}
	if err := s.admin.CheckInvite(r.Context(), d.Address, d.Token); err != nil {
		v.Err = v.T("webmail_invite_invalid")
		if !errors.Is(err, admin.ErrInvite) {
			s.d.Log.Error("invitation check", "err", err)
			v.Err = v.T("err_internal")
		}
		v.Data = inviteData{}
		s.render(w, http.StatusGone, "invite", v)
		return
	}
	v.Data = d
	s.render(w, http.StatusOK, "invite", v)
}

func (s *Server) invitePost(w http.ResponseWriter, r *http.Request) {
	if !s.loginCSRFOK(r) {
		http.Error(w, "invalid or missing CSRF token; reload the page", http.StatusForbidden)
		return
	}
	d := inviteData{Address: r.PostFormValue("a"), Token: r.PostFormValue("t")}
	v := s.newView(r, nil, "webmail_invite_title")
	if r.PostFormValue("password") != r.PostFormValue("password2") {
		v.Err = v.T("webmail_invite_mismatch")
		v.Data = d
		s.render(w, http.StatusBadRequest, "invite", v)
		return
	}
	// One guess per attempt counts against the address, as logins do.
	now := s.d.Clock.Now()
	key := "invite:" + strings.ToLower(d.Address)
	if ok, wait := s.d.Throttle.Take(r.Context(), now, key); !ok {
		setRetryAfter(w, wait)
		http.Error(w, "too many attempts; wait a minute", http.StatusTooManyRequests)
		return
	}
	err := s.admin.AcceptInvite(r.Context(), d.Address, d.Token, r.PostFormValue("password"), s.clientIP(r).String())
	var inv admin.Invalid
	switch {
	case errors.Is(err, admin.ErrInvite):
		v.Err = v.T("webmail_invite_invalid")
		v.Data = inviteData{}
		s.render(w, http.StatusGone, "invite", v)
		return
	case errors.As(err, &inv):
		v.Err = inv.Msg
		v.Data = d
		s.render(w, http.StatusBadRequest, "invite", v)
		return
	case err != nil:
		s.fail(w, r, nil, err)
		return
	}
	s.d.Throttle.Refund(r.Context(), now, key)
	v.Data = inviteData{Done: true, Address: d.Address}
	s.render(w, http.StatusOK, "invite", v)
}
