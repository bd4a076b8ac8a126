package delivery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// Mailbox is mailgate's own mailbox store as a delivery target: where a
// domain's mail goes while the domain is in emergency mode (mail
// continuity). Deliver stores one recipient's copy and returns only once
// it is durable. It is idempotent by (meta.QueueID, rcpt): a copy
// delivered again after a crash, before the queue recorded the first
// delivery, is not stored twice. An error wrapping ErrOverQuota defers the
// recipient (452 4.2.2; it stays queued, never bounced early); one
// wrapping ErrNoMailbox defers it too (the mailbox is created when the
// domain is switched, or by the administrator); any other error is a
// temporary local failure.
type Mailbox interface {
	Deliver(ctx context.Context, tenantID int64, rcpt string, body io.Reader, meta DeliverMeta) error
}

// DeliverMeta describes the copy handed to a Mailbox.
type DeliverMeta struct {
	// QueueID is the queue message the copy comes from; with the
	// recipient it identifies the delivery.
	QueueID string
	// MailFrom is the envelope sender ("" for the null sender).
	MailFrom string
	// Received is when mailgate accepted the message.
	Received time.Time
	// Emergency says the copy was delivered because its domain is in
	// emergency mode: it is handed back to the primary service later.
	Emergency bool
}

// Errors a Mailbox wraps to say why a copy was not stored.
var (
	ErrOverQuota = errors.New("mailbox over quota")
	ErrNoMailbox = errors.New("no mailbox for this address")
)

// MailboxTarget is the target a router returns for a domain whose mail
// goes into mailgate's mailboxes.
var MailboxTarget = Target{Host: "mailbox", Mailbox: true}

// HostedTarget is the target of a domain that lives in mailgate's
// mailboxes for good (mode mailbox): its copies are not emergency mail and
// are never handed back.
var HostedTarget = Target{Host: "mailbox", Mailbox: true, Hosted: true}

// SMTPDeliverer delivers over SMTP (Client).
type SMTPDeliverer interface {
	Deliver(ctx context.Context, targets []Target, req Request) []Result
}

// Dispatcher sends each attempt to the side its targets name: mailgate's
// mailboxes (MailboxTarget) or SMTP. The router decides the side once per
// attempt, so a message in flight when a domain is switched goes to
// exactly one of them, and a recipient left queued goes where the mode
// says at its next attempt.
type Dispatcher struct {
	SMTP SMTPDeliverer
	// Mailbox is the mailbox store; nil defers mailbox deliveries (the
	// node has no mailbox store).
	Mailbox Mailbox
	Log     *slog.Logger
}

// Deliver implements the queue's Deliverer.
func (d *Dispatcher) Deliver(ctx context.Context, targets []Target, req Request) []Result {
	if len(targets) == 0 || !targets[0].Mailbox {
		return d.SMTP.Deliver(ctx, targets, req)
	}
	out := make([]Result, len(req.Rcpts))
	for i, rcpt := range req.Rcpts {
		out[i] = d.toMailbox(ctx, req, rcpt, !targets[0].Hosted)
		out[i].Rcpt = rcpt
	}
	return out
}

// MailboxRemote names the mailbox store as the remote of a delivery in
// results and tracking events.
const MailboxRemote = "mailbox"

func (d *Dispatcher) toMailbox(ctx context.Context, req Request, rcpt string, emergency bool) Result {
	if d.Mailbox == nil {
		return Result{Code: 451, Enhanced: "4.3.0", Text: "mailbox delivery is not available on this node", Remote: MailboxRemote}
	}
	if req.MessageID == "" || req.TenantID == 0 {
		// Without the queue ID the delivery could not be made idempotent.
		return Result{Code: 451, Enhanced: "4.3.0", Text: "local error: message without queue ID", Remote: MailboxRemote}
	}
	body, err := req.Body()
	if err != nil {
		return Result{Code: 451, Enhanced: "4.3.0", Text: "local error opening message: " + err.Error(), Remote: MailboxRemote}
	}
	defer body.Close()
	err = d.Mailbox.Deliver(ctx, req.TenantID, rcpt, body, DeliverMeta{QueueID: req.MessageID, MailFrom: req.From, Received: req.Received, Emergency: emergency})
	switch {
	case err == nil:
		return Result{Code: 250, Enhanced: "2.0.0", Text: "delivered to mailbox", Remote: MailboxRemote}
	case errors.Is(err, ErrOverQuota):
		// RFC 3463 4.2.2: the mailbox is full; it stays queued until
		// there is room or the queue's bounce_after passes.
		return Result{Code: 452, Enhanced: "4.2.2", Text: "mailbox full", Remote: MailboxRemote}
	case errors.Is(err, ErrNoMailbox):
		return Result{Code: 450, Enhanced: "4.2.1", Text: "mailbox not set up yet", Remote: MailboxRemote}
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	// The details stay in the log: the reply text reaches the sender in a
	// delay or failure notice.
	log.Error("mailbox delivery failed", "id", req.MessageID, "rcpt", rcpt, "err", err)
	return Result{Code: 451, Enhanced: "4.3.0", Text: "temporary local problem storing the message", Remote: MailboxRemote}
}
