package web

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

//go:embed templates/*.html templates/parts/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

type pageTemplate struct{ t *template.Template }

// funcs are the template helpers; times are shown in the console's zone.
func funcs(zone *time.Location) template.FuncMap {
	return template.FuncMap{
		"fmtTime": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.In(zone).Format("2006-01-02 15:04:05")
		},
		"fmtSize": func(n int64) string {
			switch {
			case n >= 10<<20:
				return fmt.Sprintf("%.0f MB", float64(n)/(1<<20))
			case n >= 1<<20:
				return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
			case n >= 1<<10:
				return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
			}
			return fmt.Sprintf("%d B", n)
		},
		"join": strings.Join,
		"list": func(v ...string) []string { return v },
		"link": link,
		// fromName and fromAddr split a stored From value ("Name" <addr>).
		"fromName": func(v string) string {
			if i := strings.LastIndexByte(v, '<'); i >= 0 {
				return strings.Trim(strings.TrimSpace(v[:i]), `"`)
			}
			return ""
		},
		"fromAddr": func(v string) string {
			if i := strings.LastIndexByte(v, '<'); i >= 0 {
				return strings.TrimSuffix(v[i+1:], ">")
			}
			return v
		},
		// reasonShort is a verdict reason without its symbol list (shown in
		// full as the cell's title).
		"reasonShort": func(v string) string {
			if i := strings.LastIndex(v, " ["); i > 0 && strings.HasSuffix(v, "]") {
				return v[:i]
			}
			return v
		},
	}
}

// link is the console URL path with query q, for href attributes. Pages
// pass their parameters as url.Values and build every URL with it: writing
// "/page?{{.Query}}" in a template would have html/template escape the
// already-encoded query a second time ("offset%3d50"). The path is a
// literal of the template (a same-origin absolute path) and the query is
// fully percent-encoded, so the result is typed as a safe URL.
func link(p string, q url.Values) template.URL {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "?#\\") {
		return "#"
	}
	if e := q.Encode(); e != "" {
		p += "?" + e
	}
	return template.URL(p)
}

func loadPages(zone *time.Location) (map[string]*pageTemplate, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*pageTemplate{}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs(zone)).ParseFS(templateFS, "templates/layout.html", "templates/parts/*.html", n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", base, err)
		}
		out[strings.TrimSuffix(base, ".html")] = &pageTemplate{t: t}
	}
	return out, nil
}

// view is what every page template sees.
type view struct {
	translator
	Lang     string
	Title    string
	CSRF     string
	Login    string
	Role     store.Role
	TenantID int64
	Tenant   string
	Tenants  []store.Tenant // operator's tenant switcher
	Path     string
	Msg      string // translated notice after a redirect
	Err      string
	Data     any
	// MFAPending: logged in with the password, the second factor still
	// owed; the console's pages would only redirect back, so no menu.
	MFAPending bool
	// anonToken: CSRF is the double-submit token of a page without a
	// session, whose cookie render sets.
	anonToken bool
	// Webmail: the caller has a mailbox to read in the console.
	Webmail bool
	// Archive: the caller may open the audit archive (the menu shows it).
	Archive bool
}

func (v *view) IsOperator() bool { return v.Role == store.RoleOperator }
func (v *view) IsAdmin() bool    { return v.Role == store.RoleOperator || v.Role == store.RoleAdmin }
func (v *view) LoggedIn() bool   { return v.Role != "" }

// notices are the messages a redirect may ask a page to show (?msg=).
var notices = map[string]bool{"saved": true, "deleted": true, "added": true, "released": true, "done": true,
	"imported": true, "learned": true, "password_changed": true, "totp_enabled": true, "verified": true,
	"switched": true, "handback_started": true, "webmail_sent": true, "webmail_sent_not_kept": true, "webmail_draft_saved": true,
	"webmail_deleted": true, "webmail_moved": true, "webmail_junked": true, "webmail_emptied": true, "webmail_done": true,
	"invited": true, "hosted": true}

