// Package continuity keeps a customer's mail flowing while its primary
// mail service (Microsoft 365, Google Workspace, its own server) is down:
//
//   - the delivery switch: each served domain is in mode primary (its mail
//     goes to its routes) or emergency (into mailgate's own mailboxes,
//     which users read over IMAP and send from over submission); the
//     router reads the mode at every delivery attempt, so a switch applies
//     to mail already queued, which the switch makes due at once;
//   - automatic failover (off by default): probes of the primary routes,
//     run once across nodes, switch a domain to emergency after failing
//     for a while, and back only when configured, with hysteresis;
//   - hand-back: every message a domain received in emergency mode is
//     handed to the primary service exactly once (over SMTP with a marker
//     header, or imported through the Microsoft Graph or Gmail API),
//     resumable after a crash: each message's state is in the store,
//     claimed with a lease and fenced by its attempt count;
//   - the continuity event log (probe failures, switches, hand-backs).
//
// Administrators act through internal/admin (validation and audit), which
// calls Service. The mailbox store itself is reached through Mailboxes.
package continuity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/store"
)

// Event kinds of the continuity log.
const (
	EventSwitch          = "switch"           // the delivery mode changed
	EventProbeFailed     = "probe_failed"     // a failover probe failed
	EventProbeRecovered  = "probe_recovered"  // probes pass again after failing
	EventWarning         = "warning"          // something beside a switch went wrong (mailboxes, notice)
	EventHandbackStarted = "handback_started" // a hand-back job began
	EventHandbackDone    = "handback_done"    // a hand-back job finished
	EventHandbackFailed  = "handback_failed"  // the primary service refused a message for good
	EventHandbackRetry   = "handback_retry"   // failed messages are tried again
	EventPurged          = "purged"           // local copies deleted
	EventCredentials     = "credentials"      // hand-back API credentials changed
)

// Item is a message of an emergency mailbox, as the hand-back sees it.
type Item struct {
	ID       int64  // the mailbox message ID: increasing, stable
	User     string // the mailbox's address
	Sent     bool   // the user's sent mail (its Sent folder), not mail received
	MailFrom string // envelope sender of received mail ("" null sender)
	// QueueID is the queue message a received copy was delivered from
	// (delivery.DeliverMeta.QueueID); "" for sent mail.
	QueueID  string
	Received time.Time
	Seen     bool // read by the user (kept on the API paths)
}

// UserUsage is one user's emergency mailbox, for the outage console.
type UserUsage struct {
	Address    string    `json:"address"`
	Received   int       `json:"received"`            // messages received in emergency mode
	Unread     int       `json:"unread"`              // of those, not read yet
	Sent       int       `json:"sent"`                // messages in the Sent folder from emergency mode
	LastLogin  time.Time `json:"last_login,omitzero"` // zero: never logged in (IMAP or submission)
	HandedBack int       `json:"handed_back"`         // messages handed back already
}

// Mailboxes is the emergency mailbox store as continuity needs it. Every
// method is scoped to a tenant; IDs of another tenant are not found.
type Mailboxes interface {
	// EnsureMailboxes gives every user of the tenant's domain a mailbox
	// (called at the switch to emergency) and returns how many it created.
	EnsureMailboxes(ctx context.Context, tenantID int64, domain string) (int, error)
	// PendingHandback lists messages of the domain's mailboxes received in
	// emergency mode (and sent mail of that time) that are not marked
	// handed back, with ID > afterID, by ID, at most limit.
	PendingHandback(ctx context.Context, tenantID int64, domain string, afterID int64, limit int) ([]Item, error)
	// OpenBody returns a message with its current state (read or not)
	// and its content as stored (RFC 5322, CRLF).
	OpenBody(ctx context.Context, tenantID, id int64) (Item, io.ReadCloser, error)
	// MarkHandedBack records that a message was handed back (idempotent).
	MarkHandedBack(ctx context.Context, tenantID, id int64, how string) error
	// PurgeHandedBack deletes the domain's local copies handed back before
	// before and returns how many.
	PurgeHandedBack(ctx context.Context, tenantID int64, domain string, before time.Time) (int, error)
	// EmergencyUsage reports each user of the domain.
	EmergencyUsage(ctx context.Context, tenantID int64, domain string) ([]UserUsage, error)
}

