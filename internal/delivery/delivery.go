// Package delivery sends a queued message to its destination over SMTP:
// route resolution (configured targets or MX lookup through mailgate's own
// resolver), per-destination concurrency, connection reuse, opportunistic or
// required STARTTLS, an optional client certificate, and per-recipient
// results. It never decides about retries; the queue does.
package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/bufpool"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store"
)

// Resolver is the part of dnsx.Resolver delivery needs.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// TLS modes of a route.
const (
	TLSOpportunistic = "opportunistic" // STARTTLS when offered, plaintext when not or when the handshake fails
	TLSRequired      = "required"      // STARTTLS must succeed; certificate not verified (Postfix "encrypt")
	TLSVerify        = "verify"        // STARTTLS with a certificate valid for the host name
	TLSNone          = "none"
)

// Target is one host to try, in order.
type Target struct {
	Host string // name or IP
	Port int
	TLS  string
	// Mailbox says the target is mailgate's own mailboxes, not an SMTP
	// host (MailboxTarget, delivered by Dispatcher).
	Mailbox bool
	// Hosted marks the mailbox target of a hosted domain (HostedTarget).
	Hosted bool
	// TLSA are the host's usable DANE records (TLS mode TLSDANE) in
	// presentation form, "usage selector type hex" joined by ";" (a string
	// keeps Target comparable).
	TLSA string
}

func (t Target) key() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) + "/" + t.TLS }

// ParseTarget reads a route target "smtp://host:port" (port default 25).
func ParseTarget(s, tlsMode string) (Target, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "smtp" || u.Host == "" {
		return Target{}, fmt.Errorf("route target %q: want smtp://host[:port]", s)
	}
	port := 25
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return Target{}, fmt.Errorf("route target %q: bad port", s)
		}
	}
	if tlsMode == "" {
		tlsMode = TLSOpportunistic
	}
	switch tlsMode {
	case TLSOpportunistic, TLSRequired, TLSVerify, TLSNone:
	default:
		return Target{}, fmt.Errorf("tls mode %q: want opportunistic, required, verify or none", tlsMode)
	}
	return Target{Host: u.Hostname(), Port: port, TLS: tlsMode}, nil
}

// Result is the outcome for one recipient.
type Result struct {
	Rcpt      string
	Code      int    // SMTP reply code; 0 when no reply was received
	Enhanced  string // "5.1.1"
	Text      string // the reply text, or our description of a local/network error
	Remote    string // host that answered
	Permanent bool   // 5xx: bounce now
	// TLS says how the connection was protected ("TLS 1.3
	// TLS_AES_128_GCM_SHA256, verified by DANE", "none"); "" when no
	// connection was made.
	TLS string
	// NextHopDSN says the host that took the message advertised DSN
	// (RFC 3461), so it was handed each recipient's NOTIFY and ORCPT and
	// reports on the message from there on; when false, a recipient that
	// asked for NOTIFY=SUCCESS gets a "relayed" notice from us.
	NextHopDSN bool
}

// OK reports success.
func (r Result) OK() bool { return r.Code/100 == 2 }

// Request is one message for one set of recipients.
type Request struct {
	From    string
	Rcpts   []string
	ORcpt   []string // per recipient "type;addr" or ""
	Notify  []string
	EnvID   string
	RetFull bool
	UTF8    bool
	Body8   bool
	Body    func() (io.ReadCloser, error) // opened per attempt
	// The queue message being delivered: a mailbox delivery is
	// idempotent by its ID, and keeps when it was received.
	TenantID  int64
	MessageID string
	Received  time.Time
}

// Client delivers messages. Safe for concurrent use.
type Client struct {
	hostname string
	cfg      config.DeliveryConfig
	res      Resolver
	log      *slog.Logger
	cert     *tls.Certificate
	dialer   func(ctx context.Context, network, addr string) (net.Conn, error)

	mu   sync.Mutex
	sem  map[string]chan struct{}
	idle map[string][]*pooled
	// sweeping: a timer to close expired idle connections is pending.
	sweeping bool
}

