package web

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"image/png"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/store"
)

func (s *Server) consoleRoutes() {
	s.mux.Handle("GET /static/", s.staticHandler())
	// Browsers ask for it on every site; an empty answer keeps logs quiet.
	s.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s.public("GET /login", s.loginPage)
	s.public("POST /login", s.loginPost)
	s.public("GET /login/totp", s.totpPage)
	s.public("POST /login/totp", s.totpPost)
	s.public("GET /login/totp/qr.png", s.totpQR)
	s.public("POST /logout", s.logout)
	s.public("POST /lang", s.setLang)
	s.public("GET /login/oidc", s.oidcStart)
	s.public("GET /login/oidc/callback", s.oidcCallback)

	s.handle("GET /{$}", store.RoleUser, s.home)
	s.handle("GET /dashboard", store.RoleAdmin, s.dashboard)
	s.handle("POST /tenant", store.RoleOperator, s.selectTenant)
	s.handle("GET /tenants", store.RoleOperator, s.tenantsPage)
	s.handle("POST /tenants", store.RoleOperator, s.tenantsPost)
	s.handle("POST /tenants/{id}/delete", store.RoleOperator, s.tenantDelete)
	s.handle("GET /domains", store.RoleAdmin, s.domainsPage)
	s.handle("POST /domains", store.RoleAdmin, s.domainsPost)
	s.handle("POST /domains/{name}/routes", store.RoleAdmin, s.domainRoutes)
	s.handle("POST /domains/{name}/delete", store.RoleAdmin, s.domainDelete)
	s.handle("POST /domains/{name}/verify", store.RoleAdmin, s.domainVerify)
	s.onboardRoutes()
	s.handle("GET /users", store.RoleAdmin, s.usersPage)
	s.handle("GET /users.csv", store.RoleAdmin, s.usersCSV)
	s.handle("POST /users", store.RoleAdmin, s.usersPost)
	s.handle("POST /users/import", store.RoleAdmin, s.usersImport)
	s.handle("POST /users/{addr}/delete", store.RoleAdmin, s.userDelete)
	s.handle("GET /groups", store.RoleAdmin, s.groupsPage)
	s.handle("POST /groups", store.RoleAdmin, s.groupsPost)
	s.handle("POST /groups/{name}/members", store.RoleAdmin, s.groupMembers)
	s.handle("POST /groups/{name}/delete", store.RoleAdmin, s.groupDelete)
	s.handle("GET /policy", store.RoleAdmin, s.policyPage)
	s.handle("POST /policy", store.RoleAdmin, s.policyPost)
	s.handle("POST /policy/unset", store.RoleAdmin, s.policyUnset)
	s.handle("POST /policy/section", store.RoleAdmin, s.policySection)
	s.handle("POST /policy/dry-run", store.RoleAdmin, s.policyDryRun)
	s.handle("GET /lists", store.RoleUser, s.listsPage)
	s.handle("POST /lists", store.RoleUser, s.listsPost)
	s.handle("POST /lists/{id}/delete", store.RoleUser, s.listDelete)
	s.handle("GET /queue", store.RoleAdmin, s.queuePage)
	s.handle("POST /queue/{id}/{action}", store.RoleAdmin, s.queueAction)
	s.handle("GET /tracking", store.RoleAdmin, s.trackingPage)
	s.handle("GET /tracking/{id}", store.RoleAdmin, s.messagePage)
	s.handle("GET /audit", store.RoleAdmin, s.auditPage)
	s.handle("GET /tokens", store.RoleAdmin, s.tokensPage)
	s.handle("POST /tokens", store.RoleAdmin, s.tokensPost)
	s.handle("POST /tokens/{id}/revoke", store.RoleAdmin, s.tokenRevoke)
	s.handle("GET /accounts", store.RoleAdmin, s.accountsPage)
	s.handle("POST /accounts", store.RoleAdmin, s.accountsPost)
	s.handle("POST /accounts/{id}/password", store.RoleAdmin, s.accountPassword)
	s.handle("POST /accounts/{id}/totp-reset", store.RoleAdmin, s.accountTOTPReset)
	s.handle("POST /accounts/{id}/delete", store.RoleAdmin, s.accountDelete)
	s.handle("GET /account", store.RoleUser, s.ownAccountPage)
	s.handle("POST /account/password", store.RoleUser, s.ownPassword)
	s.handle("POST /account/lang", store.RoleUser, s.ownLang)
	s.handle("POST /account/app-password", store.RoleUser, s.ownAppPassword)
	s.handle("POST /account/app-password/remove", store.RoleUser, s.ownAppPasswordRemove)
	s.quarantineRoutes()
	s.continuityRoutes()
	s.directoryRoutes()
	s.webmailRoutes()
	s.mailboxesRoutes()
	s.outboundRoutes()
	s.linkRoutes()
	s.mlRoutes()
	s.archiveRoutes()
}

