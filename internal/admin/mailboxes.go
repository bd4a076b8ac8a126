package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/store"
)

// Mailboxes for administrators: each user's mailbox with its quota, usage
// and last login, the tenant's allocations against its contracted disk,
// setting a quota, setting a user's password, and inviting a user (a mail
// with a one-time link to choose a password).

// Mailboxes is the mailbox service as the administration layer uses it
// (mailbox.Service).
type Mailboxes interface {
	Usage(ctx context.Context, tenantID int64) (mailbox.TenantUsage, error)
	SetQuota(ctx context.Context, tenantID int64, address string, mb int64) error
}

// Mailer queues a message mailgate writes itself (queue.Queue.Submit).
type Mailer interface {
	Submit(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error)
}

// InviteValidity is how long an invitation link works.
const InviteValidity = 7 * 24 * time.Hour

// MailboxRow is one user of the mailboxes page.
type MailboxRow struct {
	Address  string
	Name     string
	Mailbox  *store.Mailbox // nil: not made yet (the first delivery or login makes it)
	Account  *store.Account // nil: no console login
	Password bool           // the login has a local password
	Invited  time.Time      // the last invitation not used yet (zero: none)
}

// MailboxesView is the mailboxes page.
type MailboxesView struct {
	mailbox.TenantUsage
	Rows []MailboxRow
}

func (s *Service) mailboxes() (Mailboxes, error) {
	if s.Mailboxes == nil {
		return nil, Invalidf("this node has no mailboxes")
	}
	return s.Mailboxes, nil
}

// MailboxesOverview lists a's tenant's users with their mailboxes and
// logins, and the tenant's allocations against its contract.
func (s *Service) MailboxesOverview(ctx context.Context, a Actor) (MailboxesView, error) {
	var out MailboxesView
	if err := a.require(store.RoleAdmin); err != nil {
		return out, err
	}
	tid, err := a.tenant()
	if err != nil {
		return out, err
	}
	mbs, err := s.mailboxes()
	if err != nil {
		return out, err
	}
	if out.TenantUsage, err = mbs.Usage(ctx, tid); err != nil {
		return out, err
	}
	users, err := s.Store.Users(ctx, tid)
	if err != nil {
		return out, err
	}
	names := map[string]string{}
	if ps, err := s.Store.People(ctx, tid); err == nil {
		for _, p := range ps {
			names[strings.ToLower(p.Address)] = p.Name
		}
	}
	byAddr := map[string]*store.Mailbox{}
	for i := range out.Mailboxes {
		byAddr[out.Mailboxes[i].Address] = &out.Mailboxes[i]
	}
	accts, err := s.Store.Accounts(ctx, tid)
	if err != nil {
		return out, err
	}
	byLogin := map[string]*store.Account{}
	for i := range accts {
		byLogin[accts[i].Login] = &accts[i]
	}
	for _, u := range users {
		k := strings.ToLower(u.Address)
		row := MailboxRow{Address: u.Address, Name: names[k], Mailbox: byAddr[k], Account: byLogin[k]}
		if row.Account != nil {
			row.Password = row.Account.Hash != ""
		}
		if t, err := s.Store.Mark(ctx, tid, inviteSentKey(k)); err == nil && t.After(s.now().Now().Add(-InviteValidity)) {
			row.Invited = t
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

// SetMailboxQuota sets the quota of an address's mailbox (MB; 0 = no
// limit), making the mailbox if needed.
func (s *Service) SetMailboxQuota(ctx context.Context, a Actor, address string, quotaMB int64) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	if quotaMB < 0 || quotaMB > 1<<30 {
		return Invalidf("quota: a number of MB, 0 for no limit")
	}
	tid, key, err := s.ownAddress(ctx, a, address)
	if err != nil {
		return err
	}
	if ok, err := s.Store.UserExists(ctx, tid, key); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("user %s: %w", key, store.ErrNotFound)
	}
	mbs, err := s.mailboxes()
	if err != nil {
		return err
	}
	if err := mbs.SetQuota(ctx, tid, key, quotaMB); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "mailbox.quota", key, "", fmt.Sprintf("%d MB", quotaMB))
}

// SetUserPassword sets the local password of a user's console login (which
// is also their IMAP and submission login), creating the login when the
// user has none. Its sessions end.
func (s *Service) SetUserPassword(ctx context.Context, a Actor, address, password string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	tid, key, err := s.ownAddress(ctx, a, address)
	if err != nil {
		return err
	}
	if ok, err := s.Store.UserExists(ctx, tid, key); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("user %s: %w", key, store.ErrNotFound)
	}
	acct, err := s.Store.AccountByLogin(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = s.CreateAccount(ctx, a, key, store.RoleUser, password)
		return err
	case err != nil:
		return err
	case acct.TenantID != tid:
		return fmt.Errorf("user %s: %w", key, store.ErrNotFound)
	}
	return s.SetPassword(ctx, a, acct.ID, password)
}

func inviteSentKey(address string) string { return "invite-sent:" + address }

func inviteKey(address, token string) string {
	return "invite:" + sha256Hex(strings.ToLower(address)+"\x00"+token)
}

