package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
)

// Decisions on held and delayed mail. Each is one store.DecideHold: a
// compare-and-set on the hold row committed with the recipients' new
// states, the tracking events and the notices. Of an approver's click,
// the sender's cancel and the timer of any node, the first wins; the
// others get ErrDecided and change nothing.

// Decision names.
const (
	Approve = "approve" // approval holds: send it
	Reject  = "reject"  // approval holds: refuse it, the sender is told why
	Cancel  = "cancel"  // the sender (or an administrator) withdraws it
	SendNow = "send-now"
)

// Errors of Decide.
var (
	ErrDecided      = store.ErrHoldDecided
	ErrNotAllowed   = errors.New("not allowed to decide about this message")
	ErrSelfApproval = errors.New("approving your own message is not allowed in this organisation")
	ErrWrongKind    = errors.New("this decision does not apply to this kind of hold")
)

// HoldStore is what decisions need of the store.
type HoldStore interface {
	PolicyStore
	OutboundHold(ctx context.Context, tenantID int64, messageID string) (store.OutboundHold, error)
	DueHolds(ctx context.Context, now time.Time, limit int) ([]store.OutboundHold, error)
	DecideHold(ctx context.Context, d store.HoldDecision) (store.OutboundHold, error)
	Message(ctx context.Context, tenantID int64, id string) (store.Message, []store.Recipient, error)
}

// Service decides about held and delayed mail and runs their timer.
type Service struct {
	Store    HoldStore
	Spool    blob.Store
	Hostname string
	BaseURL  string
	Zone     *time.Location
	Clock    clock.Clock
	Log      *slog.Logger
}

