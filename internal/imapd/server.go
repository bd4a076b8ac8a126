// Package imapd serves the emergency mailboxes (internal/mailbox) over IMAP
// with go-imap v2's server (third_party/go-imap, which carries the few
// extensions the library lacks: ID, QUOTA, CONDSTORE, an APPEND check before
// the literal is read, timeouts that say goodbye).
//
// It speaks IMAP4rev1 and IMAP4rev2 with IDLE, UIDPLUS, MOVE, SPECIAL-USE,
// NAMESPACE, ENABLE, LITERAL+, ID, CONDSTORE, QUOTA and UTF8=ACCEPT, on a
// STARTTLS listener (port 143 style) and an implicit-TLS one (993 style).
// Passwords are only accepted over TLS. Logins are the console accounts of
// the tenants' users (local argon2id hashes), checked within the node's
// password memory budget and through the same login throttle as the
// console and SMTP AUTH.
//
// Each session keeps the view of its selected folder (UIDs, flags,
// mod-sequences) in memory and learns of changes from the store: at once
// when this node made them (mailbox.Bus), and by polling the folder's
// mod-sequence for changes made on other nodes.
package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
)

// PasswordVerifier checks passwords within the process-wide memory budget
// (passwd.Verifier, shared with the console and SMTP AUTH). Both methods
// return passwd.ErrBusy, without checking, when the budget is taken.
type PasswordVerifier interface {
	Verify(ctx context.Context, encoded, password string) error
	VerifyDummy(ctx context.Context, password string) error
}

// LoginThrottle limits password guessing per client network and per login
// (loginlimit.Memory, shared with the console and SMTP AUTH).
type LoginThrottle interface {
	Take(ctx context.Context, now time.Time, keys ...string) (bool, time.Duration)
	Refund(ctx context.Context, now time.Time, keys ...string)
}

var (
	_ PasswordVerifier = (*passwd.Verifier)(nil)
	_ LoginThrottle    = (*loginlimit.Memory)(nil)
)

// Tenant settings that override the configured connection limits.
const (
	KeyMaxConns        = "imap.max_connections"
	KeyMaxConnsPerUser = "imap.max_connections_per_user"
)

// Deps are what a Server needs.
type Deps struct {
	Mailboxes *mailbox.Service
	TLS       *tls.Config
	Passwords PasswordVerifier
	Throttle  LoginThrottle
	Clock     clock.Clock
	Log       *slog.Logger
	Config    config.IMAPConfig
	// MaxMessageBytes bounds an APPEND (limits.max_message_bytes).
	MaxMessageBytes int64
	// RequireTOTP is http.require_totp: administrators and operators
	// have a second factor, so they log in with a mail app password.
	RequireTOTP bool
	// Command, when set, is told each command's name (metrics).
	Command func(name string)
}

// Server is an IMAP server over the mailboxes. Safe for concurrent use.
type Server struct {
	d   Deps
	srv *imapserver.Server

	mu        sync.Mutex
	conns     int
	perIP     map[netip.Addr]int
	perTenant map[int64]int
	perUser   map[int64]int // by mailbox ID
	users     map[int64]userCount
	nextID    uint64
	listeners []net.Listener
	wg        sync.WaitGroup
	closed    bool
	cache     *viewCache
}

type userCount struct {
	n  int
	at time.Time
}

// Capabilities advertised.
var caps = imap.CapSet{
	imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {},
	imap.CapNamespace: {}, imap.CapUIDPlus: {}, imap.CapMove: {}, imap.CapSpecialUse: {}, imap.CapCreateSpecialUse: {},
	imap.CapLiteralPlus: {}, imap.CapID: {}, imap.CapCondStore: {}, imap.CapQuota: {}, imap.Cap("QUOTA=RES-STORAGE"): {},
	imap.CapESearch: {}, imap.CapListExtended: {}, imap.CapListStatus: {}, imap.CapStatusSize: {}, imap.CapChildren: {},
}

// New builds a server; Serve and ServeTLS start listeners.
func New(d Deps) *Server {
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Throttle == nil {
		d.Throttle = loginlimit.New(loginlimit.Options{})
	}
	if d.MaxMessageBytes <= 0 {
		d.MaxMessageBytes = 100 << 20
	}
	d.Config = d.Config.WithDefaults()
	s := &Server{d: d, perIP: map[netip.Addr]int{}, perTenant: map[int64]int{}, perUser: map[int64]int{}, users: map[int64]userCount{}, cache: newViewCache()}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession:     s.newSession,
		Caps:           caps,
		Logger:         slogPrinter{d.Log},
		TLSConfig:      d.TLS,
		IdleTimeout:    d.Config.IdleTimeout.Duration,
		CommandTimeout: d.Config.CommandTimeout.Duration,
		Command:        d.Command,
	})
	return s
}