// --- login ---

type loginData struct {
	Next  string
	Token string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	v := s.newView(r, nil, "login_title")
	v.Data = loginData{Next: safeNext(r.URL.Query().Get("next")), Token: v.CSRF}
	s.render(w, http.StatusOK, "login", v)
}

// anonCSRF is the double-submit token of a browser without a session: the
// one its cookie already holds, else a new one (render sets the cookie).
func (s *Server) anonCSRF(r *http.Request) string {
	if c, err := r.Cookie(s.cookieName(loginCSRF)); err == nil && len(c.Value) == 24 &&
		strings.Trim(c.Value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == "" {
		return c.Value
	}
	return randomToken(18)
}

// loginCSRFOK checks the double-submit token of a form posted without a
// session: the form field must equal the cookie.
func (s *Server) loginCSRFOK(r *http.Request) bool {
	c, err := r.Cookie(s.cookieName(loginCSRF))
	return err == nil && c.Value != "" && subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

// formCSRFOK checks a public form that works with or without a session:
// the session's token when there is one, else the double-submit token.
func (s *Server) formCSRFOK(r *http.Request) bool {
	if p, err := s.sessionPrincipal(r); err == nil && p != nil {
		return s.csrfOK(r, p)
	}
	return s.loginCSRFOK(r)
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !s.loginCSRFOK(r) {
		http.Error(w, "invalid or missing CSRF token; reload the page", http.StatusForbidden)
		return
	}
	login := strings.ToLower(strings.TrimSpace(r.PostFormValue("login")))
	ip := s.clientIP(r).String()
	showErr := func(status int, msg string) {
		v := s.newView(r, nil, "login_title")
		v.Err = v.T(msg)
		v.Data = loginData{Next: safeNext(r.PostFormValue("next")), Token: v.CSRF}
		s.render(w, status, "login", v)
	}
	// The attempt is reserved before the password is checked, so that
	// concurrent attempts cannot all slip through.
	keys := []string{loginlimit.IPKey(ip), loginlimit.LoginKey(login)}
	if ok, wait := s.d.Throttle.Take(ctx, s.d.Clock.Now(), keys...); !ok {
		setRetryAfter(w, wait)
		showErr(http.StatusTooManyRequests, "login_throttled")
		return
	}
	a, err := s.checkPassword(ctx, login, r.PostFormValue("password"))
	switch {
	case errors.Is(err, errLoginBusy):
		// Nothing was checked, so the attempt does not count.
		s.d.Throttle.Refund(ctx, s.d.Clock.Now(), keys...)
		s.d.Log.Warn("console login refused: too many password checks at once", "login", login, "ip", ip)
		setRetryAfter(w, time.Second)
		showErr(http.StatusTooManyRequests, "login_busy")
		return
	case errors.Is(err, errBadLogin):
		s.d.Log.Info("console login failed", "login", login, "ip", ip)
		showErr(http.StatusUnauthorized, "login_failed")
		return
	case err != nil:
		// An upstream that cannot be asked still costs the attempt: the
		// login page is not a free probe of other servers.
		s.d.Log.Error("console login", "err", err)
		showErr(http.StatusServiceUnavailable, "login_unavailable")
		return
	}
	s.d.Throttle.Refund(ctx, s.d.Clock.Now(), keys...)
	// The IP allow-list is checked before a session exists, so a password
	// guessed from elsewhere is worth nothing.
	pp := &principal{role: a.Role, tenantID: a.TenantID, ip: s.clientIP(r)}
	if s.checkIP(ctx, pp) != nil {
		s.d.Log.Warn("console login from a network not allowed", "login", login, "ip", ip)
		showErr(http.StatusForbidden, "login_ip")
		return
	}
	if err := s.startSession(ctx, w, r, a); err != nil {
		s.d.Log.Error("console session", "err", err)
		showErr(http.StatusServiceUnavailable, "login_unavailable")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if s.requireTOTP(a) {
		http.Redirect(w, r, "/login/totp?next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

type totpData struct {
	Next   string
	Enroll bool
	Secret string
	URL    string
}

// pendingPrincipal is a session still owing its second factor.
func (s *Server) pendingPrincipal(w http.ResponseWriter, r *http.Request) *principal {
	p, err := s.sessionPrincipal(r)
	if err != nil || p == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	return p
}

// enrolSecret is the TOTP secret being enrolled, kept in the session's
// account row only once confirmed; until then it lives in a cookie bound to
// the session (an attacker with the cookie already has the session).
const enrolCookie = "mg_totp_enrol"

func (s *Server) totpPage(w http.ResponseWriter, r *http.Request) {
	p := s.pendingPrincipal(w, r)
	if p == nil {
		return
	}
	if p.mfaDone() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	v := s.newView(r, p, "totp_title")
	d := totpData{Next: safeNext(r.URL.Query().Get("next"))}
	if p.acct.TOTPSecret == "" {
		key, err := totp.Generate(totp.GenerateOpts{Issuer: "mailgate " + s.d.Hostname, AccountName: p.acct.Login})
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		s.setCookie(w, enrolCookie, key.Secret(), 15*time.Minute)
		d.Enroll, d.Secret, d.URL = true, key.Secret(), key.URL()
	}
	v.Data = d
	s.render(w, http.StatusOK, "totp", v)
}

func (s *Server) totpQR(w http.ResponseWriter, r *http.Request) {
	p := s.pendingPrincipal(w, r)
	if p == nil {
		return
	}
	c, err := r.Cookie(s.cookieName(enrolCookie))
	if err != nil || p.acct.TOTPSecret != "" {
		http.NotFound(w, r)
		return
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "mailgate " + s.d.Hostname, AccountName: p.acct.Login, Secret: mustBase32(c.Value)})
	if err != nil {
		http.NotFound(w, r)
		return
	}
	img, err := key.Image(220, 220)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

func (s *Server) totpPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := s.pendingPrincipal(w, r)
	if p == nil {
		return
	}
	if !s.csrfOK(r, p) {
		http.Error(w, "invalid or missing CSRF token; reload the page", http.StatusForbidden)
		return
	}
	now := s.d.Clock.Now()
	key := "totp:" + p.acct.Login
	if ok, wait := s.d.Throttle.Take(ctx, now, key); !ok {
		setRetryAfter(w, wait)
		http.Error(w, "too many attempts; wait a minute", http.StatusTooManyRequests)
		return
	}
	secret := p.acct.TOTPSecret
	enrolling := secret == ""
	if enrolling {
		c, err := r.Cookie(s.cookieName(enrolCookie))
		if err != nil {
			http.Redirect(w, r, "/login/totp", http.StatusSeeOther)
			return
		}
		secret = c.Value
	}
	if !s.totpValidate(ctx, p.acct, secret, r.PostFormValue("code")) {
		v := s.newView(r, p, "totp_title")
		v.Err = v.T("totp_wrong")
		d := totpData{Next: safeNext(r.PostFormValue("next"))}
		if enrolling {
			k, _ := totp.Generate(totp.GenerateOpts{Issuer: "mailgate " + s.d.Hostname, AccountName: p.acct.Login, Secret: mustBase32(secret)})
			d.Enroll, d.Secret = true, secret
			if k != nil {
				d.URL = k.URL()
			}
		}
		v.Data = d
		s.render(w, http.StatusUnauthorized, "totp", v)
		return
	}
	s.d.Throttle.Refund(ctx, s.d.Clock.Now(), key)
	if enrolling {
		p.acct.TOTPSecret = secret
		if err := s.d.Store.UpdateAccount(ctx, p.acct); err != nil {
			s.fail(w, r, p, err)
			return
		}
		s.setCookie(w, enrolCookie, "", -1)
		s.audit(ctx, p, p.acct.TenantID, "account.totp_enrol", p.acct.Login, "", "enrolled")
	}
	// A fresh session after the second factor (no fixation across the step).
	s.d.Store.DeleteSession(ctx, p.sess.ID)
	tok := randomToken(32)
	sess := *p.sess
	sess.ID, sess.MFADone, sess.CSRF, sess.LastSeen = sha256Hex(tok), true, randomToken(24), now
	if err := s.d.Store.CreateSession(ctx, sess); err != nil {
		s.fail(w, r, p, err)
		return
	}
	s.setCookie(w, sessionCookie, tok, 0)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	p, _ := s.sessionPrincipal(r)
	if p != nil {
		if !s.csrfOK(r, p) {
			http.Error(w, "invalid or missing CSRF token", http.StatusForbidden)
			return
		}
		s.d.Store.DeleteSession(r.Context(), p.sess.ID)
	}
	s.setCookie(w, sessionCookie, "", -1)
	s.setCookie(w, tenantCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// setLang switches the language (a cookie) and goes back to the page. It
// takes the session's CSRF token, or the double-submit token on pages
// without a session, like every other form.
func (s *Server) setLang(w http.ResponseWriter, r *http.Request) {
	if !s.formCSRFOK(r) {
		http.Error(w, "invalid or missing CSRF token; reload the page", http.StatusForbidden)
		return
	}
	l := r.PostFormValue("lang")
	if l != "ja" && l != "en" {
		http.Error(w, "unknown language", http.StatusBadRequest)
		return
	}
	s.setCookie(w, langCookie, l, 365*24*time.Hour)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// --- home and dashboard ---

func (s *Server) home(w http.ResponseWriter, r *http.Request, p *principal) {
	switch {
	case p.role == store.RoleUser:
		http.Redirect(w, r, "/quarantine", http.StatusSeeOther)
	case p.tenantID == 0:
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	}
}

type dashData struct {
	Today, Month map[string]int64
	Queued, Held int
	Chart        any
	Metrics      []string
	// Cluster is shown to operators only: node names and addresses are
	// the operator's, not a tenant's.
	Cluster *clusterView `json:"-"`

	// Onboarding lists the domains whose onboarding wizard is not finished.
	Onboarding []admin.OnboardRow `json:"-"`
}

// clusterView is the dashboard's cluster section.
type clusterView struct {
	Nodes       []clusterNode
	Alive, Dead int
	store.ClusterStatus
}

type clusterNode struct {
	store.NodeState
	Ago time.Duration // since the last heartbeat
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, p *principal) {
	tid, err := p.tid()
	if err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	d, err := s.dashboardData(r, tid)
	if err == nil && p.role == store.RoleOperator {
		d.Cluster, err = s.clusterData(r)
	}
	if err == nil {
		d.Onboarding, err = s.admin.OnboardPending(r.Context(), who(p))
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "nav_dashboard")
	v.Data = d
	s.render(w, http.StatusOK, "dashboard", v)
}

func (s *Server) dashboardData(r *http.Request, tid int64) (dashData, error) {
	ctx := r.Context()
	now := s.d.Clock.Now().In(s.d.Zone)
	today := now.Format("2006-01-02")
	first := now.AddDate(0, 0, -29).Format("2006-01-02")
	rows, err := s.d.Store.Report(ctx, store.ReportFilter{TenantID: tid, FromDay: first, ToDay: today, GroupBy: "day"})
	if err != nil {
		return dashData{}, err
	}
	d := dashData{Today: map[string]int64{}, Month: map[string]int64{}, Metrics: store.Metrics}
	byDay := map[string]map[string]int64{}
	month := now.Format("2006-01")
	for _, row := range rows {
		byDay[row.Period] = row.Counts
		if row.Period == today {
			d.Today = row.Counts
		}
	}
	monthRows, err := s.d.Store.Report(ctx, store.ReportFilter{TenantID: tid, FromDay: month + "-01", ToDay: today, GroupBy: "month"})
	if err != nil {
		return d, err
	}
	for _, row := range monthRows {
		for k, n := range row.Counts {
			d.Month[k] += n
		}
	}
	var labels []string
	var counts []map[string]int64
	for i := 29; i >= 0; i-- {
		day := now.AddDate(0, 0, -i).Format("2006-01-02")
		labels = append(labels, day[5:])
		counts = append(counts, byDay[day])
	}
	d.Chart = trafficChart(labels, counts)
	q, err := s.d.Store.ListQueue(ctx, store.QueueFilter{TenantID: tid, Limit: 100000})
	if err != nil {
		return d, err
	}
	for _, e := range q {
		for _, rc := range e.Recipients {
			switch rc.State {
			case store.Queued:
				d.Queued++
			case store.Held:
				d.Held++
			}
		}
	}
	return d, nil
}

// clusterData reads the nodes sharing the store, alive or dead after
// [cluster] dead_after, with what each holds and the queue depth.
func (s *Server) clusterData(r *http.Request) (*clusterView, error) {
	st, err := s.d.Store.ClusterStatus(r.Context())
	if err != nil {
		return nil, err
	}
	c := &clusterView{ClusterStatus: st}
	for _, n := range st.States(s.d.DeadAfter) {
		if n.Seen.IsZero() {
			continue // a lease owner without heartbeat (command-line tool)
		}
		if n.Alive {
			c.Alive++
		} else {
			c.Dead++
		}
		c.Nodes = append(c.Nodes, clusterNode{NodeState: n, Ago: st.Now.Sub(n.Seen).Round(time.Second)})
	}
	return c, nil
}

// --- tenants ---

func (s *Server) selectTenant(w http.ResponseWriter, r *http.Request, p *principal) {
	id := atoi64(r.PostFormValue("tenant"))
	if ok, _ := s.tenantExists(r.Context(), id); !ok {
		s.fail(w, r, p, store.ErrNotFound)
		return
	}
	s.setCookie(w, tenantCookie, strconv.FormatInt(id, 10), 0)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func (s *Server) tenantsPage(w http.ResponseWriter, r *http.Request, p *principal) {
	v := s.newView(r, p, "nav_tenants")
	ts, err := s.d.Store.Tenants(r.Context())
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v.Data = ts
	s.render(w, http.StatusOK, "tenants", v)
}

func (s *Server) tenantsPost(w http.ResponseWriter, r *http.Request, p *principal) {
	t, err := s.opAddTenant(r.Context(), p, r.PostFormValue("name"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	s.setCookie(w, tenantCookie, strconv.FormatInt(t.ID, 10), 0)
	done(w, r, "/tenants", "added")
}

func (s *Server) tenantDelete(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opDeleteTenant(r.Context(), p, atoi64(r.PathValue("id"))); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/tenants", "deleted")
}

// --- users ---

type userRow struct {
	Address, Name string
}

type usersData struct {
	Rows  []userRow
	Total int
	Query string
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, p *principal) {
	tid, err := p.tid()
	if err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	us, err := s.d.Store.Users(r.Context(), tid)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	people, _ := s.d.Store.People(r.Context(), tid)
	names := map[string]string{}
	for _, pp := range people {
		names[pp.Address] = pp.Name
	}
	q := strings.ToLower(r.URL.Query().Get("q"))
	var rows []userRow
	for _, u := range us {
		if q != "" && !strings.Contains(u.Address, q) && !strings.Contains(strings.ToLower(names[u.Address]), q) {
			continue
		}
		rows = append(rows, userRow{u.Address, names[u.Address]})
	}
	v := s.newView(r, p, "nav_users")
	// A page shows at most 500 addresses; search narrows, CSV has all.
	d := usersData{Total: len(rows), Rows: rows, Query: r.URL.Query().Get("q")}
	if len(d.Rows) > 500 {
		d.Rows = d.Rows[:500]
	}
	v.Data = d
	s.render(w, http.StatusOK, "users", v)
}

func (s *Server) usersCSV(w http.ResponseWriter, r *http.Request, p *principal) {
	tid, err := p.tid()
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="users.csv"`)
	if err := s.writeUsersCSV(r.Context(), tid, w); err != nil {
		s.d.Log.Error("users csv", "err", err)
	}
}

func (s *Server) usersPost(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := s.opAddUser(r.Context(), p, r.PostFormValue("address"), r.PostFormValue("name")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/users", "added")
}

func (s *Server) usersImport(w http.ResponseWriter, r *http.Request, p *principal) {
	f, _, err := r.FormFile("file")
	if err != nil {
		s.fail(w, r, p, badRequest("choose a CSV file"))
		return
	}
	defer f.Close()
	if _, err := s.opImportUsers(r.Context(), p, f); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/users", "imported")
}

func (s *Server) userDelete(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opDeleteUser(r.Context(), p, r.PathValue("addr")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/users", "deleted")
}

// --- groups ---

func (s *Server) groupsPage(w http.ResponseWriter, r *http.Request, p *principal) {
	tid, err := p.tid()
	if err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	gs, err := s.d.Store.Groups(r.Context(), tid)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "nav_groups")
	v.Data = gs
	s.render(w, http.StatusOK, "groups", v)
}

func (s *Server) groupsPost(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opAddGroup(r.Context(), p, r.PostFormValue("name")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/groups", "added")
}

func (s *Server) groupMembers(w http.ResponseWriter, r *http.Request, p *principal) {
	add := r.PostFormValue("op") != "remove"
	if err := s.opGroupMember(r.Context(), p, r.PathValue("name"), r.PostFormValue("address"), add); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/groups", "saved")
}

func (s *Server) groupDelete(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opDeleteGroup(r.Context(), p, r.PathValue("name")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/groups", "deleted")
}

// --- policy ---

type policyData struct {
	Settings []store.Setting
	Keys     []policyKey
	Domains  []store.Domain
	Groups   []store.Group
	// Scope and Owner are what the structured forms edit.
	Scope, Owner string
	Forms        []formSection
}

func (s *Server) policyPage(w http.ResponseWriter, r *http.Request, p *principal) {
	tid, err := p.tid()
	if err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	ss, err := s.d.Store.Settings(r.Context(), tid)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	rank := map[string]int{store.ScopeTenant: 0, store.ScopeDomain: 1, store.ScopeGroup: 2, store.ScopeAddress: 3}
	sort.SliceStable(ss, func(i, j int) bool {
		if rank[ss[i].Scope] != rank[ss[j].Scope] {
			return rank[ss[i].Scope] < rank[ss[j].Scope]
		}
		if ss[i].Owner != ss[j].Owner {
			return ss[i].Owner < ss[j].Owner
		}
		return ss[i].Key < ss[j].Key
	})
	ds, _ := s.d.Store.Domains(r.Context(), tid)
	gs, _ := s.d.Store.Groups(r.Context(), tid)
	scope, owner := r.URL.Query().Get("scope"), strings.TrimSpace(r.URL.Query().Get("owner"))
	switch scope {
	case store.ScopeDomain, store.ScopeGroup, store.ScopeAddress:
	default:
		scope, owner = store.ScopeTenant, ""
	}
	v := s.newView(r, p, "nav_policy")
	v.Data = policyData{Settings: ss, Keys: policyKeys, Domains: ds, Groups: gs,
		Scope: scope, Owner: owner, Forms: policyForms(ss, scope, owner, v.Lang)}
	s.render(w, http.StatusOK, "policy", v)
}

func (s *Server) policyPost(w http.ResponseWriter, r *http.Request, p *principal) {
	key, value := strings.TrimSpace(r.PostFormValue("key")), strings.TrimSpace(r.PostFormValue("value"))
	err := s.opSetSetting(r.Context(), p, r.PostFormValue("scope"), r.PostFormValue("owner"), key, value)
	var ref *admin.UpstreamRefused
	if errors.As(err, &ref) {
		tr := s.i18n.translator(s.i18n.lang(r, s.cookieName(langCookie), p.acct.Lang))
		err = badRequest("%s", tr.T("setting_upstream_"+ref.Reason, "Key", ref.Key, "Host", ref.Host))
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/policy", "saved")
}

func (s *Server) policyUnset(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opUnsetSetting(r.Context(), p, r.PostFormValue("scope"), r.PostFormValue("owner"), r.PostFormValue("key")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/policy", "deleted")
}

// --- lists ---

func (s *Server) listsPage(w http.ResponseWriter, r *http.Request, p *principal) {
	tid, err := p.tid()
	if err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	es, err := s.d.Store.ListEntries(r.Context(), tid)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	if p.role == store.RoleUser {
		own := es[:0]
		for _, e := range es {
			if e.Scope == store.ScopeAddress && e.Owner == p.address {
				own = append(own, e)
			}
		}
		es = own
	}
	if len(es) > 2000 {
		es = es[:2000]
	}
	v := s.newView(r, p, "nav_lists")
	v.Data = es
	s.render(w, http.StatusOK, "lists", v)
}

func (s *Server) listsPost(w http.ResponseWriter, r *http.Request, p *principal) {
	e := store.ListEntry{Scope: r.PostFormValue("scope"), Owner: r.PostFormValue("owner"), Kind: r.PostFormValue("kind"),
		Field: r.PostFormValue("field"), Mode: r.PostFormValue("mode"), Value: strings.TrimSpace(r.PostFormValue("value")),
		Action: r.PostFormValue("action"), Comment: r.PostFormValue("comment")}
	if _, err := s.opAddListEntry(r.Context(), p, e); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/lists", "added")
}

func (s *Server) listDelete(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opDeleteListEntry(r.Context(), p, atoi64(r.PathValue("id"))); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/lists", "deleted")
}

// --- queue ---

type queueData struct {
	State   string
	Entries []store.QueueEntry
}

func (s *Server) queuePage(w http.ResponseWriter, r *http.Request, p *principal) {
	tid, err := p.tid()
	if err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	st := store.RcptState(r.URL.Query().Get("state"))
	if st != store.Queued && st != store.Held {
		st = ""
	}
	es, err := s.d.Store.ListQueue(r.Context(), store.QueueFilter{TenantID: tid, State: st, Limit: 500})
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "nav_queue")
	v.Data = queueData{State: string(st), Entries: es}
	s.render(w, http.StatusOK, "queue", v)
}

func (s *Server) queueAction(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, err := s.opQueue(r.Context(), p, r.PathValue("id"), r.PathValue("action")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/queue", "done")
}

// --- tracking ---

type trackingData struct {
	Verdicts []string
	Q        map[string]string
	Rows     []store.TrackRow
	More     url.Values // query of the next (older) page; nil on the last
}

// trackFilter reads the tracking search form (console and API share it).
func (s *Server) trackFilter(r *http.Request, tid int64) (store.TrackFilter, error) {
	q := r.URL.Query()
	if err := checkSearchTerms(q, "sender", "rcpt", "subject", "id"); err != nil {
		return store.TrackFilter{}, err
	}
	f := store.TrackFilter{TenantID: tid, Sender: strings.TrimSpace(q.Get("sender")), Recipient: strings.TrimSpace(q.Get("rcpt")),
		Subject: strings.TrimSpace(q.Get("subject")), MessageID: strings.TrimSpace(q.Get("id")), Verdict: q.Get("verdict"),
		Direction: store.Direction(q.Get("dir")), Limit: 50, BeforeID: q.Get("before_id")}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n <= 500 {
		f.Limit = n
	}
	parse := func(v string, end bool) (time.Time, error) {
		if v == "" {
			return time.Time{}, nil
		}
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02"} {
			if t, err := time.ParseInLocation(layout, v, s.d.Zone); err == nil {
				if end && layout == "2006-01-02" {
					t = t.AddDate(0, 0, 1)
				}
				return t, nil
			}
		}
		return time.Time{}, badRequest("date %q: use YYYY-MM-DD", v)
	}
	var err error
	if f.From, err = parse(q.Get("from"), false); err != nil {
		return f, err
	}
	if f.To, err = parse(q.Get("to"), true); err != nil {
		return f, err
	}
	if b := q.Get("before"); b != "" {
		us, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			return f, badRequest("bad cursor")
		}
		f.BeforeTime = time.UnixMicro(us)
	}
	switch f.Verdict {
	case "", "queued", "delivered", "deferred", "bounced", "quarantined", "rejected", "discarded", "spam", "virus", "held":
	default:
		return f, badRequest("unknown verdict %q", f.Verdict)
	}
	switch f.Direction {
	case "", store.Inbound, store.Outbound, store.DSN:
	default:
		return f, badRequest("unknown direction %q", f.Direction)
	}
	return f, nil
}

func (s *Server) trackingPage(w http.ResponseWriter, r *http.Request, p *principal) {
	tid, err := p.tid()
	if err != nil {
		http.Redirect(w, r, "/tenants", http.StatusSeeOther)
		return
	}
	f, err := s.trackFilter(r, tid)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	rows, err := s.d.Store.SearchMessages(r.Context(), f)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	q := map[string]string{}
	for _, k := range []string{"sender", "rcpt", "subject", "id", "from", "to", "verdict", "dir"} {
		q[k] = r.URL.Query().Get(k)
	}
	d := trackingData{Q: q, Rows: rows, Verdicts: []string{"delivered", "queued", "deferred", "held", "bounced", "quarantined", "rejected", "discarded", "spam", "virus"}}
	if len(rows) == f.Limit && f.Limit > 0 {
		last := rows[len(rows)-1].Message
		nq := r.URL.Query()
		nq.Set("before", strconv.FormatInt(last.ReceivedAt.UnixMicro(), 10))
		nq.Set("before_id", last.ID)
		d.More = nq
	}
	v := s.newView(r, p, "nav_tracking")
	v.Data = d
	s.render(w, http.StatusOK, "tracking", v)
}

type messageData struct {
	Message    store.Message
	Recipients []store.Recipient
	Events     []store.Event
}

func (s *Server) messagePage(w http.ResponseWriter, r *http.Request, p *principal) {
	tid, err := p.tid()
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	m, rcpts, err := s.d.Store.Message(r.Context(), tid, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	evs, err := s.d.Store.Events(r.Context(), tid, m.ID)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "message_title")
	v.Data = messageData{m, rcpts, evs}
	s.render(w, http.StatusOK, "message", v)
}

// --- audit ---

func (s *Server) auditFilter(r *http.Request, p *principal) store.AuditFilter {
	q := r.URL.Query()
	f := store.AuditFilter{TenantID: p.tenantID, Actor: q.Get("actor"), Action: q.Get("action"), Limit: 200,
		BeforeID: atoi64(q.Get("before"))}
	if p.role == store.RoleOperator && p.tenantID == 0 {
		f.All = true
	}
	return f
}

type auditData struct {
	Actor, Action string
	Entries       []store.AuditEntry
	More          url.Values // query of the next (older) page; nil on the last
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, p *principal) {
	f := s.auditFilter(r, p)
	es, err := s.d.Store.AuditLog(r.Context(), f)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	d := auditData{Actor: f.Actor, Action: f.Action, Entries: es}
	if len(es) == f.Limit && f.Limit > 0 {
		nq := r.URL.Query()
		nq.Set("before", strconv.FormatInt(es[len(es)-1].ID, 10))
		d.More = nq
	}
	v := s.newView(r, p, "nav_audit")
	v.Data = d
	s.render(w, http.StatusOK, "audit", v)
}

// --- API tokens ---

type tokensData struct {
	Tokens []store.APIToken
	New    string // the secret of a just-created token, shown once
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request, p *principal) {
	ts, err := s.d.Store.APITokens(r.Context(), p.tenantID)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "nav_tokens")
	v.Data = tokensData{Tokens: ts}
	s.render(w, http.StatusOK, "tokens", v)
}

func (s *Server) tokensPost(w http.ResponseWriter, r *http.Request, p *principal) {
	_, secret, err := s.opCreateToken(r.Context(), p, r.PostFormValue("name"), r.PostFormValue("scope"))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	ts, _ := s.d.Store.APITokens(r.Context(), p.tenantID)
	v := s.newView(r, p, "nav_tokens")
	v.Data = tokensData{Tokens: ts, New: secret}
	s.render(w, http.StatusOK, "tokens", v)
}

func (s *Server) tokenRevoke(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opRevokeToken(r.Context(), p, atoi64(r.PathValue("id"))); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/tokens", "deleted")
}

// --- accounts ---

func (s *Server) accountsPage(w http.ResponseWriter, r *http.Request, p *principal) {
	as, err := s.admin.Accounts(r.Context(), who(p))
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "nav_accounts")
	v.Data = as
	s.render(w, http.StatusOK, "accounts", v)
}

func (s *Server) accountsPost(w http.ResponseWriter, r *http.Request, p *principal) {
	role := store.Role(r.PostFormValue("role"))
	if p.tenantID == 0 {
		role = store.RoleOperator
	}
	if _, err := s.opCreateAccount(r.Context(), p, r.PostFormValue("login"), role, r.PostFormValue("password")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/accounts", "added")
}

func (s *Server) accountPassword(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opSetPassword(r.Context(), p, atoi64(r.PathValue("id")), r.PostFormValue("password")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/accounts", "saved")
}

func (s *Server) accountTOTPReset(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opResetTOTP(r.Context(), p, atoi64(r.PathValue("id"))); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/accounts", "saved")
}

func (s *Server) accountDelete(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.opDeleteAccount(r.Context(), p, atoi64(r.PathValue("id"))); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/accounts", "deleted")
}

// accountData is the own account page: the account, whether it may have
// a mail app password (a tenant's login that is an address), and a new
// one to show once.
type accountData struct {
	store.Account
	MailApps    bool
	AppPassword string
}

func (s *Server) ownAccountPage(w http.ResponseWriter, r *http.Request, p *principal) {
	s.renderOwnAccount(w, p.acct, "", s.newView(r, p, "nav_account"))
}

func (s *Server) renderOwnAccount(w http.ResponseWriter, a store.Account, newApp string, v *view) {
	v.Data = accountData{Account: a, MailApps: a.TenantID != 0 && a.Role != store.RoleOperator && strings.Contains(a.Login, "@"), AppPassword: newApp}
	s.render(w, http.StatusOK, "account", v)
}

// ownAppPassword makes the caller's mail app password and shows it once.
func (s *Server) ownAppPassword(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	pw, err := s.admin.NewAppPassword(ctx, who(p), p.acct.ID)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	a, err := s.d.Store.Account(ctx, p.acct.ID)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	s.renderOwnAccount(w, a, pw, s.newView(r, p, "nav_account"))
}

func (s *Server) ownAppPasswordRemove(w http.ResponseWriter, r *http.Request, p *principal) {
	if err := s.admin.RemoveAppPassword(r.Context(), who(p), p.acct.ID); err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/account", "deleted")
}

// ownPassword changes the caller's password after checking the current one;
// every session of the account ends, and a new one starts for this browser.
func (s *Server) ownPassword(w http.ResponseWriter, r *http.Request, p *principal) {
	ctx := r.Context()
	if p.acct.Hash != "" {
		// Guessing the current password is throttled like a login.
		keys := []string{loginlimit.IPKey(p.ip.String()), loginlimit.LoginKey(p.acct.Login)}
		ok, wait := s.d.Throttle.Take(ctx, s.d.Clock.Now(), keys...)
		var err error
		if ok {
			_, err = s.checkPassword(ctx, p.acct.Login, r.PostFormValue("current"))
		}
		if !ok || errors.Is(err, errLoginBusy) {
			msg := "login_throttled"
			if ok { // nothing was checked: the attempt does not count
				s.d.Throttle.Refund(ctx, s.d.Clock.Now(), keys...)
				wait, msg = time.Second, "login_busy"
			}
			setRetryAfter(w, wait)
			v := s.newView(r, p, "error_title")
			v.Err = v.T(msg)
			s.render(w, http.StatusTooManyRequests, "error", v)
			return
		}
		if err != nil {
			s.fail(w, r, p, badRequest("%s", s.i18n.translator(s.i18n.lang(r, s.cookieName(langCookie), p.acct.Lang)).T("password_current_wrong")))
			return
		}
		s.d.Throttle.Refund(ctx, s.d.Clock.Now(), keys...)
	}
	if err := s.opSetPassword(ctx, p, p.acct.ID, r.PostFormValue("password")); err != nil {
		s.fail(w, r, p, err)
		return
	}
	a, err := s.d.Store.Account(ctx, p.acct.ID)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	// Sessions created in the same clock tick as the change stay valid;
	// keep this browser logged in with a session that already did MFA.
	tok := randomToken(32)
	now := s.d.Clock.Now().Add(time.Microsecond)
	sess := store.WebSession{ID: sha256Hex(tok), AccountID: a.ID, TenantID: a.TenantID, CSRF: randomToken(24), MFADone: true,
		RemoteIP: p.ip.String(), Created: now, LastSeen: now, Expires: now.Add(s.maxAge())}
	if err := s.d.Store.CreateSession(ctx, sess); err != nil {
		s.fail(w, r, p, err)
		return
	}
	s.setCookie(w, sessionCookie, tok, 0)
	done(w, r, "/account", "password_changed")
}

func (s *Server) ownLang(w http.ResponseWriter, r *http.Request, p *principal) {
	l := r.PostFormValue("lang")
	if l != "ja" && l != "en" && l != "" {
		s.fail(w, r, p, badRequest("unknown language"))
		return
	}
	p.acct.Lang = l
	if err := s.d.Store.UpdateAccount(r.Context(), p.acct); err != nil {
		s.fail(w, r, p, err)
		return
	}
	s.setCookie(w, langCookie, "", -1)
	done(w, r, "/account", "saved")
}

// mustBase32 decodes a TOTP secret as shown to the user (RFC 4648 base32,
// unpadded) back to the key bytes.
func mustBase32(s string) []byte {
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(s, "=")))
	if err != nil {
		return nil
	}
	return b
}
