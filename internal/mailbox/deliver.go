package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/scan/lists"
	"github.com/mailgate/mailgate/internal/store"
)

// DeliverMeta describes a message the queue delivers into a mailbox.
type DeliverMeta struct {
	// QueueID is the queue message's ID: a delivery retried after a crash
	// (the mailbox committed, the queue did not hear) stores no second
	// copy.
	QueueID  string
	MailFrom string    // envelope sender, "" for the null sender
	Received time.Time // becomes the INTERNALDATE; zero = now
	// Emergency marks mail received while the domain was in emergency
	// mode: it is handed back to the primary service later.
	Emergency bool
}

// Deliver stores body in the INBOX of rcpt's mailbox (made if the user has
// none yet) and returns once the message is durable. Errors wrap
// ErrOverQuota (nothing stored; the queue keeps the message and retries)
// or ErrNoMailbox (rcpt is no user of the tenant). A retry with the same
// QueueID after a success returns nil and stores nothing. Mail for
// postmaster@ a domain that has no such user goes to the domain's
// administrators (deliverPostmaster).
func (s *Service) Deliver(ctx context.Context, tenantID int64, rcpt string, body io.Reader, meta DeliverMeta) error {
	mb, err := s.Mailbox(ctx, tenantID, rcpt)
	if errors.Is(err, ErrNoMailbox) && isPostmaster(rcpt) {
		return s.deliverPostmaster(ctx, tenantID, rcpt, body, meta)
	} else if err != nil {
		return err
	}
	_, err = s.deliverInto(ctx, mb, body, meta)
	return err
}

// deliverInto stores body in mb's INBOX and returns the message stored
// (or, for a repeated delivery, the one stored before).
func (s *Service) deliverInto(ctx context.Context, mb store.Mailbox, body io.Reader, meta DeliverMeta) (store.MailMessage, error) {
	inbox, err := s.Folder(ctx, mb, "INBOX")
	if err != nil {
		return store.MailMessage{}, fmt.Errorf("mailbox %s: %w", mb.Address, err)
	}
	when := meta.Received
	if when.IsZero() {
		when = s.now()
	}
	in := store.MailInsert{
		Message: store.MailMessage{TenantID: mb.TenantID, MailboxID: mb.ID, FolderID: inbox.ID, InternalDate: when,
			QueueID: meta.QueueID, MailFrom: meta.MailFrom, Emergency: meta.Emergency},
		CheckQuota: true,
	}
	added, err := s.add(ctx, in, body)
	if err != nil {
		return store.MailMessage{}, fmt.Errorf("deliver to %s: %w", mb.Address, err)
	}
	if added.Duplicate {
		s.log().Info("mailbox delivery already done", "queue_id", meta.QueueID, "rcpt", mb.Address, "uid", added.Message.UID)
		return added.Message, nil
	}
	s.notify(inbox.ID)
	s.warnIfFull(ctx, mb, added)
	return added.Message, nil
}

// Append stores a message a client uploads (IMAP APPEND, or the webmail
// saving what it sent) in folder, with its flags and internal date (zero
// = now). The quota is checked with the insert (ErrOverQuota). A message
// stored in a \Sent folder while the mailbox's domain is in emergency
// mode is the user's sent mail of the outage: it is marked (Sent) to be
// handed back into the user's Sent folder at the primary service.
func (s *Service) Append(ctx context.Context, mb store.Mailbox, folder store.MailFolder, body io.Reader, flags []string, date time.Time) (store.MailMessage, error) {
	if date.IsZero() {
		date = s.now()
	}
	sent := false
	if strings.EqualFold(folder.SpecialUse, `\Sent`) {
		var err error
		if sent, err = s.inEmergency(ctx, mb); err != nil {
			return store.MailMessage{}, fmt.Errorf("append to %s: %w", folder.Name, err)
		}
	}
	in := store.MailInsert{
		Message:    store.MailMessage{TenantID: mb.TenantID, MailboxID: mb.ID, FolderID: folder.ID, InternalDate: date, Flags: flags, Sent: sent},
		CheckQuota: true,
	}
	added, err := s.add(ctx, in, body)
	if err != nil {
		return store.MailMessage{}, err
	}
	s.notify(folder.ID)
	return added.Message, nil
}

// inEmergency reports whether the mailbox's domain is in emergency mode
// (a domain the tenant no longer serves is not).
func (s *Service) inEmergency(ctx context.Context, mb store.Mailbox) (bool, error) {
	domain := mb.Domain
	if domain == "" {
		domain = store.MailboxDomain(mb.Address)
	}
	d, err := s.Store.DomainByName(ctx, domain)
	if errors.Is(err, store.ErrNotFound) || err == nil && d.TenantID != mb.TenantID {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("domain %s: %w", domain, err)
	}
	m, err := s.Store.DomainMode(ctx, d.TenantID, d.ID)
	if err != nil {
		return false, fmt.Errorf("delivery mode of %s: %w", domain, err)
	}
	return m.Mode == store.ModeEmergency, nil
}