type pooled struct {
	c      *smtp.Client
	conn   net.Conn
	uses   int
	idleAt time.Time
	remote string
	tls    string // Result.TLS of the connection
}

// New builds a client. cert may be nil.
func New(hostname string, cfg config.DeliveryConfig, res Resolver, cert *tls.Certificate, log *slog.Logger) *Client {
	if log == nil {
		log = slog.Default()
	}
	d := &net.Dialer{Timeout: cfg.ConnectTimeout.Duration}
	return &Client{hostname: hostname, cfg: cfg, res: res, log: log, cert: cert, dialer: d.DialContext,
		sem: map[string]chan struct{}{}, idle: map[string][]*pooled{}}
}

// MXTargets resolves a domain's MX hosts (RFC 5321 5.1): MX records by
// preference, the domain itself when there is no MX, and a permanent error
// for a null MX (RFC 7505).
func (c *Client) MXTargets(ctx context.Context, domain, tlsMode string) ([]Target, error) {
	if c.res == nil {
		return nil, &TempError{"no DNS resolver configured"}
	}
	mxs, err := c.res.LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	if err != nil {
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			// No MX: the domain's own address records (implicit MX).
			return []Target{{Host: domain, Port: 25, TLS: tlsMode}}, nil
		}
		return nil, &TempError{fmt.Sprintf("MX lookup for %s: %v", domain, err)}
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, &PermError{Enhanced: "5.1.10", Text: "domain " + domain + " accepts no mail (null MX)"}
	}
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })
	var out []Target
	for _, mx := range mxs {
		out = append(out, Target{Host: strings.TrimSuffix(mx.Host, "."), Port: 25, TLS: tlsMode})
	}
	return out, nil
}

// TempError is a failure before any destination answered that is worth retrying.
type TempError struct{ Text string }

func (e *TempError) Error() string { return e.Text }

// PermError is a failure that no retry will fix.
type PermError struct{ Enhanced, Text string }

func (e *PermError) Error() string { return e.Text }

