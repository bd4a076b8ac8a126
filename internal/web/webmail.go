package web

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web/preview"
)

// The webmail: a user's own mailbox in the console (the emergency
// mailboxes, and the mailboxes of hosted domains), read and written the
// way a person expects of Gmail's or Outlook's web client. It acts only
// through the mailbox service, as IMAP does, so IMAP sessions see its
// changes at once, and it sends through the submission listener's own
// rules. Every page works without script; app.js adds keyboard shortcuts
// and address completion.
//
// A mailbox belongs to the login whose name is a user address of its
// tenant (end users, and administrators whose login is their address).
// Folders are named by ID and messages by UID in their folder; both are
// looked up in the caller's own mailbox only, so any other ID is simply
// not found.

// mailHandler is a webmail handler with the caller's mailbox.
type mailHandler func(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox)

// errNoMailbox: the login has no mailbox (an operator, an administrator
// whose login is no user address, or a node without mailboxes).
var errNoMailbox = fmt.Errorf("no mailbox for this login: %w", store.ErrNotFound)

// mailAddress is the address whose mailbox the caller reads, "" for none.
func mailAddress(p *principal) string {
	if p == nil || p.tenantID == 0 {
		return ""
	}
	switch p.role {
	case store.RoleUser:
		return p.address
	case store.RoleAdmin:
		if strings.Contains(p.acct.Login, "@") {
			return p.acct.Login
		}
	}
	return ""
}

// ownMailbox is the caller's mailbox. It is made the first time only when
// the address's domain lives in the mailboxes (mode emergency or mailbox):
// a user of a domain on its primary service has no webmail, unless a
// mailbox is left from an outage (its copies stay readable).
func (s *Server) ownMailbox(ctx context.Context, p *principal) (store.Mailbox, error) {
	a := strings.ToLower(mailAddress(p))
	if s.d.Mailboxes == nil || a == "" || p.role == store.RoleOperator {
		return store.Mailbox{}, errNoMailbox
	}
	mb, err := s.d.Store.MailboxByAddress(ctx, p.tenantID, a)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return mb, err
	}
	switch on, err := s.mailDomainOn(ctx, p.tenantID, a); {
	case err != nil:
		return mb, err
	case !on:
		return mb, errNoMailbox
	}
	mb, err = s.d.Mailboxes.Mailbox(ctx, p.tenantID, a)
	if errors.Is(err, mailbox.ErrNoMailbox) {
		return mb, errNoMailbox
	}
	return mb, err
}

// mailDomainOn reports whether address's domain, served by the tenant,
// has its mail in the mailboxes (mode emergency or mailbox).
func (s *Server) mailDomainOn(ctx context.Context, tenantID int64, address string) (bool, error) {
	i := strings.LastIndexByte(address, '@')
	if i < 0 {
		return false, nil
	}
	d, err := s.d.Store.DomainByName(ctx, address[i+1:])
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil || d.TenantID != tenantID {
		return false, err
	}
	m, err := s.d.Store.DomainMode(ctx, tenantID, d.ID)
	if err != nil {
		return false, err
	}
	return m.Mode == store.ModeEmergency || m.Mode == store.ModeMailbox, nil
}

// hasWebmail reports whether the caller gets the webmail (the menu shows
// it), without making a mailbox.
func (s *Server) hasWebmail(ctx context.Context, p *principal) bool {
	a := strings.ToLower(mailAddress(p))
	if s.d.Mailboxes == nil || a == "" || p.role == store.RoleOperator {
		return false
	}
	if _, err := s.d.Store.MailboxByAddress(ctx, p.tenantID, a); err == nil {
		return true
	}
	on, _ := s.mailDomainOn(ctx, p.tenantID, a)
	return on
}

// handleMail registers a webmail route: the least role is an end user,
// and the caller must have a mailbox (Route.Mailbox).
func (s *Server) handleMail(pattern string, h mailHandler) {
	s.handle(pattern, store.RoleUser, func(w http.ResponseWriter, r *http.Request, p *principal) {
		mb, err := s.ownMailbox(r.Context(), p)
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		h(w, r, p, mb)
	})
	s.routes[len(s.routes)-1].Mailbox = true
}

