package mlist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/dsn"
	"github.com/mailgate/mailgate/internal/store"
)

// bounce reads a message sent to l's bounce address and counts the hard
// bounces it reports. Anything else sent there (an auto-reply, a report
// that is no DSN) is dropped: nobody reads the bounce address.
func (s *Service) bounce(ctx context.Context, m store.Message, l store.MailingList, body func() (io.ReadCloser, error)) delivery.Result {
	log := s.log().With("id", m.ID, "list", l.Address)
	rc, err := body()
	if err != nil {
		log.Error("reading a bounce", "err", err)
		return tempFail("reading the message")
	}
	p, err := dsn.Parse(rc)
	rc.Close()
	if err != nil {
		detail := "not a delivery status notification; dropped"
		if !errors.Is(err, dsn.ErrNotDSN) {
			detail = "unreadable delivery status notification; dropped"
		}
		log.Info("message to the bounce address ignored", "err", err)
		return delivery.Result{Code: 250, Enhanced: "2.0.0", Text: detail, Remote: Remote}
	}
	var hard []string
	for _, r := range p.Recipients {
		if r.Action != "failed" || !strings.HasPrefix(r.Status, "5.") {
			continue // delays, successes and temporary failures are no bounce
		}
		a := r.FinalRecipient
		// The copy's ORCPT is the member's address; a member's server
		// that forwarded it elsewhere reports the new one as final.
		if typ, v, ok := strings.Cut(r.OriginalRecipient, ";"); ok && strings.EqualFold(strings.TrimSpace(typ), "rfc822") {
			a = v
		}
		if a = strings.ToLower(strings.Trim(strings.TrimSpace(a), "<>")); a != "" {
			hard = append(hard, a)
		}
	}
	if len(hard) == 0 {
		return delivery.Result{Code: 250, Enhanced: "2.0.0", Text: "no hard bounce reported", Remote: Remote}
	}
	marked, err := s.RecordBounces(ctx, l, hard, s.now())
	if err != nil {
		log.Error("recording bounces", "err", err)
		return tempFail("recording the bounce")
	}
	return delivery.Result{Code: 250, Enhanced: "2.0.0", Remote: Remote,
		Text: fmt.Sprintf("bounce processed: %s", strings.Join(marked, ", "))}
}

// RecordBounces counts a hard bounce at `at` for each address that is a
// member of l or of a list nested in it, under the bounce rule, and
// returns what it did to each ("addr: 2 bounces", "addr: disabled",
// "addr: not a member").
func (s *Service) RecordBounces(ctx context.Context, l store.MailingList, addrs []string, at time.Time) ([]string, error) {
	lists, err := s.nested(ctx, l)
	if err != nil {
		return nil, err
	}
	inTree := make(map[int64]store.MailingList, len(lists))
	for _, x := range lists {
		inTree[x.ID] = x
	}
	members := map[int64]map[string]store.ListMember{} // read once per list
	var out []string
	for _, a := range addrs {
		ids, err := s.Store.ListsWithMember(ctx, l.TenantID, a)
		if err != nil {
			return nil, err
		}
		found := false
		for _, id := range ids {
			x, ok := inTree[id]
			if !ok {
				continue
			}
			if members[id] == nil {
				ms, err := s.Store.ListMembers(ctx, l.TenantID, id)
				if err != nil {
					return nil, err
				}
				members[id] = make(map[string]store.ListMember, len(ms))
				for _, m := range ms {
					members[id][m.Address] = m
				}
			}
			m, ok := members[id][a]
			if !ok {
				continue
			}
			found = true
			n, last, disabled, counted := BounceRule(m, at)
			if !counted {
				out = append(out, fmt.Sprintf("%s: within %s of the last bounce, not counted", a, BounceGap))
				continue
			}
			if err := s.Store.SetListMemberBounces(ctx, l.TenantID, id, a, n, last, disabled); err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			m.Bounces, m.LastBounce, m.Disabled = n, last, disabled
			members[id][a] = m
			what := fmt.Sprintf("%s: %d bounces", a, n)
			if disabled {
				what = fmt.Sprintf("%s: disabled after %d bounces", a, n)
				s.log().Info("list member disabled by bounces", "list", x.Address, "member", a, "bounces", n)
			}
			out = append(out, what)
		}
		if !found {
			out = append(out, a+": not a member")
		}
	}
	return out, nil
}

// BounceRule applies one hard bounce at `at` to member m: the new count,
// last-bounce time and disabled state, and whether it was counted at all.
func BounceRule(m store.ListMember, at time.Time) (n int, last time.Time, disabled, counted bool) {
	if !m.LastBounce.IsZero() && at.Sub(m.LastBounce) < BounceGap && at.Sub(m.LastBounce) >= 0 {
		return m.Bounces, m.LastBounce, m.Disabled, false
	}
	n = m.Bounces + 1
	if m.LastBounce.IsZero() || at.Sub(m.LastBounce) > BounceReset {
		n = 1
	}
	return n, at, m.Disabled || n >= BounceLimit, true
}

// nested returns l and the lists nested in it (each once).
func (s *Service) nested(ctx context.Context, l store.MailingList) ([]store.MailingList, error) {
	lists, err := s.Store.MailingLists(ctx, l.TenantID)
	if err != nil {
		return nil, err
	}
	byAddr := make(map[string]store.MailingList, len(lists))
	for _, x := range lists {
		byAddr[x.Address] = x
	}
	out := []store.MailingList{l}
	seen := map[int64]bool{l.ID: true}
	for i := 0; i < len(out) && i <= 1000; i++ {
		ms, err := s.Store.ListMembers(ctx, l.TenantID, out[i].ID)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if sub, ok := byAddr[m.Address]; ok && !seen[sub.ID] {
				seen[sub.ID] = true
				out = append(out, sub)
			}
		}
	}
	return out, nil
}