// Invite mails a user a one-time link to choose their password (valid
// InviteValidity), with where to read and send mail, in Japanese and
// English; the user gets a console login (without a password) if they had
// none. link makes the link's URL from the address and the token. The
// token is kept only as a hash.
func (s *Service) Invite(ctx context.Context, a Actor, address string, link func(address, token string) string, hostname string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	if s.Mailer == nil {
		return Invalidf("this node cannot send invitations")
	}
	tid, key, err := s.ownAddress(ctx, a, address)
	if err != nil {
		return err
	}
	if ok, err := s.Store.UserExists(ctx, tid, key); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("user %s: %w", key, store.ErrNotFound)
	}
	acct, err := s.Store.AccountByLogin(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, err := s.CreateAccount(ctx, a, key, store.RoleUser, ""); err != nil {
			return err
		}
	case err != nil:
		return err
	case acct.TenantID != tid || acct.Role == store.RoleOperator:
		return fmt.Errorf("user %s: %w", key, store.ErrNotFound)
	case acct.Disabled:
		return Invalidf("the login %s is disabled", key)
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	token := base64.RawURLEncoding.EncodeToString(tok)
	now := s.now().Now()
	if err := s.Store.SetMark(ctx, tid, inviteKey(key, token), now.Add(InviteValidity)); err != nil {
		return err
	}
	if err := s.Store.SetMark(ctx, tid, inviteSentKey(key), now); err != nil {
		return err
	}
	body := inviteMail(hostname, key, link(key, token), now)
	if _, err := s.Mailer.Submit(ctx, store.Message{TenantID: tid, Direction: store.DSN, Subject: "invitation"},
		[]string{key}, bytes.NewReader(body), "invitation for "+key); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "mailbox.invite", key, "", "")
}

// ErrInvite refuses an invitation link that is unknown, used or expired.
var ErrInvite = errors.New("this invitation link is not valid (used, expired or mistyped): ask your administrator for a new one")

// CheckInvite reports whether an invitation link is valid, without using
// it.
func (s *Service) CheckInvite(ctx context.Context, address, token string) error {
	_, _, _, err := s.invite(ctx, address, token)
	return err
}

func (s *Service) invite(ctx context.Context, address, token string) (int64, string, time.Time, error) {
	ad, err := addr.Parse(strings.TrimSpace(address))
	if err != nil || token == "" || len(token) > 100 {
		return 0, "", time.Time{}, ErrInvite
	}
	d, err := s.Store.DomainByName(ctx, ad.Domain)
	if err != nil {
		return 0, "", time.Time{}, ErrInvite
	}
	key := ad.Key()
	until, err := s.Store.Mark(ctx, d.TenantID, inviteKey(key, token))
	if err != nil {
		return 0, "", time.Time{}, err
	}
	if until.IsZero() || !s.now().Now().Before(until) {
		return 0, "", time.Time{}, ErrInvite
	}
	return d.TenantID, key, until, nil
}

// AcceptInvite sets the password of the invited user with a valid link and
// uses the link up (once, across nodes).
func (s *Service) AcceptInvite(ctx context.Context, address, token, password, ip string) error {
	tid, key, until, err := s.invite(ctx, address, token)
	if err != nil {
		return err
	}
	if err := PasswordOK(password); err != nil {
		return err
	}
	acct, err := s.Store.AccountByLogin(ctx, key)
	if err != nil || acct.TenantID != tid || acct.Role == store.RoleOperator || acct.Disabled {
		return ErrInvite
	}
	// Used: the mark moves to a time long past, for good.
	if won, err := s.Store.ClaimMark(ctx, tid, inviteKey(key, token), until, time.Unix(1, 0)); err != nil {
		return err
	} else if !won {
		return ErrInvite
	}
	if acct.Hash, err = s.hash(ctx, password); err != nil {
		return err
	}
	acct.PasswordChanged = s.now().Now()
	if err := s.Store.UpdateAccount(ctx, acct); err != nil {
		return err
	}
	if _, err := s.Store.DeleteSessions(ctx, acct.ID); err != nil {
		return err
	}
	s.Store.SetMark(ctx, tid, inviteSentKey(key), time.Time{})
	return s.Audit(ctx, Actor{Name: key, Role: store.RoleUser, TenantID: tid, Address: key, IP: ip}, tid, "account.invite_accepted", key, "", "")
}

// inviteMail is the invitation, Japanese then English, from the null
// sender's point of view (queued with MAIL FROM:<>).
func inviteMail(host, rcpt, link string, now time.Time) []byte {
	text := "mailgate のメールアカウント " + rcpt + " が用意されました。\n" +
		"次のリンクを開いてパスワードを設定してください（7 日間有効、1 回限り）。\n\n" + link + "\n\n" +
		"設定後は同じアドレスとパスワードで、ブラウザ（ウェブメール）またはメールソフト（IMAP と SMTP submission）から\n" +
		"メールを読み書きできます。心当たりがない場合はこのメールを破棄してください。\n\n----\n\n" +
		"A mail account " + rcpt + " is ready for you on mailgate.\n" +
		"Open this link to choose your password (valid 7 days, once):\n\n" + link + "\n\n" +
		"Then sign in with this address and that password to read and send mail in the browser (webmail)\n" +
		"or with a mail app (IMAP and SMTP submission). If you did not expect this, ignore this message.\n"
	var id [12]byte
	_, _ = rand.Read(id[:])
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: mailgate <postmaster@%s>\r\n", host)
	fmt.Fprintf(&b, "To: <%s>\r\n", rcpt)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.BEncoding.Encode("utf-8", "[mailgate] メールアカウントのご案内 / Your mail account"))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", base64.RawURLEncoding.EncodeToString(id[:]), host)
	b.WriteString("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	qp.Close()
	return b.Bytes()
}
