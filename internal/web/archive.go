package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web/preview"
)

// The audit archive's console pages and API. The administration layer
// decides who reads what: administrators need the tenant's archive grant
// (an administrator without it is refused, 403); end users may search,
// view and download their own mail only, when the tenant allows it
// (admin.ArchiveOwnMail), so the search page, the message page, its
// preview frame, attachments and .eml are open to users at the route and
// refused (403) or not found (404) below it. Everything else stays with
// administrators.

func (s *Server) archiveRoutes() {
	s.handle("GET /archive", store.RoleUser, s.archivePage)
	s.handle("GET /archive/stats", store.RoleAdmin, s.archiveStatsPage)
	s.handle("GET /archive/export", store.RoleAdmin, s.archiveExport)
	s.handle("POST /archive/settings", store.RoleAdmin, s.archiveSettingsPost)
	s.handle("POST /archive/verify", store.RoleAdmin, s.archiveVerifyPost)
	s.handle("POST /archive/import", store.RoleAdmin, s.archiveImportPost)
	s.handle("POST /archive/access", store.RoleAdmin, s.archiveAccessPost)
	s.handle("POST /archive/holds", store.RoleAdmin, s.archiveHoldPost)
	s.handle("POST /archive/holds/{hold}/delete", store.RoleAdmin, s.archiveHoldDelete)
	s.handle("GET /archive/{id}", store.RoleUser, s.archiveMessagePage)
	s.handle("GET /archive/{id}/body", store.RoleUser, s.archiveBody)
	s.handle("GET /archive/{id}/att/{n}", store.RoleUser, s.archiveAttachment)
	s.handle("GET /archive/{id}/eml", store.RoleUser, s.archiveEML)
	s.handle("GET /archive/{id}/proof", store.RoleAdmin, s.archiveProofGet)
	s.handle("POST /archive/{id}/resend", store.RoleAdmin, s.archiveResendPost)
	// The checkpoint key is public: auditors get it from any login.
	s.handle("GET /archive-key", store.RoleUser, s.archiveKey)
}

// archiveQuery reads a search from the query string: q in the query
// language, plus form fields for each filter.
func archiveQuery(v url.Values) (archive.Query, error) {
	q, err := archive.ParseQuery(v.Get("q"))
	if err != nil {
		return q, badRequest("%v", err)
	}
	set := func(dst *string, name string) {
		if x := strings.TrimSpace(v.Get(name)); x != "" {
			*dst = strings.TrimSpace(*dst + " " + x)
		}
	}
	set(&q.From, "from")
	set(&q.To, "to")
	set(&q.Cc, "cc")
	set(&q.Subject, "subject")
	set(&q.Body, "body")
	set(&q.Attachment, "attachment")
	for _, f := range []struct {
		dst  *time.Time
		name string
	}{{&q.After, "after"}, {&q.Before, "before"}} {
		if x := v.Get(f.name); x != "" {
			t, err := time.Parse("2006-01-02", x)
			if err != nil {
				return q, badRequest("%s: use YYYY-MM-DD", f.name)
			}
			*f.dst = t
		}
	}
	if x := v.Get("direction"); x != "" {
		q.Direction = x
	}
	if x := v.Get("verdict"); x != "" {
		q.Verdict = strings.ToLower(x)
	}
	if x := v.Get("has_attachment"); x != "" {
		q.HasAttachment = x
	}
	for _, f := range []struct {
		dst  *int64
		name string
	}{{&q.MinSize, "min_size"}, {&q.MaxSize, "max_size"}} {
		if x := v.Get(f.name); x != "" {
			n, err := strconv.ParseInt(x, 10, 64)
			if err != nil || n < 0 {
				return q, badRequest("%s: bytes", f.name)
			}
			*f.dst = n
		}
	}
	if err := q.Check(); err != nil {
		return q, badRequest("%v", err)
	}
	return q, nil
}

func archivePage(v url.Values) archive.Page {
	n, _ := strconv.Atoi(v.Get("limit"))
	return archive.Page{Sort: v.Get("sort"), Limit: n, Cursor: v.Get("cursor")}
}

