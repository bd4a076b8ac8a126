package extauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// heloName is the name given in EHLO. The check is not mail transfer, so
// no real host name is needed; submission servers accept this one.
const heloName = "localhost"

// CheckSMTP checks user and pass with AUTH PLAIN (RFC 4954, RFC 4616)
// against the SMTP submission server at target ("smtps://host:465", or
// "smtp://host:587" with mandatory STARTTLS, RFC 3207 and RFC 8314),
// connecting through d. No
// mail is sent: the connection is closed with QUIT after the verdict.
//
// tlsCfg is used as in CheckIMAP. A server that does not offer STARTTLS
// yields ErrUpstream and ErrNoTLS, and the credentials are not sent. The
// exchange is bounded by ctx, or by DefaultTimeout when ctx has no
// deadline.
//
// It returns nil on 235, ErrBadCredentials on 535 (RFC 4954 section 6),
// and an error wrapping ErrUpstream for everything else: a missing AUTH
// PLAIN, 454 temporary failure, 534 or 538, network and TLS errors. Safe
// for concurrent use.
func CheckSMTP(ctx context.Context, d Dialer, target string, tlsCfg *tls.Config, user, pass string) error {
	u, err := startCheck(ctx, d, target, tlsCfg, user, pass, "SMTP", "smtp", "smtps")
	if err != nil {
		return err
	}
	defer u.close()
	ctx, t, tlsCfg, conn := u.ctx, u.t, u.tlsCfg, u.conn

	// The client gets the bare (or implicit-TLS) connection so that its
	// TLSConnectionState sees the *tls.Conn; conn still owns closing.
	var c *smtp.Client
	if t.ImplicitTLS {
		c = smtp.NewClient(conn.Conn)
	} else {
		c, err = smtp.NewClientStartTLS(conn.Conn, tlsCfg)
		if err != nil {
			return upstreamErr(ctx, t, "STARTTLS", classifyStartTLS(err))
		}
	}
	defer c.Close()
	// go-smtp re-arms the connection deadline per command: keep each
	// command within the check's deadline (ctx also closes the connection
	// when it ends).
	c.CommandTimeout = max(time.Until(conn.deadline), time.Millisecond)
	// After STARTTLS this is the fresh EHLO of RFC 3207 4.2, and the TLS
	// handshake happens on its first write.
	if err := c.Hello(heloName); err != nil {
		return upstreamErr(ctx, t, "EHLO", err)
	}
	if state, ok := c.TLSConnectionState(); !ok || !state.HandshakeComplete {
		return upstreamErr(ctx, t, "TLS", ErrNoTLS)
	}
	if !c.SupportsAuth(sasl.Plain) {
		return upstreamErr(ctx, t, "AUTH", errors.New("server does not offer AUTH PLAIN"))
	}
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 535 {
			return ErrBadCredentials
		}
		return upstreamErr(ctx, t, "AUTH", err)
	}
	_ = c.Quit()
	return nil
}

// classifyStartTLS marks a server that does not offer STARTTLS (go-smtp's
// own error when the EHLO reply lacks it) or refuses it (RFC 3207 454)
// with ErrNoTLS.
func classifyStartTLS(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code == 454 || err.Error() == "smtp: server doesn't support STARTTLS" {
		return fmt.Errorf("%w: %w", ErrNoTLS, err)
	}
	return err
}
