// Package mlist runs mailgate's mailing lists: an address in a served
// domain whose mail is copied to every member (store.MailingListStore
// holds the lists).
//
// A post is checked during the SMTP dialogue (CheckPost, called by smtpin
// at RCPT: a sender the list's posting policy refuses gets 550 there, never
// a bounce later). Once accepted, the message is queued to the list address
// like to any recipient, and the queue hands that recipient to Take instead
// of a route. Take expands the list (nested lists included, each once;
// members disabled by bounces left out), writes one copy with the list's
// headers (RFC 2369 List-Post, RFC 2919 List-Id, the optional serial number
// in the Subject and Reply-To), and returns it to the queue, which commits
// the copy, with a recipient per member, in the same transaction that
// records the list recipient as delivered. That transaction is fenced by the
// recipient's lease, so a list message is distributed exactly once, whatever
// crashes or nodes take over in between, and each member's copy then goes
// where that member's mail goes: the primary route of a served domain, the
// emergency mailboxes of a domain in emergency mode, or the internet.
//
// The copy's envelope sender is the list's bounce address, local-bounces@
// domain, and each member's recipient carries ORCPT (RFC 3461) with the
// member's address. Delivery status notifications to the bounce address,
// from mailgate's own queue or from the members' servers, come back through
// the same hook: a hard bounce (a failed action with a 5.x.x status) is
// counted for the member it names, and a member with BounceLimit bounces
// is disabled (see the bounce rule below).
package mlist

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/store"
)

// BounceSuffix ends the local part of every list's bounce address; list
// addresses may not end with it.
const BounceSuffix = "-bounces"

// The bounce rule: a member's hard bounces are counted at most once per
// BounceGap (a dead address answering every post of a busy day is one
// bounce, not twenty); the count starts again when the last counted bounce
// is older than BounceReset; at BounceLimit the member is disabled and gets
// no more copies until an administrator enables it again.
const (
	BounceLimit = 3
	BounceGap   = 24 * time.Hour
	BounceReset = 30 * 24 * time.Hour
)

// MaxDepth bounds the nesting followed while expanding a list. Saving a
// loop is refused (store.ErrListLoop); expansion follows each list once
// anyway, so a loop that got in is cut, and deeper nesting is left out
// with a warning.
const MaxDepth = 10

// Settings keys.
const (
	// KeyMaxLists (tenant) is how many lists the tenant may have; without
	// it, half its users (the plan's addresses), at least MinLists and at
	// most MaxLists.
	KeyMaxLists = "ml.max_lists"
	MinLists    = 10
	MaxLists    = 500
)

// Service is the mailing list engine used by smtpin (CheckPost), the
// queue (Take) and the administration layer. Safe for concurrent use; any
// number of nodes may share the store.
type Service struct {
	Store store.Store
	// Spool holds the queue's message bodies: posts are read from it and
	// the members' copies written to it.
	Spool blob.Store
	// Hostname names this node in tracking.
	Hostname string
	Clock    clock.Clock
	Log      *slog.Logger
	// DMARC, when set, returns the DMARC policy the domain of a post's
	// From publishes ("none", "quarantine", "reject" or ""). A post from a
	// domain asking for quarantine or reject goes out From the list
	// (mungeFrom): the list's copy breaks the author's DKIM signature
	// and comes from mailgate, so receivers would otherwise refuse it.
	DMARC func(ctx context.Context, domain string) (string, error)

	// addressing knows every list address at the store's addressing
	// version: most messages go to no list, and are told so without a
	// query of the lists.
	addressing store.AddressingCache
}

// listsByAddress is the store's MailingListsByAddress, asked only for
// those of addresses that are list addresses.
func (s *Service) listsByAddress(ctx context.Context, addresses []string) ([]store.MailingList, error) {
	ix, err := s.addressing.Get(ctx, s.Store)
	if err != nil {
		return nil, err
	}
	hits := ix.Lists(addresses)
	if len(hits) == 0 {
		return nil, nil
	}
	return s.Store.MailingListsByAddress(ctx, hits)
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

// BounceAddress is the envelope sender of a list's copies.
func BounceAddress(list string) string {
	at := strings.LastIndexByte(list, '@')
	if at < 0 {
		return list
	}
	return list[:at] + BounceSuffix + list[at:]
}

// bounceOf returns the list address a bounce address belongs to.
func bounceOf(a string) (string, bool) {
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return "", false
	}
	local, ok := strings.CutSuffix(a[:at], BounceSuffix)
	if !ok || local == "" {
		return "", false
	}
	return local + a[at:], true
}

// CheckAddress checks a new list's address and returns its lookup form:
// a valid address whose local part is plain ASCII (it becomes the List-Id)
// and does not end with BounceSuffix (reserved for bounce addresses).
func CheckAddress(address string) (string, error) {
	a, err := addr.Parse(strings.TrimSpace(address))
	if err != nil {
		return "", fmt.Errorf("list address %q: %v", address, err)
	}
	for _, c := range a.Local {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_+=", c)) {
			return "", fmt.Errorf("list address %q: the part before @ may have letters, digits and . - _ + = only", address)
		}
	}
	if strings.HasSuffix(strings.ToLower(a.Local), BounceSuffix) {
		return "", fmt.Errorf("list address %q: names ending in %q are kept for bounce addresses", address, BounceSuffix)
	}
	return a.Key(), nil
}

// CheckName checks a list's short name (the Subject tag's).
func CheckName(name string) error {
	if name == "" || len([]rune(name)) > 40 || strings.ContainsAny(name, "[]:\r\n\t\x00") {
		return fmt.Errorf("list name: 1 to 40 characters, without [ ] : or line breaks")
	}
	return nil
}

// CheckPosting checks a posting policy.
func CheckPosting(p string) error {
	switch p {
	case store.PostMembers, store.PostDomain, store.PostAnyone:
		return nil
	}
	return fmt.Errorf("posting must be %s, %s or %s", store.PostMembers, store.PostDomain, store.PostAnyone)
}

// ReservedAddress reports whether address is a list's or a list's bounce
// address (so no user may have it), naming the list.
func ReservedAddress(ctx context.Context, st store.MailingListStore, address string) (string, bool, error) {
	cands := []string{address}
	if base, ok := bounceOf(address); ok {
		cands = append(cands, base)
	}
	ls, err := st.MailingListsByAddress(ctx, cands)
	if err != nil || len(ls) == 0 {
		return "", false, err
	}
	return ls[0].Address, true, nil
}

// MaxListsFor is the tenant's list limit: the KeyMaxLists setting, else
// half its users between MinLists and MaxLists.
func MaxListsFor(ctx context.Context, st store.Store, tenantID int64) (int, error) {
	ss, err := st.Settings(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	for _, x := range ss {
		if x.Scope == store.ScopeTenant && x.Key == KeyMaxLists {
			n, err := strconv.Atoi(strings.TrimSpace(x.Value))
			if err == nil && n >= 0 {
				return n, nil
			}
		}
	}
	us, err := st.Users(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	return min(max(len(us)/2, MinLists), MaxLists), nil
}

// listID is the RFC 2919 list-id of a list: its address with the @ made
// a dot (sales@example.com is sales.example.com).
func listID(address string) string { return strings.Replace(address, "@", ".", 1) }
