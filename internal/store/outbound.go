package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Outbound protection (package outbound): the tenant's outbound rules, and
// the messages held for approval or delayed, each with its release time.
//
// A held or delayed message lives in the queue like any other, its
// recipients in state Held, so it survives restarts and is seen by every
// node. Its OutboundHold row says why it waits and until when. Releasing
// it (approval, the delay running out, "send now"), rejecting it and
// cancelling it are one compare-and-set on the hold row, committed with
// the recipients' new states: whichever of an approver, the sender and
// the timer of any node comes first wins, and the others change nothing.

// Outbound hold kinds.
const (
	HoldApproval = "approval" // waits for an approver (審査)
	HoldDelay    = "delay"    // waits out the sender's group delay (遅延送信)
)

// Outbound hold states. Pending is the only one that changes.
const (
	HoldPending   = "pending"
	HoldSent      = "sent"      // released: approved, delay over, sent now, or timed out to send
	HoldRejected  = "rejected"  // refused by an approver or by the approval timeout
	HoldCancelled = "cancelled" // withdrawn by the sender or an administrator
)

// ErrHoldDecided is returned by DecideHold when the hold is no longer in
// the expected state: another decision (or the timer) came first.
var ErrHoldDecided = errors.New("outbound hold already decided")

// OutboundRule is one rule of a tenant's outbound policy. The store keeps
// its definition (conditions, exceptions, action and its parameters) as
// the JSON text package outbound writes and validates; rules apply in
// Position order, then by ID.
type OutboundRule struct {
	ID       int64
	TenantID int64
	Position int
	Name     string
	Enabled  bool
	// Scope and Owner say whose mail the rule looks at: ScopeTenant
	// (every sender), ScopeGroup (the senders in group Owner) or
	// ScopeAddress (the sender Owner).
	Scope     string
	Owner     string
	Spec      string
	Updated   time.Time
	UpdatedBy string
}

// HoldRelated is another queue message held with a hold's message and
// released with it: a follow-up such as the password mail of an
// encrypted attachment, due Delay after the release.
type HoldRelated struct {
	MessageID string        `json:"id"`
	Delay     time.Duration `json:"delay"`
}

// OutboundHold is one held or delayed outbound message.
type OutboundHold struct {
	MessageID string // the queue message (its recipients are Held while pending)
	TenantID  int64
	Kind      string // HoldApproval or HoldDelay
	State     string // HoldPending, HoldSent, HoldRejected, HoldCancelled
	// Sender is the address that sent it (the authenticated user, else
	// the envelope sender), lower-case: who may see and cancel it.
	Sender  string
	Subject string
	Rcpts   string // the recipients, comma-separated (shown to approvers)
	Size    int64
	Rule    string // the rule(s) that held it
	Reason  string // why, shown to approvers and the sender
	// Group is the approver group ("" = the tenant's administrators).
	Group string
	// ReleaseAt is when a delay ends or an approval times out.
	ReleaseAt time.Time
	// OnTimeout is what the approval timeout does: "send" or "reject".
	OnTimeout string
	// SelfApproval allows the sender to approve it (the tenant's choice).
	SelfApproval bool
	Related      []HoldRelated
	Created      time.Time
	Decided      time.Time
	DecidedBy    string
	Note         string // the approver's or sender's words with the decision
}

// HoldDecision ends a pending hold.
type HoldDecision struct {
	TenantID  int64
	MessageID string
	// To is HoldSent, HoldRejected or HoldCancelled. Sent makes the held
	// recipients of the message (and of its related messages, Delay
	// later) Queued and due at At; rejected makes them Rejected and
	// cancelled Deleted.
	To   string
	By   string
	At   time.Time
	Note string
	// Events are written with the decision (their MessageID and TenantID
	// are filled in when empty).
	Events []Event
	// Notices are generated messages (the sender's and approvers'
	// notices) queued in the same transaction.
	Notices []QueuedMessage
}

// HoldFilter narrows OutboundHolds.
type HoldFilter struct {
	TenantID int64
	Sender   string // "" = every sender
	Kind     string // "" = both
	State    string // "" = every state
	Limit    int
}

// OutboundStore keeps outbound rules and holds.
type OutboundStore interface {
	// OutboundRules lists a tenant's rules in order (Position, then ID).
	OutboundRules(ctx context.Context, tenantID int64) ([]OutboundRule, error)
	// AddOutboundRule inserts a rule; Position 0 puts it last.
	AddOutboundRule(ctx context.Context, r OutboundRule) (OutboundRule, error)
	// UpdateOutboundRule replaces a rule's fields (ErrNotFound when the
	// tenant has no rule r.ID).
	UpdateOutboundRule(ctx context.Context, r OutboundRule) error
	DeleteOutboundRule(ctx context.Context, tenantID, id int64) error
	// ReorderOutboundRules gives the listed rules positions 1, 2, ... in
	// that order; every rule of the tenant must be listed once.
	ReorderOutboundRules(ctx context.Context, tenantID int64, ids []int64) error
	// OutboundRulesVersion changes whenever the tenant's rules change
	// (compiled rule sets are cached by it).
	OutboundRulesVersion(ctx context.Context, tenantID int64) (int64, error)

	OutboundHold(ctx context.Context, tenantID int64, messageID string) (OutboundHold, error)
	// OutboundHolds lists holds, newest first.
	OutboundHolds(ctx context.Context, f HoldFilter) ([]OutboundHold, error)
	// DueHolds lists pending holds whose ReleaseAt is at or before now,
	// of every tenant, oldest first (the timer of every node asks).
	DueHolds(ctx context.Context, now time.Time, limit int) ([]OutboundHold, error)
	// DecideHold moves a pending hold to d.To with the recipients' new
	// states, events and notices in one transaction; ErrHoldDecided
	// (nothing changed) when it is not pending any more, ErrNotFound when
	// there is no such hold.
	DecideHold(ctx context.Context, d HoldDecision) (OutboundHold, error)
}

// EncodeHoldRelated is the stored form of a hold's related messages.
func EncodeHoldRelated(rs []HoldRelated) string {
	if len(rs) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(rs)
	return string(b)
}

// DecodeHoldRelated reads what EncodeHoldRelated wrote.
func DecodeHoldRelated(s string) ([]HoldRelated, error) {
	if s == "" {
		return nil, nil
	}
	var rs []HoldRelated
	if err := json.Unmarshal([]byte(s), &rs); err != nil {
		return nil, fmt.Errorf("hold related messages: %w", err)
	}
	return rs, nil
}

// HoldTarget is the recipient state a decision moves held recipients to.
func HoldTarget(to string) (RcptState, error) {
	switch to {
	case HoldSent:
		return Queued, nil
	case HoldRejected:
		return Rejected, nil
	case HoldCancelled:
		return Deleted, nil
	}
	return "", fmt.Errorf("hold decision %q: not sent, rejected or cancelled", to)
}

// CheckReorder checks that ids lists n distinct rules (every backend's
// ReorderOutboundRules applies it before changing anything).
func CheckReorder(n int, ids []int64) error {
	if len(ids) != n {
		return fmt.Errorf("reorder: %d rules given, the tenant has %d", len(ids), n)
	}
	seen := map[int64]bool{}
	for _, id := range ids {
		if seen[id] {
			return fmt.Errorf("reorder: rule %d given twice", id)
		}
		seen[id] = true
	}
	return nil
}