type archiveData struct {
	Overview admin.ArchiveOverview
	Form     url.Values
	Searched bool
	Hits     archive.Hits
	Next     url.Values
	// ExportZip and ExportMbox are the export links of the search shown.
	ExportZip, ExportMbox url.Values
	Percent               float64
	Report                *archive.Report
	Import                *archive.ImportResult
	Chart                 template.HTML // stats: messages per day
	Modes                 []string
	CapacityGB            string // the tenant's own capacity; "" = the default
	AuditLink             url.Values
	// Own: an end user's page, their own mail only (no status, settings,
	// holds, grants, import or export).
	Own bool
}

// newArchiveData fills what every archive page shows.
func newArchiveData(o admin.ArchiveOverview) archiveData {
	d := archiveData{Overview: o, Form: url.Values{}, Modes: []string{store.ArchiveAll, store.ArchiveInbound, store.ArchiveOutbound, store.ArchiveRule},
		AuditLink: url.Values{"action": {"archive."}}}
	if o.Capacity > 0 {
		d.Percent = float64(o.Stats.Usage.Bytes) * 100 / float64(o.Capacity)
	}
	if o.Settings.CapacityBytes > 0 {
		d.CapacityGB = strconv.FormatFloat(float64(o.Settings.CapacityBytes)/(1<<30), 'f', -1, 64)
	}
	return d
}

// searchForm is the search's own parameters (without paging), for the
// export links.
func searchForm(v url.Values, format string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		switch k {
		case "cursor", "limit", "search", "sort", "msg":
			continue
		}
		if len(vs) > 0 && vs[0] != "" {
			out[k] = vs[:1]
		}
	}
	out.Set("format", format)
	return out
}