// Deliver tries targets in order until one gives an answer for the
// recipients. Network failures and 4xx greetings move on to the next target;
// a reply to RCPT or DATA is final for this attempt.
func (c *Client) Deliver(ctx context.Context, targets []Target, req Request) []Result {
	var last string
	for _, t := range targets {
		res, err := c.deliverTo(ctx, t, req)
		if err == nil {
			return res
		}
		last = fmt.Sprintf("%s: %v", t.Host, err)
		c.log.Info("delivery target failed", "target", t.key(), "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	if last == "" {
		last = "no delivery target"
	}
	return allResults(req.Rcpts, Result{Code: 0, Enhanced: "4.4.1", Text: last})
}

func allResults(rcpts []string, r Result) []Result {
	out := make([]Result, len(rcpts))
	for i, rc := range rcpts {
		out[i] = r
		out[i].Rcpt = rc
	}
	return out
}

// acquire takes a slot of the destination's concurrency limit.
func (c *Client) acquire(ctx context.Context, key string) (func(), error) {
	c.mu.Lock()
	ch, ok := c.sem[key]
	if !ok {
		n := c.cfg.PerDestination
		if n <= 0 {
			n = 20
		}
		ch = make(chan struct{}, n)
		c.sem[key] = ch
	}
	c.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// deliverTo returns an error only when the target gave no usable answer
// (connection, greeting or TLS failure), so the caller tries the next one.
func (c *Client) deliverTo(ctx context.Context, t Target, req Request) ([]Result, error) {
	release, err := c.acquire(ctx, t.key())
	if err != nil {
		return nil, err
	}
	defer release()

	p, reused, err := c.get(ctx, t)
	if err != nil {
		return nil, err
	}
	res, err := c.transaction(ctx, p, req)
	if errors.Is(err, errConnBroken) {
		p.conn.Close()
		return res, nil
	}
	if err != nil && reused {
		// A cached connection may have been closed by the server meanwhile.
		p.conn.Close()
		if p, err = c.dial(ctx, t); err != nil {
			return nil, err
		}
		res, err = c.transaction(ctx, p, req)
		if errors.Is(err, errConnBroken) {
			p.conn.Close()
			return res, nil
		}
	}
	if err != nil {
		p.conn.Close()
		return nil, err
	}
	for i := range res {
		res[i].TLS = p.tls
	}
	c.put(t, p)
	return res, nil
}

// transaction runs MAIL, RCPT..., DATA on a connection. It returns an error
// for network/protocol failures before any recipient got an answer, and
// errConnBroken with the results when the connection must not be used
// again.
func (c *Client) transaction(ctx context.Context, p *pooled, req Request) ([]Result, error) {
	stop := context.AfterFunc(ctx, func() { p.conn.SetDeadline(time.Now()) })
	defer stop()
	p.uses++
	results := make([]Result, len(req.Rcpts))
	mopts := &smtp.MailOptions{UTF8: req.UTF8}
	if req.Body8 {
		mopts.Body = smtp.Body8BitMIME
	}
	if req.EnvID != "" {
		mopts.EnvelopeID = req.EnvID
	}
	if req.RetFull {
		mopts.Return = smtp.DSNReturnFull
	}
	ropts := make([]*smtp.RcptOptions, len(req.Rcpts))
	for i := range req.Rcpts {
		if i < len(req.Notify) && req.Notify[i] != "" || i < len(req.ORcpt) && req.ORcpt[i] != "" {
			ropts[i] = rcptOptions(req, i)
		}
	}
	// The message is opened before anything is sent: once the server has
	// taken DATA, the transaction can only be abandoned by dropping the
	// connection.
	body, err := req.Body()
	if err != nil {
		return allResults(req.Rcpts, Result{Enhanced: "4.3.0", Text: "local error opening message: " + err.Error(), Remote: p.remote}), nil
	}
	defer body.Close()
	// One round trip for the whole envelope where the server pipelines.
	env, err := p.c.SendEnvelope(req.From, mopts, req.Rcpts, ropts)
	var se *smtp.SMTPError
	switch {
	case err != nil && len(env.Rcpts) == 0:
		if errors.As(err, &se) && se.Code == 421 && p.uses > 1 {
			// A cached connection the server is closing (an idle
			// timeout, a restart): the caller tries a fresh one.
			return nil, fmt.Errorf("%w: %d %s", errClosing, se.Code, se.Message)
		}
		if errors.As(err, &se) {
			// A 421: the server is closing this connection, with
			// replies to the pipelined commands maybe still unread.
			return allResults(req.Rcpts, fromSMTPError(se, p.remote)), errConnBroken
		}
		return nil, err
	case err != nil && len(env.Rcpts) < len(req.Rcpts):
		return allResults(req.Rcpts, Result{Enhanced: "4.4.2", Text: "connection lost during RCPT: " + err.Error(), Remote: p.remote}), errConnBroken
	case env.Mail != nil:
		// The sender was refused: that answer is for every recipient.
		errors.As(env.Mail, &se)
		p.c.Reset()
		return allResults(req.Rcpts, fromSMTPError(se, p.remote)), nil
	}
	accepted := 0
	for i, rc := range req.Rcpts {
		if rerr := env.Rcpts[i]; rerr != nil {
			errors.As(rerr, &se)
			results[i] = fromSMTPError(se, p.remote)
			results[i].Rcpt = rc
			continue
		}
		results[i] = Result{Rcpt: rc, Code: 250, Enhanced: "2.1.5", Remote: p.remote}
		accepted++
	}
	if accepted == 0 {
		if err != nil {
			return results, errConnBroken
		}
		p.c.Reset()
		return results, nil
	}
	var dataRes Result
	switch {
	case err != nil:
		// Every recipient answered, then the connection failed at DATA.
		dataRes = dataFailure(p, err)
	case env.DataErr != nil:
		dataRes = dataFailure(p, env.DataErr)
		p.c.Reset()
	default:
		dataRes = c.data(p, env.Data, body)
	}
	dataRes.NextHopDSN, _ = p.c.Extension("DSN")
	for i := range results {
		if results[i].Code == 250 && results[i].Enhanced == "2.1.5" {
			r := dataRes
			r.Rcpt = req.Rcpts[i]
			results[i] = r
		}
	}
	if err != nil || dataRes.Code == 0 {
		// The connection is in an unknown state.
		return results, errConnBroken
	}
	return results, nil
}

// errConnBroken: the transaction's results stand, but the connection is
// out of step or closed and must not be used again.
var errConnBroken = errors.New("connection broken")

// errClosing is a 421 reply to MAIL on a cached connection: nothing of the
// message was sent, and the server is closing the connection.
var errClosing = errors.New("cached connection closed by the server")

// readErr remembers a read error of the message (not of the connection).
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// dataFailure is the result of a DATA command that failed: the server's
// reply, or a temporary failure naming the error.
func dataFailure(p *pooled, err error) Result {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return fromSMTPError(se, p.remote)
	}
	return Result{Enhanced: "4.4.2", Text: "DATA: " + err.Error(), Remote: p.remote}
}

// data sends the message body over the DATA command the server took.
func (c *Client) data(p *pooled, w *smtp.DataCommand, body io.Reader) Result {
	if d := c.cfg.DataTimeout.Duration; d > 0 {
		p.c.SubmissionTimeout = d
	}
	// go-smtp's DotWriter writes CRLF line endings and dot-stuffs, whatever
	// the stored message looks like.
	rb := &readErr{r: body}
	if _, err := bufpool.Copy(w, rb); err != nil {
		// Never end DATA now: the final dot would have the server accept
		// the part sent so far. Dropping the connection abandons the
		// transaction (RFC 5321 3.3: no mail without the end of data).
		p.conn.Close()
		if rb.err != nil {
			return Result{Enhanced: "4.3.0", Text: "local error reading message: " + rb.err.Error(), Remote: p.remote}
		}
		return Result{Enhanced: "4.4.2", Text: "sending message: " + err.Error(), Remote: p.remote}
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return fromSMTPError(se, p.remote)
		}
		return Result{Enhanced: "4.4.2", Text: "end of DATA: " + err.Error(), Remote: p.remote}
	}
	text := resp.StatusText
	// go-smtp leaves the enhanced code in the text; it is kept separately.
	if f := strings.Fields(text); len(f) > 0 && len(f[0]) >= 5 && f[0][1] == '.' && f[0][0] == '2' {
		text = strings.TrimSpace(strings.TrimPrefix(text, f[0]))
	}
	return Result{Code: 250, Enhanced: "2.0.0", Text: text, Remote: p.remote}
}

