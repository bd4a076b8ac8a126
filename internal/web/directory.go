package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/dirsync"
	"github.com/mailgate/mailgate/internal/store"
)

// Recipient verification in the console and the API: a domain's
// recipient check (none, directory, callout), its directory
// synchronisation (on demand, with the confirmation a held list needs)
// and the synchronised addresses. Every change goes through the
// administration layer.

func (s *Server) directoryRoutes() {
	s.handle("GET /domains/{name}/directory", store.RoleAdmin, s.directoryPage)
	s.handle("POST /domains/{name}/recipient-check", store.RoleAdmin, s.recipientCheckPost)
	s.handle("POST /domains/{name}/directory/sync", store.RoleAdmin, s.directorySyncPost)
}

// maxDirectoryShown bounds the addresses listed on the page (the API and
// the CLI list them all).
const maxDirectoryShown = 1000

type directoryData struct {
	admin.RecipientCheckState
	List  []store.DirectoryEntry // the first maxDirectoryShown
	Total int
}

func (s *Server) directoryPage(w http.ResponseWriter, r *http.Request, p *principal) {
	st, es, err := s.admin.Directory(r.Context(), who(p), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := directoryData{RecipientCheckState: st, List: es, Total: len(es)}
	if len(es) > maxDirectoryShown {
		d.List = es[:maxDirectoryShown]
	}
	v := s.newView(r, p, "rcpt_check_title")
	v.Data = d
	s.render(w, http.StatusOK, "directory", v)
}

func (s *Server) recipientCheckPost(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	st, err := s.admin.SetRecipientCheck(r.Context(), who(p), name, r.PostFormValue("mode"), r.PostFormValue("source"), r.PostFormValue("admin"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/domains/"+st.Domain+"/directory", "saved")
}

// directorySyncPost synchronises now. A sync that failed upstream or was
// held is recorded with the domain and shown on its page, like a
// scheduled one.
func (s *Server) directorySyncPost(w http.ResponseWriter, r *http.Request, p *principal) {
	name := r.PathValue("name")
	_, err := s.admin.SyncDirectory(r.Context(), who(p), name, r.PostFormValue("confirm") == "1")
	if err != nil && !upstreamFailure(err) {
		s.fail(w, r, p, err)
		return
	}
	st, err := s.admin.RecipientCheck(r.Context(), who(p), name)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/domains/"+st.Domain+"/directory", "done")
}

// upstreamFailure reports whether a sync error is the source's (recorded
// with the domain) rather than the caller's request.
func upstreamFailure(err error) bool {
	var fe *dirsync.FetchError
	return errors.As(err, &fe)
}

type rcptCheckIn struct {
	Mode   string `json:"mode"`
	Source string `json:"source"`
	Admin  string `json:"admin"`
}

type directoryEntryJSON struct {
	Address string `json:"address"`
	Kind    string `json:"kind"`
	Target  string `json:"target,omitempty"`
	Name    string `json:"name,omitempty"`
}

type directoryJSON struct {
	Check   admin.RecipientCheckState `json:"check"`
	Entries []directoryEntryJSON      `json:"entries"`
}

// syncJSON is a synchronisation's result; Error is the source's failure
// (recorded with the domain, like a scheduled sync's).
type syncJSON struct {
	dirsync.Result
	Error     string    `json:"error,omitempty"`
	Attempted time.Time `json:"attempted,omitzero"`
}

func (s *Server) directoryAPI() {
	s.api("GET /domains/{name}/recipient-check", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return s.admin.RecipientCheck(r.Context(), who(p), r.PathValue("name"))
	})
	s.api("PUT /domains/{name}/recipient-check", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in rcptCheckIn
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return s.admin.SetRecipientCheck(r.Context(), who(p), r.PathValue("name"), in.Mode, in.Source, in.Admin)
	})
	s.api("POST /domains/{name}/directory/sync", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Confirm bool `json:"confirm"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		res, err := s.admin.SyncDirectory(r.Context(), who(p), r.PathValue("name"), in.Confirm)
		out := syncJSON{Result: res}
		if err != nil {
			if !upstreamFailure(err) {
				return nil, err
			}
			out.Error = publicError(err)
		}
		st, err := s.admin.RecipientCheck(r.Context(), who(p), r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		out.Domain, out.Attempted = st.Domain, st.Attempted
		if out.Error != "" {
			out.Error = st.Error // the recorded text, bounded
		}
		return out, nil
	})
	s.api("GET /domains/{name}/directory", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		st, es, err := s.admin.Directory(r.Context(), who(p), r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		out := directoryJSON{Check: st, Entries: []directoryEntryJSON{}}
		for _, e := range es {
			out.Entries = append(out.Entries, directoryEntryJSON{Address: e.Address, Kind: e.Kind, Target: e.Target, Name: e.Name})
		}
		return out, nil
	})
}