// slogPrinter passes the library's messages to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.l.Warn("imap: " + strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// Serve accepts connections on a STARTTLS listener.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln) }

// ServeTLS accepts connections that start with TLS (implicit TLS).
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.d.TLS == nil {
		return errors.New("imap: implicit TLS needs a certificate")
	}
	return s.serve(tls.NewListener(ln, s.d.TLS))
}

func (s *Server) serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("imap: server closed")
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	return s.srv.Serve(ln)
}

// Close stops the listeners and ends every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.srv.Close()
}

// Conns is the number of open connections (tests, metrics).
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

var errByeBusy = &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Too many connections, try again later"}

// newSession admits a connection within the node-wide and per-IP limits.
func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	ip := remoteIP(c.NetConn())
	s.mu.Lock()
	if s.conns >= s.d.Config.MaxConns || s.perIP[ip] >= s.d.Config.MaxConnPerIP {
		s.mu.Unlock()
		s.d.Log.Warn("imap connection refused: limit", "ip", ip.String())
		return nil, nil, errByeBusy
	}
	s.conns++
	s.perIP[ip]++
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	se := &session{s: s, conn: c, ip: ip, log: s.d.Log.With("imap_conn", id, "ip", ip.String())}
	se.log.Debug("imap connection")
	return se, nil, nil
}

func (s *Server) release(ip netip.Addr) {
	s.mu.Lock()
	s.conns--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.mu.Unlock()
}

func remoteIP(c net.Conn) netip.Addr {
	if c == nil {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// errLimit is the answer when a tenant's or user's connections are all
// taken (RFC 9051 7.1: LIMIT).
func errLimit(what string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit,
		Text: "Too many connections for this " + what + "; close another mail program or try again later"}
}

// acquireSlots takes a connection of the tenant and of the user, or
// returns errLimit. The tenant's limit is imap.max_connections, else
// the configured one, else half its users, at least 10 (on each node).
func (s *Server) acquireSlots(ctx context.Context, mb store.Mailbox) (func(), error) {
	tenantMax, userMax := s.d.Config.MaxConnsPerTenant, s.d.Config.MaxConnsPerUser
	if v, ok := s.tenantSetting(ctx, mb.TenantID, KeyMaxConns); ok {
		tenantMax = v
	}
	if v, ok := s.tenantSetting(ctx, mb.TenantID, KeyMaxConnsPerUser); ok {
		userMax = v
	}
	if tenantMax <= 0 {
		tenantMax = max(10, s.userCount(ctx, mb.TenantID)/2)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perTenant[mb.TenantID] >= tenantMax {
		return nil, errLimit("organisation")
	}
	if s.perUser[mb.ID] >= userMax {
		return nil, errLimit("user")
	}
	s.perTenant[mb.TenantID]++
	s.perUser[mb.ID]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.perTenant[mb.TenantID]--; s.perTenant[mb.TenantID] <= 0 {
			delete(s.perTenant, mb.TenantID)
		}
		if s.perUser[mb.ID]--; s.perUser[mb.ID] <= 0 {
			delete(s.perUser, mb.ID)
		}
	}, nil
}

func (s *Server) tenantSetting(ctx context.Context, tenantID int64, key string) (int, bool) {
	ss, err := s.d.Mailboxes.Store.Settings(ctx, tenantID)
	if err != nil {
		return 0, false
	}
	for _, st := range ss {
		if st.Scope == store.ScopeTenant && st.Key == key {
			if n, err := strconv.Atoi(strings.TrimSpace(st.Value)); err == nil && n > 0 {
				return n, true
			}
		}
	}
	return 0, false
}

// userCount is the tenant's number of users, read at most once a minute.
func (s *Server) userCount(ctx context.Context, tenantID int64) int {
	now := s.d.Clock.Now()
	s.mu.Lock()
	c, ok := s.users[tenantID]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < time.Minute {
		return c.n
	}
	us, err := s.d.Mailboxes.Store.Users(ctx, tenantID)
	if err != nil {
		return c.n
	}
	s.mu.Lock()
	s.users[tenantID] = userCount{n: len(us), at: now}
	s.mu.Unlock()
	return len(us)
}
