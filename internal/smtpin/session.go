package smtpin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/net/publicsuffix"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/bufpool"
	"github.com/mailgate/mailgate/internal/mailtext"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/versioned"
)

// lookupTimeout bounds each store lookup made during the dialogue
// (recipients, relay networks, logins).
const lookupTimeout = 30 * time.Second

// commitTimeout bounds what follows the checks of an accepted message:
// writing its modified and quarantined copies and committing it. It is
// added to the scan budget, never taken from it.
const commitTimeout = 30 * time.Second

type rcpt struct {
	addr   addr.Address
	orcpt  string
	notify string
}

type session struct {
	s        *Server
	conn     *smtp.Conn
	tc       *trackedConn
	log      *slog.Logger
	ip       string
	tls      bool
	authUser string
	authTID  int64
	authAddr string // the authenticated end user's own address (submission)
	// sendAs are the other addresses the user may send as (KeySendAs),
	// read at the first use after AUTH; nil: not read yet.
	sendAs []string
	errors int

	// per transaction
	tenantID int64
	from     string
	hasFrom  bool
	envID    string
	retFull  bool
	utf8     bool
	body8bit bool
	rcpts    []rcpt
	// refused are recipients of served domains refused at RCPT (unknown
	// users), recorded for tracking and reports when the transaction ends.
	refused []refusedRcpt

	// memo is the transaction's versions (versioned.Memo): the lookups of
	// one message, and the pipeline its DATA hands it to, read each
	// version once. A new one with every transaction.
	memo *versioned.Memo

	// local is set for a message submitted in-process (SubmitLocal):
	// there is no connection, and the trace field names the web.
	local *localSession
	// accepted is the queue ID of the message Data accepted last.
	accepted string
}

type refusedRcpt struct {
	tenantID int64
	addr     string
}

// maxRefusedRecorded bounds the refusals recorded per transaction (a
// dictionary attack is cut off by the error limit anyway).
const maxRefusedRecorded = 100

var _ smtp.AuthSession = (*session)(nil)

// NewSession is called by go-smtp for each connection (and again after STARTTLS).
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	tc := unwrapTracked(c.Conn())
	var id uint64
	ip := remoteIP(c.Conn().RemoteAddr())
	if tc != nil {
		id = tc.id
	}
	_, isTLS := c.TLSConnectionState()
	se := &session{s: s, conn: c, tc: tc, ip: ip, tls: isTLS,
		log: s.log.With("conn", id, "client", ip)}
	if s.d.Observer != nil {
		return observedSession{se}, nil
	}
	return se, nil
}

func smtpErr(code int, ec smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}

var (
	errTempLocal   = smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Temporary local problem, try again later")
	errRelayDenied = smtpErr(554, smtp.EnhancedCode{5, 7, 1}, "Relay access denied")
	errUnknownUser = smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "User unknown")
)

// reject counts an error reply toward the session's limit and, past it,
// replaces the reply with 421 and ends the session.
func (se *session) reject(err *smtp.SMTPError) error {
	se.errors++
	max := se.s.d.Limits.MaxErrors
	if max > 0 && se.errors >= max && se.tc != nil {
		se.log.Info("too many errors; closing", "errors", se.errors)
		se.tc.closeAfterReply()
		return smtpErr(421, smtp.EnhancedCode{4, 7, 0}, "Too many errors, closing connection")
	}
	return err
}

// connCtx ends with the connection (or with the server, for a session
// without a tracked connection).
func (se *session) connCtx() context.Context {
	if se.tc != nil {
		return se.tc.ctx
	}
	if se.local != nil {
		return se.local.ctx
	}
	return se.s.base
}

// ctx is the context of one store lookup.
func (se *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(se.memo.Context(se.connCtx()), lookupTimeout)
}

// addressing returns the served domains and relay networks, at the
// version the transaction read.
func (se *session) addressing(ctx context.Context) (*store.AddressIndex, error) {
	return se.s.addressing.Get(ctx, se.s.d.Store)
}

// domainByName is the store's DomainByName, answered from the addressing.
func (se *session) domainByName(ctx context.Context, name string) (store.Domain, error) {
	ix, err := se.addressing(ctx)
	if err != nil {
		return store.Domain{}, err
	}
	return ix.DomainByName(name)
}

