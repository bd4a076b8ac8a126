package admin

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/addr"
	"github.com/mailgate/mailgate/internal/csvsafe"
	"github.com/mailgate/mailgate/internal/mlist"
	"github.com/mailgate/mailgate/internal/store"
)

// Mailing lists. Tenant administrators (and operators) create, change and
// delete a tenant's lists and name each list's administrators: end users
// of the tenant who then manage that list's members and settings, and no
// other list, without being tenant administrators.

// MaxListMembers bounds a list's members (and one import).
const MaxListMembers = 100000

// ListSettings are a list's changeable settings.
type ListSettings struct {
	// Name is the Subject tag's name; "" keeps the current one (or, for a
	// new list, takes the part of the address before @).
	Name        string
	Description string
	// Posting is store.PostMembers, PostDomain or PostAnyone; "" keeps
	// the current one (members for a new list).
	Posting       string
	SubjectSerial bool
	ReplyToList   bool
}

// ListMaker reports whether a may create, delete and staff lists (a tenant
// administrator or an operator), as opposed to managing the ones it
// administers.
func (a Actor) ListMaker() bool { return a.may(store.RoleAdmin) }

// mailingList finds list id of a's tenant that a may act on: any list for
// administrators, only those it administers for an end user (and none
// when need is RoleAdmin).
func (s *Service) mailingList(ctx context.Context, a Actor, id int64, need store.Role) (store.MailingList, error) {
	if !a.may(store.RoleUser) {
		return store.MailingList{}, ErrForbidden
	}
	tid, err := a.tenant()
	if err != nil {
		return store.MailingList{}, err
	}
	l, err := s.Store.MailingList(ctx, tid, id)
	if err != nil {
		return l, err
	}
	if a.may(store.RoleAdmin) {
		return l, nil
	}
	if need == store.RoleUser && a.Address != "" && slices.Contains(l.Admins, strings.ToLower(a.Address)) {
		return l, nil
	}
	return store.MailingList{}, ErrForbidden
}

// MailingLists returns the lists a may see: all of the tenant's for
// administrators, the ones it administers for an end user.
func (s *Service) MailingLists(ctx context.Context, a Actor) ([]store.MailingList, error) {
	if !a.may(store.RoleUser) {
		return nil, ErrForbidden
	}
	tid, err := a.tenant()
	if err != nil {
		return nil, err
	}
	ls, err := s.Store.MailingLists(ctx, tid)
	if err != nil || a.may(store.RoleAdmin) {
		return ls, err
	}
	var out []store.MailingList
	for _, l := range ls {
		if a.Address != "" && slices.Contains(l.Admins, strings.ToLower(a.Address)) {
			out = append(out, l)
		}
	}
	return out, nil
}

// MailingList returns one list a may manage.
func (s *Service) MailingList(ctx context.Context, a Actor, id int64) (store.MailingList, error) {
	return s.mailingList(ctx, a, id, store.RoleUser)
}

// MaxMailingLists is the list limit of a's tenant.
func (s *Service) MaxMailingLists(ctx context.Context, a Actor) (int, error) {
	tid, err := a.tenant()
	if err != nil {
		return 0, err
	}
	return mlist.MaxListsFor(ctx, s.Store, tid)
}

func checkListSettings(set *ListSettings, cur store.MailingList) error {
	set.Name = strings.TrimSpace(set.Name)
	if set.Name == "" {
		set.Name = cur.Name
	}
	if err := mlist.CheckName(set.Name); err != nil {
		return Invalidf("%v", err)
	}
	set.Description = strings.TrimSpace(set.Description)
	if len([]rune(set.Description)) > 200 || strings.ContainsAny(set.Description, "\r\n\x00") {
		return Invalidf("description: at most 200 characters on one line")
	}
	if set.Posting == "" {
		set.Posting = cur.Posting
	}
	if err := mlist.CheckPosting(set.Posting); err != nil {
		return Invalidf("%v", err)
	}
	return nil
}

