package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/web/compose"
	"github.com/mailgate/mailgate/internal/web/preview"
)

// Writing mail: compose, reply, reply to all, forward (inline, with the
// original's attachments, or the whole message as an attachment), drafts
// kept in Drafts, attachments up to the tenant's limit, the Sent copy.

// Policy keys of the webmail (tenant level).
const (
	keyMailCharset   = "webmail.charset"       // iso-2022-jp (default) or utf-8
	keyAttachmentMB  = "webmail.attachment_mb" // attachments of one message, MB
	defaultAttachMB  = 20
	maxComposeFields = 64 << 10 // the text fields of the form together
)

// SubmitRefusal is a message refused by the submission rules: the SMTP
// reply a mail app would have got (Code 5xx: never as written; 4xx: later).
type SubmitRefusal struct {
	Code int
	Text string
}

func (e *SubmitRefusal) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Text) }

// carried is an attachment kept from another message of the mailbox (the
// forwarded one, or the draft being edited): Ref is "folder:uid:index".
type carried struct {
	Ref  string
	Name string
	Size int64
}

type composeData struct {
	Folders                  []mailFolder
	To, Cc, Bcc, Subject     string
	Body                     string
	InReplyTo, References    string
	Draft                    uint32 // the draft being edited (its UID in Drafts)
	Carry                    []carried
	Forward, ForwardName     string // "folder:uid" sent as message/rfc822
	Source, Mode             string // the message answered or forwarded, and how
	MaxMB                    int64
	Charset                  string
	SentWarning, Unsupported string
}

func (s *Server) attachmentLimit(ctx context.Context, tenantID int64) int64 {
	mb := int64(defaultAttachMB)
	if v, err := s.tenantSetting(ctx, tenantID, keyAttachmentMB); err == nil && v != "" {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
			mb = n
		}
	}
	limit := mb << 20
	if max := s.d.MaxMessageBytes; max > 0 && limit > max*3/4 {
		// Base64 grows attachments by a third; the message must still fit.
		limit = max * 3 / 4
	}
	return limit
}

func (s *Server) mailCharset(ctx context.Context, tenantID int64) string {
	v, _ := s.tenantSetting(ctx, tenantID, keyMailCharset)
	if strings.EqualFold(strings.TrimSpace(v), compose.UTF8) || strings.EqualFold(strings.TrimSpace(v), "utf8") {
		return compose.UTF8
	}
	return compose.ISO2022JP
}

// msgRef names a message of the mailbox as "folder:uid".
func msgRef(folderID int64, uid uint32) string {
	return strconv.FormatInt(folderID, 10) + ":" + strconv.FormatUint(uint64(uid), 10)
}

// refMessage resolves "folder:uid" in mb.
func (s *Server) refMessage(ctx context.Context, mb store.Mailbox, ref string) (store.MailFolder, store.MailMessage, error) {
	fs, us, ok := strings.Cut(ref, ":")
	fid, err1 := strconv.ParseInt(fs, 10, 64)
	uid, err2 := strconv.ParseUint(us, 10, 32)
	if !ok || err1 != nil || err2 != nil || uid == 0 {
		return store.MailFolder{}, store.MailMessage{}, fmt.Errorf("message %q: %w", ref, store.ErrNotFound)
	}
	f, err := s.d.Mailboxes.FolderByID(ctx, mb, fid)
	if err != nil {
		return f, store.MailMessage{}, err
	}
	m, err := s.d.Mailboxes.Message(ctx, f, uint32(uid))
	return f, m, err
}

// addrList formats decoded addresses for a form field.
func addrList(as []mailtext.Address, skip string) string {
	var parts []string
	seen := map[string]bool{}
	for _, a := range as {
		k := strings.ToLower(a.Addr)
		if a.Addr == "" || seen[k] || strings.EqualFold(a.Addr, skip) {
			continue
		}
		seen[k] = true
		if a.Name != "" {
			// Decoded for the form: people read names, not encoded words.
			parts = append(parts, quotedName(a.Name)+" <"+a.Addr+">")
		} else {
			parts = append(parts, a.Addr)
		}
	}
	return strings.Join(parts, ", ")
}

