package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// mlistTests are the mailing list cases, run by Run.
var mlistTests = []struct {
	name string
	fn   func(*testing.T, Opener)
}{
	{"MailingLists", testMailingLists},
	{"MailingListLimitConcurrent", testMailingListLimitConcurrent},
	{"ListMembers", testListMembers},
	{"ListLoopRefused", testListLoopRefused},
	{"ListLoopConcurrent", testListLoopConcurrent},
	{"ListSerials", testListSerials},
	{"ListSerialsConcurrent", testListSerialsConcurrent},
	{"ListTenantIsolation", testListTenantIsolation},
}

// listTenant makes a tenant serving domain.
func listTenant(t *testing.T, st store.Store, name, domain string) (store.Tenant, store.Domain) {
	t.Helper()
	ctx := context.Background()
	tn, err := st.CreateTenant(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.CreateDomain(ctx, tn.ID, domain)
	if err != nil {
		t.Fatal(err)
	}
	return tn, d
}

func newList(t *testing.T, st store.Store, d store.Domain, local string) store.MailingList {
	t.Helper()
	l, err := st.CreateMailingList(context.Background(), store.MailingList{TenantID: d.TenantID, DomainID: d.ID,
		Address: local + "@" + d.Name, Name: local, Posting: store.PostMembers, Created: t0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func addMembers(t *testing.T, st store.Store, l store.MailingList, addrs ...string) {
	t.Helper()
	var ms []store.ListMember
	for _, a := range addrs {
		ms = append(ms, store.ListMember{Address: a})
	}
	if _, err := st.AddListMembers(context.Background(), l.TenantID, l.ID, ms, false); err != nil {
		t.Fatalf("add %v to %s: %v", addrs, l.Address, err)
	}
}

func memberAddrs(t *testing.T, st store.Store, l store.MailingList) []string {
	t.Helper()
	ms, err := st.ListMembers(context.Background(), l.TenantID, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Address)
	}
	return out
}

func testMailingLists(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, d := listTenant(t, st, "acme", "example.test")
	l, err := st.CreateMailingList(ctx, store.MailingList{TenantID: tn.ID, DomainID: d.ID, Address: "sales@example.test", Name: "sales",
		Description: "営業部", Posting: store.PostDomain, SubjectSerial: true, Serial: 99, Admins: []string{"x@example.test"}, Created: t0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID == 0 || l.Serial != 0 || l.Admins != nil {
		t.Fatalf("created %+v: ID set, serial 0 and no admins wanted", l)
	}
	if _, err := st.CreateMailingList(ctx, store.MailingList{TenantID: tn.ID, DomainID: d.ID, Address: "sales@example.test", Name: "x", Posting: store.PostAnyone}, 0); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same address again: %v, want ErrExists", err)
	}
	if _, err := st.CreateMailingList(ctx, store.MailingList{TenantID: tn.ID, DomainID: d.ID + 1000, Address: "x@example.test", Name: "x", Posting: store.PostAnyone}, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown domain: %v, want ErrNotFound", err)
	}
	b := newList(t, st, d, "all")
	got, err := st.MailingList(ctx, tn.ID, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Address != "sales@example.test" || got.Description != "営業部" || got.Posting != store.PostDomain || !got.SubjectSerial ||
		got.ReplyToList || !got.Created.Equal(t0) || got.DomainID != d.ID {
		t.Fatalf("read back %+v", got)
	}
	l.Name, l.Description, l.Posting, l.SubjectSerial, l.ReplyToList = "営業", "", store.PostAnyone, false, true
	l.Address = "changed@example.test" // never changed
	if err := st.UpdateMailingList(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := st.SetListAdmins(ctx, tn.ID, l.ID, []string{"bob@example.test", "alice@example.test", "bob@example.test"}); err != nil {
		t.Fatal(err)
	}
	all, err := st.MailingLists(ctx, tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != b.ID || all[1].ID != l.ID {
		t.Fatalf("lists %+v, want all then sales", all)
	}
	s := all[1]
	if s.Address != "sales@example.test" || s.Name != "営業" || s.Posting != store.PostAnyone || s.SubjectSerial || !s.ReplyToList ||
		!slices.Equal(s.Admins, []string{"alice@example.test", "bob@example.test"}) || all[0].Admins != nil {
		t.Fatalf("after update %+v / %+v", s, all[0])
	}
	byAddr, err := st.MailingListsByAddress(ctx, []string{"nobody@example.test", "sales@example.test", "all@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(byAddr) != 2 || byAddr[0].ID != b.ID || byAddr[1].ID != l.ID || len(byAddr[1].Admins) != 2 {
		t.Fatalf("by address %+v", byAddr)
	}
	if none, err := st.MailingListsByAddress(ctx, nil); err != nil || len(none) != 0 {
		t.Fatalf("no addresses: %v %v", none, err)
	}
	// Many addresses at once (the queue asks for every recipient of a job).
	var many []string
	for i := range 1200 {
		many = append(many, fmt.Sprintf("m%d@example.test", i))
	}
	many = append(many, "sales@example.test")
	if got, err := st.MailingListsByAddress(ctx, many); err != nil || len(got) != 1 {
		t.Fatalf("1201 addresses: %d %v", len(got), err)
	}
	if err := st.SetListAdmins(ctx, tn.ID, l.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.MailingList(ctx, tn.ID, l.ID); got.Admins != nil {
		t.Fatalf("admins cleared: %v", got.Admins)
	}
	addMembers(t, st, l, "a@example.net")
	if _, err := st.NextListSerial(ctx, tn.ID, l.ID, "p1"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMailingList(ctx, tn.ID, l.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMailingList(ctx, tn.ID, l.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := st.MailingList(ctx, tn.ID, l.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted list: %v", err)
	}
	if ids, err := st.ListsWithMember(ctx, tn.ID, "a@example.net"); err != nil || len(ids) != 0 {
		t.Fatalf("members of a deleted list: %v %v", ids, err)
	}
	// The address is free again, and a new list starts its serials anew
	// under a new ID.
	l2 := newList(t, st, d, "sales")
	if l2.ID == l.ID {
		t.Fatal("list ID reused")
	}
	if n, err := st.NextListSerial(ctx, tn.ID, l2.ID, "p1"); err != nil || n != 1 {
		t.Fatalf("serial of the new list: %d %v", n, err)
	}
	if err := st.UpdateMailingList(ctx, store.MailingList{ID: l.ID, TenantID: tn.ID, Name: "x", Posting: store.PostAnyone}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update deleted: %v", err)
	}
	// A domain's lists go with it.
	if err := st.DeleteDomain(ctx, tn.ID, d.Name); err != nil {
		t.Fatal(err)
	}
	if ls, err := st.MailingLists(ctx, tn.ID); err != nil || len(ls) != 0 {
		t.Fatalf("lists after the domain was deleted: %v %v", ls, err)
	}
}

func testMailingListLimitConcurrent(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, d := listTenant(t, st, "acme", "example.test")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, limited int
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.CreateMailingList(ctx, store.MailingList{TenantID: tn.ID, DomainID: d.ID, Address: fmt.Sprintf("l%d@example.test", i),
				Name: "l", Posting: store.PostAnyone}, 5)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrListLimit):
				limited++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 5 || limited != 7 {
		t.Fatalf("created %d, refused %d; want 5 and 7", ok, limited)
	}
	ls, err := st.MailingLists(ctx, tn.ID)
	if err != nil || len(ls) != 5 {
		t.Fatalf("lists %d %v", len(ls), err)
	}
	// Another tenant's lists do not count.
	tn2, d2 := listTenant(t, st, "other", "other.test")
	if _, err := st.CreateMailingList(ctx, store.MailingList{TenantID: tn2.ID, DomainID: d2.ID, Address: "x@other.test", Name: "x", Posting: store.PostAnyone}, 5); err != nil {
		t.Fatal(err)
	}
}

func testListMembers(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, d := listTenant(t, st, "acme", "example.test")
	l := newList(t, st, d, "sales")
	other := newList(t, st, d, "all")
	n, err := st.AddListMembers(ctx, tn.ID, l.ID, []store.ListMember{
		{Address: "b@example.net", Comment: "Bob, Example Inc."},
		{Address: "a@example.test", Comment: "山田 太郎 (株式会社例)"},
		{Address: "c@example.net"},
	}, false)
	if err != nil || n != 3 {
		t.Fatalf("added %d %v", n, err)
	}
	addMembers(t, st, other, "a@example.test")
	// Again with one new and a changed comment; the bounce state stays.
	if err := st.SetListMemberBounces(ctx, tn.ID, l.ID, "b@example.net", 2, t0, true); err != nil {
		t.Fatal(err)
	}
	n, err = st.AddListMembers(ctx, tn.ID, l.ID, []store.ListMember{{Address: "b@example.net", Comment: "Bob"}, {Address: "d@example.net", Comment: "first"}, {Address: "d@example.net", Comment: "last"}}, false)
	if err != nil || n != 1 {
		t.Fatalf("added again %d %v, want 1", n, err)
	}
	ms, err := st.ListMembers(ctx, tn.ID, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 4 || ms[0].Address != "a@example.test" || ms[0].Comment != "山田 太郎 (株式会社例)" || ms[1].Comment != "Bob" ||
		ms[1].Bounces != 2 || !ms[1].LastBounce.Equal(t0) || !ms[1].Disabled || ms[3].Comment != "last" || ms[2].Disabled ||
		ms[0].ListID != l.ID || ms[0].TenantID != tn.ID || ms[0].Created.IsZero() {
		t.Fatalf("members %+v", ms)
	}
	if ids, err := st.ListsWithMember(ctx, tn.ID, "a@example.test"); err != nil || !slices.Equal(ids, []int64{l.ID, other.ID}) && !slices.Equal(ids, []int64{other.ID, l.ID}) {
		t.Fatalf("lists with a: %v %v", ids, err)
	}
	if ids, _ := st.ListsWithMember(ctx, tn.ID, "a@example.test"); !slices.IsSorted(ids) {
		t.Fatalf("not ascending: %v", ids)
	}
	if err := st.SetListMemberBounces(ctx, tn.ID, l.ID, "b@example.net", 0, time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if err := st.SetListMemberBounces(ctx, tn.ID, l.ID, "zz@example.net", 1, t0, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bounces of a non-member: %v", err)
	}
	if err := st.RemoveListMembers(ctx, tn.ID, l.ID, []string{"c@example.net", "zz@example.net"}); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveListMembers(ctx, tn.ID, l.ID, []string{"zz@example.net"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("remove a non-member: %v", err)
	}
	if got := memberAddrs(t, st, l); !slices.Equal(got, []string{"a@example.test", "b@example.net", "d@example.net"}) {
		t.Fatalf("after remove %v", got)
	}
	// Replace keeps the members given (and their bounce state) and drops the rest.
	if err := st.SetListMemberBounces(ctx, tn.ID, l.ID, "d@example.net", 1, t0, false); err != nil {
		t.Fatal(err)
	}
	n, err = st.AddListMembers(ctx, tn.ID, l.ID, []store.ListMember{{Address: "d@example.net"}, {Address: "e@example.net"}}, true)
	if err != nil || n != 1 {
		t.Fatalf("replace %d %v", n, err)
	}
	ms, _ = st.ListMembers(ctx, tn.ID, l.ID)
	if len(ms) != 2 || ms[0].Address != "d@example.net" || ms[0].Bounces != 1 || ms[1].Address != "e@example.net" {
		t.Fatalf("after replace %+v", ms)
	}
	if _, err := st.AddListMembers(ctx, tn.ID, l.ID, nil, true); err != nil {
		t.Fatal(err)
	}
	if got := memberAddrs(t, st, l); len(got) != 0 {
		t.Fatalf("replaced by none: %v", got)
	}
	if got := memberAddrs(t, st, other); !slices.Equal(got, []string{"a@example.test"}) {
		t.Fatalf("the other list changed: %v", got)
	}
	if _, err := st.AddListMembers(ctx, tn.ID, l.ID+1000, []store.ListMember{{Address: "x@example.net"}}, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("members of no list: %v", err)
	}
	// Thousands in one commit.
	var big []store.ListMember
	for i := range 3000 {
		big = append(big, store.ListMember{Address: fmt.Sprintf("m%04d@example.net", i), Comment: "member"})
	}
	if n, err := st.AddListMembers(ctx, tn.ID, l.ID, big, false); err != nil || n != 3000 {
		t.Fatalf("3000 members: %d %v", n, err)
	}
	if got := memberAddrs(t, st, l); len(got) != 3000 || got[0] != "m0000@example.net" {
		t.Fatalf("read %d", len(got))
	}
}

func testListLoopRefused(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, d := listTenant(t, st, "acme", "example.test")
	a, b, c := newList(t, st, d, "a"), newList(t, st, d, "b"), newList(t, st, d, "c")
	addMembers(t, st, a, "b@example.test", "x@example.net")
	addMembers(t, st, b, "c@example.test")
	addMembers(t, st, c, "y@example.net")
	// c contains a through three levels: a → b → c → a.
	_, err := st.AddListMembers(ctx, tn.ID, c.ID, []store.ListMember{{Address: "z@example.net"}, {Address: "a@example.test"}}, false)
	if !errors.Is(err, store.ErrListLoop) {
		t.Fatalf("loop through three levels: %v, want ErrListLoop", err)
	}
	for _, w := range []string{"a@example.test", "b@example.test", "c@example.test"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
	if got := memberAddrs(t, st, c); !slices.Equal(got, []string{"y@example.net"}) {
		t.Fatalf("refused change left %v", got)
	}
	// With replace too, and a list containing itself directly.
	if _, err := st.AddListMembers(ctx, tn.ID, c.ID, []store.ListMember{{Address: "a@example.test"}}, true); !errors.Is(err, store.ErrListLoop) {
		t.Fatalf("loop by replace: %v", err)
	}
	if _, err := st.AddListMembers(ctx, tn.ID, a.ID, []store.ListMember{{Address: "a@example.test"}}, false); !errors.Is(err, store.ErrListLoop) {
		t.Fatalf("list in itself: %v", err)
	}
	if got := memberAddrs(t, st, c); !slices.Equal(got, []string{"y@example.net"}) {
		t.Fatalf("refused replace left %v", got)
	}
	// Nesting without a loop is fine: a diamond, a → c directly too.
	addMembers(t, st, a, "c@example.test")
	// Another tenant's list of the same shape is an address like any other.
	_, d2 := listTenant(t, st, "other", "other.test")
	o := newList(t, st, d2, "o")
	addMembers(t, st, o, "a@example.test")
	if _, err := st.AddListMembers(ctx, tn.ID, c.ID, []store.ListMember{{Address: "o@other.test"}}, false); err != nil {
		t.Fatal(err)
	}
}

func testListLoopConcurrent(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, d := listTenant(t, st, "acme", "example.test")
	for round := range 5 {
		a, b := newList(t, st, d, fmt.Sprintf("a%d", round)), newList(t, st, d, fmt.Sprintf("b%d", round))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pair := range [][2]store.MailingList{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = st.AddListMembers(ctx, tn.ID, pair[0].ID, []store.ListMember{{Address: pair[1].Address}}, false)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if !errors.Is(err, store.ErrListLoop) {
				t.Fatal(err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of two opposite nestings succeeded (%v), want exactly one", round, ok, errs)
		}
	}
}

func testListSerials(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, d := listTenant(t, st, "acme", "example.test")
	l, m := newList(t, st, d, "sales"), newList(t, st, d, "support")
	for i, post := range []string{"p1", "p2", "p1", "p3", "p2"} {
		n, err := st.NextListSerial(ctx, tn.ID, l.ID, post)
		if err != nil {
			t.Fatal(err)
		}
		want := []int64{1, 2, 1, 3, 2}[i]
		if n != want {
			t.Fatalf("post %s: serial %d, want %d", post, n, want)
		}
	}
	if n, err := st.NextListSerial(ctx, tn.ID, m.ID, "p1"); err != nil || n != 1 {
		t.Fatalf("another list counts on its own: %d %v", n, err)
	}
	if got, _ := st.MailingList(ctx, tn.ID, l.ID); got.Serial != 3 {
		t.Fatalf("list serial %d, want 3", got.Serial)
	}
	// An update of the settings leaves the counter alone.
	l.Name = "sales2"
	l.Serial = 0
	if err := st.UpdateMailingList(ctx, l); err != nil {
		t.Fatal(err)
	}
	if n, err := st.NextListSerial(ctx, tn.ID, l.ID, "p4"); err != nil || n != 4 {
		t.Fatalf("after update: %d %v", n, err)
	}
	if _, err := st.NextListSerial(ctx, tn.ID+1000, l.ID, "p5"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's list: %v", err)
	}
}

func testListSerialsConcurrent(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, d := listTenant(t, st, "acme", "example.test")
	l := newList(t, st, d, "sales")
	const posts, tries = 20, 3
	got := make([][]int64, posts)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for p := range posts {
		for range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := st.NextListSerial(ctx, tn.ID, l.ID, fmt.Sprintf("post-%d", p))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[p] = append(got[p], n)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	seen := map[int64]int{}
	for p, ns := range got {
		for _, n := range ns[1:] {
			if n != ns[0] {
				t.Fatalf("post %d got %v: one post, several numbers", p, ns)
			}
		}
		if q, dup := seen[ns[0]]; dup {
			t.Fatalf("posts %d and %d share serial %d", q, p, ns[0])
		}
		seen[ns[0]] = p
	}
	for n := int64(1); n <= posts; n++ {
		if _, ok := seen[n]; !ok {
			t.Fatalf("serials %v: %d missing", seen, n)
		}
	}
}

func testListTenantIsolation(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, d := listTenant(t, st, "acme", "example.test")
	tn2, d2 := listTenant(t, st, "other", "other.test")
	l := newList(t, st, d, "sales")
	o := newList(t, st, d2, "secret")
	addMembers(t, st, o, "carol@other.test")
	// A list in another tenant's domain is refused.
	if _, err := st.CreateMailingList(ctx, store.MailingList{TenantID: tn.ID, DomainID: d2.ID, Address: "x@other.test", Name: "x", Posting: store.PostAnyone}, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("list in another tenant's domain: %v", err)
	}
	// Addresses are unique across tenants.
	if _, err := st.CreateMailingList(ctx, store.MailingList{TenantID: tn.ID, DomainID: d.ID, Address: "secret@other.test", Name: "x", Posting: store.PostAnyone}, 0); !errors.Is(err, store.ErrExists) {
		t.Fatalf("another tenant's list address: %v", err)
	}
	for name, err := range map[string]error{
		"get":    func() error { _, err := st.MailingList(ctx, tn.ID, o.ID); return err }(),
		"update": st.UpdateMailingList(ctx, store.MailingList{ID: o.ID, TenantID: tn.ID, Name: "x", Posting: store.PostAnyone}),
		"delete": st.DeleteMailingList(ctx, tn.ID, o.ID),
		"add": func() error {
			_, err := st.AddListMembers(ctx, tn.ID, o.ID, []store.ListMember{{Address: "x@example.net"}}, false)
			return err
		}(),
		"remove":  st.RemoveListMembers(ctx, tn.ID, o.ID, []string{"carol@other.test"}),
		"bounces": st.SetListMemberBounces(ctx, tn.ID, o.ID, "carol@other.test", 9, t0, true),
		"admins":  st.SetListAdmins(ctx, tn.ID, o.ID, []string{"x@example.test"}),
		"serial":  func() error { _, err := st.NextListSerial(ctx, tn.ID, o.ID, "p"); return err }(),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s on another tenant's list: %v, want ErrNotFound", name, err)
		}
	}
	if ms, err := st.ListMembers(ctx, tn.ID, o.ID); err != nil || len(ms) != 0 {
		t.Fatalf("members of another tenant's list: %v %v", ms, err)
	}
	if ids, err := st.ListsWithMember(ctx, tn.ID, "carol@other.test"); err != nil || len(ids) != 0 {
		t.Fatalf("another tenant's memberships: %v %v", ids, err)
	}
	ls, err := st.MailingLists(ctx, tn.ID)
	if err != nil || len(ls) != 1 || ls[0].ID != l.ID {
		t.Fatalf("acme's lists: %+v %v", ls, err)
	}
	got, err := st.MailingList(ctx, tn2.ID, o.ID)
	if err != nil || got.Name != "secret" || got.Serial != 0 || got.Admins != nil {
		t.Fatalf("other's list changed: %+v %v", got, err)
	}
	if got := memberAddrs(t, st, o); !slices.Equal(got, []string{"carol@other.test"}) {
		t.Fatalf("other's members changed: %v", got)
	}
	// Deleting a tenant takes its lists.
	if err := st.DeleteTenant(ctx, tn2.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := st.MailingListsByAddress(ctx, []string{"secret@other.test"}); err != nil || len(got) != 0 {
		t.Fatalf("lists of a deleted tenant: %v %v", got, err)
	}
}
