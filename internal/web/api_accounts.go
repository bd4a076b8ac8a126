package web

import (
	"net/http"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// The API's console logins and emergency mailboxes: what the Logins and
// Mailboxes pages do, through the same administration calls. Password
// hashes and TOTP secrets never leave; a new mail app password is shown
// once, in the answer that makes it.

// apiAccount is a console login as the API shows it.
type apiAccount struct {
	ID          int64      `json:"id"`
	Login       string     `json:"login"`
	Role        store.Role `json:"role"`
	Password    bool       `json:"password"` // has a local password (false: delegated login only)
	TOTP        bool       `json:"totp"`
	AppPassword bool       `json:"app_password"`
	AppCreated  *time.Time `json:"app_created,omitempty"`
	Disabled    bool       `json:"disabled"`
	Created     time.Time  `json:"created"`
}

func toAPIAccount(a store.Account) apiAccount {
	out := apiAccount{ID: a.ID, Login: a.Login, Role: a.Role, Password: a.Hash != "", TOTP: a.TOTPSecret != "",
		AppPassword: a.AppHash != "", Disabled: a.Disabled, Created: a.Created}
	if a.AppHash != "" {
		t := a.AppCreated
		out.AppCreated = &t
	}
	return out
}

// apiMailbox is a user's mailbox row as the API shows it.
type apiMailbox struct {
	Address   string     `json:"address"`
	Name      string     `json:"name,omitempty"`
	Exists    bool       `json:"exists"` // false: made by the first delivery or login
	QuotaMB   int64      `json:"quota_mb"`
	UsedBytes int64      `json:"used_bytes"`
	Messages  int64      `json:"messages"`
	LastLogin *time.Time `json:"last_login,omitempty"`
	Login     *int64     `json:"login,omitempty"` // the console login's id
	Password  bool       `json:"password"`        // the login has a local password
	Invited   *time.Time `json:"invited,omitempty"`
}

func (s *Server) accountAPIRoutes() {
	s.api("GET /accounts", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		as, err := s.admin.Accounts(r.Context(), who(p))
		out := []apiAccount{}
		for _, a := range as {
			out = append(out, toAPIAccount(a))
		}
		return out, err
	})
	s.api("POST /accounts", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Login    string     `json:"login"`
			Role     store.Role `json:"role"`
			Password string     `json:"password"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		a, err := s.opCreateAccount(r.Context(), p, in.Login, in.Role, in.Password)
		if err != nil {
			return nil, err
		}
		return created{toAPIAccount(a)}, nil
	})
	s.api("DELETE /accounts/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.opDeleteAccount(r.Context(), p, atoi64(r.PathValue("id")))
	})
	s.api("PUT /accounts/{id}/password", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Password string `json:"password"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, s.opSetPassword(r.Context(), p, atoi64(r.PathValue("id")), in.Password)
	})
	s.api("POST /accounts/{id}/totp-reset", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.opResetTOTP(r.Context(), p, atoi64(r.PathValue("id")))
	})
	s.api("POST /accounts/{id}/app-password", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		ctx := r.Context()
		id := atoi64(r.PathValue("id"))
		pw, err := s.admin.NewAppPassword(ctx, who(p), id)
		if err != nil {
			return nil, err
		}
		a, err := s.admin.Account(ctx, who(p), id)
		if err != nil {
			return nil, err
		}
		return created{map[string]string{"login": a.Login, "app_password": pw}}, nil
	})
	s.api("DELETE /accounts/{id}/app-password", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.admin.RemoveAppPassword(r.Context(), who(p), atoi64(r.PathValue("id")))
	})

	s.api("GET /mailboxes", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		mv, err := s.admin.MailboxesOverview(r.Context(), who(p))
		if err != nil {
			return nil, err
		}
		out := []apiMailbox{}
		for _, row := range mv.Rows {
			m := apiMailbox{Address: row.Address, Name: row.Name, Password: row.Password}
			if mb := row.Mailbox; mb != nil {
				m.Exists, m.QuotaMB, m.UsedBytes, m.Messages = true, mb.QuotaMB, mb.UsedBytes, mb.Messages
				if !mb.LastLogin.IsZero() {
					t := mb.LastLogin
					m.LastLogin = &t
				}
			}
			if row.Account != nil {
				id := row.Account.ID
				m.Login = &id
			}
			if !row.Invited.IsZero() {
				t := row.Invited
				m.Invited = &t
			}
			out = append(out, m)
		}
		return map[string]any{"contract_mb": mv.ContractMB, "allocated_mb": mv.AllocatedMB, "mailboxes": out}, nil
	})
	s.api("PUT /mailboxes/{address}/quota", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			QuotaMB *int64 `json:"quota_mb"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		if in.QuotaMB == nil {
			return nil, badRequest("quota_mb: a number of MB, 0 for no limit")
		}
		return nil, s.admin.SetMailboxQuota(r.Context(), who(p), r.PathValue("address"), *in.QuotaMB)
	})
	s.api("PUT /mailboxes/{address}/password", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Password string `json:"password"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, s.admin.SetUserPassword(r.Context(), who(p), r.PathValue("address"), in.Password)
	})
	s.api("POST /mailboxes/{address}/invite", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.admin.Invite(r.Context(), who(p), r.PathValue("address"), s.inviteLink(r), s.d.Hostname)
	})
}