func (s *Server) archivePage(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	own, err := s.admin.ArchiveOwnMail(ctx, who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	var o admin.ArchiveOverview
	if !own {
		if o, err = s.admin.ArchiveOverview(ctx, who(p)); err != nil {
			s.fail(w, r, p, err)
			return
		}
	}
	d := newArchiveData(o)
	d.Own = own
	d.Form = r.URL.Query()
	if r.URL.Query().Get("search") != "" {
		q, err := archiveQuery(r.URL.Query())
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		if d.Hits, err = s.admin.SearchArchive(ctx, who(p), q, archivePage(r.URL.Query())); err != nil {
			s.fail(w, r, p, err)
			return
		}
		d.Searched = true
		d.ExportZip, d.ExportMbox = searchForm(r.URL.Query(), "zip"), searchForm(r.URL.Query(), "mbox")
		if d.Hits.Next != "" {
			nq := r.URL.Query()
			nq.Set("cursor", d.Hits.Next)
			d.Next = nq
		}
	}
	v := s.newView(r, p, "archive_title")
	v.Data = d
	s.render(w, http.StatusOK, "archive", v)
}

func (s *Server) archiveStatsPage(w http.ResponseWriter, r *http.Request, p *principal) {
	o, err := s.admin.ArchiveOverview(r.Context(), who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := newArchiveData(o)
	var labels []string
	var counts []int64
	for _, c := range o.Stats.ByDay {
		labels = append(labels, strings.TrimPrefix(c.Key, c.Key[:min(5, len(c.Key))]))
		counts = append(counts, c.Count)
	}
	d.Chart = barChart(labels, []chartSeries{{Class: "c-delivered", Values: counts}}, 120)
	v := s.newView(r, p, "archive_stats_title")
	v.Data = d
	s.render(w, http.StatusOK, "archive_stats", v)
}

func (s *Server) archiveSettingsPost(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	in, err := s.admin.ArchiveSettings(ctx, who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	in.Enabled = r.PostFormValue("enabled") == "1"
	in.UserSearch = r.PostFormValue("user_search") == "1"
	in.Mode, in.Rule, in.OnFull = r.PostFormValue("mode"), r.PostFormValue("rule"), r.PostFormValue("on_full")
	// Empty fields return to the defaults.
	in.RetentionDays, in.CapacityBytes = 0, 0
	if x := strings.TrimSpace(r.PostFormValue("retention_days")); x != "" {
		if in.RetentionDays, err = strconv.Atoi(x); err != nil {
			s.fail(w, r, p, badRequest("retention: days"))
			return
		}
	}
	if x := strings.TrimSpace(r.PostFormValue("capacity_gb")); x != "" {
		gb, err := strconv.ParseFloat(x, 64)
		if err != nil || gb < 0 {
			s.fail(w, r, p, badRequest("capacity: GB"))
			return
		}
		in.CapacityBytes = int64(gb * (1 << 30))
	}
	if err := s.admin.SetArchiveSettings(ctx, who(p), in); err != nil {
		s.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/archive?msg=saved", http.StatusSeeOther)
}

func (s *Server) archiveVerifyPost(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	rep, err := s.admin.VerifyArchive(ctx, who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	o, err := s.admin.ArchiveOverview(ctx, who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "archive_title")
	d := newArchiveData(o)
	d.Report = &rep
	v.Data = d
	s.render(w, http.StatusOK, "archive", v)
}

// maxImport bounds one uploaded import file (an mbox holds many messages).
const maxImport = 1 << 30

func (s *Server) archiveImportPost(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxImport)
	f, hdr, err := r.FormFile("file")
	if err != nil {
		s.fail(w, r, p, badRequest("choose an .eml or mbox file"))
		return
	}
	defer f.Close()
	res, err := s.admin.ImportArchive(ctx, who(p), hdr.Filename, f, s.maxMessage())
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	o, err := s.admin.ArchiveOverview(ctx, who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "archive_title")
	d := newArchiveData(o)
	d.Import = &res
	v.Data = d
	s.render(w, http.StatusOK, "archive", v)
}

// maxMessage is the largest message an import takes (the SMTP limit).
func (s *Server) maxMessage() int64 {
	if s.d.MaxMessageBytes > 0 {
		return s.d.MaxMessageBytes
	}
	return 50 << 20
}

func (s *Server) archiveAccessPost(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.admin.GrantArchiveAccess(r.Context(), who(p), r.PostFormValue("principal"), r.PostFormValue("on") != "0"); err != nil {
		s.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/archive?msg=saved", http.StatusSeeOther)
}

func (s *Server) archiveHoldPost(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := s.admin.AddArchiveHold(r.Context(), who(p), r.PostFormValue("kind"), r.PostFormValue("value"), r.PostFormValue("reason")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/archive?msg=added", http.StatusSeeOther)
}

func (s *Server) archiveHoldDelete(w http.ResponseWriter, r *http.Request, p *principal) {
	id, err := strconv.ParseInt(r.PathValue("hold"), 10, 64)
	if err != nil {
		s.fail(w, r, p, store.ErrNotFound)
		return
	}
	if err := s.admin.DeleteArchiveHold(r.Context(), who(p), id); err != nil {
		s.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/archive?msg=deleted", http.StatusSeeOther)
}

type archiveMsgData struct {
	Entry    store.ArchiveEntry
	Meta     archive.Meta
	View     *preview.View
	Frame    string
	Remote   bool
	Deleted  bool
	Imported bool
	Own      bool // an end user's view: no proof, re-send or forward
}

func (s *Server) archiveMessagePage(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	e, raw, err := s.admin.ArchiveMessage(ctx, who(p), r.PathValue("id"), "view")
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	own, err := s.admin.ArchiveOwnMail(ctx, who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := archiveMsgData{Entry: e, Deleted: raw == nil, Imported: e.Imported, Own: own}
	_ = json.Unmarshal([]byte(e.Meta), &d.Meta)
	if raw != nil {
		d.Remote = r.URL.Query().Get("images") == "1"
		if d.View, err = preview.Render(ctx, bytes.NewReader(raw), preview.Options{AllowRemoteImages: d.Remote}); err != nil {
			s.fail(w, r, p, err)
			return
		}
		d.Frame = "/archive/" + url.PathEscape(e.ID) + "/body"
		if d.Remote {
			d.Frame += "?images=1"
		}
	}
	v := s.newView(r, p, "archive_message_title")
	v.Data = d
	s.render(w, http.StatusOK, "archive_message", v)
}

// archiveRaw loads a message's bytes for the preview frame and downloads
// (audited as view or download by the administration layer).
func (s *Server) archiveRaw(w http.ResponseWriter, r *http.Request, p *principal, action string) (store.ArchiveEntry, []byte, bool) {
	e, raw, err := s.admin.ArchiveMessage(r.Context(), who(p), r.PathValue("id"), action)
	if err == nil && raw == nil {
		err = store.ErrNotFound // body deleted (logged)
	}
	if err != nil {
		s.fail(w, r, p, err)
		return e, nil, false
	}
	return e, raw, true
}

// archiveBody serves the sanitised document for the sandboxed frame, with
// the preview package's restrictive headers (the quarantine's preview).
func (s *Server) archiveBody(w http.ResponseWriter, r *http.Request, p *principal) {
	_, raw, ok := s.archiveRaw(w, r, p, "view")
	if !ok {
		return
	}
	pv, err := preview.Render(r.Context(), bytes.NewReader(raw), preview.Options{AllowRemoteImages: r.URL.Query().Get("images") == "1"})
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	preview.WriteDocument(w, pv)
}

func (s *Server) archiveAttachment(w http.ResponseWriter, r *http.Request, p *principal) {
	_, raw, ok := s.archiveRaw(w, r, p, "download")
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		s.fail(w, r, p, store.ErrNotFound)
		return
	}
	att, body, err := preview.AttachmentData(r.Context(), bytes.NewReader(raw), n, preview.Options{})
	if err != nil {
		s.fail(w, r, p, store.ErrNotFound)
		return
	}
	preview.WriteAttachment(w, att.Name, body)
}

func (s *Server) archiveEML(w http.ResponseWriter, r *http.Request, p *principal) {
	e, raw, ok := s.archiveRaw(w, r, p, "download")
	if !ok {
		return
	}
	writeEML(w, e, raw)
}

func writeEML(w http.ResponseWriter, e store.ArchiveEntry, raw []byte) {
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": e.ID + ".eml"}))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(raw)
}

func (s *Server) archiveProofGet(w http.ResponseWriter, r *http.Request, p *principal) {
	pr, err := s.admin.ArchiveProof(r.Context(), who(p), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": pr.ID + ".proof.json"}))
	writeJSON(w, http.StatusOK, pr)
}

func (s *Server) archiveResendPost(w http.ResponseWriter, r *http.Request, p *principal) {
	var to []string
	if x := strings.TrimSpace(r.PostFormValue("to")); x != "" {
		to = strings.FieldsFunc(x, func(c rune) bool { return c == ',' || c == ' ' || c == '\n' })
	}
	if _, err := s.admin.ResendArchived(r.Context(), who(p), r.PathValue("id"), to); err != nil {
		s.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/archive/"+url.PathEscape(r.PathValue("id"))+"?msg=done", http.StatusSeeOther)
}

func (s *Server) archiveExport(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.exportTo(w, r, p); err != nil {
		s.fail(w, r, p, err)
	}
}

// exportTo writes the export a search asks for (format zip by default, or
// mbox). It goes to a temporary file first, so that an error still gets an
// error answer and memory stays bounded however large the export is.
func (s *Server) exportTo(w http.ResponseWriter, r *http.Request, p *principal) error {
	q, err := archiveQuery(r.URL.Query())
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "zip"
	}
	f, err := os.CreateTemp("", "mailgate-export-*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	if err := s.admin.ExportArchive(r.Context(), who(p), q, format, f); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	name := "archive-" + s.d.Clock.Now().Format("20060102-150405")
	if format == "mbox" {
		w.Header().Set("Content-Type", "application/mbox")
		name += ".mbox"
	} else {
		w.Header().Set("Content-Type", "application/zip")
		name += ".zip"
	}
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("Cache-Control", "no-store")
	io.Copy(w, f)
	return nil
}

func (s *Server) archiveKey(w http.ResponseWriter, r *http.Request, p *principal) {
	k, err := s.admin.ArchivePublicKey(r.Context())
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, k)
}

// --- API ---

func (s *Server) archiveAPIRoutes() {
	s.api("GET /archive/search", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		q, err := archiveQuery(r.URL.Query())
		if err != nil {
			return nil, err
		}
		h, err := s.admin.SearchArchive(r.Context(), who(p), q, archivePage(r.URL.Query()))
		if err != nil {
			return nil, err
		}
		out := struct {
			Messages []apiArchived `json:"messages"`
			Next     string        `json:"next,omitempty"`
			Total    int64         `json:"total"`
		}{Messages: []apiArchived{}, Next: h.Next, Total: h.Total}
		for _, e := range h.Entries {
			out.Messages = append(out.Messages, archivedOf(e))
		}
		return out, nil
	})
	s.api("GET /archive/messages/{id}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		e, _, err := s.admin.ArchiveMessage(r.Context(), who(p), r.PathValue("id"), "view")
		if err != nil {
			return nil, err
		}
		return archivedOf(e), nil
	})
	s.api("GET /archive/messages/{id}/eml", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		e, raw, err := s.admin.ArchiveMessage(r.Context(), who(p), r.PathValue("id"), "download")
		if err == nil && raw == nil {
			err = store.ErrNotFound
		}
		if err != nil {
			return nil, err
		}
		writeEML(w, e, raw)
		return raw0, nil
	})
	s.api("GET /archive/messages/{id}/proof", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		return s.admin.ArchiveProof(r.Context(), who(p), r.PathValue("id"))
	})
	s.api("POST /archive/messages/{id}/resend", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			To []string `json:"to"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		qid, err := s.admin.ResendArchived(r.Context(), who(p), r.PathValue("id"), in.To)
		if err != nil {
			return nil, err
		}
		return map[string]string{"queue_id": qid}, nil
	})
	s.api("POST /archive/verify", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		rep, err := s.admin.VerifyArchive(r.Context(), who(p))
		if err != nil {
			return nil, err
		}
		out := struct {
			archive.Report
			OK bool `json:"ok"`
		}{rep, rep.OK()}
		if out.Problems == nil {
			out.Problems = []archive.Problem{}
		}
		return out, nil
	})
	s.api("GET /archive/export", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		if err := s.exportTo(w, r, p); err != nil {
			return nil, err
		}
		return raw0, nil
	})
	s.api("GET /archive/holds", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		hs, err := s.admin.ArchiveHolds(r.Context(), who(p))
		out := []apiHold{}
		for _, h := range hs {
			out = append(out, holdOf(h))
		}
		return out, err
	})
	s.api("POST /archive/holds", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Kind   string `json:"kind"`
			Value  string `json:"value"`
			Reason string `json:"reason"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		h, err := s.admin.AddArchiveHold(r.Context(), who(p), in.Kind, in.Value, in.Reason)
		if err != nil {
			return nil, err
		}
		return created{holdOf(h)}, nil
	})
	s.api("DELETE /archive/holds/{hold}", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		id, err := strconv.ParseInt(r.PathValue("hold"), 10, 64)
		if err != nil {
			return nil, store.ErrNotFound
		}
		return nil, s.admin.DeleteArchiveHold(r.Context(), who(p), id)
	})
	s.api("GET /archive/access", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		gs, err := s.admin.ArchiveAccessList(r.Context(), who(p))
		return map[string][]string{"principals": nonNil(gs)}, err
	})
	s.api("POST /archive/access", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		var in struct {
			Principal string `json:"principal"`
			On        bool   `json:"on"`
		}
		if err := decode(r, &in); err != nil {
			return nil, err
		}
		return nil, s.admin.GrantArchiveAccess(r.Context(), who(p), in.Principal, in.On)
	})
	s.api("GET /archive/pubkey", store.RoleAdmin, func(w http.ResponseWriter, r *http.Request, p *principal) (any, error) {
		k, err := s.admin.ArchivePublicKey(r.Context())
		return map[string]string{"public_key": k}, err
	})
}