func quotedName(n string) string {
	if strings.ContainsAny(n, `,;<>"@()[]:\`) {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(n) + `"`
	}
	return n
}

// prefixed adds a reply or forward prefix unless the subject has one.
func prefixed(prefix, subject string) string {
	low := strings.ToLower(strings.TrimSpace(subject))
	p := strings.ToLower(prefix)
	if strings.HasPrefix(low, p) || strings.HasPrefix(low, strings.TrimSuffix(p, ":")+"：") {
		return subject
	}
	return prefix + " " + subject
}

// quote is the original's text as a reply quotes it.
func quote(intro, text string) string {
	var b strings.Builder
	b.WriteString("\n\n" + intro + "\n")
	text = strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, ">") {
			b.WriteString(">" + l + "\n")
		} else {
			b.WriteString("> " + l + "\n")
		}
	}
	return b.String()
}

func (s *Server) composePage(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	q := r.URL.Query()
	v := s.newView(r, p, "webmail_compose")
	d := composeData{To: q.Get("to"), MaxMB: s.attachmentLimit(ctx, p.tenantID) >> 20, Charset: s.mailCharset(ctx, p.tenantID)}
	var err error
	switch {
	case q.Get("draft") != "":
		err = s.loadDraft(ctx, mb, q.Get("draft"), &d)
	case q.Get("src") != "":
		err = s.prefill(ctx, v, p, mb, q.Get("src"), q.Get("mode"), &d)
	}
	if err != nil {
		s.fail(w, r, p, err)
		return
	}
	if d.Folders, err = s.folderViews(ctx, v, mb, 0); err != nil {
		s.fail(w, r, p, err)
		return
	}
	v.Data = d
	s.render(w, http.StatusOK, "mail_compose", v)
}

// prefill fills the form for a reply, a reply to all or a forward of the
// message src.
func (s *Server) prefill(ctx context.Context, v *view, p *principal, mb store.Mailbox, src, mode string, d *composeData) error {
	f, m, err := s.refMessage(ctx, mb, src)
	if err != nil {
		return err
	}
	raw, err := s.readRaw(ctx, m)
	if err != nil {
		return err
	}
	pm, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
	if err != nil {
		return err
	}
	zone := s.mailZone(ctx, p.tenantID)
	when := m.InternalDate
	if ds := pm.HeaderValues("Date"); len(ds) > 0 {
		if t, err := mail.ParseDate(strings.TrimSpace(ds[0])); err == nil {
			when = t
		}
	}
	date := when.In(zone).Format("2006-01-02 15:04")
	from := addrList(pm.From, "")
	d.Source, d.Mode = msgRef(f.ID, m.UID), mode
	msgID := strings.TrimSpace(firstValue(pm.HeaderValues("Message-Id")))
	switch mode {
	case "reply", "all":
		to := pm.ReplyTo
		if len(to) == 0 {
			to = pm.From
		}
		if f.SpecialUse == `\Sent` {
			to = pm.To // answering one's own message: to its recipients again
		}
		d.To = addrList(to, "")
		if mode == "all" {
			d.To = addrList(append(append([]mailtext.Address(nil), to...), pm.To...), mb.Address)
			d.Cc = addrList(pm.Cc, mb.Address)
		}
		d.Subject = prefixed("Re:", pm.Subject)
		d.Body = quote(v.T("webmail_quote_intro", "Date", date, "From", from), pm.Text)
		if msgID != "" {
			d.InReplyTo = msgID
			refs := mailbox.Parents(nil, pm.HeaderValues("References"))
			// Parents lists nearest first; References is oldest first.
			var ordered []string
			for i := len(refs) - 1; i >= 0; i-- {
				ordered = append(ordered, refs[i])
			}
			d.References = strings.Join(append(ordered, msgID), " ")
		}
	case "forward", "attach":
		d.Subject = prefixed("Fwd:", pm.Subject)
		if mode == "attach" {
			d.Forward, d.ForwardName = d.Source, pm.Subject+".eml"
			break
		}
		d.Body = "\n\n" + v.T("webmail_forwarded") + "\n" + v.T("from") + ": " + from + "\n" + v.T("date") + ": " + date + "\n" +
			v.T("subject") + ": " + pm.Subject + "\n" + v.T("to") + ": " + addrList(pm.To, "") + "\n\n" + pm.Text
		pv, err := preview.Render(ctx, bytes.NewReader(raw), preview.Options{})
		if err != nil {
			return err
		}
		for _, a := range pv.Attachments {
			d.Carry = append(d.Carry, carried{Ref: d.Source + ":" + strconv.Itoa(a.Index), Name: a.Name, Size: a.Size})
		}
	default:
		return badRequest("unknown mode %q", mode)
	}
	return nil
}

func firstValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// loadDraft fills the form from a draft in Drafts.
func (s *Server) loadDraft(ctx context.Context, mb store.Mailbox, uidText string, d *composeData) error {
	uid, err := strconv.ParseUint(uidText, 10, 32)
	if err != nil || uid == 0 {
		return fmt.Errorf("draft %q: %w", uidText, store.ErrNotFound)
	}
	drafts, err := s.d.Mailboxes.SpecialFolder(ctx, mb, `\Drafts`)
	if err != nil {
		return err
	}
	m, err := s.d.Mailboxes.Message(ctx, drafts, uint32(uid))
	if err != nil {
		return err
	}
	raw, err := s.readRaw(ctx, m)
	if err != nil {
		return err
	}
	pm, err := mailtext.Parse(ctx, bytes.NewReader(raw), mailtext.DefaultLimits())
	if err != nil {
		return err
	}
	d.Draft = uint32(uid)
	d.To, d.Cc, d.Subject, d.Body = addrList(pm.To, ""), addrList(pm.Cc, ""), pm.Subject, strings.TrimSuffix(pm.Text, "\n")
	if bcc := pm.HeaderValues("Bcc"); len(bcc) > 0 {
		d.Bcc = strings.Join(bcc, ", ")
	}
	d.InReplyTo = strings.TrimSpace(firstValue(pm.HeaderValues("In-Reply-To")))
	d.References = strings.Join(strings.Fields(firstValue(pm.HeaderValues("References"))), " ")
	d.Source = strings.TrimSpace(firstValue(pm.HeaderValues(draftSourceHeader)))
	d.Mode = strings.TrimSpace(firstValue(pm.HeaderValues(draftModeHeader)))
	pv, err := preview.Render(ctx, bytes.NewReader(raw), preview.Options{})
	if err != nil {
		return err
	}
	for _, a := range pv.Attachments {
		d.Carry = append(d.Carry, carried{Ref: msgRef(drafts.ID, m.UID) + ":" + strconv.Itoa(a.Index), Name: a.Name, Size: a.Size})
	}
	return nil
}

// Fields a draft keeps for the webmail: the message it answers and how,
// so the reply marks it answered when it is finally sent.
const (
	draftSourceHeader = "X-Mailgate-Draft-Source"
	draftModeHeader   = "X-Mailgate-Draft-Mode"
)

// parseAddrs reads a form's address field: addresses separated by
// commas, semicolons, Japanese commas or lines, each with or without a
// name.
func parseAddrs(field, v string) ([]compose.Address, error) {
	v = strings.NewReplacer("、", ",", "，", ",", ";", ",", "；", ",", "\r\n", ",", "\n", ",").Replace(v)
	var parts []string
	for _, p := range strings.Split(v, ",") {
		if strings.TrimSpace(p) != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	list, err := mail.ParseAddressList(strings.Join(parts, ","))
	if err != nil {
		// A name with a comma in quotes was split above: read as written.
		list, err = mail.ParseAddressList(v)
		if err != nil {
			return nil, badRequest("%s: cannot read the addresses (%v)", field, err)
		}
	}
	out := make([]compose.Address, 0, len(list))
	for _, a := range list {
		pa, err := addr.Parse(a.Address)
		if err != nil {
			return nil, badRequest("%s: %q is not a mail address", field, a.Address)
		}
		name := strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, a.Name)
		out = append(out, compose.Address{Name: name, Addr: pa.String()})
	}
	return out, nil
}

