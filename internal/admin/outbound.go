package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/internal/outbound"
	"github.com/mailgate/mailgate/internal/store"
)

// --- outbound protection ---
//
// The tenant's outbound rules are administrators' objects. Held and
// delayed messages are seen by administrators (all of the tenant's), by
// their sender and by their approvers; decisions go through
// outbound.Service, which checks who may make them and decides once.

var errNoOutbound = errors.New("outbound protection is not available on this node")

func (s *Service) outHolds() (*outbound.Service, error) {
	if s.OutHolds == nil {
		return nil, errNoOutbound
	}
	return s.OutHolds, nil
}

// OutboundRules lists the rules of a's tenant in order.
func (s *Service) OutboundRules(ctx context.Context, a Actor) ([]store.OutboundRule, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return nil, err
	}
	tid, err := a.tenant()
	if err != nil {
		return nil, err
	}
	return s.Store.OutboundRules(ctx, tid)
}

// OutboundRule returns one rule of a's tenant.
func (s *Service) OutboundRule(ctx context.Context, a Actor, id int64) (store.OutboundRule, error) {
	rs, err := s.OutboundRules(ctx, a)
	if err != nil {
		return store.OutboundRule{}, err
	}
	for _, r := range rs {
		if r.ID == id {
			return r, nil
		}
	}
	return store.OutboundRule{}, fmt.Errorf("outbound rule %d: %w", id, store.ErrNotFound)
}

// checkOutboundRule validates a rule of a's tenant and returns it in
// normal form: its definition re-encoded, its owner a group or address of
// the tenant.
func (s *Service) checkOutboundRule(ctx context.Context, a Actor, r store.OutboundRule) (store.OutboundRule, error) {
	tid, err := a.tenant()
	if err != nil {
		return r, err
	}
	r.TenantID = tid
	r.Name = strings.TrimSpace(r.Name)
	if r.Name == "" || len(r.Name) > 100 || strings.ContainsAny(r.Name, "\r\n\x00") {
		return r, Invalidf("rule name: 1 to 100 characters on one line")
	}
	sp, err := outbound.ParseSpec(r.Spec)
	if err != nil {
		return r, Invalidf("%v", err)
	}
	r.Spec = sp.Encode()
	r.Owner = strings.TrimSpace(r.Owner)
	if r.Scope == "" {
		r.Scope = store.ScopeTenant
	}
	if err := outbound.ValidScope(r.Scope, r.Owner); err != nil {
		return r, Invalidf("%v", err)
	}
	switch r.Scope {
	case store.ScopeGroup:
		g, err := s.ownGroup(ctx, a, r.Owner)
		if err != nil {
			return r, err
		}
		r.Owner = g.Name
	case store.ScopeAddress:
		if _, r.Owner, err = s.ownAddress(ctx, a, r.Owner); err != nil {
			return r, err
		}
	}
	if sp.Action == outbound.ActHold && sp.ApproverGroup != "" {
		if _, err := s.ownGroup(ctx, a, sp.ApproverGroup); err != nil {
			return r, err
		}
	}
	r.Updated, r.UpdatedBy = s.now().Now(), a.Name
	return r, nil
}

// AddOutboundRule adds a rule to a's tenant (Position 0: last).
func (s *Service) AddOutboundRule(ctx context.Context, a Actor, r store.OutboundRule) (store.OutboundRule, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return r, err
	}
	r, err := s.checkOutboundRule(ctx, a, r)
	if err != nil {
		return r, err
	}
	out, err := s.Store.AddOutboundRule(ctx, r)
	if err != nil {
		return out, err
	}
	return out, s.Audit(ctx, a, out.TenantID, "outbound.rule.add", ruleTarget(out), "", ruleAudit(out))
}

// UpdateOutboundRule replaces a rule of a's tenant.
func (s *Service) UpdateOutboundRule(ctx context.Context, a Actor, r store.OutboundRule) (store.OutboundRule, error) {
	before, err := s.OutboundRule(ctx, a, r.ID)
	if err != nil {
		return r, err
	}
	if r.Position == 0 {
		r.Position = before.Position
	}
	r, err = s.checkOutboundRule(ctx, a, r)
	if err != nil {
		return r, err
	}
	if err := s.Store.UpdateOutboundRule(ctx, r); err != nil {
		return r, err
	}
	return r, s.Audit(ctx, a, r.TenantID, "outbound.rule.update", ruleTarget(r), ruleAudit(before), ruleAudit(r))
}

// SetOutboundRuleEnabled turns a rule on or off.
func (s *Service) SetOutboundRuleEnabled(ctx context.Context, a Actor, id int64, on bool) error {
	r, err := s.OutboundRule(ctx, a, id)
	if err != nil {
		return err
	}
	if r.Enabled == on {
		return nil
	}
	r.Enabled = on
	_, err = s.UpdateOutboundRule(ctx, a, r)
	return err
}