// CreateMailingList adds a list at address, a new address of one of the
// tenant's domains, within the tenant's list limit.
func (s *Service) CreateMailingList(ctx context.Context, a Actor, address string, set ListSettings) (store.MailingList, error) {
	if err := a.require(store.RoleAdmin); err != nil {
		return store.MailingList{}, err
	}
	key, err := mlist.CheckAddress(address)
	if err != nil {
		return store.MailingList{}, Invalidf("%v", err)
	}
	tid, _, err := s.ownAddress(ctx, a, key)
	if err != nil {
		return store.MailingList{}, err
	}
	a = a.In(tid)
	local, domain, _ := strings.Cut(key, "@")
	d, err := s.servedDomain(ctx, a, domain)
	if err != nil {
		return store.MailingList{}, err
	}
	if err := checkListSettings(&set, store.MailingList{Name: local, Posting: store.PostMembers}); err != nil {
		return store.MailingList{}, err
	}
	for _, x := range []string{key, mlist.BounceAddress(key)} {
		if ok, err := s.Store.UserExists(ctx, tid, x); err != nil {
			return store.MailingList{}, err
		} else if ok {
			return store.MailingList{}, Invalidf("%s is a user's address", x)
		}
	}
	max, err := mlist.MaxListsFor(ctx, s.Store, tid)
	if err != nil {
		return store.MailingList{}, err
	}
	if max == 0 {
		return store.MailingList{}, Invalidf("this tenant may have no mailing lists (%s)", mlist.KeyMaxLists)
	}
	l, err := s.Store.CreateMailingList(ctx, store.MailingList{TenantID: tid, DomainID: d.ID, Address: key, Name: set.Name,
		Description: set.Description, Posting: set.Posting, SubjectSerial: set.SubjectSerial, ReplyToList: set.ReplyToList, Created: s.now().Now()}, max)
	if errors.Is(err, store.ErrListLimit) {
		return l, Invalidf("this tenant has its %d mailing lists already", max)
	}
	if err != nil {
		return l, err
	}
	return l, s.Audit(ctx, a, tid, "ml.create", key, "", listJSON(l))
}

func listJSON(l store.MailingList) string {
	return jsonString(map[string]any{"address": l.Address, "name": l.Name, "description": l.Description, "posting": l.Posting,
		"subject_serial": l.SubjectSerial, "reply_to_list": l.ReplyToList})
}

// UpdateMailingList changes a list's settings (its administrators may).
func (s *Service) UpdateMailingList(ctx context.Context, a Actor, id int64, set ListSettings) error {
	l, err := s.mailingList(ctx, a, id, store.RoleUser)
	if err != nil {
		return err
	}
	if err := checkListSettings(&set, l); err != nil {
		return err
	}
	before := listJSON(l)
	l.Name, l.Description, l.Posting, l.SubjectSerial, l.ReplyToList = set.Name, set.Description, set.Posting, set.SubjectSerial, set.ReplyToList
	if err := s.Store.UpdateMailingList(ctx, l); err != nil {
		return err
	}
	return s.Audit(ctx, a, l.TenantID, "ml.update", l.Address, before, listJSON(l))
}

// DeleteMailingList removes a list. A list nested in others is refused:
// it is taken out of them first, so nobody is left with a member address
// that goes nowhere.
func (s *Service) DeleteMailingList(ctx context.Context, a Actor, id int64) error {
	l, err := s.mailingList(ctx, a, id, store.RoleAdmin)
	if err != nil {
		return err
	}
	parents, err := s.Store.ListsWithMember(ctx, l.TenantID, l.Address)
	if err != nil {
		return err
	}
	if len(parents) > 0 {
		names, err := s.listNames(ctx, l.TenantID, parents)
		if err != nil {
			return err
		}
		return Invalidf("%s is a member of %s: remove it there first", l.Address, strings.Join(names, ", "))
	}
	if err := s.Store.DeleteMailingList(ctx, l.TenantID, l.ID); err != nil {
		return err
	}
	return s.Audit(ctx, a, l.TenantID, "ml.delete", l.Address, listJSON(l), "")
}

func (s *Service) listNames(ctx context.Context, tid int64, ids []int64) ([]string, error) {
	ls, err := s.Store.MailingLists(ctx, tid)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		if slices.Contains(ids, l.ID) {
			out = append(out, l.Address)
		}
	}
	return out, nil
}