// settings returns the tenant's settings by layer, at the policy version
// the transaction read.
func (se *session) settings(ctx context.Context, tenantID int64) (store.SettingLayers, error) {
	st := se.s.d.Store
	return se.s.settings.Get(ctx, tenantID, func(ctx context.Context, tid int64) (int64, error) {
		return store.MemoPolicyVersion(ctx, st, tid)
	}, func(ctx context.Context, _ int64) (store.SettingLayers, error) {
		ss, err := st.Settings(ctx, tenantID)
		if err != nil {
			return nil, fmt.Errorf("settings: %w", err)
		}
		return store.IndexSettings(ss), nil
	})
}

// Mail starts a transaction.
func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	se.Reset()
	d := se.s.d
	if err := d.Spool.Healthy(); err != nil {
		se.log.Error("refusing mail", "err", err)
		return errTempLocal
	}
	if err := d.Spool.CheckSpace(); err != nil {
		return smtpErr(452, smtp.EnhancedCode{4, 3, 1}, "Insufficient system storage, try again later")
	}
	// A local submission has no link to protect: the console's session
	// authenticated it.
	if d.Listener.RequireTLS && !se.tls && se.local == nil {
		return se.reject(smtpErr(530, smtp.EnhancedCode{5, 7, 0}, "Must issue a STARTTLS command first"))
	}
	if opts != nil && opts.Size > d.Limits.MaxMessageBytes {
		return se.reject(smtpErr(552, smtp.EnhancedCode{5, 3, 4}, fmt.Sprintf("Message size exceeds limit of %d bytes", d.Limits.MaxMessageBytes)))
	}
	var sender addr.Address
	if from != "" {
		a, err := addr.Parse(from)
		if err != nil {
			return se.reject(smtpErr(501, smtp.EnhancedCode{5, 1, 7}, "Bad sender address syntax"))
		}
		sender = a
	}
	se.prefetchVersions()
	if d.Kind == Submission {
		if err := se.submissionSender(from, sender); err != nil {
			return err
		}
	}
	if d.Kind == Outbound {
		tid, err := se.outboundTenant()
		if err != nil {
			return err
		}
		// The null sender is allowed: customers' servers send bounces and
		// other DSNs. Their author is checked at the end of DATA, as every
		// outbound message's is.
		if from != "" {
			ctx, cancel := se.ctx()
			owned, err := se.ownedBy(ctx, tid, sender.Domain)
			cancel()
			if err != nil {
				se.log.Error("sender domain lookup", "err", err)
				return errTempLocal
			}
			if !owned {
				return se.reject(smtpErr(553, smtp.EnhancedCode{5, 7, 1}, "Sender address is not in your organisation's domains"))
			}
		}
		se.tenantID = tid
	}
	se.from, se.hasFrom = from, true
	if from != "" {
		se.from = sender.String()
	}
	if opts != nil {
		se.envID = xtextSafe(opts.EnvelopeID)
		se.retFull = opts.Return == smtp.DSNReturnFull
		se.utf8 = opts.UTF8
		se.body8bit = opts.Body == smtp.Body8BitMIME
	}
	return nil
}

// prefetchVersions reads, in one query, the two versions the lookups of a
// message and its pipeline ask for: the addressing version and the policy
// version of the tenant the session authenticated as, or else the one the
// client sent its previous message for (in this session or an earlier
// one), nearly always this message's tenant too: a relaying server sends
// for its own organisation, and most mail servers that send to a gateway
// send to one of its tenants. A wrong guess costs nothing more than the
// addressing version's own read.
// Nothing for a client's first message; a failure is left to the lookups
// to report.
func (se *session) prefetchVersions() {
	tid := se.tenantID
	if se.authUser != "" {
		tid = se.authTID
	}
	if tid == 0 {
		tid = se.s.likelyTenant(se.ip)
	}
	if tid == 0 {
		return
	}
	ctx, cancel := se.ctx()
	defer cancel()
	if err := store.PrefetchVersions(ctx, se.s.d.Store, tid); err != nil {
		se.log.Debug("versions not read ahead", "err", err)
	}
}

