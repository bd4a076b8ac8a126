package extauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// DefaultTimeout bounds a delegated password check when ctx has no
// deadline of its own.
const DefaultTimeout = 10 * time.Second

// Dialer opens the TCP connection to an upstream. The console passes a
// netguard.Dialer, which resolves names through mailgate's resolver and
// refuses internal networks; nil dials directly (tests with servers on
// loopback only).
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// upstreamConn is a connection to the upstream with the check's deadline
// applied. ctx ending closes the connection, which unblocks the protocol
// libraries (neither go-imap nor go-smtp takes a context).
type upstreamConn struct {
	net.Conn
	deadline time.Time
	stop     func() bool
}

// dialUpstream connects to t through d within ctx and, for implicit TLS,
// completes the handshake. ctx must carry a deadline (see
// withDefaultTimeout).
func dialUpstream(ctx context.Context, d Dialer, t Target, tlsCfg *tls.Config) (*upstreamConn, error) {
	deadline, _ := ctx.Deadline()
	if d == nil {
		d = &net.Dialer{}
	}
	raw, err := d.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		return nil, upstreamErr(ctx, t, "connecting", err)
	}
	_ = raw.SetDeadline(deadline)
	c := &upstreamConn{Conn: raw, deadline: deadline}
	if t.ImplicitTLS {
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, upstreamErr(ctx, t, "TLS handshake", err)
		}
		c.Conn = tc
	}
	c.stop = context.AfterFunc(ctx, func() { _ = raw.Close() })
	return c, nil
}

func (c *upstreamConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// withDefaultTimeout applies DefaultTimeout unless ctx already ends sooner.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// clientTLSConfig returns a copy of cfg (or a default) naming the target
// host for certificate verification and SNI.
func clientTLSConfig(cfg *tls.Config, t Target) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = t.Host
	}
	return cfg
}

// upstreamErr wraps a failure to get a verdict, preferring the context's
// error when it ended, since a closed connection would only hide it.
func upstreamErr(ctx context.Context, t Target, step string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return fmt.Errorf("%w: %s %s: %w", ErrUpstream, t, step, err)
}

// plausibleCredentials rejects what no upstream could accept, and what
// would break SASL PLAIN framing (RFC 4616: NUL separates the fields) or
// the line-based protocols, without contacting the upstream.
func plausibleCredentials(user, pass string) bool {
	return user != "" && pass != "" &&
		!strings.ContainsAny(user, "\x00\r\n") && !strings.ContainsAny(pass, "\x00\r\n")
}

// upstreamCheck is the common start of a delegated password check: the
// target parsed and of the right protocol, the credentials plausible, a
// deadline set and the connection (TCP, or TLS for implicit-TLS schemes)
// open. The caller must call close.
type upstreamCheck struct {
	ctx    context.Context
	t      Target
	tlsCfg *tls.Config
	conn   *upstreamConn
	cancel context.CancelFunc
}

// startCheck opens an upstream for a password check of protocol proto
// (whose plain and implicit-TLS schemes are schemes). A bad target or an
// unreachable server wraps ErrUpstream; implausible credentials are
// ErrBadCredentials without any connection.
func startCheck(ctx context.Context, d Dialer, target string, tlsCfg *tls.Config, user, pass, proto string, schemes ...string) (*upstreamCheck, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	if !slices.Contains(schemes, t.Scheme) {
		return nil, fmt.Errorf("%w: %s is not an %s target", ErrUpstream, t, proto)
	}
	if !plausibleCredentials(user, pass) {
		return nil, ErrBadCredentials
	}
	ctx, cancel := withDefaultTimeout(ctx)
	tlsCfg = clientTLSConfig(tlsCfg, t)
	conn, err := dialUpstream(ctx, d, t, tlsCfg)
	if err != nil {
		cancel()
		return nil, err
	}
	return &upstreamCheck{ctx: ctx, t: t, tlsCfg: tlsCfg, conn: conn, cancel: cancel}, nil
}

func (u *upstreamCheck) close() {
	u.conn.Close()
	u.cancel()
}