// ListMembers returns a list's members.
func (s *Service) ListMembers(ctx context.Context, a Actor, id int64) ([]store.ListMember, error) {
	l, err := s.mailingList(ctx, a, id, store.RoleUser)
	if err != nil {
		return nil, err
	}
	return s.Store.ListMembers(ctx, l.TenantID, l.ID)
}

// memberAddress checks a member's address: any valid address, inside the
// tenant's domains or not, except a list's bounce address.
func (s *Service) memberAddress(ctx context.Context, address string) (string, error) {
	ad, err := addr.Parse(strings.TrimSpace(address))
	if err != nil {
		return "", Invalidf("address %q: %v", address, err)
	}
	key := ad.Key()
	if list, ok, err := mlist.ReservedAddress(ctx, s.Store, key); err != nil {
		return "", err
	} else if ok && list != key {
		return "", Invalidf("%s is the bounce address of the list %s", key, list)
	}
	return key, nil
}

func commentOK(c string) error {
	if len([]rune(c)) > 200 || strings.ContainsAny(c, "\r\n\x00") {
		return Invalidf("comment: at most 200 characters on one line")
	}
	return nil
}

// listErr turns a loop refused by the store into the caller's error.
func listErr(err error) error {
	if errors.Is(err, store.ErrListLoop) {
		return Invalidf("%v", err)
	}
	return err
}

// AddListMember adds a member with a comment (name, company), or changes
// the comment of a member. A list of the tenant as a member nests it; one
// that would make the list contain itself is refused.
func (s *Service) AddListMember(ctx context.Context, a Actor, id int64, address, comment string) error {
	l, err := s.mailingList(ctx, a, id, store.RoleUser)
	if err != nil {
		return err
	}
	key, err := s.memberAddress(ctx, address)
	if err != nil {
		return err
	}
	comment = strings.TrimSpace(comment)
	if err := commentOK(comment); err != nil {
		return err
	}
	ms, err := s.Store.ListMembers(ctx, l.TenantID, l.ID)
	if err != nil {
		return err
	}
	if len(ms) >= MaxListMembers && !slices.ContainsFunc(ms, func(m store.ListMember) bool { return m.Address == key }) {
		return Invalidf("a list has at most %d members", MaxListMembers)
	}
	if _, err := s.Store.AddListMembers(ctx, l.TenantID, l.ID, []store.ListMember{{Address: key, Comment: comment}}, false); err != nil {
		return listErr(err)
	}
	return s.Audit(ctx, a, l.TenantID, "ml.member.add", l.Address, "", jsonString(map[string]string{"address": key, "comment": comment}))
}

// RemoveListMembers removes members.
func (s *Service) RemoveListMembers(ctx context.Context, a Actor, id int64, addresses []string) error {
	l, err := s.mailingList(ctx, a, id, store.RoleUser)
	if err != nil {
		return err
	}
	var keys []string
	for _, x := range addresses {
		if ad, err := addr.Parse(strings.TrimSpace(x)); err == nil {
			keys = append(keys, ad.Key())
		} else {
			keys = append(keys, strings.ToLower(strings.TrimSpace(x)))
		}
	}
	if len(keys) == 0 {
		return Invalidf("choose the members to remove")
	}
	if err := s.Store.RemoveListMembers(ctx, l.TenantID, l.ID, keys); err != nil {
		return err
	}
	return s.Audit(ctx, a, l.TenantID, "ml.member.remove", l.Address, strings.Join(keys, ","), "")
}

// EnableListMember clears a member's bounces, so a member disabled by
// them gets copies again.
func (s *Service) EnableListMember(ctx context.Context, a Actor, id int64, address string) error {
	l, err := s.mailingList(ctx, a, id, store.RoleUser)
	if err != nil {
		return err
	}
	key := strings.ToLower(strings.TrimSpace(address))
	if err := s.Store.SetListMemberBounces(ctx, l.TenantID, l.ID, key, 0, time.Time{}, false); err != nil {
		return err
	}
	return s.Audit(ctx, a, l.TenantID, "ml.member.enable", l.Address, "", key)
}