func (s *Server) newView(r *http.Request, p *principal, title string) *view {
	pref := ""
	if p != nil {
		pref = p.acct.Lang
	}
	lang := s.i18n.lang(r, s.cookieName(langCookie), pref)
	v := &view{translator: s.i18n.translator(lang), Lang: lang, Path: r.URL.Path}
	if m := r.URL.Query().Get("msg"); notices[m] {
		v.Msg = v.T("msg_" + m)
	}
	if p != nil {
		v.Login, v.Role, v.TenantID = p.actor, p.role, p.tenantID
		v.MFAPending = !p.mfaDone()
		if p.sess != nil {
			v.CSRF = p.sess.CSRF
		}
		if p.tenantID != 0 {
			v.Tenant = s.tenantName(r.Context(), p.tenantID)
		}
		if p.role == store.RoleOperator {
			v.Tenants, _ = s.d.Store.Tenants(r.Context())
		}
		v.Webmail = s.hasWebmail(r.Context(), p)
		switch {
		case v.IsAdmin():
			v.Archive = s.admin.MayUseArchive(r.Context(), who(p))
		case p.role == store.RoleUser:
			// End users search their own mail when the tenant allows it.
			_, err := s.admin.ArchiveOwnMail(r.Context(), who(p))
			v.Archive = err == nil
		}
	}
	if v.CSRF == "" {
		// Forms on pages without a session (login, language switch) carry
		// a double-submit token instead of the session's.
		v.CSRF, v.anonToken = s.anonCSRF(r), true
	}
	v.Title = v.T(title)
	return v
}

// render executes a page into a buffer first, so a template error becomes a
// clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, status int, name string, v *view) {
	pt := s.pages[name]
	if pt == nil {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := pt.t.Execute(&buf, v); err != nil {
		s.d.Log.Error("template", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if v.anonToken {
		s.setCookie(w, loginCSRF, v.CSRF, 30*time.Minute)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail shows an operation's error on an error page (console).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, p *principal, err error) {
	st := statusOf(err)
	if st == http.StatusInternalServerError {
		s.d.Log.Error("console", "path", r.URL.Path, "err", err)
	}
	v := s.newView(r, p, "error_title")
	switch st {
	case http.StatusNotFound:
		v.Err = v.T("err_not_found")
	case http.StatusForbidden:
		v.Err = v.T("err_forbidden")
	case http.StatusConflict:
		v.Err = v.T("err_exists")
	case http.StatusInternalServerError:
		v.Err = v.T("err_internal")
	case http.StatusBadRequest:
		v.Err = publicError(err)
		if errors.Is(err, errSearchNUL) {
			v.Err = v.T("err_search_nul")
		}
	default:
		v.Err = publicError(err)
	}
	s.render(w, st, "error", v)
}

func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, p *principal) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		apiError(w, http.StatusForbidden, "forbidden")
		return
	}
	s.fail(w, r, p, errForbidden)
}

// done redirects after a successful change (POST/redirect/GET).
func done(w http.ResponseWriter, r *http.Request, to, msg string) {
	if msg != "" {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + "msg=" + msg
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// barChart draws a stacked bar chart as inline SVG (no script needed, so the
// console's CSP stays strict). Values are numbers only: nothing from mail
// reaches the markup.
func barChart(labels []string, series []chartSeries, height int) template.HTML {
	n := len(labels)
	if n == 0 {
		return ""
	}
	var max int64 = 1
	for i := 0; i < n; i++ {
		var sum int64
		for _, s := range series {
			sum += s.Values[i]
		}
		if sum > max {
			max = sum
		}
	}
	bw := 18
	width := n*(bw+4) + 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" viewBox="0 0 %d %d" width="100%%" height="%d">`, width, height+24, height+24)
	for i := 0; i < n; i++ {
		x := 30 + i*(bw+4)
		y := height
		for _, s := range series {
			h := int(float64(s.Values[i]) / float64(max) * float64(height-10))
			if h <= 0 {
				continue
			}
			y -= h
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" class="%s"><title>%d</title></rect>`, x, y, bw, h, template.HTMLEscapeString(s.Class), s.Values[i])
		}
		if n <= 31 && (i%5 == 0 || i == n-1) {
			fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis">%s</text>`, x, height+16, template.HTMLEscapeString(labels[i]))
		}
	}
	fmt.Fprintf(&b, `<text x="0" y="12" class="axis">%d</text></svg>`, max)
	return template.HTML(b.String())
}

type chartSeries struct {
	Class  string
	Values []int64
}

// trafficMetrics are the stacked series of the dashboard and report charts.
var trafficMetrics = []string{store.MetricDelivered, store.MetricSpam, store.MetricVirus, store.MetricQuarantined, store.MetricRejected}

// trafficChart draws counts per period (labels[i] is period i) as the
// stacked traffic chart.
func trafficChart(labels []string, counts []map[string]int64) template.HTML {
	series := make([]chartSeries, len(trafficMetrics))
	for j, m := range trafficMetrics {
		series[j].Class = "c-" + m
		for _, c := range counts {
			series[j].Values = append(series[j].Values, c[m])
		}
	}
	return barChart(labels, series, 160)
}

func (s *Server) staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	fsrv := http.FileServer(http.FS(sub))
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	}))
}