func (s *Server) composePost(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	v := s.newView(r, p, "webmail_compose")
	if err := r.ParseMultipartForm(8 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, p, badRequest("%s", v.T("webmail_too_large", "MB", s.attachmentLimit(ctx, p.tenantID)>>20)))
			return
		}
		s.fail(w, r, p, badRequest("unreadable form"))
		return
	}
	if r.MultipartForm != nil {
		defer r.MultipartForm.RemoveAll()
	}
	f := r.PostFormValue
	d := composeData{To: f("to"), Cc: f("cc"), Bcc: f("bcc"), Subject: f("subject"), Body: f("body"),
		InReplyTo: f("in_reply_to"), References: f("references"), Forward: f("fwd"), Source: f("src"), Mode: f("mode"),
		MaxMB: s.attachmentLimit(ctx, p.tenantID) >> 20, Charset: s.mailCharset(ctx, p.tenantID)}
	if n, err := strconv.ParseUint(f("draft"), 10, 32); err == nil {
		d.Draft = uint32(n)
	}
	for _, ref := range r.PostForm["carry"] {
		d.Carry = append(d.Carry, carried{Ref: ref})
	}
	// Show the form again with what was typed and the reason.
	again := func(status int, msg string) {
		v.Err = msg
		d.Folders, _ = s.folderViews(ctx, v, mb, 0)
		for i := range d.Carry {
			if d.Carry[i].Name == "" {
				d.Carry[i].Name = d.Carry[i].Ref
			}
		}
		v.Data = d
		s.render(w, status, "mail_compose", v)
	}
	msg, rcpts, err := s.buildMessage(ctx, v, r, p, mb, &d)
	if err != nil {
		if statusOf(err) == http.StatusBadRequest {
			again(http.StatusBadRequest, publicError(err))
			return
		}
		s.fail(w, r, p, err)
		return
	}
	if f("action") == "save" {
		msg.KeepBcc = true
		if d.Source != "" {
			msg.Headers = append(msg.Headers, [2]string{draftSourceHeader, d.Source}, [2]string{draftModeHeader, d.Mode})
		}
		raw, err := msg.Bytes()
		if err != nil {
			again(http.StatusBadRequest, err.Error())
			return
		}
		saved, err := s.d.Mailboxes.SaveDraft(ctx, mb, bytes.NewReader(raw), d.Draft)
		if errors.Is(err, store.ErrMailboxFull) {
			again(http.StatusInsufficientStorage, v.T("webmail_full"))
			return
		}
		if err != nil {
			s.fail(w, r, p, err)
			return
		}
		done(w, r, "/mail/compose?draft="+strconv.FormatUint(uint64(saved.UID), 10), "webmail_draft_saved")
		return
	}
	if len(rcpts) == 0 {
		again(http.StatusBadRequest, v.T("webmail_no_recipient"))
		return
	}
	raw, err := msg.Bytes()
	if err != nil {
		again(http.StatusBadRequest, err.Error())
		return
	}
	if s.d.Submit == nil {
		s.fail(w, r, p, errors.New("webmail: no submission on this node"))
		return
	}
	if _, err := s.d.Submit(ctx, p.tenantID, mb.Address, rcpts, bytes.NewReader(raw), p.ip.String()); err != nil {
		var ref *SubmitRefusal
		if errors.As(err, &ref) {
			status := http.StatusBadRequest
			if ref.Code < 500 {
				status = http.StatusServiceUnavailable
			}
			again(status, v.T("webmail_refused", "Reply", fmt.Sprintf("%d %s", ref.Code, ref.Text)))
			return
		}
		s.fail(w, r, p, err)
		return
	}
	// Sent: keep a copy (with Bcc, as mail programs do), mark what it
	// answered, drop the draft it came from. The message is on its way
	// whatever happens to these.
	note := "webmail_sent"
	msg.KeepBcc = true
	if copyRaw, err := msg.Bytes(); err == nil {
		if _, err := s.d.Mailboxes.AppendSent(ctx, mb, bytes.NewReader(copyRaw)); err != nil {
			s.d.Log.Warn("webmail: sent copy not kept", "address", mb.Address, "err", err)
			note = "webmail_sent_not_kept"
		}
	}
	if d.Source != "" {
		flag := `\Answered`
		if d.Mode == "forward" || d.Mode == "attach" {
			flag = `$Forwarded`
		}
		if sf, sm, err := s.refMessage(ctx, mb, d.Source); err == nil {
			s.d.Mailboxes.StoreFlags(ctx, sf, []uint32{sm.UID}, store.FlagsAdd, []string{flag}, 0)
		}
	}
	if d.Draft != 0 {
		if err := s.d.Mailboxes.DiscardDraft(ctx, mb, d.Draft); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.d.Log.Warn("webmail: sent draft not removed", "err", err)
		}
	}
	done(w, r, "/mail", note)
}

