package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/quarantine"
	"github.com/mailgate/mailgate/internal/store"
)

// --- queue ---

// QueueActions are the actions QueueAction knows.
var QueueActions = []string{"hold", "release", "retry", "delete", "bounce"}

// QueueAction holds, releases, retries, deletes or bounces the non-final
// recipients of a queued message of a's tenant and returns how many it
// changed.
func (s *Service) QueueAction(ctx context.Context, a Actor, id, action string) (int, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return 0, err
	}
	if s.Queue == nil {
		return 0, errors.New("queue actions: no queue")
	}
	var fn func(context.Context, int64, string, string) (int, error)
	switch action {
	case "hold":
		fn = s.Queue.Hold
	case "release":
		fn = s.Queue.Release
	case "retry":
		fn = s.Queue.RetryNow
	case "delete":
		fn = s.Queue.Delete
	case "bounce":
		fn = s.Queue.Bounce
	default:
		return 0, Invalidf("unknown queue action %q", action)
	}
	if !a.allTenants() {
		if _, err := a.tenant(); err != nil {
			return 0, err
		}
	}
	m, _, err := s.Store.Message(ctx, a.TenantID, id)
	if err != nil {
		return 0, err
	}
	n, err := fn(ctx, m.TenantID, m.ID, a.Name)
	if err != nil {
		return n, err
	}
	return n, s.Audit(ctx, a, m.TenantID, "queue."+action, m.ID, "", fmt.Sprintf("%d recipients", n))
}

// Flush makes every queued recipient of a's tenant (an operator without a
// tenant: of every tenant) due now.
func (s *Service) Flush(ctx context.Context, a Actor) (int, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return 0, err
	}
	if !a.allTenants() {
		if _, err := a.tenant(); err != nil {
			return 0, err
		}
	}
	if s.Queue == nil {
		return 0, errors.New("queue flush: no queue")
	}
	n, err := s.Queue.Flush(ctx, a.TenantID, a.Name)
	if err != nil {
		return n, err
	}
	return n, s.Audit(ctx, a, a.TenantID, "queue.flush", "", "", fmt.Sprintf("%d recipients", n))
}

// --- quarantine ---

// QuarantineItem finds a quarantined copy a may see: of a's tenant (an
// operator without a tenant: any), and for an end user of their own
// address.
func (s *Service) QuarantineItem(ctx context.Context, a Actor, id string) (store.QuarantineItem, error) {
	if err := a.require(store.RoleUser); err != nil {
		return store.QuarantineItem{}, err
	}
	if !a.allTenants() {
		if _, err := a.tenant(); err != nil {
			return store.QuarantineItem{}, err
		}
	}
	it, err := s.Store.QuarantineItem(ctx, a.TenantID, id)
	if err != nil {
		return it, err
	}
	if (!a.allTenants() && it.TenantID != a.TenantID) || (a.Role == store.RoleUser && it.Rcpt != a.Address) {
		return store.QuarantineItem{}, fmt.Errorf("quarantine item %s: %w", id, store.ErrNotFound)
	}
	return it, nil
}

// QuarantineActions are the actions QuarantineAction knows; "allow" and
// "forward" are for administrators.
var QuarantineActions = []string{"release", "delete", "release-allow", "allow", "block", "report-spam", "report-ham", "forward"}

// QuarantineResult is what a quarantine action did.
type QuarantineResult struct {
	Outcome string           // "released", "deleted", "learned" or "done"
	QueueID string           // release: the queue ID of the released message
	Entry   *store.ListEntry // allow, block: the list entry
}

