package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Mailing lists (internal/mlist): an address in a served domain whose mail
// mailgate copies to every member. Members are any addresses, inside or
// outside the tenant's domains; a member that is another list of the same
// tenant nests that list. Each list has its own administrators (end users
// of the tenant), a posting policy, an optional serial number in the
// Subject and a bounce count per member.

// ErrListLoop is returned (wrapped, with the path of lists) when a change
// would make a list contain itself, directly or through nested lists.
// Nothing was changed.
var ErrListLoop = errors.New("mailing list would contain itself")

// ErrListLimit is returned (wrapped) by CreateMailingList when the tenant
// already has as many lists as it may. Nothing was changed.
var ErrListLimit = errors.New("mailing list limit reached")

// Posting policies: who may send to a list.
const (
	PostMembers = "members" // members (of the list or of a list nested in it) and its administrators
	PostDomain  = "domain"  // senders in the tenant's domains
	PostAnyone  = "anyone"
)

// MailingList is one list.
type MailingList struct {
	ID       int64
	TenantID int64
	DomainID int64
	// Address is the list's address, lower-case local@domain. Unique
	// across tenants (like a user's address); never changed.
	Address string
	// Name is the short name shown in the Subject tag ("[name:00042]").
	Name        string
	Description string
	Posting     string // PostMembers, PostDomain or PostAnyone
	// SubjectSerial puts "[Name:NNNNN]" in front of each post's Subject.
	SubjectSerial bool
	// ReplyToList sets Reply-To to the list's address.
	ReplyToList bool
	// Serial is the last serial number given to a post (0: none yet).
	// NextListSerial raises it; it never goes down.
	Serial int64
	// Admins are the addresses (end users of the tenant) that administer
	// the list, sorted.
	Admins  []string
	Created time.Time
}

// ListMember is one member of a list.
type ListMember struct {
	ListID   int64
	TenantID int64
	Address  string // lower-case local@domain
	Comment  string // name, company: whatever tells the administrators who it is
	// Bounces counts hard bounces under the bounce rule (internal/mlist);
	// LastBounce is when the last one was counted. Disabled members get
	// no copies until an administrator enables them again.
	Bounces    int
	LastBounce time.Time
	Disabled   bool
	Created    time.Time
}

// MailingListStore keeps the mailing lists. Every method but
// MailingListsByAddress works inside one tenant.
type MailingListStore interface {
	// CreateMailingList adds a list (Serial and Admins are ignored).
	// ErrExists when the address is another list's; ErrListLimit when
	// max > 0 and the tenant has max lists already (counted in the same
	// transaction, so concurrent creations cannot pass it); ErrNotFound
	// when DomainID is not a domain of the tenant.
	CreateMailingList(ctx context.Context, l MailingList, max int) (MailingList, error)
	// UpdateMailingList changes a list's Name, Description, Posting,
	// SubjectSerial and ReplyToList (found by TenantID and ID).
	UpdateMailingList(ctx context.Context, l MailingList) error
	// DeleteMailingList removes a list with its members, administrators
	// and serial numbers.
	DeleteMailingList(ctx context.Context, tenantID, id int64) error
	MailingLists(ctx context.Context, tenantID int64) ([]MailingList, error) // by address
	MailingList(ctx context.Context, tenantID, id int64) (MailingList, error)
	// MailingListsByAddress returns the lists having any of the addresses
	// (lower-case), whatever their tenant: it finds the list, and so the
	// tenant, an address belongs to, as DomainByName does for a domain.
	MailingListsByAddress(ctx context.Context, addresses []string) ([]MailingList, error)

	// ListMembers returns a list's members, by address.
	ListMembers(ctx context.Context, tenantID, listID int64) ([]ListMember, error)
	// AddListMembers adds members in one commit (their Address and
	// Comment; an existing member gets the new comment and keeps its
	// bounce state) and returns how many were new. With replace, members
	// not given are removed. ErrListLoop (nothing changed) when a member
	// is a list of the tenant that contains this list, through any number
	// of nested lists, or the list itself: checked inside the commit, so
	// two concurrent changes cannot make a loop together.
	AddListMembers(ctx context.Context, tenantID, listID int64, members []ListMember, replace bool) (int, error)
	// RemoveListMembers removes members; ErrNotFound when none of them was one.
	RemoveListMembers(ctx context.Context, tenantID, listID int64, addresses []string) error
	// SetListMemberBounces records a member's bounce state; ErrNotFound
	// when the address is no member.
	SetListMemberBounces(ctx context.Context, tenantID, listID int64, address string, bounces int, last time.Time, disabled bool) error
	// ListsWithMember returns the IDs of the tenant's lists that have
	// address as a direct member, ascending.
	ListsWithMember(ctx context.Context, tenantID int64, address string) ([]int64, error)
	// SetListAdmins replaces a list's administrators.
	SetListAdmins(ctx context.Context, tenantID, listID int64, addresses []string) error
	// NextListSerial gives the post named post (a stable key of the
	// message being distributed) the list's next serial number, or the
	// number it was given before: asking again for the same post, after a
	// crash or on another node, returns the same number, and a number is
	// never given to two posts.
	NextListSerial(ctx context.Context, tenantID, listID int64, post string) (int64, error)
}

// ListEdges maps each list ID of a tenant to the IDs of the lists that are
// its direct members.
type ListEdges map[int64][]int64

// BuildListEdges makes the nesting graph from the tenant's lists and the
// member rows naming one of them (member address → the list containing it).
func BuildListEdges(lists []MailingList, members []ListMember) ListEdges {
	byAddr := make(map[string]int64, len(lists))
	for _, l := range lists {
		byAddr[l.Address] = l.ID
	}
	e := ListEdges{}
	for _, m := range members {
		if child, ok := byAddr[m.Address]; ok {
			e[m.ListID] = append(e[m.ListID], child)
		}
	}
	for k := range e {
		slices.Sort(e[k])
		e[k] = slices.Compact(e[k])
	}
	return e
}

// ListLoop checks that adding lists children to list parent makes no loop:
// none of them is parent or contains it through nested lists. The error
// wraps ErrListLoop and names the lists of the loop, by address.
func ListLoop(e ListEdges, names map[int64]string, parent int64, children []int64) error {
	for _, c := range children {
		if path := listPath(e, c, parent, map[int64]bool{}); path != nil {
			names := func(ids []int64) string {
				s := make([]string, 0, len(ids)+1)
				s = append(s, names[parent])
				for _, id := range ids {
					s = append(s, names[id])
				}
				return strings.Join(s, " → ")
			}
			return fmt.Errorf("%w: %s", ErrListLoop, names(path))
		}
	}
	return nil
}

// listPath returns the lists from `from` down to `to` (both included) when
// `to` is reachable, nil otherwise.
func listPath(e ListEdges, from, to int64, seen map[int64]bool) []int64 {
	if from == to {
		return []int64{to}
	}
	if seen[from] {
		return nil
	}
	seen[from] = true
	for _, c := range e[from] {
		if p := listPath(e, c, to, seen); p != nil {
			return append([]int64{from}, p...)
		}
	}
	return nil
}