// DeleteOutboundRule deletes a rule of a's tenant.
func (s *Service) DeleteOutboundRule(ctx context.Context, a Actor, id int64) error {
	r, err := s.OutboundRule(ctx, a, id)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteOutboundRule(ctx, r.TenantID, id); err != nil {
		return err
	}
	return s.Audit(ctx, a, r.TenantID, "outbound.rule.delete", ruleTarget(r), ruleAudit(r), "")
}

// ReorderOutboundRules puts the tenant's rules in the given order (every
// rule once).
func (s *Service) ReorderOutboundRules(ctx context.Context, a Actor, ids []int64) error {
	rs, err := s.OutboundRules(ctx, a)
	if err != nil {
		return err
	}
	known := map[int64]bool{}
	var before []string
	for _, r := range rs {
		known[r.ID] = true
		before = append(before, strconv.FormatInt(r.ID, 10))
	}
	var after []string
	for _, id := range ids {
		if !known[id] {
			return fmt.Errorf("outbound rule %d: %w", id, store.ErrNotFound)
		}
		after = append(after, strconv.FormatInt(id, 10))
	}
	if err := store.CheckReorder(len(rs), ids); err != nil {
		return Invalidf("%v", err)
	}
	tid, _ := a.tenant()
	if err := s.Store.ReorderOutboundRules(ctx, tid, ids); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "outbound.rule.reorder", "", strings.Join(before, ","), strings.Join(after, ","))
}

// MoveOutboundRule moves a rule one place up (delta -1) or down (+1).
func (s *Service) MoveOutboundRule(ctx context.Context, a Actor, id int64, delta int) error {
	rs, err := s.OutboundRules(ctx, a)
	if err != nil {
		return err
	}
	ids := make([]int64, len(rs))
	at := -1
	for i, r := range rs {
		ids[i] = r.ID
		if r.ID == id {
			at = i
		}
	}
	if at < 0 {
		return fmt.Errorf("outbound rule %d: %w", id, store.ErrNotFound)
	}
	to := at + delta
	if to < 0 || to >= len(ids) {
		return nil
	}
	ids[at], ids[to] = ids[to], ids[at]
	return s.ReorderOutboundRules(ctx, a, ids)
}

// TestOutboundRules runs a pasted message through the tenant's rules (or
// through rules, when not nil) as if mailFrom sent it to rcpts (empty:
// its header's recipients). Nothing is sent or stored.
func (s *Service) TestOutboundRules(ctx context.Context, a Actor, raw []byte, mailFrom string, rcpts []string, rules []store.OutboundRule) (outbound.TestResult, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return outbound.TestResult{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return outbound.TestResult{}, err
	}
	if s.OutEngine == nil {
		return outbound.TestResult{}, errNoOutbound
	}
	if len(raw) == 0 {
		return outbound.TestResult{}, Invalidf("paste a message (headers, an empty line, the body)")
	}
	res, err := s.OutEngine.Test(ctx, s.Store, tid, raw, strings.TrimSpace(mailFrom), rcpts, rules)
	if err != nil {
		return res, Invalidf("%v", err)
	}
	return res, nil
}

// HoldView is a held or delayed message as its viewer sees it, with the
// decisions the viewer may make.
type HoldView struct {
	store.OutboundHold
	Approvers []string `json:"approvers"`
	// Allowed lists the decisions the viewer may make now (empty when the
	// hold is decided).
	Allowed []string `json:"allowed"`
}

// decider is a as outbound decisions see them.
func decider(a Actor) outbound.Decider {
	return outbound.Decider{Name: a.Name, Address: strings.ToLower(a.Address), Admin: a.may(store.RoleAdmin)}
}

// viewHold returns h as a sees it, or ErrNotFound when a may not see it.
func (s *Service) viewHold(ctx context.Context, svc *outbound.Service, a Actor, h store.OutboundHold, cache map[string][]string) (HoldView, error) {
	v := HoldView{OutboundHold: h, Allowed: []string{}}
	key := h.Sender + "\x00" + h.Group
	as, ok := cache[key]
	if !ok {
		var err error
		if as, err = svc.Approvers(ctx, h); err != nil {
			return v, err
		}
		cache[key] = as
	}
	v.Approvers = as
	d := decider(a)
	if !d.Admin {
		self := d.Address != "" && strings.EqualFold(d.Address, h.Sender)
		approver := d.Address != "" && h.Kind == store.HoldApproval && containsFold(as, d.Address)
		if !self && !approver {
			return v, fmt.Errorf("outbound hold %s: %w", h.MessageID, store.ErrNotFound)
		}
	}
	if h.State == store.HoldPending {
		for _, dec := range []string{outbound.Approve, outbound.Reject, outbound.Cancel, outbound.SendNow} {
			if svc.May(ctx, h, dec, d) == nil {
				v.Allowed = append(v.Allowed, dec)
			}
		}
	}
	return v, nil
}