func (s *Server) webmailRoutes() {
	s.handleMail("GET /mail", s.mailHome)
	s.handleMail("GET /mail/search", s.mailSearch)
	s.handleMail("GET /mail/f/{folder}", s.mailList)
	s.handleMail("GET /mail/f/{folder}/m/{uid}", s.mailRead)
	s.handleMail("GET /mail/f/{folder}/m/{uid}/body", s.mailBody)
	s.handleMail("GET /mail/f/{folder}/m/{uid}/att/{n}", s.mailAttachment)
	s.handleMail("GET /mail/f/{folder}/m/{uid}/raw", s.mailRaw)
	s.handleMail("GET /mail/f/{folder}/m/{uid}/link", s.mailLink)
	s.handleMail("POST /mail/f/{folder}/act", s.mailAct)
	s.handleMail("POST /mail/f/{folder}/empty", s.mailEmpty)
	s.handleMail("GET /mail/compose", s.composePage)
	s.handleMail("POST /mail/compose", s.composePost)
	s.handleMail("GET /mail/contacts", s.mailContacts)
}

// --- folders ---

// mailFolder is a folder as the pages show it.
type mailFolder struct {
	ID       int64
	Name     string // as stored
	Label    string // translated for special folders
	Special  string // `\Sent`...
	Depth    int
	Unseen   int
	Messages int
	Current  bool
}

func (f mailFolder) URL() string { return "/mail/f/" + strconv.FormatInt(f.ID, 10) }

// specialOrder puts the special folders first, as mail readers do.
var specialOrder = map[string]int{"": 6, `\Drafts`: 1, `\Sent`: 2, `\Archive`: 3, `\Junk`: 4, `\Trash`: 5}