// outboundTenant finds the tenant allowed to relay: by SMTP AUTH or by client network.
func (se *session) outboundTenant() (int64, error) {
	if se.authUser != "" {
		return se.authTID, nil
	}
	ip, err := netip.ParseAddr(se.ip)
	if err == nil {
		ctx, cancel := se.ctx()
		ix, err := se.addressing(ctx)
		cancel()
		if err != nil {
			se.log.Error("relay network lookup", "err", err)
			return 0, errTempLocal
		}
		if tid, ok := ix.TenantForRelayIP(ip); ok {
			se.s.rememberTenant(se.ip, tid)
			return tid, nil
		}
	}
	if se.s.d.Listener.AllowAuth {
		return 0, se.reject(smtpErr(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required"))
	}
	return 0, se.reject(errRelayDenied)
}

// Rcpt checks one recipient.
func (se *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if !se.hasFrom {
		return se.reject(smtpErr(503, smtp.EnhancedCode{5, 5, 1}, "Need MAIL before RCPT"))
	}
	if se.s.d.Kind == Inbound && strings.EqualFold(to, "postmaster") {
		return se.barePostmaster(opts)
	}
	a, err := addr.Parse(to)
	switch {
	case errors.Is(err, addr.ErrRouting), errors.Is(err, addr.ErrLiteral):
		se.log.Info("rcpt refused: routing form", "rcpt", to)
		return se.reject(errRelayDenied)
	case err != nil:
		return se.reject(smtpErr(501, smtp.EnhancedCode{5, 1, 3}, "Bad recipient address syntax"))
	}
	for _, r := range se.rcpts {
		if r.addr.Key() == a.Key() {
			return nil // duplicate: accepted once
		}
	}
	if se.s.d.Kind == Inbound {
		if err := se.inboundRcpt(a, false); err != nil {
			return err
		}
	} else if _, err := se.listRcpt(a); err != nil {
		// Relayed and submitted mail to a list follows its posting
		// policy too.
		return err
	}
	se.addRcpt(a, opts)
	return nil
}

func (se *session) addRcpt(a addr.Address, opts *smtp.RcptOptions) {
	r := rcpt{addr: a}
	if opts != nil {
		if opts.OriginalRecipient != "" {
			r.orcpt = string(opts.OriginalRecipientType) + ";" + xtextSafe(opts.OriginalRecipient)
		}
		var n []string
		for _, v := range opts.Notify {
			n = append(n, string(v))
		}
		r.notify = strings.Join(n, ",")
	}
	se.rcpts = append(se.rcpts, r)
}

// barePostmaster accepts RCPT TO:<Postmaster> (RFC 5321 4.5.1: every SMTP
// server must take it, without a domain) for the operator's postmaster
// address: the configured one, or postmaster@ the served domain the host
// name is in. The target is always in a served domain, so this opens no
// relay; the message then goes like any mail to that address.
func (se *session) barePostmaster(opts *smtp.RcptOptions) error {
	ctx, cancel := se.ctx()
	defer cancel()
	a, err := se.postmasterAddress(ctx)
	if err != nil {
		se.log.Error("no postmaster address: set postmaster in the configuration", "err", err)
		return smtpErr(451, smtp.EnhancedCode{4, 3, 5}, "Postmaster mailbox not configured here, try again later")
	}
	for _, r := range se.rcpts {
		if r.addr.Key() == a.Key() {
			return nil
		}
	}
	if err := se.inboundRcpt(a, true); err != nil {
		return err
	}
	se.addRcpt(a, opts)
	return nil
}

// postmasterAddress resolves where <Postmaster> goes; it is in a served
// domain or an error.
func (se *session) postmasterAddress(ctx context.Context) (addr.Address, error) {
	if pm := se.s.d.Postmaster; pm != "" {
		a, err := addr.Parse(pm)
		if err != nil {
			return addr.Address{}, fmt.Errorf("postmaster %q: %w", pm, err)
		}
		if _, err := se.domainByName(ctx, a.Domain); err != nil {
			return addr.Address{}, fmt.Errorf("postmaster %q: domain: %w", pm, err)
		}
		return a, nil
	}
	labels := strings.Split(strings.ToLower(strings.TrimSuffix(se.s.d.Hostname, ".")), ".")
	for i := 0; i < len(labels)-1; i++ {
		dom := strings.Join(labels[i:], ".")
		_, err := se.domainByName(ctx, dom)
		if err == nil {
			return addr.Parse("postmaster@" + dom)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return addr.Address{}, fmt.Errorf("domain %s: %w", dom, err)
		}
	}
	return addr.Address{}, fmt.Errorf("no served domain in host name %q", se.s.d.Hostname)
}

// inboundRcpt checks a recipient of the MX: a served domain, the tenant of
// the transaction, and a known user unless anyUser (postmaster@ every
// served domain is always known).
func (se *session) inboundRcpt(a addr.Address, anyUser bool) error {
	ctx, cancel := se.ctx()
	defer cancel()
	dom, err := se.domainByName(ctx, a.Domain)
	if errors.Is(err, store.ErrNotFound) {
		se.log.Info("rcpt refused: relay denied", "rcpt", a.String())
		return se.reject(errRelayDenied)
	} else if err != nil {
		se.log.Error("domain lookup", "err", err)
		return errTempLocal
	}
	if se.tenantID != 0 && dom.TenantID != se.tenantID {
		// One message, one tenant: the client retries these in a new transaction.
		return smtpErr(452, smtp.EnhancedCode{4, 5, 3}, "Recipients of another organisation must be sent separately")
	}
	ok, err := se.s.d.Store.UserExists(ctx, dom.TenantID, a.Key())
	if err != nil {
		se.log.Error("user lookup", "err", err)
		return errTempLocal
	}
	if !ok && !anyUser && !strings.EqualFold(a.Local, "postmaster") {
		if isList, err := se.listRcpt(a); isList || err != nil {
			if err == nil {
				se.tenantID = dom.TenantID
			}
			return err
		}
		if v := se.s.d.Recipients; v != nil {
			known, err := v.VerifyRecipient(ctx, dom, a.Key())
			if err != nil {
				// Never 550 on a failed check, never accept and bounce.
				se.log.Warn("rcpt deferred: recipient not verified", "rcpt", a.String(), "err", err)
				return smtpErr(450, smtp.EnhancedCode{4, 4, 3}, "Recipient verification unavailable, try again later")
			}
			if known {
				se.tenantID = dom.TenantID
				return nil
			}
		}
		// postmaster@ every served domain must work (RFC 5321 4.5.1); the
		// customer's server is expected to have it.
		se.log.Info("rcpt refused: unknown user", "rcpt", a.String())
		if len(se.refused) < maxRefusedRecorded {
			se.refused = append(se.refused, refusedRcpt{tenantID: dom.TenantID, addr: a.Key()})
		}
		return se.reject(errUnknownUser)
	}
	se.tenantID = dom.TenantID
	se.s.rememberTenant(se.ip, dom.TenantID)
	return nil
}

// listRcpt applies a mailing list's posting policy when a is a list's
// address: a refused sender gets 550 now, in the dialogue, rather than a
// bounce later. A list's bounce address takes mail from anyone.
func (se *session) listRcpt(a addr.Address) (bool, error) {
	if se.s.d.Lists == nil {
		return false, nil
	}
	ctx, cancel := se.ctx()
	defer cancel()
	p, err := se.s.d.Lists.CheckPost(ctx, se.from, a.Key())
	if err != nil {
		se.log.Error("mailing list lookup", "err", err)
		return false, errTempLocal
	}
	var text string
	switch p.Decision {
	case mlist.NotList:
		return false, nil
	case mlist.Allowed:
		return true, nil
	case mlist.MembersOnly:
		text = "Only members may post to this list"
	case mlist.DomainOnly:
		text = "Only senders in the organisation's domains may post to this list"
	case mlist.NoNullSender:
		text = "This list takes no mail from the null sender"
	default:
		text = "Posting to this list is not allowed"
	}
	se.log.Info("rcpt refused: list posting policy", "rcpt", a.String(), "from", se.from, "reason", text)
	return true, se.reject(smtpErr(550, smtp.EnhancedCode{5, 7, 1}, text))
}

// keepMax is the largest message whose bytes DATA keeps for the
// pipelines: the outbound one's limit for reading a message whole, and
// beyond what inbound mail mostly is.
const keepMax = 256 << 10

// keepWriter writes to w and keeps a copy of what it wrote, up to max
// bytes; past max it keeps nothing (b nil).
type keepWriter struct {
	w    io.Writer
	b    []byte
	max  int
	over bool
}

func (k *keepWriter) Write(p []byte) (int, error) {
	n, err := k.w.Write(p)
	if !k.over {
		if len(k.b)+n > k.max {
			k.over, k.b = true, nil
		} else {
			if len(k.b)+n > cap(k.b) {
				// Doubling: append grows large slices by a quarter at a
				// time, which for a message of tens of KB is a dozen copies.
				nb := make([]byte, len(k.b), min(max(2*cap(k.b), len(k.b)+n, 4<<10), k.max))
				copy(nb, k.b)
				k.b = nb
			}
			k.b = append(k.b, p[:n]...)
		}
	}
	return n, err
}

// spoolWriters are the buffers between DATA and the spool blob.
var spoolWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// Data accepts the message: stream it through the guard into a spool blob,
// fsync, commit the envelope, then answer 250 with the queue ID.
func (se *session) Data(r io.Reader) error {
	d := se.s.d
	now := d.Clock.Now()
	id := store.NewMessageID(now)
	// The blob's operations run as long as the connection: a client that
	// goes away never gets its 250, so nothing needs finishing then.
	w, err := d.Spool.Create(se.connCtx(), id)
	if err != nil {
		se.log.Error("spool create", "err", err)
		return errTempLocal
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()
	// The buffers are lent for the message: allocating them for each one
	// was most of what a message allocated here.
	bw := spoolWriters.Get().(*bufio.Writer)
	// The pipelines read a small message whole; they get the bytes
	// written instead of reading the blob back (blob.Written).
	kept := &keepWriter{w: w, max: keepMax}
	bw.Reset(kept)
	defer func() {
		bw.Reset(nil)
		spoolWriters.Put(bw)
	}()
	if _, err := io.WriteString(bw, se.receivedHeader(id, now)); err != nil {
		return se.spoolErr(err)
	}
	g := newGuard(bw, d.Listener.BareLF == "normalize", d.Limits.MaxLineBytes, d.Limits.MaxHeaderBytes, d.Limits.MaxReceived, d.Limits.MinDataRate)
	scratch := bufpool.Get()
	defer bufpool.Put(scratch)
	g.outScratch = (*scratch)[:0]
	if _, err := bufpool.Copy(g, r); err != nil {
		var se2 *smtp.SMTPError
		if errors.As(err, &se2) {
			se.log.Info("message refused", "reason", se2.Message)
			return se2
		}
		if errors.Is(err, smtp.ErrDataTooLarge) {
			return smtp.ErrDataTooLarge
		}
		return se.spoolErr(err)
	}
	if err := g.finish(); err != nil {
		return err
	}
	switch d.Kind {
	case Outbound:
		if err := se.checkAuthor(g); err != nil {
			return err
		}
	case Submission:
		if err := se.checkOwnAuthor(g); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return se.spoolErr(err)
	}
	cctx, ccancel := context.WithTimeout(se.connCtx(), commitTimeout)
	err = w.Commit(cctx)
	ccancel()
	if err != nil {
		se.log.Error("spool commit", "err", err)
		return errTempLocal
	}
	m := store.Message{
		ID: id, TenantID: se.tenantID, MailFrom: se.from, EnvID: se.envID, RetFull: se.retFull,
		Size: w.Size(), BlobKey: w.Key(), ReceivedAt: now, ClientIP: se.ip, Helo: se.helo(),
		TLS: se.tls, AuthUser: se.authUser, MessageID: g.messageID, Subject: mailtext.DecodeHeader(g.subject),
		Direction: store.Inbound, SMTPUTF8: se.utf8, Body8Bit: se.body8bit,
	}
	if d.Kind == Outbound || d.Kind == Submission {
		m.Direction = store.Outbound
	}
	rcpts := make([]store.Recipient, len(se.rcpts))
	var names []string
	for i, r := range se.rcpts {
		rcpts[i] = store.Recipient{Addr: r.addr.String(), ORcpt: r.orcpt, Notify: r.notify, State: store.Queued, NextAttempt: now}
		names = append(names, r.addr.String())
	}
	ev := []store.Event{{MessageID: id, TenantID: se.tenantID, At: now, Kind: "received", Remote: se.ip,
		Detail: fmt.Sprintf("%s from <%s> helo=%s size=%d tls=%v%s rcpts=%s", d.Kind, se.from, m.Helo, m.Size, se.tls,
			authDetail(se.authUser), strings.Join(names, ","))}}
	// One deadline for checking and keeping the message: the checks' budget
	// (the runner holds them to it) plus the time to write the result. It
	// ends early when the connection goes, e.g. at shutdown: checks still
	// running then fail, and the message is refused (the client, gone, will
	// send it again); a commit already under way completes.
	ctx, cancel := context.WithTimeout(se.memo.Context(se.connCtx()), d.ScanBudget+commitTimeout)
	defer cancel()
	if kept.b != nil && int64(len(kept.b)) == m.Size {
		ctx = blob.WithWritten(ctx, m.BlobKey, kept.b)
	}
	if err := d.Queue.Enqueue(ctx, m, rcpts, ev); err != nil {
		// The blob is durable but was never acknowledged: remove it.
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		derr := d.Spool.Delete(dctx, w.Key())
		dcancel()
		if derr != nil {
			se.log.Warn("removing the blob of a refused message", "err", derr, "id", id)
		}
		var reply *smtp.SMTPError
		if errors.As(err, &reply) {
			// A policy verdict (reject, temporary failure) for every recipient.
			se.log.Debug("message refused by policy", "id", id, "reply", reply.Code, "text", reply.Message)
			return reply
		}
		se.log.Error("enqueue", "err", err, "id", id)
		return errTempLocal
	}
	committed = true
	se.accepted = id
	se.log.Info("accepted", "id", id, "from", se.from, "rcpts", len(rcpts), "size", m.Size)
	return smtpErr(250, smtp.EnhancedCode{2, 0, 0}, "OK queued as "+id)
}

// foreignFromKey is the tenant policy value that lets the relay pass mail
// whose author is not in the tenant's domains (forwarded mail keeps its
// author): "allow"; anything else refuses it.
const foreignFromKey = "relay.foreign_from"

// checkAuthor holds outbound mail to its author (RFC 5322 3.6.2: From):
// at most one From field, whose every mailbox is in the relaying tenant's
// domains, or the message is refused. Otherwise a customer's server (or a
// stolen relay login) could send as any domain through mailgate's
// reputation, bounces from the null sender included.
func (se *session) checkAuthor(g *guard) error {
	ctx, cancel := se.ctx()
	defer cancel()
	allowed, err := se.foreignFromAllowed(ctx)
	if err != nil {
		se.log.Error("relay policy lookup", "err", err)
		return errTempLocal
	}
	if allowed {
		return nil
	}
	switch {
	case g.fromFields == 0:
		return nil // malformed, but it claims no author
	case g.fromFields > 1:
		// Readers pick one or the other: an author check on one is moot.
		return se.reject(smtpErr(550, smtp.EnhancedCode{5, 6, 0}, "Message has more than one From field (RFC 5322 3.6)"))
	}
	// The same address parser as the inbound checks, on the field alone.
	parsed, err := mailtext.Parse(ctx, strings.NewReader("From: "+g.from+"\r\n\r\n"), mailtext.DefaultLimits())
	if err != nil || len(parsed.From) == 0 {
		return se.reject(smtpErr(550, smtp.EnhancedCode{5, 6, 0}, "From field cannot be read"))
	}
	for _, a := range parsed.From {
		at := strings.LastIndexByte(a.Addr, '@')
		var dom string
		if at > 0 {
			dom, err = addr.NormalizeDomain(a.Addr[at+1:])
		}
		if at <= 0 || err != nil {
			return se.reject(smtpErr(550, smtp.EnhancedCode{5, 6, 0}, "From field cannot be read"))
		}
		owned, err := se.ownedBy(ctx, se.tenantID, dom)
		if err != nil {
			se.log.Error("author domain lookup", "err", err)
			return errTempLocal
		}
		if !owned {
			se.log.Info("message refused: author not in the tenant's domains", "from", sanitizeHelo(a.Addr), "tenant", se.tenantID)
			return se.reject(smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "From address is not in your organisation's domains"))
		}
	}
	return nil
}

// foreignFromAllowed reads the tenant's relay.foreign_from policy value.
func (se *session) foreignFromAllowed(ctx context.Context) (bool, error) {
	layers, err := se.settings(ctx, se.tenantID)
	if err != nil {
		return false, err
	}
	return strings.EqualFold(strings.TrimSpace(layers.Of(store.ScopeTenant, "")[foreignFromKey]), "allow"), nil
}

// ownedBy reports whether domain is the tenant's: the most specific of it
// and its parents that mailgate serves belongs to tenantID. A subdomain of
// a served domain has the same owner (a customer's mail.example.com
// sending its bounces), unless it is served on its own. Public suffixes
// end the search: nobody owns all of .com.
func (se *session) ownedBy(ctx context.Context, tenantID int64, domain string) (bool, error) {
	for d := domain; d != ""; {
		dom, err := se.domainByName(ctx, d)
		if err == nil {
			return dom.TenantID == tenantID, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			break
		}
		d = d[i+1:]
		if ps, _ := publicsuffix.PublicSuffix(d); ps == d {
			break
		}
	}
	return false, nil
}

func authDetail(u string) string {
	if u == "" {
		return ""
	}
	return " auth=" + u
}

func (se *session) spoolErr(err error) error {
	if errors.Is(err, blob.ErrLowSpace) {
		return smtpErr(452, smtp.EnhancedCode{4, 3, 1}, "Insufficient system storage, try again later")
	}
	se.log.Error("spool write", "err", err)
	return errTempLocal
}

// receivedHeader is our trace field (RFC 5321 4.4; protocol names per RFC 3848).
func (se *session) receivedHeader(id string, now time.Time) string {
	proto := "ESMTP"
	if se.tls {
		proto += "S"
	}
	if se.authUser != "" {
		proto += "A"
	}
	if se.local != nil {
		proto = se.local.proto
	}
	h := fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s (mailgate) with %s id %s", se.helo(), se.ip, se.s.d.Hostname, proto, id)
	if len(se.rcpts) == 1 {
		h += fmt.Sprintf("\r\n\tfor <%s>", se.rcpts[0].addr.String())
	}
	return h + "; " + now.Format(time.RFC1123Z) + "\r\n"
}

// sanitizeHelo keeps a HELO name printable and bounded before it is written
// into a header or the log.
func sanitizeHelo(h string) string {
	var b strings.Builder
	for _, c := range h {
		if b.Len() >= 255 {
			break
		}
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_:[]", c) {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// xtextSafe bounds DSN parameters (ENVID, ORCPT) and drops anything that
// could break a header line when they are echoed into a DSN.
func xtextSafe(s string) string {
	var b strings.Builder
	for _, c := range s {
		if b.Len() >= 100 {
			break
		}
		if c > 0x20 && c < 0x7f {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// Reset clears the transaction.
func (se *session) Reset() {
	se.recordRefused()
	se.memo = new(versioned.Memo)
	se.from, se.hasFrom, se.envID, se.retFull, se.rcpts = "", false, "", false, nil
	se.utf8, se.body8bit = false, false
	if se.s.d.Kind == Inbound {
		se.tenantID = 0
	}
}

// Logout ends the session.
func (se *session) Logout() error {
	se.recordRefused()
	return nil
}

// recordRefused keeps the transaction's refused recipients in the tracking
// log, one already-finished message per tenant with the recipients
// Rejected and the reply they got, so an administrator looking for a
// missing mail finds it and reports count it. Nothing is spooled. A
// failure is only logged: the client had its answer.
func (se *session) recordRefused() {
	if len(se.refused) == 0 {
		return
	}
	refused := se.refused
	se.refused = nil
	// Also at the end of a connection that is already closed.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(se.connCtx()), lookupTimeout)
	defer cancel()
	now := se.s.d.Clock.Now()
	byTenant := map[int64][]string{}
	var order []int64
	for _, r := range refused {
		if _, ok := byTenant[r.tenantID]; !ok {
			order = append(order, r.tenantID)
		}
		byTenant[r.tenantID] = append(byTenant[r.tenantID], r.addr)
	}
	for _, tid := range order {
		m := store.Message{ID: store.NewMessageID(now), TenantID: tid, Direction: store.Inbound, MailFrom: se.from,
			ReceivedAt: now, ClientIP: se.ip, Helo: se.helo(), TLS: se.tls, Done: true}
		var rcpts []store.Recipient
		var evs []store.Event
		for _, a := range byTenant[tid] {
			rcpts = append(rcpts, store.Recipient{MessageID: m.ID, TenantID: tid, Addr: a, State: store.Rejected,
				LastCode: 550, LastReply: "550 5.1.1 User unknown", NextAttempt: now, Updated: now})
			evs = append(evs, store.Event{MessageID: m.ID, TenantID: tid, At: now, Kind: "rejected", Rcpt: a,
				Detail: store.RefusedUnknownDetail, Remote: se.ip})
		}
		if _, err := se.s.d.Store.Enqueue(ctx, m, rcpts, evs); err != nil {
			se.log.Error("recording refused recipients failed", "err", err)
		}
	}
}
