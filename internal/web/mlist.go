package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/store"
)

// Mailing lists in the console and the API. Tenant administrators see
// every list of the tenant, create and delete lists and name each list's
// administrators; an end user who administers a list (an ML administrator)
// sees that list only, and manages its settings and members. The routes
// admit end users; the administration layer decides per list.

func (s *Server) mlRoutes() {
	s.handle("GET /ml", store.RoleUser, s.mlPage)
	s.handle("POST /ml", store.RoleAdmin, s.mlCreate)
	s.handle("GET /ml/{id}", store.RoleUser, s.mlListPage)
	s.handle("POST /ml/{id}", store.RoleUser, s.mlUpdate)
	s.handle("POST /ml/{id}/delete", store.RoleAdmin, s.mlDelete)
	s.handle("POST /ml/{id}/admins", store.RoleAdmin, s.mlAdmins)
	s.handle("POST /ml/{id}/members", store.RoleUser, s.mlMemberAdd)
	s.handle("POST /ml/{id}/members/remove", store.RoleUser, s.mlMemberRemove)
	s.handle("POST /ml/{id}/members/enable", store.RoleUser, s.mlMemberEnable)
	s.handle("POST /ml/{id}/import", store.RoleUser, s.mlImport)
	s.handle("GET /ml/{id}/members.csv", store.RoleUser, s.mlExport)
}

type mlPageData struct {
	Lists   []store.MailingList
	Max     int  // the tenant's list limit
	CanMake bool // a tenant administrator: create, delete, staff
}

func mlID(r *http.Request) int64 { return atoi64(r.PathValue("id")) }

func mlPath(id int64) string { return "/ml/" + strconv.FormatInt(id, 10) }

// mlPage lists the lists the caller may manage.
func (s *Server) mlPage(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := p.tid(); err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	a := who(p)
	ls, err := s.admin.MailingLists(r.Context(), a)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := mlPageData{Lists: ls, CanMake: a.ListMaker()}
	if d.CanMake {
		if d.Max, err = s.admin.MaxMailingLists(r.Context(), a); err != nil {
			s.fail(w, r, p, err)
			return
		}
	}
	v := s.newView(r, p, "ml_nav")
	v.Data = d
	s.render(w, http.StatusOK, "ml", v)
}

func listSettings(r *http.Request) admin.ListSettings {
	return admin.ListSettings{Name: r.PostFormValue("name"), Description: r.PostFormValue("description"), Posting: r.PostFormValue("posting"),
		SubjectSerial: r.PostFormValue("subject_serial") != "", ReplyToList: r.PostFormValue("reply_to_list") != ""}
}

func (s *Server) mlCreate(w http.ResponseWriter, r *http.Request, p *principal) {
	l, err := s.admin.CreateMailingList(r.Context(), who(p), r.PostFormValue("address"), listSettings(r))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, mlPath(l.ID), "added")
}

type mlListData struct {
	List          store.MailingList
	BounceAddress string
	Members       []store.ListMember
	Total         int // members in all; Members holds at most 500 shown
	Disabled      int
	Query         string
	CanMake       bool
	Postings      []string
	BounceLimit   int
}

// mlListPage is one list: settings, administrators, members.
func (s *Server) mlListPage(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	a := who(p)
	l, err := s.admin.MailingList(ctx, a, mlID(r))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	ms, err := s.admin.ListMembers(ctx, a, l.ID)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	d := mlListData{List: l, BounceAddress: mlist.BounceAddress(l.Address), Total: len(ms), Query: q, CanMake: a.ListMaker(),
		Postings: []string{store.PostMembers, store.PostDomain, store.PostAnyone}, BounceLimit: mlist.BounceLimit}
	for _, m := range ms {
		if m.Disabled {
			d.Disabled++
		}
		if q != "" && !strings.Contains(m.Address, q) && !strings.Contains(strings.ToLower(m.Comment), q) {
			continue
		}
		// A page shows at most 500 members; search narrows, CSV has all.
		if len(d.Members) < 500 {
			d.Members = append(d.Members, m)
		}
	}
	v := s.newView(r, p, "ml_list_title")
	v.Title = v.T("ml_list_title", "Address", l.Address)
	v.Data = d
	s.render(w, http.StatusOK, "ml_list", v)
}

func (s *Server) mlUpdate(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.admin.UpdateMailingList(r.Context(), who(p), mlID(r), listSettings(r)); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, mlPath(mlID(r)), "saved")
}

func (s *Server) mlDelete(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.admin.DeleteMailingList(r.Context(), who(p), mlID(r)); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/ml", "deleted")
}

// splitAddresses reads addresses separated by commas, spaces or lines.
func splitAddresses(v string) []string {
	return strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ';' || c == ' ' || c == '\n' || c == '\r' || c == '\t' })
}

func (s *Server) mlAdmins(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.admin.SetListAdmins(r.Context(), who(p), mlID(r), splitAddresses(r.PostFormValue("admins"))); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, mlPath(mlID(r)), "saved")
}

func (s *Server) mlMemberAdd(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.admin.AddListMember(r.Context(), who(p), mlID(r), r.PostFormValue("address"), r.PostFormValue("comment")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, mlPath(mlID(r)), "added")
}

func (s *Server) mlMemberRemove(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, p, badRequest("unreadable form"))
		return
	}
	if err := s.admin.RemoveListMembers(r.Context(), who(p), mlID(r), r.PostForm["address"]); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, mlPath(mlID(r)), "deleted")
}

func (s *Server) mlMemberEnable(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.admin.EnableListMember(r.Context(), who(p), mlID(r), r.PostFormValue("address")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, mlPath(mlID(r)), "saved")
}