// Decider is who decides.
type Decider struct {
	Name    string // the audit and tracking name: a login, "link:<addr>", "timer"
	Address string // their mail address ("" for operators and the timer)
	Admin   bool   // a tenant administrator or operator
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

// Approvers returns who may approve the hold (besides administrators).
func (s *Service) Approvers(ctx context.Context, h store.OutboundHold) ([]string, error) {
	sp, err := loadPolicy(ctx, s.Store, h.TenantID, h.Sender)
	if err != nil {
		return nil, err
	}
	return approversOf(sp, h.Group), nil
}

// May reports whether who may make decision on h (nil) or why not.
func (s *Service) May(ctx context.Context, h store.OutboundHold, decision string, who Decider) error {
	self := who.Address != "" && strings.EqualFold(who.Address, h.Sender)
	switch decision {
	case Approve, Reject:
		if h.Kind != store.HoldApproval {
			return ErrWrongKind
		}
		if self && !h.SelfApproval && decision == Approve {
			return ErrSelfApproval
		}
		if who.Admin {
			return nil
		}
		as, err := s.Approvers(ctx, h)
		if err != nil {
			return err
		}
		if who.Address != "" && containsFold(as, who.Address) {
			return nil
		}
		return ErrNotAllowed
	case Cancel:
		if self || who.Admin {
			return nil
		}
		return ErrNotAllowed
	case SendNow:
		if h.Kind != store.HoldDelay {
			return ErrWrongKind
		}
		if self || who.Admin {
			return nil
		}
		return ErrNotAllowed
	}
	return fmt.Errorf("unknown decision %q", decision)
}

// Decide makes one decision about a pending hold of the tenant.
func (s *Service) Decide(ctx context.Context, tenantID int64, id, decision string, who Decider, note string) (store.OutboundHold, error) {
	h, err := s.Store.OutboundHold(ctx, tenantID, id)
	if err != nil {
		return h, err
	}
	if h.State != store.HoldPending {
		return h, fmt.Errorf("outbound hold %s is %s: %w", id, h.State, ErrDecided)
	}
	if err := s.May(ctx, h, decision, who); err != nil {
		return h, err
	}
	return s.decide(ctx, h, decision, who.Name, note, false)
}

// ApplyLink performs a verified signed link (approve, reject, cancel) in
// the name of the address it was mailed to; that address must still be
// allowed to decide.
func (s *Service) ApplyLink(ctx context.Context, l signedlink.Link, note string) (store.OutboundHold, error) {
	var decision string
	switch l.Action {
	case signedlink.Approve:
		decision = Approve
	case signedlink.Reject:
		decision = Reject
	case signedlink.Cancel:
		decision = Cancel
	default:
		return store.OutboundHold{}, fmt.Errorf("link action %q: %w", l.Action, store.ErrNotFound)
	}
	return s.Decide(ctx, l.TenantID, l.ItemID, decision, Decider{Name: "link:" + strings.ToLower(l.Rcpt), Address: strings.ToLower(l.Rcpt)}, note)
}

// decide writes the decision with its events and the sender's notice,
// then removes the blobs of a message that will not be sent.
func (s *Service) decide(ctx context.Context, h store.OutboundHold, decision, by, note string, timer bool) (store.OutboundHold, error) {
	now := s.now()
	to, kind, nk := store.HoldSent, "", noticeKind(-1)
	switch decision {
	case Approve:
		kind, nk = "approved", nApproved
		if timer {
			kind, nk = "approval-timeout", nTimedOutSent
		}
	case Reject:
		to, kind, nk = store.HoldRejected, "rejected", nRejected
		if timer {
			nk = nTimedOutRejected
		}
	case Cancel:
		to, kind = store.HoldCancelled, "cancelled"
	case SendNow:
		kind = "released"
	}
	detail := kind + " by " + by
	if note != "" {
		detail += ": " + clean(note, 500)
	}
	d := store.HoldDecision{TenantID: h.TenantID, MessageID: h.MessageID, To: to, By: by, At: now, Note: clean(note, 1000),
		Events: []store.Event{{At: now, Kind: kind, Detail: detail}}}
	var keys []string
	if nk >= 0 && h.Sender != "" {
		sp, err := loadPolicy(ctx, s.Store, h.TenantID, h.Sender)
		if err != nil {
			return h, err
		}
		nd := noticeData{ID: h.MessageID, Subject: h.Subject, Rcpts: h.Rcpts, Reason: h.Reason, Note: note, When: h.ReleaseAt}
		qm, key, err := buildNotice(ctx, s.Spool, s.Hostname, s.Zone, h.TenantID, []string{h.Sender}, nk, sp.get(KeyLang), nd,
			"outbound notice about "+h.MessageID, now)
		if err != nil {
			return h, err
		}
		keys = append(keys, key)
		d.Notices = append(d.Notices, qm)
	}
	out, err := s.Store.DecideHold(ctx, d)
	if err != nil {
		for _, k := range keys {
			s.Spool.Delete(context.WithoutCancel(ctx), k)
		}
		return out, err
	}
	s.log().Info("outbound hold decided", "id", h.MessageID, "tenant", h.TenantID, "decision", kind, "by", by)
	if to != store.HoldSent {
		ids := []string{h.MessageID}
		for _, r := range h.Related {
			ids = append(ids, r.MessageID)
		}
		for _, id := range ids {
			m, _, err := s.Store.Message(ctx, h.TenantID, id)
			if err == nil && m.Done && m.BlobKey != "" {
				if err := s.Spool.Delete(context.WithoutCancel(ctx), m.BlobKey); err != nil {
					s.log().Warn("removing the blob of a message not sent", "id", id, "err", err)
				}
			}
		}
	}
	return out, nil
}

// Tick releases every hold whose time has come: a delay ends (sent), an
// approval times out (sent or rejected, as the hold says). Several nodes
// may tick at once; each hold is decided by one of them.
func (s *Service) Tick(ctx context.Context) (int, error) {
	due, err := s.Store.DueHolds(ctx, s.now(), 100)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, h := range due {
		decision, note := SendNow, "delay over"
		if h.Kind == store.HoldApproval {
			decision, note = Reject, "nobody approved it in time"
			if h.OnTimeout == "send" {
				decision, note = Approve, "approval time ran out; sent as configured"
			}
		}
		_, err := s.decide(ctx, h, decision, "timer", note, true)
		switch {
		case err == nil:
			n++
		case errors.Is(err, store.ErrHoldDecided):
		default:
			errs = append(errs, fmt.Errorf("hold %s: %w", h.MessageID, err))
		}
	}
	return n, errors.Join(errs...)
}

// Run calls Tick every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log().Error("outbound hold timer", "err", err, "released", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
