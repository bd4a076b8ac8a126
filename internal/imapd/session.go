package imapd

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/internal/loginlimit"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/passwd"
	"github.com/mailgate/mailgate/internal/store"
)

// storeTimeout bounds each store call of a command.
const storeTimeout = 60 * time.Second

// session is one IMAP connection. go-imap calls its methods one at a time
// (IDLE's updates run while the command loop waits for DONE), so it needs
// no lock of its own.
type session struct {
	s    *Server
	conn *imapserver.Conn
	ip   netip.Addr
	log  *slog.Logger

	mb      store.Mailbox // zero before login
	login   string
	release func() // the tenant and user connection slots
	sel     *selected
}

var (
	_ imapserver.SessionIMAP4rev2      = (*session)(nil)
	_ imapserver.SessionID             = (*session)(nil)
	_ imapserver.SessionQuota          = (*session)(nil)
	_ imapserver.SessionAppendCheck    = (*session)(nil)
	_ imapserver.SessionAppendLimit    = (*session)(nil)
	_ imapserver.SessionNamespace      = (*session)(nil)
	_ imapserver.SessionMove           = (*session)(nil)
	_ imapserver.SessionUnauthenticate = (*session)(nil)
)

func (se *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

func (se *session) svc() *mailbox.Service { return se.s.d.Mailboxes }
func (se *session) st() Store             { return se.s.d.Mailboxes.Store }

// Close ends the session: its slots and its watch of the folder.
func (se *session) Close() error {
	se.unselect()
	if se.release != nil {
		se.release()
		se.release = nil
	}
	se.s.release(se.ip)
	se.log.Debug("imap connection closed")
	return nil
}

// Unauthenticate returns to the state before login (RFC 8437).
func (se *session) Unauthenticate() error {
	se.unselect()
	if se.release != nil {
		se.release()
		se.release = nil
	}
	se.mb, se.login = store.Mailbox{}, ""
	return nil
}

var (
	errAuthFailed = imapserver.ErrAuthFailed
	errAuthBusy   = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Temporary authentication failure; try again shortly"}
	errThrottled  = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many failed logins; try again later"}
	errServer     = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Temporary server failure; try again"}
)

// Login checks an end user's console account with its mail password
// (store.Account.MailHash: the mail app password of an account with a
// second factor). Each attempt first takes a token from the throttle for
// the client's network and for the login; an unknown login costs a dummy
// check, so it is answered like a wrong password, as slowly. go-imap calls
// it only over TLS.
func (se *session) Login(username, password string) error {
	d := se.s.d
	login := strings.ToLower(strings.TrimSpace(username))
	ctx, cancel := se.ctx()
	defer cancel()
	keys := []string{loginlimit.IPKey(se.ip.String()), loginlimit.LoginKey(login)}
	if !se.take(ctx, keys) {
		se.log.Info("imap login throttled", "login", login)
		return errThrottled
	}
	a, err := se.st().AccountByLogin(ctx, login)
	hash := a.MailHash(d.RequireTOTP)
	usable := err == nil && !a.Disabled && hash != "" && a.TenantID != 0 && strings.Contains(login, "@")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		d.Throttle.Refund(ctx, d.Clock.Now(), keys...)
		se.log.Error("imap login lookup", "err", err)
		return errAuthBusy
	}
	if usable {
		err = d.Passwords.Verify(ctx, hash, password)
	} else {
		// Same answer and cost as a wrong password.
		err = d.Passwords.VerifyDummy(ctx, password)
	}
	switch {
	case errors.Is(err, passwd.ErrBusy):
		d.Throttle.Refund(ctx, d.Clock.Now(), keys...)
		se.log.Warn("imap login refused: too many password checks at once", "login", login)
		return errAuthBusy
	case err != nil:
		if !errors.Is(err, passwd.ErrMismatch) {
			se.log.Error("imap password cannot be checked", "login", login, "err", err)
		}
		se.log.Info("imap login failed", "login", login)
		return errAuthFailed
	}
	d.Throttle.Refund(ctx, d.Clock.Now(), keys...)
	mb, err := se.svc().Mailbox(ctx, a.TenantID, login)
	if errors.Is(err, mailbox.ErrNoMailbox) {
		se.log.Info("imap login of an account that is no mail user", "login", login)
		return errAuthFailed
	} else if err != nil {
		se.log.Error("imap mailbox", "login", login, "err", err)
		return errServer
	}
	release, err := se.s.acquireSlots(ctx, mb)
	if err != nil {
		se.log.Info("imap login over the connection limit", "login", login, "tenant", mb.TenantID)
		return err
	}
	se.mb, se.login, se.release = mb, login, release
	se.log = se.log.With("tenant", mb.TenantID, "user", login)
	if err := se.st().TouchMailboxLogin(ctx, mb.TenantID, mb.ID, d.Clock.Now()); err != nil {
		se.log.Warn("imap last login not recorded", "err", err)
	}
	se.log.Info("imap login")
	return nil
}

