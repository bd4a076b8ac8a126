package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
)

// isPostmaster reports whether address is postmaster@ some domain (RFC
// 5321 4.5.1: every domain that takes mail has it).
func isPostmaster(address string) bool {
	local, _, ok := strings.Cut(strings.TrimSpace(address), "@")
	return ok && strings.EqualFold(local, "postmaster")
}

// deliverPostmaster stores mail for postmaster@ a domain that has no such
// user in the mailboxes of the tenant's administrators of that domain
// (enabled administrator accounts whose login is an address of the domain
// with a mailbox), the people who read the primary service's postmaster
// mail. Each gets one copy (a copy already there from the same queue
// message, addressed to them too or stored before a crash, is not stored
// again); a failure for one defers the delivery and the retry stores only
// what is missing. They are handed back into those administrators'
// mailboxes at the primary service. Without such an administrator the
// error wraps ErrNoMailbox and the message waits in the queue (for a
// mailbox, or for the switch back to the primary service).
func (s *Service) deliverPostmaster(ctx context.Context, tenantID int64, rcpt string, body io.Reader, meta DeliverMeta) error {
	mbs, err := s.postmasterMailboxes(ctx, tenantID, strings.ToLower(store.MailboxDomain(strings.TrimSpace(rcpt))))
	if err != nil {
		return err
	}
	if len(mbs) == 0 {
		return fmt.Errorf("%s: no user of that name and no administrator of the domain with a mailbox: %w", rcpt, ErrNoMailbox)
	}
	var first store.MailMessage
	for i, mb := range mbs {
		r := body
		if i > 0 {
			// The first copy is durable: the others are read from it.
			rc, err := s.Blobs.Open(ctx, first.BlobKey)
			if err != nil {
				return fmt.Errorf("postmaster copy for %s: %w", mb.Address, err)
			}
			_, err = s.deliverInto(ctx, mb, rc, meta)
			rc.Close()
			if err != nil {
				return fmt.Errorf("postmaster mail for %s: %w", mb.Address, err)
			}
			continue
		}
		if first, err = s.deliverInto(ctx, mb, r, meta); err != nil {
			return fmt.Errorf("postmaster mail for %s: %w", mb.Address, err)
		}
	}
	s.log().Info("postmaster mail delivered to the administrators", "rcpt", rcpt, "queue_id", meta.QueueID, "mailboxes", len(mbs))
	return nil
}

// postmasterMailboxes are the mailboxes of the tenant's enabled
// administrators whose login is an address of domain, by address.
func (s *Service) postmasterMailboxes(ctx context.Context, tenantID int64, domain string) ([]store.Mailbox, error) {
	accts, err := s.Store.Accounts(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("administrators: %w", err)
	}
	var logins []string
	for _, a := range accts {
		if a.Role == store.RoleAdmin && !a.Disabled && a.TenantID == tenantID && strings.Contains(a.Login, "@") &&
			strings.EqualFold(store.MailboxDomain(a.Login), domain) {
			logins = append(logins, strings.ToLower(a.Login))
		}
	}
	slices.Sort(logins)
	var out []store.Mailbox
	for _, l := range slices.Compact(logins) {
		mb, err := s.Mailbox(ctx, tenantID, l)
		if errors.Is(err, ErrNoMailbox) {
			// An administrator who is not a mail user has no mailbox.
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, mb)
	}
	return out, nil
}
