// Package web is mailgate's web console and REST API. Both sit on one
// http.Handler, share one permission model and call the same operations
// (the administration layer, internal/admin, which the CLI calls too), so a
// change made in the console, through /api/v1 or with the CLI follows the
// same rules, lands in the same store and takes effect at once.
//
// Identities: system operators (every tenant), tenant administrators (one
// tenant) and end users (one address). Every handler works on the tenant
// the principal is bound to (an operator picks one); store lookups always
// carry that tenant ID, so an ID from another tenant is simply not found
// (404), never a leak.
//
// Security: server-side sessions (the cookie is a random token, the store
// keeps its hash), a per-session CSRF token checked on every unsafe console
// request, TOTP for operators and administrators, login throttling, per-tenant
// administrator IP allow-lists, a strict Content-Security-Policy with no
// inline script, html/template escaping everywhere, and an append-only audit
// log of every change.
package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/dnsx"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/netguard"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web/extauth"
)

// QueueAdmin is the queue's operator actions (queue.Queue).
type QueueAdmin interface {
	Hold(ctx context.Context, tenantID int64, id, who string) (int, error)
	Release(ctx context.Context, tenantID int64, id, who string) (int, error)
	RetryNow(ctx context.Context, tenantID int64, id, who string) (int, error)
	Delete(ctx context.Context, tenantID int64, id, who string) (int, error)
	Bounce(ctx context.Context, tenantID int64, id, who string) (int, error)
	Submit(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error)
}

// Deps are what the console acts on.
type Deps struct {
	Store      store.Store
	Queue      QueueAdmin
	Quarantine *quarantine.Manager
	// Learn trains the tenant's spam model with one message (feedback).
	Learn  func(ctx context.Context, tenantID int64, raw []byte, spam bool) error
	Config config.HTTPConfig
	// Hostname names mailgate in TOTP enrolment.
	Hostname string
	Clock    clock.Clock
	Log      *slog.Logger
	// Zone is the time zone of the dashboard and reports.
	Zone *time.Location
	// Quota is an address's quarantine capacity in bytes (shown to users).
	Quota func(ctx context.Context, tenantID int64, address string) int64
	// Extra handlers mounted on the same mux (metrics, health).
	Extra map[string]http.Handler
	// Admin makes every change; nil: one built from the fields above,
	// without a DNS resolver (domains cannot be verified).
	Admin *admin.Service
	// Passwords checks console passwords; the node shares one with SMTP
	// AUTH so that one memory budget bounds both. Nil: one of its own with
	// the default budget.
	Passwords PasswordVerifier
	// Throttle limits login and TOTP attempts; the node shares one with
	// SMTP AUTH. Nil: one of its own, in memory.
	Throttle LoginThrottle
	// APILimit limits API calls per token (APIRate). Nil: one of its own,
	// in memory.
	APILimit LoginThrottle
	// Resolver resolves the names of tenants' delegated login servers. Nil:
	// only IP literals and localhost resolve.
	Resolver dnsx.Resolver
	// Upstreams says which networks delegated logins may connect to; the
	// zero value permits public addresses only.
	Upstreams netguard.Policy
	// DeadAfter is how long a node may be silent before the dashboard
	// shows it as dead ([cluster] dead_after).
	DeadAfter time.Duration
	// Mailboxes are the users' mailboxes the webmail reads (nil: no
	// webmail on this node).
	Mailboxes *mailbox.Service
	// Submit sends a message written in the webmail as its user, through
	// the submission listener's rules and the outbound path; a refusal is
	// a *SubmitRefusal.
	Submit func(ctx context.Context, tenantID int64, address string, rcpts []string, body io.Reader, clientIP string) (string, error)
	// MaxMessageBytes is the largest message the node accepts ([limits]),
	// which bounds what the webmail sends.
	MaxMessageBytes int64
	// ConsoleURL is the console's public root URL, for the links in
	// invitation mails ("" : taken from the request).
	ConsoleURL string
}

