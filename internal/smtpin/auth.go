package smtpin

import (
	"context"
	"errors"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
)

// PasswordVerifier checks relay passwords within the process-wide memory
// budget for password checks (passwd.Verifier, shared with the console).
// Both methods return passwd.ErrBusy, without checking, when it is taken.
type PasswordVerifier interface {
	Verify(ctx context.Context, encoded, password string) error
	// VerifyDummy costs what Verify costs and never matches.
	VerifyDummy(ctx context.Context, password string) error
}

// AuthThrottle limits password guessing per client network and per login
// (a loginlimit limiter, shared with the console). Take reserves an attempt
// for every key or none, before the password is checked; Refund gives back
// the attempt of a success.
type AuthThrottle interface {
	Take(ctx context.Context, now time.Time, keys ...string) (bool, time.Duration)
	Refund(ctx context.Context, now time.Time, keys ...string)
}

var (
	_ PasswordVerifier = (*passwd.Verifier)(nil)
	_ AuthThrottle     = (*loginlimit.Memory)(nil)
)

var (
	// RFC 4954 6: 454 4.7.0 is a temporary authentication failure.
	errAuthThrottled = smtpErr(454, smtp.EnhancedCode{4, 7, 0}, "Too many failed logins; try again later")
	errAuthBusy      = smtpErr(454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure; try again shortly")
)

// AuthMechanisms offers PLAIN on the outbound listener, PLAIN and LOGIN
// on the submission listener; go-smtp offers them only after STARTTLS.
func (se *session) AuthMechanisms() []string {
	switch {
	case se.s.d.Kind == Submission:
		return []string{sasl.Plain, sasl.Login}
	case se.s.d.Kind == Outbound && se.s.d.Listener.AllowAuth:
		return []string{sasl.Plain}
	}
	return nil
}

// Auth checks a relay login (outbound listener) or an end user's console
// login (submission listener).
func (se *session) Auth(mech string) (sasl.Server, error) {
	switch {
	case se.s.d.Kind == Submission && mech == sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return se.reject(smtp.ErrAuthFailed)
			}
			return se.checkLogin(username, password, se.userLogin)
		}), nil
	case se.s.d.Kind == Submission && mech == sasl.Login:
		return &loginServer{auth: func(username, password string) error { return se.checkLogin(username, password, se.userLogin) }}, nil
	case se.s.d.Kind == Outbound && se.s.d.Listener.AllowAuth && mech == sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return se.reject(smtp.ErrAuthFailed)
			}
			return se.checkLogin(username, password, se.relayLogin)
		}), nil
	}
	return nil, smtp.ErrAuthUnsupported
}

// login is what a successful authentication binds the session to.
type login struct {
	hash     string
	tenantID int64
	address  string // the user's own address (submission); "" for a relay login
}

// relayLogin finds a relay login.
func (se *session) relayLogin(ctx context.Context, username string) (login, error) {
	l, err := se.s.d.Store.RelayLogin(ctx, username)
	return login{hash: l.Hash, tenantID: l.TenantID}, err
}

// checkLogin checks a password. Each attempt first takes a token from the
// throttle for the client's network and for the login; an unknown login
// (store.ErrNotFound from lookup) costs a dummy check, so it is answered
// like a wrong password, as slowly.
func (se *session) checkLogin(username, password string, lookup func(context.Context, string) (login, error)) error {
	d := se.s.d
	ctx, cancel := se.ctx()
	defer cancel()
	keys := []string{loginlimit.IPKey(se.ip), loginlimit.LoginKey(username)}
	if ok, _ := d.AuthThrottle.Take(ctx, d.Clock.Now(), keys...); !ok {
		se.log.Info("auth throttled", "user", username)
		return se.reject(errAuthThrottled)
	}
	l, err := lookup(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Same answer as a wrong password: do not reveal which logins exist.
		err = d.Passwords.VerifyDummy(ctx, password)
		if err == nil {
			err = passwd.ErrMismatch
		}
	case err != nil:
		d.AuthThrottle.Refund(ctx, d.Clock.Now(), keys...)
		se.log.Error("login lookup", "err", err)
		return errAuthBusy
	default:
		err = d.Passwords.Verify(ctx, l.hash, password)
	}
	switch {
	case errors.Is(err, passwd.ErrBusy):
		// Nothing was checked: the attempt does not count.
		d.AuthThrottle.Refund(ctx, d.Clock.Now(), keys...)
		se.log.Warn("auth refused: too many password checks at once", "user", username)
		return errAuthBusy
	case err != nil:
		if !errors.Is(err, passwd.ErrMismatch) {
			se.log.Error("password cannot be checked", "user", username, "err", err)
		}
		se.log.Info("auth failed", "user", username)
		return se.reject(smtp.ErrAuthFailed)
	}
	d.AuthThrottle.Refund(ctx, d.Clock.Now(), keys...)
	se.authUser, se.authTID, se.authAddr, se.sendAs = username, l.tenantID, l.address, nil
	se.log.Info("authenticated", "user", username, "tenant", l.tenantID)
	return nil
}
