// Package smtpin is mailgate's SMTP ingress: the internet-facing MX listener
// and the outbound relay listener for customers' own servers. It owns the
// protocol (go-smtp), connection limits, recipient checks and the durable
// accept of DATA; it holds no filtering policy. A message is answered 250
// only after its blob is fsynced by the spool and its envelope committed by
// the queue.
package smtpin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/versioned"
)

// Kind says which listener a server is.
type Kind int

// Listener kinds.
const (
	// Inbound is the MX: recipients must be users of a served domain.
	Inbound Kind = iota
	// Outbound is the smart-host relay: clients must come from a registered
	// network or authenticate, and the sender must be in their tenant's domains.
	Outbound
	// Submission is message submission for end users' mail apps (RFC
	// 6409): SMTP AUTH with the user's console login is required, and the
	// sender and author must be the user's own address. Mail goes out as
	// the relay's does.
	Submission
)

func (k Kind) String() string {
	switch k {
	case Outbound:
		return "outbound"
	case Submission:
		return "submission"
	}
	return "inbound"
}

// Enqueuer takes a message whose blob is durable and makes its envelope
// durable; it returns only after the commit. The queue implements it.
type Enqueuer interface {
	Enqueue(ctx context.Context, m store.Message, rcpts []store.Recipient, events []store.Event) error
}

// Deps are what a Server needs.
type Deps struct {
	Kind     Kind
	Hostname string
	Listener config.ListenerConfig
	Limits   config.LimitsConfig
	TLS      *tls.Config // nil: no STARTTLS
	Store    Store
	Spool    blob.Store // message bodies
	Queue    Enqueuer
	Log      *slog.Logger
	Clock    clock.Clock
	// ScanBudget is how long the checks of one message may take
	// (checks.budget, enforced by the policy runner). The accept deadline
	// of a message is ScanBudget plus commitTimeout, so writing the
	// accepted message never fails because the checks used their budget.
	ScanBudget time.Duration
	// Postmaster is where RCPT TO:<Postmaster> goes on the inbound
	// listener (config postmaster); empty: postmaster@ the served domain
	// that Hostname is in.
	Postmaster string

	// Passwords checks SMTP AUTH passwords; the node shares one with the
	// console so that one memory budget bounds both. Nil: one of its own.
	Passwords PasswordVerifier
	// AuthThrottle limits SMTP AUTH guessing; the node shares one with the
	// console. Nil: one of its own, in memory.
	AuthThrottle AuthThrottle
	// RequireTOTP is http.require_totp: on the submission listener,
	// administrators have a second factor, so they authenticate with a
	// mail app password (store.Account.MailHash).
	RequireTOTP bool
	// Lists answers RCPT for mailing list addresses and their bounce
	// addresses (mlist.Service) on every listener; nil: no lists.
	Lists ListChecker
	// Observer, when set, hears of sessions and replies (metrics).
	Observer Observer
	// Recipients answers on the inbound listener for an address of a
	// served domain that neither the tenant's user list nor a mailing
	// list knows, by the domain's recipient check (dirsync.Verifier:
	// directory or callout); nil: such an address is unknown.
	Recipients RecipientVerifier
}

// RecipientVerifier decides whether a served domain's address exists at
// the customer's primary service. An error means it cannot tell now: the
// recipient is deferred (450), never refused.
type RecipientVerifier interface {
	VerifyRecipient(ctx context.Context, d store.Domain, address string) (bool, error)
}

// ListChecker decides whether a sender may send to a mailing list
// (mlist.Service.CheckPost).
type ListChecker interface {
	CheckPost(ctx context.Context, sender, rcpt string) (mlist.Post, error)
}