// Server is the console and API.
type Server struct {
	d      Deps
	admin  *admin.Service
	mux    *http.ServeMux
	routes []Route
	oidc   oidcClients
	// upstream connects to delegated login servers; upstreamDown remembers
	// the ones that just failed.
	upstream     *netguard.Dialer
	upstreamDown failureCache
	proxies      []netip.Prefix
	i18n         *catalog
	pages        map[string]*pageTemplate
	views        viewCache    // the webmail reader's rendered messages
	counts       folderCounts // the webmail's folder counts
}

// Route describes one registered endpoint, for the permission matrix test
// and the OpenAPI description.
type Route struct {
	Method, Pattern string
	Min             store.Role // least powerful role allowed
	API             bool
	Public          bool // reachable without login (login pages, signed links)
	Write           bool
	// Mailbox routes (the webmail) act on the caller's own mailbox: a
	// caller without one (an operator) is refused with 404.
	Mailbox bool
}

// New builds the console. It does not listen.
func New(d Deps) (*Server, error) {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Zone == nil {
		d.Zone = time.Local
	}
	if d.Passwords == nil {
		d.Passwords = passwd.MustNew(passwd.Options{})
	}
	if d.Throttle == nil {
		d.Throttle = loginlimit.New(loginlimit.Options{})
	}
	if d.APILimit == nil {
		d.APILimit = loginlimit.New(APIRate)
	}
	if d.DeadAfter <= 0 {
		d.DeadAfter = 30 * time.Second
	}
	s := &Server{d: d, admin: d.Admin, mux: http.NewServeMux(),
		upstream: &netguard.Dialer{Policy: d.Upstreams, Resolver: d.Resolver, Timeout: extauth.DefaultTimeout}}
	if s.admin == nil {
		s.admin = &admin.Service{Store: d.Store, Quarantine: d.Quarantine, Learn: d.Learn, Clock: d.Clock, Log: d.Log}
		if q, ok := d.Queue.(admin.Queue); ok {
			s.admin.Queue = q
		}
		if d.Queue != nil {
			s.admin.Mailer = d.Queue
		}
		if d.Mailboxes != nil {
			s.admin.Mailboxes = d.Mailboxes
		}
	}
	for _, n := range d.Config.TrustedProxy {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxy %q: %w", n, err)
		}
		s.proxies = append(s.proxies, p)
	}
	var err error
	if s.i18n, err = loadCatalog(); err != nil {
		return nil, err
	}
	if s.pages, err = loadPages(d.Zone); err != nil {
		return nil, err
	}
	s.consoleRoutes()
	s.apiRoutes()
	s.archiveAPIRoutes()
	for pat, h := range d.Extra {
		s.mux.Handle(pat, h)
	}
	return s, nil
}