// ImportListMembers reads CSV lines "address[,comment]" (a header line
// "address,..." and lines starting with # skipped, a UTF-8 byte order mark
// ignored, cells as ExportListMembers defused them read back) and adds
// them, or with replace makes them the list's members. The whole file is
// checked before any change, and the change is one commit. It returns how
// many members were new.
func (s *Service) ImportListMembers(ctx context.Context, a Actor, id int64, r io.Reader, replace bool) (int, error) {
	l, err := s.mailingList(ctx, a, id, store.RoleUser)
	if err != nil {
		return 0, err
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	var ms []store.ListMember
	seen := map[string]bool{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, Invalidf("CSV: %v", err)
		}
		line, _ := cr.FieldPos(0)
		first := undefuse(strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff")))
		if first == "" || (len(ms) == 0 && strings.EqualFold(first, "address")) {
			continue
		}
		key, err := s.memberAddress(ctx, first)
		if err != nil {
			return 0, Invalidf("CSV line %d: %v", line, err)
		}
		comment := ""
		if len(rec) > 1 {
			comment = undefuse(strings.TrimSpace(rec[1]))
		}
		if err := commentOK(comment); err != nil {
			return 0, Invalidf("CSV line %d: %v", line, err)
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		ms = append(ms, store.ListMember{Address: key, Comment: comment})
		if len(ms) > MaxListMembers {
			return 0, Invalidf("a list has at most %d members", MaxListMembers)
		}
	}
	if !replace {
		cur, err := s.Store.ListMembers(ctx, l.TenantID, l.ID)
		if err != nil {
			return 0, err
		}
		total := len(cur)
		for _, m := range ms {
			if !slices.ContainsFunc(cur, func(c store.ListMember) bool { return c.Address == m.Address }) {
				total++
			}
		}
		if total > MaxListMembers {
			return 0, Invalidf("a list has at most %d members", MaxListMembers)
		}
	}
	n, err := s.Store.AddListMembers(ctx, l.TenantID, l.ID, ms, replace)
	if err != nil {
		return 0, listErr(err)
	}
	how := "added"
	if replace {
		how = "replaced"
	}
	return n, s.Audit(ctx, a, l.TenantID, "ml.member.import", l.Address, "", fmt.Sprintf("%d rows %s, %d new", len(ms), how, n))
}

// undefuse reads back a cell csvsafe defused on export.
func undefuse(v string) string {
	if len(v) > 1 && v[0] == '\'' && strings.ContainsRune("=+-@", rune(v[1])) {
		return v[1:]
	}
	return v
}

// ExportListMembers writes a list's members as CSV (the format
// ImportListMembers reads, with the bounce state after the comment),
// every text cell defused against spreadsheet formulas (csvsafe).
func (s *Service) ExportListMembers(ctx context.Context, a Actor, id int64, w io.Writer) error {
	ms, err := s.ListMembers(ctx, a, id)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{"address", "comment", "bounces", "disabled"})
	for _, m := range ms {
		rec := csvsafe.Cells([]string{m.Address, m.Comment})
		cw.Write(append(rec, strconv.Itoa(m.Bounces), strconv.FormatBool(m.Disabled)))
	}
	cw.Flush()
	return cw.Error()
}

// SetListAdmins makes addresses (users of the tenant) the list's
// administrators, replacing the ones it had.
func (s *Service) SetListAdmins(ctx context.Context, a Actor, id int64, addresses []string) error {
	l, err := s.mailingList(ctx, a, id, store.RoleAdmin)
	if err != nil {
		return err
	}
	var keys []string
	for _, x := range addresses {
		if strings.TrimSpace(x) == "" {
			continue
		}
		_, key, err := s.ownAddress(ctx, a.In(l.TenantID), x)
		if err != nil {
			return err
		}
		if ok, err := s.Store.UserExists(ctx, l.TenantID, key); err != nil {
			return err
		} else if !ok {
			return Invalidf("%s is not a user of this tenant", key)
		}
		if !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	if err := s.Store.SetListAdmins(ctx, l.TenantID, l.ID, keys); err != nil {
		return err
	}
	return s.Audit(ctx, a, l.TenantID, "ml.admins", l.Address, strings.Join(l.Admins, ","), strings.Join(keys, ","))
}