// Server is one SMTP listener (possibly on several addresses).
type Server struct {
	d     Deps
	smtp  *smtp.Server
	log   *slog.Logger
	mu    sync.Mutex
	perIP map[string]int
	total int
	live  map[*trackedConn]struct{}
	seq   atomic.Uint64
	// base is the parent of every connection's context; Shutdown cancels
	// it once the sessions are told to go.
	base     context.Context
	stopBase context.CancelFunc

	// addressing is the served domains and relay networks at the store's
	// addressing version; settings the tenants' settings at their policy
	// versions. Each message reads the versions once (its session's
	// versioned.Memo) instead of the tables.
	addressing store.AddressingCache
	settings   versioned.Cache[store.SettingLayers]

	// lastTenant is the tenant each client address relayed, submitted or
	// delivered for last (at most maxLastTenants of them): the likely tenant of its
	// next message, whose versions a transaction reads ahead. Only a
	// guess: the lookups decide the tenant.
	lastMu     sync.Mutex
	lastTenant map[string]int64
}

// maxLastTenants bounds Server.lastTenant; past it, it starts again.
const maxLastTenants = 10000

// rememberTenant notes the tenant a client address sent for.
func (s *Server) rememberTenant(ip string, tenantID int64) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	if s.lastTenant == nil || len(s.lastTenant) >= maxLastTenants {
		s.lastTenant = map[string]int64{}
	}
	s.lastTenant[ip] = tenantID
}

// likelyTenant is the tenant a client address sent for last, 0 for none.
func (s *Server) likelyTenant(ip string) int64 {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.lastTenant[ip]
}

// New builds a server; call Serve with each listener.
func New(d Deps) *Server {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Clock == nil {
		d.Clock = clock.System{}
	}
	if d.Passwords == nil {
		d.Passwords = passwd.MustNew(passwd.Options{})
	}
	if d.AuthThrottle == nil {
		d.AuthThrottle = loginlimit.New(loginlimit.Options{})
	}
	s := &Server{d: d, perIP: map[string]int{}, live: map[*trackedConn]struct{}{}, log: d.Log.With("listener", d.Kind.String())}
	s.base, s.stopBase = context.WithCancel(context.Background())
	srv := smtp.NewServer(s)
	srv.Domain = d.Hostname
	srv.MaxMessageBytes = d.Limits.MaxMessageBytes
	srv.MaxRecipients = d.Limits.MaxRecipients
	srv.MaxLineLength = d.Limits.MaxLineBytes
	srv.ReadTimeout = d.Limits.CommandTimeout.Duration
	srv.WriteTimeout = d.Limits.CommandTimeout.Duration
	srv.TLSConfig = d.TLS
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.AllowInsecureAuth = false
	srv.ErrorLog = slogLogger{s.log}
	s.smtp = srv
	return s
}

type slogLogger struct{ l *slog.Logger }

// go-smtp logs client-side failures (resets, timeouts) here: not our errors.
func (l slogLogger) Printf(format string, v ...any) { l.l.Info(fmt.Sprintf(format, v...)) }
func (l slogLogger) Println(v ...any)               { l.l.Info(fmt.Sprint(v...)) }

// Serve accepts connections on l until Shutdown. It wraps l to enforce
// per-IP and total connection limits before go-smtp sees the connection.
func (s *Server) Serve(l net.Listener) error {
	err := s.smtp.Serve(&limitListener{Listener: l, s: s})
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil // closed by Shutdown
	}
	return err
}

// ServeTLS is Serve for a listener whose clients start with TLS (implicit
// TLS, RFC 8314: submission on port 465). The handshake runs before the
// greeting, after the connection limits.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.d.TLS == nil {
		return errors.New("implicit TLS listener without a certificate")
	}
	err := s.smtp.Serve(tls.NewListener(&limitListener{Listener: l, s: s, implicitTLS: true}, s.d.TLS))
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// ShutdownGrace is how long sessions may go on after Shutdown before they
// are told 421 and closed.
const ShutdownGrace = 5 * time.Second

// Shutdown stops accepting, lets sessions finish for ShutdownGrace (or
// until ctx ends), then says 421 to the remaining ones (RFC 5321 3.8) and
// closes them. Nothing acknowledged is at risk: a message is only ever
// acknowledged after it is durable.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.stopBase()
	done := make(chan error, 1)
	go func() { done <- s.smtp.Shutdown(ctx) }()
	grace := time.NewTimer(ShutdownGrace)
	defer grace.Stop()
	var err error
	select {
	case err = <-done:
	case <-grace.C:
		s.goodbye()
		err = <-done
	case <-ctx.Done():
		s.goodbye()
		err = <-done
	}
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