// Routes lists every registered endpoint.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// ServeHTTP adds the security headers every response carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if h.Get("Content-Security-Policy") == "" {
		h.Set("Content-Security-Policy", consoleCSP)
	}
	if s.d.Config.TLS {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	limit := int64(8 << 20)
	if r.Method == http.MethodPost && r.URL.Path == "/mail/compose" {
		// A message with its attachments, as the browser uploads them.
		limit = max(limit, s.d.MaxMessageBytes+1<<20)
		if r.ContentLength > limit {
			// Said plainly before anything reads the form (its CSRF token
			// too): the upload is larger than any message may be.
			http.Error(w, fmt.Sprintf("The message with its attachments is larger than %d MB, the most this server accepts.", limit>>20),
				http.StatusRequestEntityTooLarge)
			return
		}
	}
	// Archive imports (mbox files) are bounded by their own handler.
	if r.URL.Path != "/archive/import" {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	s.mux.ServeHTTP(w, r)
}

// consoleCSP allows only our own scripts and styles; the quarantine preview
// frame has a stricter policy of its own.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'; connect-src 'self'"

// handlerFunc is a handler that knows its caller.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *principal)

// handle registers a console route.
func (s *Server) handle(pattern string, min store.Role, h handlerFunc) {
	method, _, _ := strings.Cut(pattern, " ")
	rt := Route{Method: method, Pattern: pattern, Min: min, Write: method != http.MethodGet}
	s.routes = append(s.routes, rt)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, err := s.sessionPrincipal(r)
		if err != nil {
			s.d.Log.Error("session lookup", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if p == nil || !p.mfaDone() {
			if r.Method == http.MethodGet {
				dest := "/login"
				if p != nil {
					dest = "/login/totp"
				}
				http.Redirect(w, r, dest+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "login required", http.StatusUnauthorized)
			return
		}
		if rt.Write && !s.csrfOK(r, p) {
			http.Error(w, "invalid or missing CSRF token; reload the page", http.StatusForbidden)
			return
		}
		if !roleAtLeast(p.role, min) {
			s.forbidden(w, r, p)
			return
		}
		if err := s.checkIP(r.Context(), p); err != nil {
			s.forbidden(w, r, p)
			return
		}
		h(w, r, p)
	})
}

// public registers a route that needs no login.
func (s *Server) public(pattern string, h http.HandlerFunc) {
	method, _, _ := strings.Cut(pattern, " ")
	s.routes = append(s.routes, Route{Method: method, Pattern: pattern, Public: true, Write: method != http.MethodGet})
	s.mux.HandleFunc(pattern, h)
}

func roleAtLeast(have, need store.Role) bool {
	rank := map[store.Role]int{store.RoleUser: 1, store.RoleAdmin: 2, store.RoleOperator: 3}
	return rank[have] >= rank[need] && rank[have] > 0
}

// clientIP is the peer address, or the last untrusted hop of
// X-Forwarded-For when the peer is a configured reverse proxy.
func (s *Server) clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	ip = ip.Unmap()
	if !inPrefixes(ip, s.proxies) {
		return ip
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip
		}
		h = h.Unmap()
		if !inPrefixes(h, s.proxies) {
			return h
		}
		ip = h
	}
	return ip
}

func inPrefixes(ip netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// checkIP applies the tenant's administrator IP allow-list (setting
// console.admin_ips: comma-separated networks; empty = anywhere) to
// administrators, and console.user_ips to end users.
func (s *Server) checkIP(ctx context.Context, p *principal) error {
	if p.role == store.RoleOperator || p.tenantID == 0 {
		return nil
	}
	key := "console.admin_ips"
	if p.role == store.RoleUser {
		key = "console.user_ips"
	}
	v, err := s.tenantSetting(ctx, p.tenantID, key)
	if err != nil {
		return err
	}
	if strings.TrimSpace(v) == "" {
		return nil
	}
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		pre, err := netip.ParsePrefix(n)
		if err != nil {
			a, err2 := netip.ParseAddr(n)
			if err2 != nil {
				continue
			}
			pre = netip.PrefixFrom(a, a.BitLen())
		}
		if pre.Contains(p.ip) {
			return nil
		}
	}
	return errForbidden
}

var errForbidden = errors.New("forbidden")

func (s *Server) tenantSetting(ctx context.Context, tenantID int64, key string) (string, error) {
	get, err := s.tenantSettings(ctx, tenantID)
	if err != nil {
		return "", err
	}
	v, _ := get(key)
	return v, nil
}

// tenantSettings returns a lookup of the tenant-level policy values.
func (s *Server) tenantSettings(ctx context.Context, tenantID int64) (func(key string) (string, bool), error) {
	return admin.TenantSettings(ctx, s.d.Store, tenantID)
}

// randomToken returns n random bytes, URL-safe encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// safeNext keeps a redirect after login or a language switch on this site:
// next must be a path of this origin with no scheme, host or user. Browsers
// drop tabs and newlines from a Location and read a backslash as a slash,
// so "/<tab>/evil.test" or "/<backslash>evil.test" would leave the site:
// the raw target may hold no whitespace, control character or backslash,
// and its decoded path no control character or backslash either, nor start
// with "//" (for parsers that decode before resolving). Anything else
// becomes "/".
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(next, func(c rune) bool { return unsafeInRedirect(c) || unicode.IsSpace(c) }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") || strings.ContainsFunc(u.Path, unsafeInRedirect) {
		return "/"
	}
	return next
}

// unsafeInRedirect reports characters a URL parser may strip or read as a
// slash.
func unsafeInRedirect(c rune) bool {
	return c == '\\' || c == utf8.RuneError || unicode.IsControl(c) || c == '\u2028' || c == '\u2029'
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
