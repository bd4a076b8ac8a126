package mlist

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mailgate/mailgate/internal/store"
)

// Decision is CheckPost's answer about one recipient.
type Decision int

const (
	// NotList: the address is no list's; the caller checks it as usual.
	NotList Decision = iota
	// Allowed: a list (or a list's bounce address) that takes the message.
	Allowed
	// MembersOnly: the list takes posts from its members only.
	MembersOnly
	// DomainOnly: the list takes posts from the tenant's domains only.
	DomainOnly
	// NoNullSender: lists take no message from the null sender (bounces
	// and auto-replies would be copied to every member).
	NoNullSender
)

// Post is what CheckPost found.
type Post struct {
	Decision Decision
	TenantID int64  // the list's tenant (when not NotList)
	List     string // the list's address
	Bounce   bool   // the address is the list's bounce address
}

// CheckPost decides, at RCPT time, whether sender ("" for the null
// sender) may send to rcpt (lower-case local@domain) when rcpt is a list
// or a list's bounce address. Anyone may send to a bounce address. The
// posting policy is the list's: PostAnyone, PostDomain (the sender's
// domain is one of the list's tenant's) or PostMembers (the sender is a
// member of the list or of a list nested in it, or one of its
// administrators). A store failure is an error: the caller answers with a
// temporary failure.
func (s *Service) CheckPost(ctx context.Context, sender, rcpt string) (Post, error) {
	rcpt = strings.ToLower(rcpt)
	cands := []string{rcpt}
	base, isBounce := bounceOf(rcpt)
	if isBounce {
		cands = append(cands, base)
	}
	ls, err := s.listsByAddress(ctx, cands)
	if err != nil {
		return Post{}, fmt.Errorf("list lookup: %w", err)
	}
	var list *store.MailingList
	bounce := false
	for i := range ls {
		switch ls[i].Address {
		case rcpt:
			list = &ls[i]
		case base:
			if list == nil {
				list, bounce = &ls[i], true
			}
		}
	}
	if list == nil {
		return Post{Decision: NotList}, nil
	}
	p := Post{Decision: Allowed, TenantID: list.TenantID, List: list.Address, Bounce: bounce}
	if bounce {
		return p, nil
	}
	if sender == "" {
		p.Decision = NoNullSender
		return p, nil
	}
	sender = strings.ToLower(sender)
	switch list.Posting {
	case store.PostAnyone:
	case store.PostDomain:
		dom := sender[strings.LastIndexByte(sender, '@')+1:]
		d, err := s.Store.DomainByName(ctx, dom)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return Post{}, fmt.Errorf("sender domain: %w", err)
		}
		if err != nil || d.TenantID != list.TenantID {
			p.Decision = DomainOnly
		}
	default: // members (the safe reading of anything unknown)
		ok, err := s.mayPost(ctx, *list, sender)
		if err != nil {
			return Post{}, err
		}
		if !ok {
			p.Decision = MembersOnly
		}
	}
	return p, nil
}

// mayPost reports whether sender is an administrator of l or a member of
// l or of a list nested in it. It walks up from the lists sender is a
// direct member of, so a large list's members are never all read.
func (s *Service) mayPost(ctx context.Context, l store.MailingList, sender string) (bool, error) {
	if slices.Contains(l.Admins, sender) {
		return true, nil
	}
	direct, err := s.Store.ListsWithMember(ctx, l.TenantID, sender)
	if err != nil {
		return false, fmt.Errorf("list membership: %w", err)
	}
	if len(direct) == 0 {
		return false, nil
	}
	lists, err := s.Store.MailingLists(ctx, l.TenantID)
	if err != nil {
		return false, fmt.Errorf("lists: %w", err)
	}
	byID := make(map[int64]store.MailingList, len(lists))
	for _, x := range lists {
		byID[x.ID] = x
	}
	seen := map[int64]bool{}
	frontier := direct
	for depth := 0; depth <= MaxDepth && len(frontier) > 0; depth++ {
		var next []int64
		for _, id := range frontier {
			if id == l.ID {
				return true, nil
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			x, ok := byID[id]
			if !ok {
				continue
			}
			parents, err := s.Store.ListsWithMember(ctx, l.TenantID, x.Address)
			if err != nil {
				return false, fmt.Errorf("list membership: %w", err)
			}
			next = append(next, parents...)
		}
		frontier = next
	}
	return false, nil
}