// throttleWait is how long a login waits for an attempt of its network.
// An office behind one address logs in with many programs at once; each
// attempt holds a token only while its password is checked, and a good
// one gives it back, so a short wait lets them all through, while failed
// attempts keep theirs and a guesser still runs dry.
const throttleWait = 3 * time.Second

// take reserves an attempt for every key, waiting up to throttleWait.
// A good login gives its attempt back, so a token may come free long
// before the throttle's refill time: tries are spaced by a fixed 100 ms
// (each is a store write where the throttle is shared by the nodes).
func (se *session) take(ctx context.Context, keys []string) bool {
	d := se.s.d
	deadline := time.Now().Add(throttleWait)
	for {
		if ok, _ := d.Throttle.Take(ctx, d.Clock.Now(), keys...); ok {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ID answers RFC 2971's ID.
func (se *session) ID(client *imap.IDData) *imap.IDData {
	if client != nil && client.Name != "" {
		se.log.Debug("imap client", "name", client.Name, "version", client.Version)
	}
	return &imap.IDData{Name: "mailgate", Vendor: "mailgate"}
}

// Namespace: one personal namespace, "/" between levels.
func (se *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: mailbox.Delim}}}, nil
}

// AppendLimit is the largest message APPEND takes.
func (se *session) AppendLimit() uint32 {
	return uint32(min(se.s.d.MaxMessageBytes, 1<<32-1))
}

// mailboxNow re-reads the mailbox (usage changes under other sessions).
func (se *session) mailboxNow(ctx context.Context) (store.Mailbox, error) {
	mb, err := se.st().MailboxByAddress(ctx, se.mb.TenantID, se.mb.Address)
	if err == nil {
		se.mb = mb
	}
	return mb, err
}

// folder finds a folder by name; NO [NONEXISTENT] when there is none.
func (se *session) folder(ctx context.Context, name string) (store.MailFolder, error) {
	f, err := se.svc().Folder(ctx, se.mb, name)
	if errors.Is(err, store.ErrNotFound) {
		return f, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}
	}
	return f, err
}

// imapErr turns a store or mailbox error into an IMAP answer; what is
// not the client's doing is logged and answered without detail.
func (se *session) imapErr(err error, what string) error {
	var ie *imap.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return err
	case errors.Is(err, store.ErrMailboxFull):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota, Text: "Mailbox is full; delete some mail and empty the trash"}
	case errors.Is(err, store.ErrNotFound):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such mailbox"}
	case errors.Is(err, store.ErrExists):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox already exists"}
	case errors.Is(err, mailbox.ErrHasChildren):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeHasChildren, Text: "Mailbox has children; delete them first"}
	case errors.Is(err, mailbox.ErrBadName):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "This mailbox name cannot be used"}
	}
	se.log.Error("imap "+what, "err", err)
	return errServer
}

var specialUses = []string{`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`, `\All`, `\Flagged`}

// Create makes a folder, with a special use when asked (RFC 6154 3).
func (se *session) Create(name string, options *imap.CreateOptions) error {
	ctx, cancel := se.ctx()
	defer cancel()
	use := ""
	if options != nil {
		for _, u := range options.SpecialUse {
			i := slices.IndexFunc(specialUses, func(s string) bool { return strings.EqualFold(s, string(u)) })
			if i < 0 || use != "" {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR", Text: "Unsupported special use"}
			}
			use = specialUses[i]
		}
	}
	_, err := se.svc().CreateFolder(ctx, se.mb, name, use)
	return se.imapErr(err, "create")
}

// Delete removes a folder (not INBOX, not one with children).
func (se *session) Delete(name string) error {
	ctx, cancel := se.ctx()
	defer cancel()
	return se.imapErr(se.svc().DeleteFolder(ctx, se.mb, name), "delete")
}

// Rename renames a folder with its children; INBOX's messages move.
func (se *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	ctx, cancel := se.ctx()
	defer cancel()
	if strings.EqualFold(oldName, "INBOX") {
		oldName = "INBOX"
	} else if _, err := se.folder(ctx, oldName); err != nil {
		return err
	}
	return se.imapErr(se.svc().RenameFolder(ctx, se.mb, oldName, newName), "rename")
}

// Subscribe and Unsubscribe keep names (RFC 9051 6.3.7).
func (se *session) Subscribe(name string) error {
	ctx, cancel := se.ctx()
	defer cancel()
	if _, err := se.folder(ctx, name); err != nil {
		return err
	}
	return se.imapErr(se.st().SetMailSubscription(ctx, se.mb.TenantID, se.mb.ID, name, true), "subscribe")
}

