package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/store"
)

// mailboxes is the node's emergency mailbox service as the delivery
// target of domains in emergency mode and as continuity's mailbox store.
type mailboxes struct{ s *mailbox.Service }

var _ MailboxStore = mailboxes{}

// Deliver stores a copy in the recipient's INBOX; the mailbox's errors
// become the delivery target's, which the queue answers with a deferral.
func (m mailboxes) Deliver(ctx context.Context, tenantID int64, rcpt string, body io.Reader, meta delivery.DeliverMeta) error {
	err := m.s.Deliver(ctx, tenantID, rcpt, body, mailbox.DeliverMeta{QueueID: meta.QueueID, MailFrom: meta.MailFrom,
		Received: meta.Received, Emergency: meta.Emergency})
	switch {
	case errors.Is(err, mailbox.ErrOverQuota):
		return fmt.Errorf("%w: %w", delivery.ErrOverQuota, err)
	case errors.Is(err, mailbox.ErrNoMailbox):
		return fmt.Errorf("%w: %w", delivery.ErrNoMailbox, err)
	}
	return err
}

func (m mailboxes) EnsureMailboxes(ctx context.Context, tenantID int64, domain string) (int, error) {
	return m.s.EnsureMailboxes(ctx, tenantID, domain)
}

// handbackItem is a mailbox message as the hand-back sees it: mail
// received in emergency mode, or the user's sent mail of that time (Sent:
// stored in a \Sent folder then), which goes to the primary service's Sent
// folder on the API paths.
func handbackItem(it store.PendingMail) continuity.Item {
	return continuity.Item{ID: it.Message.ID, User: it.Address, Sent: it.Message.Sent, MailFrom: it.Message.MailFrom,
		QueueID: it.Message.QueueID, Received: it.Message.InternalDate, Seen: it.Message.HasFlag(`\Seen`)}
}

func (m mailboxes) PendingHandback(ctx context.Context, tenantID int64, domain string, afterID int64, limit int) ([]continuity.Item, error) {
	its, err := m.s.PendingHandback(ctx, tenantID, domain, afterID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]continuity.Item, len(its))
	for i, it := range its {
		out[i] = handbackItem(it)
	}
	return out, nil
}

func (m mailboxes) OpenBody(ctx context.Context, tenantID, id int64) (continuity.Item, io.ReadCloser, error) {
	it, err := m.s.Store.HandbackMessage(ctx, tenantID, id)
	if err != nil {
		return continuity.Item{}, nil, err
	}
	r, err := m.s.OpenBody(ctx, it.Message)
	if err != nil {
		return continuity.Item{}, nil, err
	}
	return handbackItem(it), r, nil
}

func (m mailboxes) MarkHandedBack(ctx context.Context, tenantID, id int64, how string) error {
	return m.s.MarkHandedBack(ctx, tenantID, id, how)
}

func (m mailboxes) PurgeHandedBack(ctx context.Context, tenantID int64, domain string, before time.Time) (int, error) {
	return m.s.PurgeHandedBack(ctx, tenantID, domain, before)
}

// EmergencyUsage reports each mailbox of the domain: what arrived in
// emergency mode and how much of it is unread, what the user sent then,
// how much of both is handed back, and the last login.
func (m mailboxes) EmergencyUsage(ctx context.Context, tenantID int64, domain string) ([]continuity.UserUsage, error) {
	mbs, err := m.s.Store.Mailboxes(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var out []continuity.UserUsage
	for _, mb := range mbs {
		if mb.Domain != domain {
			continue
		}
		out = append(out, continuity.UserUsage{Address: mb.Address, Received: int(mb.Emergency), Unread: int(mb.EmergencyUnread),
			Sent: int(mb.EmergencySent), HandedBack: int(mb.Emergency + mb.EmergencySent - mb.PendingHandback), LastLogin: mb.LastLogin})
	}
	return out, nil
}