func (s *Server) mlImport(w http.ResponseWriter, r *http.Request, p *principal) {
	f, _, err := r.FormFile("file")
	if err != nil {
		s.fail(w, r, p, badRequest("choose a CSV file"))
		return
	}
	defer f.Close()
	if _, err := s.admin.ImportListMembers(r.Context(), who(p), mlID(r), f, r.PostFormValue("replace") != ""); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, mlPath(mlID(r)), "imported")
}

func (s *Server) mlExport(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	l, err := s.admin.MailingList(ctx, who(p), mlID(r))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(l.Address, "@", "_at_")+`.csv"`)
	if err := s.admin.ExportListMembers(ctx, who(p), l.ID, w); err != nil {
		s.d.Log.Error("list members csv", "err", err)
	}
}

// --- API ---

// mailingListJSON is a list as the API shows it.
type mailingListJSON struct {
	ID            int64     `json:"id"`
	Address       string    `json:"address"`
	BounceAddress string    `json:"bounce_address"`
	Name          string    `json:"name"`
	Description   string    `json:"description"`
	Posting       string    `json:"posting"`
	SubjectSerial bool      `json:"subject_serial"`
	ReplyToList   bool      `json:"reply_to_list"`
	Serial        int64     `json:"serial"`
	Admins        []string  `json:"admins"`
	Created       time.Time `json:"created"`
}

func mlJSON(l store.MailingList) mailingListJSON {
	admins := l.Admins
	if admins == nil {
		admins = []string{}
	}
	return mailingListJSON{ID: l.ID, Address: l.Address, BounceAddress: mlist.BounceAddress(l.Address), Name: l.Name, Description: l.Description,
		Posting: l.Posting, SubjectSerial: l.SubjectSerial, ReplyToList: l.ReplyToList, Serial: l.Serial, Admins: admins, Created: l.Created}
}

// listMemberJSON is a member as the API shows it.
type listMemberJSON struct {
	Address    string     `json:"address"`
	Comment    string     `json:"comment"`
	Bounces    int        `json:"bounces"`
	LastBounce *time.Time `json:"last_bounce"`
	Disabled   bool       `json:"disabled"`
}

// mailingListIn is the body that creates or changes a list.
type mailingListIn struct {
	Address       string `json:"address"`
	Name          string `json:"name"`
	Description   string `json:"description"`
	Posting       string `json:"posting"`
	SubjectSerial bool   `json:"subject_serial"`
	ReplyToList   bool   `json:"reply_to_list"`
}

func (in mailingListIn) settings() admin.ListSettings {
	return admin.ListSettings{Name: in.Name, Description: in.Description, Posting: in.Posting, SubjectSerial: in.SubjectSerial, ReplyToList: in.ReplyToList}
}

func (s *Server) mlAPI() {
	s.api("GET /mailing-lists", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		ls, err := s.admin.MailingLists(r.Context(), who(p))
		out := []mailingListJSON{}
		for _, l := range ls {
			out = append(out, mlJSON(l))
		}
		return out, err
	})
	s.api("POST /mailing-lists", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in mailingListIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		l, err := s.admin.CreateMailingList(r.Context(), who(p), in.Address, in.settings())
		if err != nil {
			return nil, err
		}
		return created{mlJSON(l)}, nil
	})
	s.api("GET /mailing-lists/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		l, err := s.admin.MailingList(r.Context(), who(p), mlID(r))
		if err != nil {
			return nil, err
		}
		return mlJSON(l), nil
	})
	s.api("PUT /mailing-lists/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in mailingListIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		if in.Address != "" {
			return nil, badRequest("a list's address cannot change")
		}
		if err := s.admin.UpdateMailingList(r.Context(), who(p), mlID(r), in.settings()); err != nil {
			return nil, err
		}
		l, err := s.admin.MailingList(r.Context(), who(p), mlID(r))
		if err != nil {
			return nil, err
		}
		return mlJSON(l), nil
	})
	s.api("DELETE /mailing-lists/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.admin.DeleteMailingList(r.Context(), who(p), mlID(r))
	})
	s.api("PUT /mailing-lists/{id}/admins", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Admins []string `json:"admins"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		if err := s.admin.SetListAdmins(r.Context(), who(p), mlID(r), in.Admins); err != nil {
			return nil, err
		}
		l, err := s.admin.MailingList(r.Context(), who(p), mlID(r))
		if err != nil {
			return nil, err
		}
		return mlJSON(l), nil
	})
	s.api("GET /mailing-lists/{id}/members", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		ms, err := s.admin.ListMembers(r.Context(), who(p), mlID(r))
		out := []listMemberJSON{}
		for _, m := range ms {
			j := listMemberJSON{Address: m.Address, Comment: m.Comment, Bounces: m.Bounces, Disabled: m.Disabled}
			if !m.LastBounce.IsZero() {
				t := m.LastBounce
				j.LastBounce = &t
			}
			out = append(out, j)
		}
		return out, err
	})
	s.api("PUT /mailing-lists/{id}/members/{address}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Comment string `json:"comment"`
		}
		if r.ContentLength != 0 {
			if err := decode(r, &in); err != nil {
				return nil, err
			}
		}
		return nil, s.admin.AddListMember(r.Context(), who(p), mlID(r), r.PathValue("address"), in.Comment)
	})
	s.api("DELETE /mailing-lists/{id}/members/{address}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.admin.RemoveListMembers(r.Context(), who(p), mlID(r), []string{r.PathValue("address")})
	})
	s.api("POST /mailing-lists/{id}/members/{address}/enable", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return nil, s.admin.EnableListMember(r.Context(), who(p), mlID(r), r.PathValue("address"))
	})
}