type apiHold struct {
	ID      int64     `json:"id"`
	Kind    string    `json:"kind"`
	Value   string    `json:"value"`
	Reason  string    `json:"reason"`
	By      string    `json:"by"`
	Created time.Time `json:"created"`
}

func holdOf(h store.ArchiveHold) apiHold {
	return apiHold{ID: h.ID, Kind: h.Kind, Value: h.Value, Reason: h.Reason, By: h.By, Created: h.Created}
}

// raw0 tells the API wrapper that the handler wrote the response itself.
var raw0 = raw{}

type apiArchived struct {
	ID            string    `json:"id"`
	Seq           int64     `json:"seq"`
	Direction     string    `json:"direction"`
	Imported      bool      `json:"imported"`
	Received      time.Time `json:"received"`
	Size          int64     `json:"size"`
	SHA256        string    `json:"sha256"`
	From          string    `json:"from"`
	To            string    `json:"to"`
	Cc            string    `json:"cc"`
	Subject       string    `json:"subject"`
	HasAttachment bool      `json:"has_attachment"`
	Verdict       string    `json:"verdict"`
	Delivery      string    `json:"delivery"`
	Deleted       bool      `json:"deleted"`
}

func archivedOf(e store.ArchiveEntry) apiArchived {
	return apiArchived{ID: e.ID, Seq: e.Seq, Direction: string(e.Direction), Imported: e.Imported, Received: e.Received, Size: e.Size,
		SHA256: e.SHA256, From: e.FromHdr, To: e.ToHdr, Cc: e.CcHdr, Subject: e.Subject, HasAttachment: e.HasAttachment,
		Verdict: e.Verdict, Delivery: e.Delivery, Deleted: !e.Deleted.IsZero()}
}