// add writes the body to a new blob while decoding it, commits the blob,
// then inserts the row; the blob goes again if the row does not.
func (s *Service) add(ctx context.Context, in store.MailInsert, body io.Reader) (store.MailAdded, error) {
	w, err := s.Blobs.Create(ctx, "mb-"+store.NewMessageID(s.now()))
	if err != nil {
		return store.MailAdded{}, fmt.Errorf("mailbox blob: %w", err)
	}
	sum, n, err := writeAndDecode(ctx, w, body)
	if err != nil {
		w.Abort()
		return store.MailAdded{}, err
	}
	if err := w.Commit(ctx); err != nil {
		return store.MailAdded{}, fmt.Errorf("mailbox blob: %w", err)
	}
	key := w.Key()
	m := &in.Message
	m.BlobKey, m.Size = key, n
	m.From, m.To, m.Subject, m.MessageIDHdr, m.Date = sum.from, sum.to, sum.subject, sum.messageID, sum.date
	m.HasAttachment = sum.attach
	in.Header, in.SearchHeader, in.SearchBody = sum.header, sum.searchHeader, sum.searchBody
	in.SearchFrom, in.SearchTo, in.SearchSubject, in.Parents = sum.searchFrom, sum.searchTo, sum.searchSubject, sum.parents
	added, err := s.Store.AddMail(ctx, in)
	if err != nil || added.Duplicate {
		s.deleteBlobs(context.WithoutCancel(ctx), []string{key})
	}
	return added, err
}

// summary is what a message's decoding yields for the store.
type summary struct {
	from, to, subject, messageID string
	date                         time.Time
	header                       []byte
	searchHeader, searchBody     string
	// The fields the webmail's searches look in, its attachment mark and
	// the Message-IDs the message answers (its conversation).
	searchFrom, searchTo, searchSubject string
	attach                              bool
	parents                             []string
}

// headerTap keeps the first bytes written, up to the end of the header
// section (or a bound).
type headerTap struct {
	buf  bytes.Buffer
	done bool
}

func (h *headerTap) Write(p []byte) (int, error) {
	if h.done {
		return len(p), nil
	}
	h.buf.Write(p)
	b := h.buf.Bytes()
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		h.buf.Truncate(i + 4)
		h.done = true
	} else if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		h.buf.Truncate(i + 2)
		h.done = true
	} else if h.buf.Len() > maxKeptHeader {
		h.buf.Reset()
		h.done = true
	}
	return len(p), nil
}

// countWriter counts what goes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeAndDecode copies body into w and decodes it on the way, in one
// pass: the decoder may stop early (its bounds), the copy never does.
func writeAndDecode(ctx context.Context, w io.Writer, body io.Reader) (summary, int64, error) {
	var sum summary
	tap := &headerTap{}
	cw := &countWriter{w: w}
	tee := io.TeeReader(body, io.MultiWriter(cw, tap))
	msg, err := mailtext.Parse(ctx, tee, mailtext.Limits{MaxTextBytes: maxSearchText})
	if err != nil {
		return sum, 0, fmt.Errorf("read message: %w", err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return sum, 0, fmt.Errorf("read message: %w", err)
	}
	if cw.n == 0 {
		return sum, 0, ErrEmptyMessage
	}
	sum.header = bytes.Clone(tap.buf.Bytes())
	sum.subject = clip(msg.Subject, 1000)
	sum.from = clip(addrList(msg.From), 1000)
	sum.to = clip(addrList(msg.To), 1000)
	if v := msg.HeaderValues("Message-Id"); len(v) > 0 {
		sum.messageID = clip(strings.TrimSpace(v[0]), 500)
	}
	if v := msg.HeaderValues("Date"); len(v) > 0 {
		if t, err := mail.ParseDate(strings.TrimSpace(v[0])); err == nil {
			sum.date = t
		}
	}
	var hb strings.Builder
	for _, f := range msg.Header {
		hb.WriteString(Fold(f.Name))
		hb.WriteString(": ")
		hb.WriteString(Fold(f.Value))
		hb.WriteByte('\n')
	}
	sum.searchHeader = clip(hb.String(), maxSearchText)
	text := msg.Text
	for _, p := range msg.Parts {
		if p.Filename != "" {
			text += "\n" + p.Filename
		}
	}
	sum.searchBody = clip(Fold(text), maxSearchText)
	sum.searchFrom = clip(Fold(sum.from), 1000)
	sum.searchTo = clip(Fold(addrList(append(append([]mailtext.Address(nil), msg.To...), msg.Cc...))), 4000)
	sum.searchSubject = Fold(sum.subject)
	for _, p := range msg.Parts {
		if p.Disposition == "attachment" || (p.Filename != "" && p.Disposition != "inline") {
			sum.attach = true
		}
	}
	sum.parents = Parents(msg.HeaderValues("In-Reply-To"), msg.HeaderValues("References"))
	return sum, cw.n, nil
}

// Fold is the form in which message texts are kept for search and search
// terms are compared: NFKC (full-width ASCII is ASCII, half-width katakana
// full-width) and Unicode case folding, as the allow/deny lists compare.
func Fold(s string) string { return lists.Normalize(s) }

func addrList(as []mailtext.Address) string {
	var parts []string
	for _, a := range as {
		switch {
		case a.Name != "" && a.Addr != "":
			parts = append(parts, a.Name+" <"+a.Addr+">")
		case a.Addr != "":
			parts = append(parts, a.Addr)
		default:
			parts = append(parts, a.Name)
		}
	}
	return strings.Join(parts, ", ")
}

// clip cuts s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