func (s *Server) goodbye() {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c.Conn, "421 4.3.2 Service shutting down, try again later\r\n")
		s.observeReply(421, "4.3.2")
		c.Close()
	}
}

type limitListener struct {
	net.Listener
	s *Server
	// implicitTLS: the client speaks first (its TLS hello), which is not
	// the early talking a plain SMTP client is refused for.
	implicitTLS bool
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr())
		if tc, ok := l.s.admit(c, ip); ok {
			tc.(*trackedConn).greeted = l.implicitTLS
			return tc, nil
		}
	}
}

// admit applies connection limits; a refused client gets 421 and is closed.
func (s *Server) admit(c net.Conn, ip string) (net.Conn, bool) {
	lc := s.d.Listener
	s.mu.Lock()
	over := (lc.MaxConnPerIP > 0 && s.perIP[ip] >= lc.MaxConnPerIP) || (lc.MaxConns > 0 && s.total >= lc.MaxConns)
	if !over {
		s.perIP[ip]++
		s.total++
	}
	s.mu.Unlock()
	if over {
		s.log.Info("connection refused: limit reached", "client", ip)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "421 4.7.0 Too many connections, try again later\r\n")
		s.observeReply(421, "4.7.0")
		c.Close()
		return nil, false
	}
	tc := &trackedConn{Conn: c, s: s, ip: ip, idle: s.d.Limits.CommandTimeout.Duration, id: s.seq.Add(1)}
	tc.ctx, tc.cancel = context.WithCancel(s.base)
	s.mu.Lock()
	s.live[tc] = struct{}{}
	s.mu.Unlock()
	if o := s.d.Observer; o != nil {
		o.SessionOpened(s.d.Kind)
	}
	return tc, true
}

// observeReply tells the observer of a reply written outside a session.
func (s *Server) observeReply(code int, enhanced string) {
	if o := s.d.Observer; o != nil {
		o.Reply(s.d.Kind, code, enhanced)
	}
}

func (s *Server) release(ip string, tc *trackedConn) {
	s.mu.Lock()
	delete(s.live, tc)
	s.perIP[ip]--
	if s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.total--
	s.mu.Unlock()
}

func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// trackedConn renews the idle deadline on every read (go-smtp sets one per
// command, which would bound a whole DATA transfer), checks for early
// talkers before the greeting, and lets a session close the connection
// after its response is written. Its context ends when the connection is
// closed (by the session's end or by Shutdown), which stops the checks of
// a message nobody is waiting for any more.
type trackedConn struct {
	net.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	s       *Server
	ip      string
	id      uint64
	idle    time.Duration
	closing atomic.Bool
	greeted bool
	early   bool
	once    sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.closing.Load() || c.early {
		return 0, io.EOF
	}
	if c.idle > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(p)
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if !c.greeted {
		c.greeted = true
		if c.s.d.Limits.RejectTalkFirst && c.talkedFirst() {
			c.early = true
			c.s.log.Info("client talked before greeting", "client", c.ip)
			io.WriteString(c.Conn, "554 5.5.0 Protocol error: data sent before greeting\r\n")
			c.s.observeReply(554, "5.5.0")
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// talkedFirst reports whether the client sent anything before our greeting
// (RFC 5321 3.1: the client waits for it). The byte peeked is never handed
// to the protocol: such clients are refused.
func (c *trackedConn) talkedFirst() bool {
	wait := c.s.d.Limits.GreetDelay.Duration
	c.Conn.SetReadDeadline(time.Now().Add(wait + time.Millisecond))
	var b [1]byte
	n, _ := c.Conn.Read(b[:])
	c.Conn.SetReadDeadline(time.Time{})
	return n > 0
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.s.release(c.ip, c)
		if o := c.s.d.Observer; o != nil {
			o.SessionClosed(c.s.d.Kind)
		}
	})
	return c.Conn.Close()
}

// closeAfterReply makes the next read return EOF, so go-smtp writes the
// current reply and then ends the session.
func (c *trackedConn) closeAfterReply() { c.closing.Store(true) }

func unwrapTracked(c net.Conn) *trackedConn {
	for i := 0; i < 3 && c != nil; i++ {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}