// buildMessage turns the form into a message and its envelope recipients.
func (s *Server) buildMessage(ctx context.Context, v *view, r *http.Request, p *principal, mb store.Mailbox, d *composeData) (*compose.Message, []string, error) {
	if len(d.To)+len(d.Cc)+len(d.Bcc)+len(d.Subject)+len(d.Body) > maxComposeFields {
		return nil, nil, badRequest("%s", v.T("webmail_text_too_long"))
	}
	for _, t := range []string{d.To, d.Cc, d.Bcc, d.Subject, d.Body} {
		if !utf8.ValidString(t) || strings.IndexByte(t, 0) >= 0 {
			return nil, nil, badRequest("text must be UTF-8 without NUL characters")
		}
	}
	subject := strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(d.Subject)), " ")
	m := &compose.Message{Subject: subject, Text: d.Body, Charset: d.Charset, Date: s.d.Clock.Now().In(s.mailZone(ctx, p.tenantID))}
	m.From = compose.Address{Addr: mb.Address, Name: s.displayName(ctx, p.tenantID, mb.Address)}
	var err error
	if m.To, err = parseAddrs(v.T("to"), d.To); err != nil {
		return nil, nil, err
	}
	if m.Cc, err = parseAddrs("Cc", d.Cc); err != nil {
		return nil, nil, err
	}
	if m.Bcc, err = parseAddrs("Bcc", d.Bcc); err != nil {
		return nil, nil, err
	}
	var rcpts []string
	seen := map[string]bool{}
	for _, l := range [][]compose.Address{m.To, m.Cc, m.Bcc} {
		for _, a := range l {
			if k := strings.ToLower(a.Addr); !seen[k] {
				seen[k] = true
				rcpts = append(rcpts, a.Addr)
			}
		}
	}
	if ids := mailbox.Parents([]string{d.InReplyTo}, nil); len(ids) == 1 {
		m.InReplyTo = ids[0]
	}
	if refs := mailbox.Parents(nil, []string{d.References}); len(refs) > 0 {
		for i := len(refs) - 1; i >= 0; i-- {
			m.References = append(m.References, refs[i])
		}
	}
	limit := s.attachmentLimit(ctx, p.tenantID)
	var total int64
	add := func(a compose.Attachment) error {
		total += int64(len(a.Data))
		if total > limit {
			return badRequest("%s", v.T("webmail_too_large", "MB", limit>>20))
		}
		m.Attachments = append(m.Attachments, a)
		return nil
	}
	// Attachments kept from other messages of the mailbox.
	raws := map[string][]byte{}
	for i, c := range d.Carry {
		parts := strings.Split(c.Ref, ":")
		n, err := strconv.Atoi(parts[len(parts)-1])
		if len(parts) != 3 || err != nil || n < 0 {
			return nil, nil, badRequest("invalid attachment reference")
		}
		src := parts[0] + ":" + parts[1]
		raw, ok := raws[src]
		if !ok {
			_, sm, err := s.refMessage(ctx, mb, src)
			if err != nil {
				return nil, nil, err
			}
			if raw, err = s.readRaw(ctx, sm); err != nil {
				return nil, nil, err
			}
			raws[src] = raw
		}
		att, data, err := preview.AttachmentData(ctx, bytes.NewReader(raw), n, preview.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("attachment %s: %w", c.Ref, store.ErrNotFound)
		}
		d.Carry[i].Name, d.Carry[i].Size = att.Name, att.Size
		if err := add(compose.Attachment{Name: att.Name, ContentType: att.ContentType, Data: data}); err != nil {
			return nil, nil, err
		}
	}
	// New files.
	if r.MultipartForm != nil {
		for _, fh := range r.MultipartForm.File["attach"] {
			if fh.Size == 0 && fh.Filename == "" {
				continue
			}
			file, err := fh.Open()
			if err != nil {
				return nil, nil, err
			}
			data, err := io.ReadAll(io.LimitReader(file, limit+1))
			file.Close()
			if err != nil {
				return nil, nil, err
			}
			ct := fh.Header.Get("Content-Type")
			if ct == "" {
				ct = mime.TypeByExtension(fileExt(fh.Filename))
			}
			if err := add(compose.Attachment{Name: baseName(fh.Filename), ContentType: ct, Data: data}); err != nil {
				return nil, nil, err
			}
		}
	}
	if d.Forward != "" {
		_, fm, err := s.refMessage(ctx, mb, d.Forward)
		if err != nil {
			return nil, nil, err
		}
		raw, err := s.readRaw(ctx, fm)
		if err != nil {
			return nil, nil, err
		}
		total += int64(len(raw))
		if total > limit {
			return nil, nil, badRequest("%s", v.T("webmail_too_large", "MB", limit>>20))
		}
		m.Forward = raw
		m.ForwardName = fm.Subject + ".eml"
		if fm.Subject == "" {
			m.ForwardName = "message.eml"
		}
		d.ForwardName = m.ForwardName
	}
	return m, rcpts, nil
}