func (se *session) Unsubscribe(name string) error {
	ctx, cancel := se.ctx()
	defer cancel()
	return se.imapErr(se.st().SetMailSubscription(ctx, se.mb.TenantID, se.mb.ID, name, false), "unsubscribe")
}

// List answers LIST and LSUB, with LIST-EXTENDED's selection and return
// options and the special-use attributes.
func (se *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: mailbox.Delim})
	}
	ctx, cancel := se.ctx()
	defer cancel()
	folders, err := se.st().MailFolders(ctx, se.mb.TenantID, se.mb.ID)
	if err != nil {
		return se.imapErr(err, "list")
	}
	subs, err := se.st().MailSubscriptions(ctx, se.mb.TenantID, se.mb.ID)
	if err != nil {
		return se.imapErr(err, "list")
	}
	subscribed := map[string]bool{}
	for _, n := range subs {
		subscribed[n] = true
	}
	exists := map[string]store.MailFolder{}
	var names []string
	for _, f := range folders {
		exists[f.Name] = f
		names = append(names, f.Name)
	}
	if options.SelectSubscribed {
		// Subscribed names that no longer exist are listed too, marked
		// \NonExistent (RFC 5258 3.1).
		names = nil
		for _, n := range subs {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if !matchAny(name, ref, patterns) {
			continue
		}
		f, ok := exists[name]
		if options.SelectSpecialUse && f.SpecialUse == "" {
			continue
		}
		data := imap.ListData{Mailbox: name, Delim: mailbox.Delim}
		if !ok {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		} else {
			children := slices.ContainsFunc(folders, func(g store.MailFolder) bool { return strings.HasPrefix(g.Name, name+"/") })
			if children {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
			} else {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
			}
			if f.SpecialUse != "" {
				data.Attrs = append(data.Attrs, imap.MailboxAttr(f.SpecialUse))
			}
		}
		if subscribed[name] && (options.ReturnSubscribed || options.SelectSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if ok && options.ReturnStatus != nil {
			if data.Status, err = se.status(ctx, f, options.ReturnStatus); err != nil {
				return se.imapErr(err, "list status")
			}
		}
		if err := w.WriteList(&data); err != nil {
			return err
		}
	}
	return nil
}

// Status answers STATUS.
func (se *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	ctx, cancel := se.ctx()
	defer cancel()
	f, err := se.folder(ctx, name)
	if err != nil {
		return nil, err
	}
	data, err := se.status(ctx, f, options)
	return data, se.imapErr(err, "status")
}

func (se *session) status(ctx context.Context, f store.MailFolder, options *imap.StatusOptions) (*imap.StatusData, error) {
	data := &imap.StatusData{Mailbox: f.Name, UIDNext: imap.UID(f.UIDNext), UIDValidity: f.UIDValidity, HighestModSeq: f.HighestModSeq}
	if options.NumMessages || options.NumUnseen || options.NumDeleted || options.Size || options.NumRecent || options.DeletedStorage {
		st, err := se.st().MailFolderStatus(ctx, se.mb.TenantID, f.ID)
		if err != nil {
			return nil, err
		}
		n, unseen, del, zero := uint32(st.Messages), uint32(st.Unseen), uint32(st.Deleted), uint32(0)
		data.NumMessages, data.NumUnseen, data.NumDeleted, data.Size, data.NumRecent = &n, &unseen, &del, &st.Size, &zero
		ds := int64(0)
		data.DeletedStorage = &ds
	}
	if options.AppendLimit {
		l := se.AppendLimit()
		data.AppendLimit = &l
	}
	if options.HighestModSeq {
		se.conn.EnableCondStore()
	}
	return data, nil
}

// GetQuotaRoot: every folder's quota root is the user's mailbox, "".
func (se *session) GetQuotaRoot(name string) ([]imapserver.QuotaRoot, error) {
	ctx, cancel := se.ctx()
	defer cancel()
	if _, err := se.folder(ctx, name); err != nil {
		return nil, err
	}
	q, err := se.GetQuota("")
	if err != nil {
		return nil, err
	}
	return []imapserver.QuotaRoot{*q}, nil
}

// GetQuota reports the mailbox's storage in KiB (RFC 9208 5.1).
func (se *session) GetQuota(root string) (*imapserver.QuotaRoot, error) {
	if root != "" {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "No such quota root"}
	}
	ctx, cancel := se.ctx()
	defer cancel()
	mb, err := se.mailboxNow(ctx)
	if err != nil {
		return nil, se.imapErr(err, "quota")
	}
	q := &imapserver.QuotaRoot{Name: ""}
	if mb.QuotaMB > 0 {
		q.Resources = append(q.Resources, imapserver.QuotaResource{Name: imap.QuotaResourceStorage, Usage: (mb.UsedBytes + 1023) / 1024, Limit: mb.QuotaMB * 1024})
	}
	return q, nil
}