// Submitter queues a message mailgate writes itself (queue.Queue.Submit).
type Submitter interface {
	Submit(ctx context.Context, m store.Message, rcpts []string, body io.Reader, why string) (string, error)
}

// Service switches domains and starts hand-backs. Safe for concurrent
// use; every change is guarded in the store, so several nodes may act at
// once.
type Service struct {
	Store Store
	// Mailboxes is the emergency mailbox store; nil when the node has
	// none (a switch then works, and mail waits in the queue).
	Mailboxes Mailboxes
	// Queue sends the switch notices.
	Queue    Submitter
	Hostname string
	Clock    clock.Clock
	Log      *slog.Logger
}

func (s *Service) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// ErrSameMode refuses a switch to the mode a domain is already in.
var ErrSameMode = errors.New("the domain is already in that mode")

// ErrNoMailboxes is returned when the node has no mailbox store.
var ErrNoMailboxes = errors.New("no mailbox store on this node")

// SwitchResult is what a switch did.
type SwitchResult struct {
	Domain string    `json:"domain"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
	// Woken counts queued recipients made due at once.
	Woken int `json:"woken"`
	// Created counts mailboxes created (switch to emergency).
	Created int `json:"mailboxes_created"`
	// Handback is the hand-back started (switch to primary with
	// continuity.handback = auto), or nil.
	Handback *HandbackStatus `json:"handback,omitempty"`
	// Warnings are what went wrong beside the switch itself, which stands.
	Warnings []string `json:"warnings"`
}

// Switch moves a served domain to mode to ("primary" or "emergency") for
// actor (the audit log's name). It is a compare-and-set in the store: of
// two concurrent switches one wins, the other gets ErrSameMode. Then
// mailboxes are made for every user (to emergency), the domain's queued
// mail is made due (it goes where the new mode says at its next attempt),
// the event is logged, the tenant's administrators get a notice, and
// (back to primary) the hand-back starts unless the domain's policy says
// manual. Failures after the switch are reported in Warnings, never undo
// it: during an outage the switch matters most.
//
// Mode mailbox (store.ModeMailbox) keeps a domain in mailgate's mailboxes
// for good (a hosted domain): it is entered from primary only, like
// emergency, and left for primary; mail it received is never handed back.
func (s *Service) Switch(ctx context.Context, d store.Domain, to, actor, reason string) (SwitchResult, error) {
	var from string
	switch to {
	case store.ModeEmergency, store.ModeMailbox:
		from = store.ModePrimary
	case store.ModePrimary:
		cur, err := s.Store.DomainMode(ctx, d.TenantID, d.ID)
		if err != nil {
			return SwitchResult{}, err
		}
		if cur.Mode == store.ModePrimary {
			return SwitchResult{}, ErrSameMode
		}
		from = cur.Mode
	default:
		return SwitchResult{}, fmt.Errorf("mode %q: want primary, emergency or mailbox", to)
	}
	res := SwitchResult{Domain: d.Name, From: from, To: to, At: s.now(), Warnings: []string{}}
	pol, err := PolicyFor(ctx, s.Store, d.TenantID, d.Name)
	if err != nil {
		return res, err
	}
	if to == store.ModeEmergency || to == store.ModeMailbox {
		// Before the switch, so the first message finds its mailbox.
		if s.Mailboxes == nil {
			res.Warnings = append(res.Warnings, "no mailbox store on this node: mail waits in the queue")
		} else if n, err := s.Mailboxes.EnsureMailboxes(ctx, d.TenantID, d.Name); err != nil {
			s.log().Error("creating mailboxes", "domain", d.Name, "err", err)
			res.Warnings = append(res.Warnings, "mailboxes could not all be created (mail to those users waits in the queue): "+err.Error())
		} else {
			res.Created = n
		}
	}
	ok, err := s.Store.SetDomainMode(ctx, store.DomainMode{TenantID: d.TenantID, DomainID: d.ID, Domain: d.Name, Mode: to,
		Changed: res.At, ChangedBy: actor, Reason: reason}, from)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, ErrSameMode
	}
	if res.Woken, err = s.Store.WakeDomain(ctx, d.TenantID, d.Name, res.At); err != nil {
		// The queue's retry schedule still delivers them, later.
		s.log().Error("making queued mail due", "domain", d.Name, "err", err)
		res.Warnings = append(res.Warnings, "queued mail is delivered at its next scheduled attempt: "+err.Error())
	}
	detail := fmt.Sprintf("%s → %s; %d queued recipient(s) due now", from, to, res.Woken)
	if to == store.ModeEmergency || to == store.ModeMailbox {
		detail += fmt.Sprintf("; %d mailbox(es) created", res.Created)
	}
	if reason != "" {
		detail += "; reason: " + oneLine(reason, 300)
	}
	s.event(ctx, d.TenantID, d.Name, EventSwitch, actor, detail)
	if to == store.ModePrimary && from == store.ModeEmergency && pol.HandbackAuto {
		j, err := s.StartHandback(ctx, d, "", actor)
		switch {
		case err == nil:
			res.Handback = &HandbackStatus{ID: j.ID, Domain: j.Domain, User: j.User, Path: j.Path, State: j.State,
				Created: j.Created, CreatedBy: j.CreatedBy, Searching: true}
		case errors.Is(err, ErrHandbackRunning):
		default:
			res.Warnings = append(res.Warnings, "hand-back not started: "+err.Error())
		}
	}
	if err := s.notifySwitch(ctx, d, res, actor, reason, pol); err != nil {
		s.log().Error("switch notice", "domain", d.Name, "err", err)
		res.Warnings = append(res.Warnings, "the administrators could not be notified: "+err.Error())
	}
	for _, w := range res.Warnings {
		s.event(ctx, d.TenantID, d.Name, EventWarning, actor, w)
	}
	return res, nil
}

// event appends to the continuity log; a failure is logged only (the
// action it records has happened).
func (s *Service) event(ctx context.Context, tenantID int64, domain, kind, actor, detail string) {
	e := store.ContinuityEvent{TenantID: tenantID, Domain: domain, At: s.now(), Kind: kind, Actor: actor, Detail: detail}
	if err := s.Store.AddContinuityEvent(context.WithoutCancel(ctx), e); err != nil {
		s.log().Error("continuity event", "kind", kind, "domain", domain, "err", err)
	}
}

// Event appends an event to the domain's continuity log (for actions
// recorded by other layers, such as a credential change).
func (s *Service) Event(ctx context.Context, tenantID int64, domain, kind, actor, detail string) {
	s.event(ctx, tenantID, domain, kind, actor, detail)
}

// adminAddresses are the tenant's administrators that have an address
// login, and the domain's continuity.notify addresses.
func (s *Service) adminAddresses(ctx context.Context, tenantID int64, pol Policy) ([]string, error) {
	accts, err := s.Store.Accounts(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if k := strings.ToLower(a); !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	for _, a := range accts {
		if a.Role == store.RoleAdmin && !a.Disabled && strings.Contains(a.Login, "@") {
			add(a.Login)
		}
	}
	for _, a := range pol.Notify {
		add(a)
	}
	return out, nil
}

// notifySwitch mails the switch to the tenant's administrators from the
// null sender, through the queue (so it is retried, and in emergency
// mode lands in their emergency mailboxes).
func (s *Service) notifySwitch(ctx context.Context, d store.Domain, res SwitchResult, actor, reason string, pol Policy) error {
	if s.Queue == nil {
		return nil
	}
	to, err := s.adminAddresses(ctx, d.TenantID, pol)
	if err != nil || len(to) == 0 {
		return err
	}
	at := res.At.UTC().Format("2006-01-02 15:04:05 MST")
	var ja, en, subj string
	switch {
	case res.To == store.ModeMailbox:
		subj = fmt.Sprintf("[mailgate] %s: mailgate のメールボックスで運用します / now hosted in mailgate's mailboxes", d.Name)
		ja = fmt.Sprintf("%s のメールは今後 mailgate のメールボックスに配送されます（通常の配送先への引き戻しはありません）。\n"+
			"日時: %s\n実行者: %s\nキューにあった %d 件の宛先を直ちに配送します。作成したメールボックス: %d\n"+
			"利用者はウェブメール、またはメールソフト（IMAP / 送信は submission）で利用できます。\n", d.Name, at, actor, res.Woken, res.Created)
		en = fmt.Sprintf("Mail for %s now goes into mailgate's mailboxes for good (it is not handed back to another service).\n"+
			"Time: %s\nBy: %s\n%d queued recipient(s) are delivered now. Mailboxes created: %d\n"+
			"Users read and send in the webmail or with their mail apps (IMAP, and submission for sending).\n", d.Name, at, actor, res.Woken, res.Created)
	case res.To == store.ModePrimary && res.From == store.ModeMailbox:
		subj = fmt.Sprintf("[mailgate] %s: 通常の配送先に切り替えました / switched to its routes", d.Name)
		ja = fmt.Sprintf("%s のメールは今後ドメインの配送先に送られます。日時: %s\n実行者: %s\n"+
			"mailgate のメールボックスにあるメールはそのまま残ります。\n", d.Name, at, actor)
		en = fmt.Sprintf("Mail for %s goes to the domain's routes from now on.\nTime: %s\nBy: %s\n"+
			"The mail in mailgate's mailboxes stays there.\n", d.Name, at, actor)
	case res.To == store.ModeEmergency:
		subj = fmt.Sprintf("[mailgate] %s: 緊急モードに切り替えました / switched to emergency mode", d.Name)
		ja = fmt.Sprintf("%s のメール配送先を緊急用メールボックスに切り替えました。\n"+
			"日時: %s\n実行者: %s\n", d.Name, at, actor)
		en = fmt.Sprintf("Mail for %s now goes into mailgate's emergency mailboxes.\n"+
			"Time: %s\nBy: %s\n", d.Name, at, actor)
		ja += fmt.Sprintf("キューにあった %d 件の宛先を直ちに配送します。作成したメールボックス: %d\n"+
			"利用者はメールソフト（IMAP / 送信は submission）で緊急用メールボックスを利用できます。\n", res.Woken, res.Created)
		en += fmt.Sprintf("%d queued recipient(s) are delivered now. Mailboxes created: %d\n"+
			"Users read and send with their mail apps (IMAP, and submission for sending).\n", res.Woken, res.Created)
	default:
		subj = fmt.Sprintf("[mailgate] %s: 通常モードに戻しました / switched back to primary", d.Name)
		ja = fmt.Sprintf("%s のメール配送先を通常の配送先に戻しました。\n日時: %s\n実行者: %s\n", d.Name, at, actor)
		en = fmt.Sprintf("Mail for %s goes to its primary service again.\nTime: %s\nBy: %s\n", d.Name, at, actor)
		if res.Handback != nil {
			ja += fmt.Sprintf("緊急モード中に受信したメールの引き戻し（経路: %s）を開始しました。\n", res.Handback.Path)
			en += fmt.Sprintf("The mail received in emergency mode is being handed back (path: %s).\n", res.Handback.Path)
		} else {
			ja += "緊急モード中に受信したメールの引き戻しは、管理画面または CLI から開始してください。\n"
			en += "Start the hand-back of the mail received in emergency mode from the console or the CLI.\n"
		}
	}
	if reason != "" {
		ja += "理由: " + oneLine(reason, 300) + "\n"
		en += "Reason: " + oneLine(reason, 300) + "\n"
	}
	for _, w := range res.Warnings {
		en += "Warning: " + w + "\n"
	}
	body := quarantine.Notice(s.Hostname, to, subj, ja+"\n----\n\n"+en, res.At)
	_, err = s.Queue.Submit(ctx, store.Message{TenantID: d.TenantID, Direction: store.DSN, Subject: subj},
		to, strings.NewReader(string(body)), "continuity switch notice for "+d.Name)
	return err
}

// oneLine keeps a value on one bounded line (log and notice text).
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))), " ")
	if len(s) > n {
		cut := n
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