// folderViews lists mb's folders with their counts, INBOX first, then the
// special folders, then the others by name.
func (s *Server) folderViews(ctx context.Context, v *view, mb store.Mailbox, current int64) ([]mailFolder, error) {
	fs, counts, err := s.mailFolders(ctx, mb)
	if err != nil {
		return nil, err
	}
	out := make([]mailFolder, 0, len(fs))
	for _, f := range fs {
		c := counts[f.ID]
		mf := mailFolder{ID: f.ID, Name: f.Name, Label: f.Name, Special: f.SpecialUse, Unseen: c.Unseen, Messages: c.Messages,
			Current: f.ID == current, Depth: strings.Count(f.Name, "/")}
		switch {
		case f.Name == "INBOX":
			mf.Label = v.T("webmail_inbox")
		case f.SpecialUse != "":
			mf.Label = v.T("webmail_folder_" + strings.ToLower(strings.TrimPrefix(f.SpecialUse, `\`)))
		}
		out = append(out, mf)
	}
	rank := func(f mailFolder) int {
		if f.Name == "INBOX" {
			return 0
		}
		return specialOrder[f.Special]
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := rank(out[i]), rank(out[j]); ri != rj {
			return ri < rj
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// mailFolderParam is the folder named in the path, of the caller's mailbox.
func (s *Server) mailFolderParam(ctx context.Context, r *http.Request, mb store.Mailbox) (store.MailFolder, error) {
	id, err := strconv.ParseInt(r.PathValue("folder"), 10, 64)
	if err != nil || id <= 0 {
		return store.MailFolder{}, fmt.Errorf("folder %q: %w", r.PathValue("folder"), store.ErrNotFound)
	}
	return s.d.Mailboxes.FolderByID(ctx, mb, id)
}

// mailMessageParam is the message named in the path.
func (s *Server) mailMessageParam(ctx context.Context, r *http.Request, mb store.Mailbox) (store.MailFolder, store.MailMessage, error) {
	f, err := s.mailFolderParam(ctx, r, mb)
	if err != nil {
		return f, store.MailMessage{}, err
	}
	uid, err := strconv.ParseUint(r.PathValue("uid"), 10, 32)
	if err != nil || uid == 0 {
		return f, store.MailMessage{}, fmt.Errorf("message %q: %w", r.PathValue("uid"), store.ErrNotFound)
	}
	m, err := s.d.Mailboxes.Message(ctx, f, uint32(uid))
	return f, m, err
}

func mailURL(folderID int64, uid uint32) string {
	return "/mail/f/" + strconv.FormatInt(folderID, 10) + "/m/" + strconv.FormatUint(uint64(uid), 10)
}

// --- the message list ---

// mailRow is one line of the message list.
type mailRow struct {
	store.MailListed
	FromName, FromAddr string
	Seen, Flagged      bool
	Answered, Draft    bool
	URL                string
	When               string // short date
	WhenFull           string
	Folder             string // the folder's label (search of every folder)
}

type mailListData struct {
	Folders []mailFolder
	Current *mailFolder // nil for a search of every folder
	Rows    []mailRow
	// Next continues after this page; First goes back to the first page
	// (nil on it).
	Next, First url.Values
	Sort, Order string
	Conv        bool
	Search      bool
	Q           map[string]string
	Targets     []mailFolder // where messages may be moved
	Emptiable   bool         // Trash or Junk
	Used, Quota int64
	Self        string // the page's own path with its query, to come back to
}

// mailCursor encodes a row's position for the next page's link.
func mailCursor(c store.MailCursor, text bool) string {
	if text {
		return "s" + base64.RawURLEncoding.EncodeToString([]byte(c.Str)) + "." + strconv.FormatInt(c.ID, 10)
	}
	return strconv.FormatInt(c.Num, 10) + "." + strconv.FormatInt(c.ID, 10)
}

func parseMailCursor(v string) (*store.MailCursor, error) {
	if v == "" {
		return nil, nil
	}
	key, id, ok := strings.Cut(v, ".")
	n, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil {
		return nil, badRequest("invalid page position")
	}
	c := &store.MailCursor{ID: n}
	if strings.HasPrefix(key, "s") {
		b, err := base64.RawURLEncoding.DecodeString(key[1:])
		if err != nil {
			return nil, badRequest("invalid page position")
		}
		c.Str = string(b)
		return c, nil
	}
	if c.Num, err = strconv.ParseInt(key, 10, 64); err != nil {
		return nil, badRequest("invalid page position")
	}
	return c, nil
}

const mailPageSize = 50

// mailQuery reads the list's order, page and filters from the URL.
func (s *Server) mailQuery(r *http.Request, zone *time.Location) (store.MailQuery, error) {
	q := r.URL.Query()
	if err := checkSearchTerms(q, "q", "from", "to", "subject", "body"); err != nil {
		return store.MailQuery{}, err
	}
	mq := store.MailQuery{Sort: q.Get("sort"), Asc: q.Get("order") == "asc", Limit: mailPageSize,
		Text: q.Get("q"), From: q.Get("from"), To: q.Get("to"), Subject: q.Get("subject"), Body: q.Get("body"),
		Unseen: q.Get("unseen") == "1", Flagged: q.Get("flagged") == "1", Threads: q.Get("conv") == "1"}
	switch mq.Sort {
	case "", store.MailSortDate, store.MailSortFrom, store.MailSortSubject, store.MailSortSize:
	default:
		return mq, badRequest("unknown order %q", mq.Sort)
	}
	for _, f := range []*string{&mq.Text, &mq.From, &mq.To, &mq.Subject, &mq.Body} {
		if len(*f) > 500 {
			return mq, badRequest("search terms are limited to 500 characters")
		}
	}
	for key, t := range map[string]*time.Time{"since": &mq.Since, "before": &mq.Before} {
		if v := q.Get(key); v != "" {
			d, err := time.ParseInLocation("2006-01-02", v, zone)
			if err != nil {
				return mq, badRequest("%s: a date as YYYY-MM-DD", key)
			}
			if key == "before" {
				d = d.AddDate(0, 0, 1) // the whole day named
			}
			*t = d
		}
	}
	var err error
	mq.After, err = parseMailCursor(q.Get("after"))
	return mq, err
}

func (s *Server) mailHome(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	in, err := s.d.Mailboxes.Folder(r.Context(), mb, "INBOX")
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	to := "/mail/f/" + strconv.FormatInt(in.ID, 10)
	if m := r.URL.Query().Get("msg"); m != "" {
		to += "?msg=" + url.QueryEscape(m)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (s *Server) mailList(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	f, err := s.mailFolderParam(r.Context(), r, mb)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	s.mailListPage(w, r, p, mb, &f)
}

func (s *Server) mailSearch(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	s.mailListPage(w, r, p, mb, nil)
}

// mailListPage is a folder's list (f set) or a search of every folder.
func (s *Server) mailListPage(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox, f *store.MailFolder) {
	ctx := r.Context()
	zone := s.mailZone(ctx, p.tenantID)
	mq, err := s.mailQuery(r, zone)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "webmail_title")
	var cur int64
	if f != nil {
		mq.FolderID, cur = f.ID, f.ID
	}
	d := mailListData{Sort: mq.Sort, Order: r.URL.Query().Get("order"), Conv: mq.Threads, Search: f == nil, Q: map[string]string{},
		Used: mb.UsedBytes, Quota: mb.QuotaBytes()}
	for _, k := range []string{"q", "from", "to", "subject", "body", "since", "before", "unseen", "flagged"} {
		d.Q[k] = r.URL.Query().Get(k)
	}
	if d.Folders, err = s.folderViews(ctx, v, mb, cur); err != nil {
		s.fail(w, r, p, err)
		return
	}
	labels := map[int64]string{}
	for i := range d.Folders {
		labels[d.Folders[i].ID] = d.Folders[i].Label
		if d.Folders[i].Current {
			d.Current = &d.Folders[i]
		} else {
			d.Targets = append(d.Targets, d.Folders[i])
		}
	}
	if f != nil {
		d.Emptiable = f.SpecialUse == `\Trash` || f.SpecialUse == `\Junk`
		v.Title = labels[f.ID]
	} else {
		v.Title = v.T("webmail_search_title")
	}
	page, more, err := s.d.Mailboxes.List(ctx, mb, mq)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	now := s.d.Clock.Now().In(zone)
	for _, it := range page {
		m := it.Message
		row := mailRow{MailListed: it, Seen: m.HasFlag(`\Seen`), Flagged: m.HasFlag(`\Flagged`), Answered: m.HasFlag(`\Answered`),
			Draft: m.HasFlag(`\Draft`), URL: mailURL(m.FolderID, m.UID), Folder: labels[m.FolderID]}
		row.FromName, row.FromAddr = splitFrom(m.From)
		if f != nil && (f.SpecialUse == `\Sent` || f.SpecialUse == `\Drafts`) {
			// Sent mail is listed by whom it went to.
			row.FromName, row.FromAddr = splitFrom(m.To)
		}
		row.When, row.WhenFull = shortDate(m.InternalDate.In(zone), now), m.InternalDate.In(zone).Format("2006-01-02 15:04")
		if row.Draft && f != nil && f.SpecialUse == `\Drafts` {
			row.URL = "/mail/compose?draft=" + strconv.FormatUint(uint64(m.UID), 10)
		}
		d.Rows = append(d.Rows, row)
	}
	q := r.URL.Query()
	q.Del("msg")
	if more && len(page) > 0 {
		n := cloneValues(q)
		n.Set("after", mailCursor(page[len(page)-1].Cursor, mq.Sort == store.MailSortFrom || mq.Sort == store.MailSortSubject))
		d.Next = n
	}
	if q.Get("after") != "" {
		fq := cloneValues(q)
		fq.Del("after")
		d.First = fq
	}
	d.Self = r.URL.Path
	if e := q.Encode(); e != "" {
		d.Self += "?" + e
	}
	v.Data = d
	s.touchMailLogin(ctx, mb)
	s.render(w, http.StatusOK, "mail", v)
}

// touchMailLogin records the webmail's use as the mailbox's last login
// (the mailboxes page shows it), at most every ten minutes.
func (s *Server) touchMailLogin(ctx context.Context, mb store.Mailbox) {
	now := s.d.Clock.Now()
	if now.Sub(mb.LastLogin) < 10*time.Minute {
		return
	}
	if err := s.d.Store.TouchMailboxLogin(ctx, mb.TenantID, mb.ID, now); err != nil {
		s.d.Log.Warn("webmail: last login not recorded", "err", err)
	}
}

func cloneValues(q url.Values) url.Values {
	n := url.Values{}
	for k, v := range q {
		n[k] = append([]string(nil), v...)
	}
	return n
}

// splitFrom parses a stored address list's first mailbox ("Name <addr>").
func splitFrom(v string) (name, addr string) {
	first := v
	if i := strings.Index(v, ">,"); i >= 0 {
		first = v[:i+1]
	}
	if i := strings.LastIndexByte(first, '<'); i >= 0 && strings.HasSuffix(first, ">") {
		return strings.Trim(strings.TrimSpace(first[:i]), `"`), first[i+1 : len(first)-1]
	}
	if i := strings.IndexByte(first, ','); i >= 0 {
		first = first[:i]
	}
	return "", strings.TrimSpace(first)
}

// shortDate is a list's date: the time today, the month and day this
// year, else the full date.
func shortDate(t, now time.Time) string {
	switch {
	case t.Year() == now.Year() && t.YearDay() == now.YearDay():
		return t.Format("15:04")
	case t.Year() == now.Year():
		return t.Format("1/2")
	}
	return t.Format("2006/1/2")
}

// --- reading ---

type mailReadData struct {
	Folders  []mailFolder
	Current  *mailFolder
	Targets  []mailFolder
	Msg      store.MailMessage
	View     *preview.View
	Frame    string
	Base     string // the message's URL
	Remote   bool
	Thread   []mailRow // the conversation's other messages
	IsJunk   bool
	IsTrash  bool
	IsSent   bool
	Envelope string // the envelope sender when it differs from From
	ListURL  string
	Date     string
}

// mailMessageRaw is mailMessageParam with the message's bytes.
func (s *Server) mailMessageRaw(ctx context.Context, r *http.Request, mb store.Mailbox) (store.MailFolder, store.MailMessage, []byte, error) {
	f, m, err := s.mailMessageParam(ctx, r, mb)
	if err != nil {
		return f, m, nil, err
	}
	raw, err := s.readRaw(ctx, m)
	return f, m, raw, err
}

// readRaw reads a message's body (bounded by the largest message the node
// accepts, with room for what a mail app appended).
func (s *Server) readRaw(ctx context.Context, m store.MailMessage) ([]byte, error) {
	rc, err := s.d.Mailboxes.OpenBody(ctx, m)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxMailRead))
}

// maxMailRead bounds the bytes of one message the webmail reads.
const maxMailRead = 256 << 20

// mailPreviewOptions are the reader's preview options: the message's own
// images shown, links through the link page.
func mailPreviewOptions(base string, remote bool, lang string) preview.Options {
	return preview.Options{AllowRemoteImages: remote, Lang: lang, InlineImages: true, LinkURL: func(target string) string {
		return base + "/link?u=" + url.QueryEscape(target)
	}}
}

func (s *Server) mailRead(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	f, m, err := s.mailMessageParam(ctx, r, mb)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	v := s.newView(r, p, "webmail_title")
	base := mailURL(f.ID, m.UID)
	remote := r.URL.Query().Get("images") == "1"
	pv, err := s.mailView(ctx, m, base, remote, v.Lang)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	if !m.HasFlag(`\Seen`) {
		if _, _, err := s.d.Mailboxes.StoreFlags(ctx, f, []uint32{m.UID}, store.FlagsAdd, []string{`\Seen`}, 0); err != nil {
			s.d.Log.Warn("webmail: not marked read", "err", err)
		}
	}
	zone := s.mailZone(ctx, p.tenantID)
	d := mailReadData{Msg: m, View: pv, Base: base, Frame: base + "/body", Remote: remote,
		IsJunk: f.SpecialUse == `\Junk`, IsTrash: f.SpecialUse == `\Trash`, IsSent: f.SpecialUse == `\Sent`,
		ListURL: "/mail/f/" + strconv.FormatInt(f.ID, 10)}
	if remote {
		d.Frame += "?images=1"
	}
	when := pv.Date
	if when.IsZero() {
		when = m.InternalDate
	}
	d.Date = when.In(zone).Format("2006-01-02 15:04 MST")
	if len(pv.From) == 1 && m.MailFrom != "" && !strings.EqualFold(pv.From[0].Address, m.MailFrom) {
		d.Envelope = m.MailFrom
	}
	if d.Folders, err = s.folderViews(ctx, v, mb, f.ID); err != nil {
		s.fail(w, r, p, err)
		return
	}
	labels := map[int64]string{}
	for i := range d.Folders {
		labels[d.Folders[i].ID] = d.Folders[i].Label
		if d.Folders[i].Current {
			d.Current = &d.Folders[i]
		} else {
			d.Targets = append(d.Targets, d.Folders[i])
		}
	}
	if th, err := s.d.Mailboxes.Thread(ctx, mb, m.ThreadID); err == nil && len(th) > 1 {
		for _, t := range th {
			row := mailRow{MailListed: store.MailListed{Message: t}, URL: mailURL(t.FolderID, t.UID), Folder: labels[t.FolderID],
				Seen: t.HasFlag(`\Seen`) || t.ID == m.ID}
			row.FromName, row.FromAddr = splitFrom(t.From)
			row.When = t.InternalDate.In(zone).Format("2006-01-02 15:04")
			d.Thread = append(d.Thread, row)
		}
	}
	v.Title = pv.Subject
	if v.Title == "" {
		v.Title = v.T("webmail_no_subject")
	}
	v.Data = d
	s.render(w, http.StatusOK, "mail_read", v)
}

// mailBody serves the sanitised document for the reader's sandboxed
// frame, with the preview's own restrictive headers; the reading page
// just rendered it (mailView).
func (s *Server) mailBody(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	f, m, err := s.mailMessageParam(ctx, r, mb)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	lang := s.i18n.lang(r, s.cookieName(langCookie), p.acct.Lang)
	pv, err := s.mailView(ctx, m, mailURL(f.ID, m.UID), r.URL.Query().Get("images") == "1", lang)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	preview.WriteDocument(w, pv)
}

func (s *Server) mailAttachment(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	_, m, err := s.mailMessageParam(ctx, r, mb)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 {
		s.fail(w, r, p, store.ErrNotFound)
		return
	}
	raw, err := s.readRaw(ctx, m)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	att, body, err := preview.AttachmentData(ctx, strings.NewReader(string(raw)), n, preview.Options{})
	if err != nil {
		s.fail(w, r, p, fmt.Errorf("attachment %d: %w", n, store.ErrNotFound))
		return
	}
	preview.WriteAttachment(w, att.Name, body)
}

// mailRaw downloads the message as an .eml file, never shown by the
// browser.
func (s *Server) mailRaw(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	_, m, raw, err := s.mailMessageRaw(ctx, r, mb)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	name := m.Subject
	if name == "" {
		name = "message"
	}
	preview.WriteAttachment(w, name+".eml", raw)
}

type mailLinkData struct {
	Link    *preview.LinkInfo
	Links   []qlinkEntry
	Back    string
	From    string
	Subject string
}

// mailLink is the link page of the reader (as the quarantine's): where a
// link of the message leads, before the reader leaves the console.
func (s *Server) mailLink(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	f, m, raw, err := s.mailMessageRaw(ctx, r, mb)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	base := mailURL(f.ID, m.UID)
	d := mailLinkData{Back: base, From: m.From, Subject: m.Subject}
	target := r.URL.Query().Get("u")
	if target == "" {
		pv, err := preview.Render(ctx, strings.NewReader(string(raw)), preview.Options{})
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		for _, l := range pv.Links {
			d.Links = append(d.Links, qlinkEntry{Link: l, URL: base + "/link?u=" + url.QueryEscape(l.Target)})
		}
	} else {
		info, err := preview.InspectLink(ctx, strings.NewReader(string(raw)), target, preview.Options{})
		if errors.Is(err, preview.ErrNoLink) {
			err = store.ErrNotFound
		}
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		d.Link = &info
	}
	v := s.newView(r, p, "qlink_title")
	v.Data = d
	s.render(w, http.StatusOK, "mail_link", v)
}

// --- actions ---

// mailUIDs reads the UIDs a form names ("uid", repeated).
func mailUIDs(r *http.Request) ([]uint32, error) {
	var out []uint32
	for _, v := range r.PostForm["uid"] {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return nil, badRequest("invalid message number %q", v)
		}
		out = append(out, uint32(n))
	}
	if len(out) == 0 {
		return nil, badRequest("select at least one message")
	}
	if len(out) > 1000 {
		return nil, badRequest("at most 1000 messages at once")
	}
	return out, nil
}

// mailAct applies an action to messages of a folder: read, unread, flag,
// unflag, delete, move (to), junk, notjunk, archive.
func (s *Server) mailAct(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	f, err := s.mailFolderParam(ctx, r, mb)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, p, badRequest("unreadable form"))
		return
	}
	uids, err := mailUIDs(r)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	svc := s.d.Mailboxes
	back := safeNext(r.PostFormValue("next"))
	if back == "/" {
		back = "/mail/f/" + strconv.FormatInt(f.ID, 10)
	}
	flag := func(op store.FlagOp, fl string) error {
		_, _, err := svc.StoreFlags(ctx, f, uids, op, []string{fl}, 0)
		return err
	}
	moveTo := func(to store.MailFolder, err error) error {
		if err != nil {
			return err
		}
		if to.ID == f.ID {
			return nil
		}
		_, _, err = svc.Move(ctx, f, uids, to)
		return err
	}
	msg := "webmail_done"
	switch r.PostFormValue("action") {
	case "read":
		err = flag(store.FlagsAdd, `\Seen`)
	case "unread":
		err = flag(store.FlagsRemove, `\Seen`)
	case "flag":
		err = flag(store.FlagsAdd, `\Flagged`)
	case "unflag":
		err = flag(store.FlagsRemove, `\Flagged`)
	case "delete":
		err, msg = svc.Remove(ctx, mb, f, uids), "webmail_deleted"
		back = leaveMessage(back, f.ID)
	case "move":
		id, perr := strconv.ParseInt(r.PostFormValue("to"), 10, 64)
		if perr != nil {
			err = badRequest("choose a folder")
			break
		}
		err, msg = moveTo(svc.FolderByID(ctx, mb, id)), "webmail_moved"
		back = leaveMessage(back, f.ID)
	case "junk":
		err, msg = moveTo(svc.SpecialFolder(ctx, mb, `\Junk`)), "webmail_junked"
		back = leaveMessage(back, f.ID)
	case "notjunk":
		err, msg = moveTo(svc.Folder(ctx, mb, "INBOX")), "webmail_moved"
		back = leaveMessage(back, f.ID)
	case "archive":
		err, msg = moveTo(svc.SpecialFolder(ctx, mb, `\Archive`)), "webmail_moved"
		back = leaveMessage(back, f.ID)
	default:
		err = badRequest("unknown action")
	}
	if errors.Is(err, store.ErrMailboxFull) {
		err = badRequest("%s", s.newView(r, p, "").T("webmail_full"))
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	done(w, r, back, msg)
}

// leaveMessage turns a way back to a message that moved away into the
// folder it was in.
func leaveMessage(back string, folderID int64) string {
	prefix := "/mail/f/" + strconv.FormatInt(folderID, 10)
	if strings.HasPrefix(back, prefix+"/m/") {
		return prefix
	}
	return back
}

func (s *Server) mailEmpty(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	f, err := s.mailFolderParam(ctx, r, mb)
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	if _, err := s.d.Mailboxes.Empty(ctx, f); err != nil {
		if errors.Is(err, mailbox.ErrNotTrash) {
			err = badRequest("%s", s.newView(r, p, "").T("webmail_not_trash"))
		}
		s.fail(w, r, p, err)
		return
	}
	done(w, r, "/mail/f/"+strconv.FormatInt(f.ID, 10), "webmail_emptied")
}

// mailZone is the tenant's time zone for the webmail (policy
// webmail.time_zone, else the console's).
func (s *Server) mailZone(ctx context.Context, tenantID int64) *time.Location {
	if v, err := s.tenantSetting(ctx, tenantID, "webmail.time_zone"); err == nil && v != "" {
		if loc, err := time.LoadLocation(strings.TrimSpace(v)); err == nil {
			return loc
		}
	}
	return s.d.Zone
}
