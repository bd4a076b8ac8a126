package extauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// CheckIMAP checks user and pass against the IMAP server at target
// ("imaps://host:993", or "imap://host:143" with mandatory STARTTLS,
// RFC 9051 6.2.1 and RFC 8314), connecting through d. It authenticates with AUTHENTICATE PLAIN
// when offered, else LOGIN, logs out and closes the connection.
//
// tlsCfg may be nil for default verification; it is cloned, and its
// ServerName defaults to the target host. Credentials are only sent over
// TLS: a server without STARTTLS, or one that sends PREAUTH, yields
// ErrUpstream (with ErrNoTLS where it applies). The whole exchange is
// bounded by ctx, or by DefaultTimeout when ctx has no deadline.
//
// It returns nil when the server accepted the credentials,
// ErrBadCredentials when it refused them (tagged NO, RFC 5530 codes
// AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, EXPIRED, or none), and an
// error wrapping ErrUpstream for everything else, including NO
// [UNAVAILABLE]. Safe for concurrent use.
func CheckIMAP(ctx context.Context, d Dialer, target string, tlsCfg *tls.Config, user, pass string) error {
	u, err := startCheck(ctx, d, target, tlsCfg, user, pass, "IMAP", "imap", "imaps")
	if err != nil {
		return err
	}
	defer u.close()
	ctx, t, tlsCfg, conn := u.ctx, u.t, u.tlsCfg, u.conn

	var c *imapclient.Client
	if t.ImplicitTLS {
		c = imapclient.New(conn, nil)
		if err := c.WaitGreeting(); err != nil {
			return upstreamErr(ctx, t, "greeting", err)
		}
	} else {
		// NewStartTLS waits for the greeting, sends STARTTLS and completes
		// the handshake before returning; a refusal or a failed handshake
		// ends here, before any credentials are written.
		c, err = imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: tlsCfg})
		if err != nil {
			var ie *imap.Error
			if errors.As(err, &ie) {
				err = fmt.Errorf("%w: %w", ErrNoTLS, err)
			}
			return upstreamErr(ctx, t, "STARTTLS", err)
		}
	}
	defer c.Close()

	// A PREAUTH greeting would log anybody in: no verdict on the password.
	if c.State() != imap.ConnStateNotAuthenticated {
		return upstreamErr(ctx, t, "greeting", errors.New("server pre-authenticated the connection"))
	}

	// Ask afresh: capabilities seen before STARTTLS must be discarded
	// (RFC 9051 6.2.1), and LOGINDISABLED / AUTH=PLAIN depend on TLS.
	caps, err := c.Capability().Wait()
	if err != nil {
		return upstreamErr(ctx, t, "CAPABILITY", err)
	}
	switch {
	case caps.Has(imap.AuthCap(sasl.Plain)):
		err = c.Authenticate(sasl.NewPlainClient("", user, pass))
	case !caps.Has(imap.CapLoginDisabled):
		err = c.Login(user, pass).Wait()
	default:
		return upstreamErr(ctx, t, "authentication", errors.New("server offers neither AUTH=PLAIN nor LOGIN"))
	}
	if err != nil {
		if imapBadCredentials(err) {
			return ErrBadCredentials
		}
		return upstreamErr(ctx, t, "authentication", err)
	}
	// Best effort: the verdict is in, a failing LOGOUT changes nothing.
	_ = c.Logout().Wait()
	return nil
}

// imapBadCredentials reports whether err is the server refusing the
// credentials rather than failing. RFC 5530 codes that say the server is
// in trouble (UNAVAILABLE, SERVERBUG, LIMIT, PRIVACYREQUIRED, ...) and BAD
// responses are upstream problems; a NO without a code is taken as a
// refusal, as servers older than RFC 5530 send.
func imapBadCredentials(err error) bool {
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		return false
	}
	switch ie.Code {
	case "", imap.ResponseCodeAuthenticationFailed, imap.ResponseCodeAuthorizationFailed,
		imap.ResponseCodeExpired, imap.ResponseCodeContactAdmin:
		return true
	}
	return false
}