func rcptOptions(req Request, i int) *smtp.RcptOptions {
	o := &smtp.RcptOptions{}
	if i < len(req.Notify) && req.Notify[i] != "" {
		for _, n := range strings.Split(req.Notify[i], ",") {
			o.Notify = append(o.Notify, smtp.DSNNotify(strings.ToUpper(n)))
		}
	}
	if i < len(req.ORcpt) && req.ORcpt[i] != "" {
		if typ, a, ok := strings.Cut(req.ORcpt[i], ";"); ok {
			switch strings.ToLower(typ) {
			case "rfc822":
				o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, a
			case "utf-8":
				o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeUTF8, a
			}
		}
	}
	return o
}

func fromSMTPError(se *smtp.SMTPError, remote string) Result {
	r := Result{Code: se.Code, Text: se.Message, Remote: remote, Permanent: se.Code/100 == 5}
	if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
		r.Enhanced = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	} else if r.Permanent {
		r.Enhanced = "5.0.0"
	} else {
		r.Enhanced = "4.0.0"
	}
	return r
}

// get returns an idle pooled connection or dials a new one.
func (c *Client) get(ctx context.Context, t Target) (*pooled, bool, error) {
	key := t.key()
	c.mu.Lock()
	for len(c.idle[key]) > 0 {
		l := c.idle[key]
		p := l[len(l)-1]
		c.idle[key] = l[:len(l)-1]
		if time.Since(p.idleAt) < c.cfg.IdleReuse.Duration {
			c.mu.Unlock()
			return p, true, nil
		}
		go p.c.Close()
	}
	c.mu.Unlock()
	p, err := c.dial(ctx, t)
	return p, false, err
}