func containsFold(list []string, v string) bool {
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

// OutboundHolds lists held and delayed messages a may see: an
// administrator every one of the tenant, a user their own and those they
// approve. f.TenantID is a's tenant whatever it says.
func (s *Service) OutboundHolds(ctx context.Context, a Actor, f store.HoldFilter) ([]HoldView, error) {
	if err := a.require(store.RoleUser); err != nil {
		return nil, err
	}
	svc, err := s.outHolds()
	if err != nil {
		return nil, err
	}
	tid, err := a.tenant()
	if err != nil {
		return nil, err
	}
	f.TenantID = tid
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 200
	}
	var hs []store.OutboundHold
	if a.may(store.RoleAdmin) {
		if hs, err = s.Store.OutboundHolds(ctx, f); err != nil {
			return nil, err
		}
	} else {
		// A user's own holds, then the pending approvals they may see
		// among the tenant's (each list within the limit).
		own := f
		own.Sender = strings.ToLower(a.Address)
		if own.Sender == "" {
			return []HoldView{}, nil
		}
		if hs, err = s.Store.OutboundHolds(ctx, own); err != nil {
			return nil, err
		}
		if f.Sender == "" && (f.Kind == "" || f.Kind == store.HoldApproval) && (f.State == "" || f.State == store.HoldPending) {
			appr := f
			appr.Kind, appr.State = store.HoldApproval, store.HoldPending
			more, err := s.Store.OutboundHolds(ctx, appr)
			if err != nil {
				return nil, err
			}
			seen := map[string]bool{}
			for _, h := range hs {
				seen[h.MessageID] = true
			}
			for _, h := range more {
				if !seen[h.MessageID] {
					hs = append(hs, h)
				}
			}
			sort.SliceStable(hs, func(i, j int) bool { return hs[i].Created.After(hs[j].Created) })
		}
	}
	out := []HoldView{}
	cache := map[string][]string{}
	for _, h := range hs {
		v, err := s.viewHold(ctx, svc, a, h, cache)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// OutboundHold returns one held or delayed message a may see.
func (s *Service) OutboundHold(ctx context.Context, a Actor, id string) (HoldView, error) {
	if err := a.require(store.RoleUser); err != nil {
		return HoldView{}, err
	}
	svc, err := s.outHolds()
	if err != nil {
		return HoldView{}, err
	}
	tid, err := a.tenant()
	if err != nil {
		return HoldView{}, err
	}
	h, err := s.Store.OutboundHold(ctx, tid, id)
	if err != nil {
		return HoldView{}, err
	}
	return s.viewHold(ctx, svc, a, h, map[string][]string{})
}

// DecideOutboundHold approves, rejects, cancels or sends now a held or
// delayed message of a's tenant.
func (s *Service) DecideOutboundHold(ctx context.Context, a Actor, id, decision, note string) (store.OutboundHold, error) {
	v, err := s.OutboundHold(ctx, a, id)
	if err != nil {
		return store.OutboundHold{}, err
	}
	svc, _ := s.outHolds()
	note = strings.TrimSpace(note)
	if len(note) > 1000 {
		return v.OutboundHold, Invalidf("comment: at most 1000 bytes")
	}
	switch decision {
	case outbound.Approve, outbound.Reject, outbound.Cancel, outbound.SendNow:
	default:
		return v.OutboundHold, Invalidf("decision %q: approve, reject, cancel or send-now", decision)
	}
	h, err := svc.Decide(ctx, v.TenantID, id, decision, decider(a), note)
	switch {
	case errors.Is(err, outbound.ErrDecided):
		return h, Invalid{fmt.Sprintf("this message was already decided (%s)", h.State)}
	case errors.Is(err, outbound.ErrNotAllowed), errors.Is(err, outbound.ErrSelfApproval), errors.Is(err, outbound.ErrWrongKind):
		return h, forbiddenErr{err}
	case err != nil:
		return h, err
	}
	return h, s.Audit(ctx, a, v.TenantID, "outbound.hold."+decision, id, store.HoldPending, h.State)
}

// forbiddenErr is a refusal that says why (ErrForbidden to the callers'
// status mapping).
type forbiddenErr struct{ err error }

func (e forbiddenErr) Error() string   { return e.err.Error() }
func (e forbiddenErr) Unwrap() []error { return []error{ErrForbidden, e.err} }

func ruleTarget(r store.OutboundRule) string { return strconv.FormatInt(r.ID, 10) + " " + r.Name }

func ruleAudit(r store.OutboundRule) string {
	on := "off"
	if r.Enabled {
		on = "on"
	}
	scope := r.Scope
	if r.Owner != "" {
		scope += ":" + r.Owner
	}
	return fmt.Sprintf("%s %s %s", on, scope, r.Spec)
}
