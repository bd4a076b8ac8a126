package smtpin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/store"
)

// The submission listener (RFC 6409) takes mail from end users' mail apps
// during an outage of their primary mail service (and at any time): the
// user authenticates with their console login (a user's login is their
// address), and may send only as that address or the other addresses its
// administrator gave it (KeySendAs), in the envelope and in From.
// Accepted mail goes the outbound way, as the relay's does.

var errSenderNotOwn = smtpErr(553, smtp.EnhancedCode{5, 7, 1}, "Sender address must be your own address")

// KeySendAs is the address setting that lists, comma-separated, the other
// addresses of the tenant's domains the user may send as (shared or alias
// addresses the administrator gives them), in the envelope and in From.
const KeySendAs = "submission.send_as"

// mayUse reports whether the authenticated user may send as the address
// key: their own, or one of their KeySendAs addresses.
func (se *session) mayUse(ctx context.Context, key string) (bool, error) {
	if key == se.authAddr {
		return true, nil
	}
	if se.sendAs == nil {
		layers, err := se.settings(ctx, se.authTID)
		if err != nil {
			return false, err
		}
		se.sendAs = []string{}
		for _, v := range strings.Split(layers.Of(store.ScopeAddress, se.authAddr)[KeySendAs], ",") {
			if a, err := addr.Parse(strings.TrimSpace(v)); err == nil {
				se.sendAs = append(se.sendAs, a.Key())
			}
		}
	}
	return slices.Contains(se.sendAs, key), nil
}

// userLogin finds an end user's console login that may submit mail: an
// enabled user or tenant administrator of a tenant whose login is an
// address and who has a local mail password (store.Account.MailHash: an
// account with a second factor needs a mail app password). Anything else
// is not found (and costs the dummy check).
func (se *session) userLogin(ctx context.Context, username string) (login, error) {
	a, err := se.s.d.Store.AccountByLogin(ctx, strings.ToLower(strings.TrimSpace(username)))
	if err != nil {
		return login{}, err
	}
	ad, perr := addr.Parse(a.Login)
	hash := a.MailHash(se.s.d.RequireTOTP)
	if a.Disabled || hash == "" || a.TenantID == 0 || (a.Role != store.RoleUser && a.Role != store.RoleAdmin) || perr != nil {
		return login{}, fmt.Errorf("login %q: %w", username, store.ErrNotFound)
	}
	return login{hash: hash, tenantID: a.TenantID, address: ad.Key()}, nil
}

// submissionSender checks MAIL FROM on the submission listener: after
// AUTH, the user's own address in a domain their tenant serves.
func (se *session) submissionSender(from string, sender addr.Address) error {
	if se.authUser == "" || se.authAddr == "" {
		return se.reject(smtpErr(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required"))
	}
	ctx, cancel := se.ctx()
	defer cancel()
	own := false
	if from != "" {
		var err error
		if own, err = se.mayUse(ctx, sender.Key()); err != nil {
			se.log.Error("sender check", "err", err)
			return errTempLocal
		}
	}
	if !own {
		se.log.Info("sender refused: not the user's address", "user", se.authUser, "from", sender.String())
		return se.reject(errSenderNotOwn)
	}
	owned, err := se.ownedBy(ctx, se.authTID, sender.Domain)
	if err != nil {
		se.log.Error("sender domain lookup", "err", err)
		return errTempLocal
	}
	if !owned {
		return se.reject(smtpErr(553, smtp.EnhancedCode{5, 7, 1}, "Sender address is not in your organisation's domains"))
	}
	se.tenantID = se.authTID
	return nil
}

// checkOwnAuthor holds submitted mail to its author: one From field with
// one mailbox, the user's own address (RFC 5322 3.6.2). A message without
// From is refused too: the user's mail app always writes one, and a
// message that claims nobody could be anyone's.
func (se *session) checkOwnAuthor(g *guard) error {
	refuse := func() error {
		se.log.Info("message refused: author is not the user", "user", se.authUser)
		return se.reject(smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "From address must be your own address"))
	}
	if g.fromFields != 1 {
		return refuse()
	}
	ctx, cancel := se.ctx()
	defer cancel()
	parsed, err := mailtext.Parse(ctx, strings.NewReader("From: "+g.from+"\r\n\r\n"), mailtext.DefaultLimits())
	if err != nil || len(parsed.From) != 1 {
		return refuse()
	}
	a, err := addr.Parse(parsed.From[0].Addr)
	if err != nil {
		return refuse()
	}
	if own, err := se.mayUse(ctx, a.Key()); err != nil {
		se.log.Error("author check", "err", err)
		return errTempLocal
	} else if !own {
		return refuse()
	}
	return nil
}

// loginServer is the server side of the LOGIN SASL mechanism (obsolete
// but what many mail apps use): username and password, each asked for
// and answered in base64, the username possibly as the initial response.
type loginServer struct {
	step int
	user string
	auth func(username, password string) error
}

func (s *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		s.step = 1
		if len(response) == 0 {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		s.user, s.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.auth(s.user, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}