func (c *Client) put(t Target, p *pooled) {
	if c.cfg.IdleReuse.Duration <= 0 || (c.cfg.MaxReuse > 0 && p.uses >= c.cfg.MaxReuse) {
		go p.c.Quit()
		return
	}
	p.idleAt = time.Now()
	c.mu.Lock()
	c.idle[t.key()] = append(c.idle[t.key()], p)
	if !c.sweeping {
		c.sweeping = true
		time.AfterFunc(c.cfg.IdleReuse.Duration, c.sweep)
	}
	c.mu.Unlock()
}

// sweep closes the connections idle for IdleReuse, and runs again while
// any stay cached: an idle connection is never kept much longer than
// IdleReuse, so a destination that gets no more mail gets its QUIT.
func (c *Client) sweep() {
	c.CloseIdle(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.idle {
		if len(l) > 0 {
			time.AfterFunc(c.cfg.IdleReuse.Duration, c.sweep)
			return
		}
	}
	c.sweeping = false
}

// CloseIdle closes cached connections (at shutdown, or idle ones periodically).
func (c *Client) CloseIdle(all bool) {
	c.mu.Lock()
	var closing []*pooled
	for k, l := range c.idle {
		keep := l[:0]
		for _, p := range l {
			if all || time.Since(p.idleAt) >= c.cfg.IdleReuse.Duration {
				closing = append(closing, p)
			} else {
				keep = append(keep, p)
			}
		}
		c.idle[k] = keep
	}
	c.mu.Unlock()
	for _, p := range closing {
		p.c.Quit()
	}
}

// dial connects, reads the greeting, says EHLO and negotiates TLS per the target's mode.
func (c *Client) dial(ctx context.Context, t Target) (*pooled, error) {
	addrs, err := c.addresses(ctx, t.Host)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, ip := range addrs {
		p, err := c.dialAddr(ctx, t, ip, t.TLS)
		if err != nil && t.TLS == TLSOpportunistic && errors.Is(err, errTLSFailed) {
			// Opportunistic TLS falls back to plaintext when the handshake fails (as Postfix does).
			p, err = c.dialAddr(ctx, t, ip, TLSNone)
		}
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

var errTLSFailed = errors.New("TLS handshake failed")

func (c *Client) dialAddr(ctx context.Context, t Target, ip net.IP, mode string) (*pooled, error) {
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(t.Port))
	conn, err := c.dialer(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	var netConn net.Conn = conn
	if mode != TLSNone {
		tc, err := c.startTLS(conn, t, mode)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
		if tc != nil {
			netConn = tc
		}
	}
	cl := smtp.NewClient(netConn)
	if d := c.cfg.CommandTimeout.Duration; d > 0 {
		cl.CommandTimeout = d
	}
	if err := cl.Hello(c.hostname); err != nil {
		cl.Close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	return &pooled{c: cl, conn: conn, remote: t.Host, tls: describeTLS(netConn, mode)}, nil
}

// describeTLS says how a connection is protected, for tracking: the TLS
// version and cipher suite and how the server was authenticated, or
// "none" for plaintext.
func describeTLS(c net.Conn, mode string) string {
	rc, ok := c.(*replayConn)
	if !ok {
		return "none"
	}
	tc, ok := rc.Conn.(*tls.Conn)
	if !ok {
		return "none"
	}
	cs := tc.ConnectionState()
	auth := "not verified"
	switch mode {
	case TLSVerify:
		auth = "verified"
	case TLSDANE:
		auth = "verified by DANE"
	}
	return tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite) + ", " + auth
}

// startTLS does the plaintext part of the dialogue itself (greeting, EHLO,
// STARTTLS), because go-smtp's client cannot upgrade after an EHLO with our
// own name. It returns nil (and no error) when opportunistic TLS is not
// offered; the returned connection replays a greeting so go-smtp's client
// can start over TLS as on a fresh connection.
func (c *Client) startTLS(conn net.Conn, t Target, mode string) (net.Conn, error) {
	timeout := c.cfg.CommandTimeout.Duration
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	tp := textproto.NewConn(nopCloser{conn})
	code, greet, err := tp.ReadResponse(220)
	if err != nil {
		return nil, fmt.Errorf("greeting: %d %s: %w", code, greet, err)
	}
	if err := tp.PrintfLine("EHLO %s", c.hostname); err != nil {
		return nil, err
	}
	_, ext, err := tp.ReadResponse(250)
	if err != nil {
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	offered := false
	for _, l := range strings.Split(ext, "\n") {
		if strings.EqualFold(strings.TrimSpace(l), "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		if mode == TLSOpportunistic {
			// Start over in plaintext on the same connection: RSET is not
			// enough after EHLO for go-smtp, so replay the greeting.
			return &replayConn{Conn: conn, pre: []byte("220 " + t.Host + " ESMTP\r\n")}, nil
		}
		return nil, fmt.Errorf("STARTTLS not offered but the route requires TLS")
	}
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		return nil, err
	}
	if _, msg, err := tp.ReadResponse(220); err != nil {
		return nil, fmt.Errorf("%w: STARTTLS refused: %s", errTLSFailed, msg)
	}
	cfg := &tls.Config{ServerName: t.Host, MinVersion: tls.VersionTLS12}
	if mode == TLSDANE {
		// The TLSA records, not the web PKI, say which certificate is right.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = daneVerify(t.Host, parseTLSA(t.TLSA), time.Now)
	} else if mode != TLSVerify {
		// Opportunistic and "encrypt" TLS do not authenticate the peer
		// (RFC 7435); "verify" does.
		cfg.InsecureSkipVerify = true
	}
	if c.cert != nil {
		cfg.Certificates = []tls.Certificate{*c.cert}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("%w: %v", errTLSFailed, err)
	}
	return &replayConn{Conn: tc, pre: []byte("220 " + t.Host + " ESMTP\r\n")}, nil
}

type nopCloser struct{ net.Conn }

func (nopCloser) Close() error { return nil }

// replayConn returns pre before reading from the connection.
type replayConn struct {
	net.Conn
	pre []byte
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		return n, nil
	}
	return r.Conn.Read(p)
}

// addresses resolves a host through mailgate's resolver, never the system one.
func (c *Client) addresses(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	if host == "localhost" {
		return []net.IP{net.IPv4(127, 0, 0, 1)}, nil
	}
	if c.res == nil {
		return nil, fmt.Errorf("resolve %s: no DNS resolver configured", host)
	}
	ias, err := c.res.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	var v4, v6 []net.IP
	for _, ia := range ias {
		if !c.cfg.AllowLoopbackMX && (ia.IP.IsLoopback() || ia.IP.IsUnspecified()) {
			continue
		}
		if ia.IP.To4() != nil {
			v4 = append(v4, ia.IP)
		} else {
			v6 = append(v6, ia.IP)
		}
	}
	var out []net.IP
	if c.cfg.PreferIPv4 {
		out = append(v4, v6...)
	} else {
		out = append(v6, v4...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve %s: no usable address", host)
	}
	return out, nil
}

// ParseRoutes reads route arguments: each is a comma list of targets, each
// optionally "PRIORITY=" prefixed ("10=smtp://a:25,20=mx"); without one, the
// n-th argument gets priority n*10. Targets are checked by ParseTarget.
func ParseRoutes(targets []string, tlsMode string) ([]store.Route, error) {
	var rs []store.Route
	for i, t := range targets {
		for _, part := range strings.Split(t, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			prio := (i + 1) * 10
			if p, rest, ok := strings.Cut(part, "="); ok && !strings.Contains(p, ":") {
				n, err := strconv.Atoi(p)
				if err != nil {
					return nil, fmt.Errorf("route %q: priority must be a number", part)
				}
				prio, part = n, rest
			}
			if part != "mx" && !strings.HasPrefix(part, "mx:") {
				if _, err := ParseTarget(part, tlsMode); err != nil {
					return nil, err
				}
			}
			rs = append(rs, store.Route{Priority: prio, Target: part, TLS: tlsMode})
		}
	}
	return rs, nil
}