// QuarantineAction acts on a quarantined copy:
//
//   - release, delete: the copy;
//   - release-allow: release, then allow its sender on the recipient's list;
//   - allow: allow the sender on the recipient's list (the copy stays);
//   - block: deny the sender (an end user: for their own address; an
//     administrator: for the recipient's whole domain) and delete the copy;
//   - report-spam, report-ham: train the tenant's spam model with it;
//   - forward: send a copy to another address (to).
func (s *Service) QuarantineAction(ctx context.Context, a Actor, id, action, to string) (QuarantineResult, error) {
	it, err := s.QuarantineItem(ctx, a, id)
	if err != nil {
		return QuarantineResult{}, err
	}
	if s.Quarantine == nil {
		return QuarantineResult{}, errors.New("quarantine actions: no quarantine")
	}
	who, tid := a.Name, it.TenantID
	notHeld := func(err error) error {
		if errors.Is(err, quarantine.ErrNotHeld) {
			return Invalidf("this message was already released or deleted")
		}
		return err
	}
	switch action {
	case "release":
		qid, err := s.Quarantine.Release(ctx, tid, it.ID, who)
		if err != nil {
			return QuarantineResult{}, notHeld(err)
		}
		return QuarantineResult{Outcome: "released", QueueID: qid}, s.Audit(ctx, a, tid, "quarantine.release", it.ID, it.Rcpt, it.MailFrom)
	case "delete":
		if err := s.Quarantine.Delete(ctx, tid, it.ID, who); err != nil {
			return QuarantineResult{}, notHeld(err)
		}
		return QuarantineResult{Outcome: "deleted"}, s.Audit(ctx, a, tid, "quarantine.delete", it.ID, it.Rcpt, "")
	case "release-allow":
		qid, err := s.Quarantine.Release(ctx, tid, it.ID, who)
		if err != nil {
			return QuarantineResult{}, notHeld(err)
		}
		e, err := s.Quarantine.Allow(ctx, tid, it.ID, who)
		if err != nil {
			return QuarantineResult{}, senderErr(err)
		}
		return QuarantineResult{Outcome: "released", QueueID: qid, Entry: &e}, s.Audit(ctx, a, tid, "quarantine.release_allow", it.ID, it.Rcpt, it.MailFrom)
	case "allow":
		if a.Role == store.RoleUser {
			return QuarantineResult{}, ErrForbidden
		}
		e, err := s.Quarantine.Allow(ctx, tid, it.ID, who)
		if err != nil {
			return QuarantineResult{}, senderErr(err)
		}
		return QuarantineResult{Outcome: "done", Entry: &e}, s.Audit(ctx, a, tid, "quarantine.allow", it.ID, it.Rcpt, it.MailFrom)
	case "block":
		block := s.Quarantine.Block
		if a.Role != store.RoleUser {
			block = s.Quarantine.BlockForDomain
		}
		e, err := block(ctx, tid, it.ID, who)
		if err != nil {
			return QuarantineResult{}, senderErr(err)
		}
		return QuarantineResult{Outcome: "deleted", Entry: &e}, s.Audit(ctx, a, tid, "quarantine.block", it.ID, it.Rcpt, it.MailFrom)
	case "report-spam", "report-ham":
		if s.Learn == nil {
			return QuarantineResult{}, Invalidf("spam feedback is not configured on this node")
		}
		raw, err := s.quarantineRaw(ctx, it)
		if err != nil {
			return QuarantineResult{}, err
		}
		if err := s.Learn(ctx, tid, raw, action == "report-spam"); err != nil {
			return QuarantineResult{}, err
		}
		return QuarantineResult{Outcome: "learned"}, s.Audit(ctx, a, tid, "quarantine."+strings.ReplaceAll(action, "-", "_"), it.ID, "", it.MailFrom)
	case "forward":
		if a.Role == store.RoleUser {
			return QuarantineResult{}, ErrForbidden
		}
		dest, err := addr.Parse(strings.TrimSpace(to))
		if err != nil {
			return QuarantineResult{}, Invalidf("address %q: %v", to, err)
		}
		if _, err := s.Quarantine.Forward(ctx, tid, it.ID, dest.Key(), who); err != nil {
			return QuarantineResult{}, err
		}
		return QuarantineResult{Outcome: "done"}, s.Audit(ctx, a, tid, "quarantine.forward", it.ID, it.Rcpt, dest.Key())
	}
	return QuarantineResult{}, Invalidf("unknown action %q", action)
}

// quarantineRaw reads a copy (at most 64 MiB).
func (s *Service) quarantineRaw(ctx context.Context, it store.QuarantineItem) ([]byte, error) {
	rc, _, err := s.Quarantine.Open(ctx, it.TenantID, it.ID)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readAtMost(rc, 64<<20)
}

// senderErr turns "the copy has no usable sender" into a refusal.
func senderErr(err error) error {
	if errors.Is(err, quarantine.ErrNoSender) {
		return Invalidf("the message has no sender address to list")
	}
	return err
}
