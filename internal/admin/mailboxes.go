package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/store"
)

// MaxQuotaMB bounds a mailbox's allocation (1 MB steps): 1 PB, far past
// any disk, and safe from overflow when counted in bytes.
const MaxQuotaMB = 1 << 30

func (s *Service) mailboxes() (*mailbox.Service, error) {
	if s.Mailboxes == nil {
		return nil, errors.New("this node has no mailboxes")
	}
	return s.Mailboxes, nil
}

// MailboxUsage reports the tenant's mailboxes (allocation, use, emergency
// mail, last login) against its contracted disk (mailbox.contract_mb);
// OverContract says the allocations add up to more than the contract.
func (s *Service) MailboxUsage(ctx context.Context, a Actor) (mailbox.TenantUsage, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return mailbox.TenantUsage{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return mailbox.TenantUsage{}, err
	}
	mb, err := s.mailboxes()
	if err != nil {
		return mailbox.TenantUsage{}, err
	}
	return mb.Usage(ctx, tid)
}

// SetMailboxQuota sets the allocation of a user's mailbox in MB (0 = no
// limit), making the mailbox if the user has none yet. A smaller quota
// than the mail in it only stops new mail (it waits in the queue).
func (s *Service) SetMailboxQuota(ctx context.Context, a Actor, address, quotaMB string) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	n, err := strconv.ParseInt(quotaMB, 10, 64)
	if err != nil || n < 0 || n > MaxQuotaMB {
		return Invalidf("quota: a number of MB from 0 (no limit) to %d", int64(MaxQuotaMB))
	}
	tid, key, err := s.ownAddress(ctx, a, address)
	if err != nil {
		return err
	}
	mb, err := s.mailboxes()
	if err != nil {
		return err
	}
	old, err := mb.Mailbox(ctx, tid, key)
	if errors.Is(err, mailbox.ErrNoMailbox) {
		return Invalidf("%s is not a user of the domain (add it first: mailgate user add)", key)
	}
	if err != nil {
		return err
	}
	if err := mb.SetQuota(ctx, tid, key, n); err != nil {
		return fmt.Errorf("quota of %s: %w", key, err)
	}
	return s.Audit(ctx, a, tid, "mailbox.quota", key, strconv.FormatInt(old.QuotaMB, 10), strconv.FormatInt(n, 10))
}