// baseName is a browser's file name without any path it sent.
func baseName(n string) string {
	if i := strings.LastIndexAny(n, `/\`); i >= 0 {
		n = n[i+1:]
	}
	return n
}

func fileExt(n string) string {
	if i := strings.LastIndexByte(n, '.'); i >= 0 {
		return strings.ToLower(n[i:])
	}
	return ""
}

// displayName is a user's name in the tenant's directory ("" if none).
func (s *Server) displayName(ctx context.Context, tenantID int64, address string) string {
	ps, err := s.d.Store.People(ctx, tenantID)
	if err != nil {
		return ""
	}
	for _, p := range ps {
		if strings.EqualFold(p.Address, address) {
			return p.Name
		}
	}
	return ""
}

// contactJSON is one completion of an address field.
type contactJSON struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
	Value   string `json:"value"` // what goes into the field
}

// mailContacts completes an address from the tenant's users (their
// addresses and names), at most 10.
func (s *Server) mailContacts(w http.ResponseWriter, r *http.Request, p *principal, mb store.Mailbox) {
	ctx := r.Context()
	q := mailbox.Fold(strings.TrimSpace(r.URL.Query().Get("q")))
	out := []contactJSON{}
	if q == "" || len(q) > 200 {
		writeJSON(w, http.StatusOK, out)
		return
	}
	users, err := s.d.Store.Users(ctx, p.tenantID)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		return
	}
	names := map[string]string{}
	if ps, err := s.d.Store.People(ctx, p.tenantID); err == nil {
		for _, x := range ps {
			names[strings.ToLower(x.Address)] = x.Name
		}
	}
	for _, u := range users {
		name := names[strings.ToLower(u.Address)]
		if !strings.Contains(mailbox.Fold(u.Address), q) && !strings.Contains(mailbox.Fold(name), q) {
			continue
		}
		c := contactJSON{Name: name, Address: u.Address, Value: u.Address}
		if name != "" {
			c.Value = quotedName(name) + " <" + u.Address + ">"
		}
		out = append(out, c)
		if len(out) == 10 {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}
