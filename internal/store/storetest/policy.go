package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// testPolicy: settings, groups, allow/deny lists and their version,
// display names and the sender history.
func testPolicy(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tn, _ := st.CreateTenant(ctx, "acme")
	other, _ := st.CreateTenant(ctx, "other")
	tid := tn.ID
	for _, s := range []store.Setting{
		{TenantID: tid, Scope: store.ScopeTenant, Key: "spam.action", Value: "tag"},
		{TenantID: tid, Scope: store.ScopeDomain, Owner: "b.test", Key: "spam.action", Value: "quarantine"},
		{TenantID: tid, Scope: store.ScopeDomain, Owner: "a.test", Key: "spam.action", Value: "reject"},
		{TenantID: tid, Scope: store.ScopeDomain, Owner: "a.test", Key: "av.action", Value: "reject"},
		{TenantID: tid, Scope: store.ScopeTenant, Key: "spam.action", Value: "quarantine"}, // replaces
		{TenantID: other.ID, Scope: store.ScopeTenant, Key: "spam.action", Value: "reject"},
	} {
		if err := st.SetSetting(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	ss, err := st.Settings(ctx, tid)
	if err != nil || names(ss, func(s store.Setting) string { return s.Scope + "/" + s.Owner + "/" + s.Key + "=" + s.Value }) !=
		"[domain/a.test/av.action=reject domain/a.test/spam.action=reject domain/b.test/spam.action=quarantine tenant//spam.action=quarantine]" {
		t.Fatalf("settings %v %v", ss, err)
	}
	if err := st.DeleteSetting(ctx, store.Setting{TenantID: tid, Scope: store.ScopeDomain, Owner: "b.test", Key: "spam.action"}); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteSetting(ctx, store.Setting{TenantID: tid, Scope: store.ScopeDomain, Owner: "b.test", Key: "spam.action"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if ss, _ := st.Settings(ctx, tid); len(ss) != 3 {
		t.Fatalf("after delete %v", ss)
	}

	for _, g := range []string{"sales", "board"} {
		if g, err := st.CreateGroup(ctx, tid, g); err != nil || g.ID == 0 || g.TenantID != tid {
			t.Fatalf("create group: %+v %v", g, err)
		}
	}
	if _, err := st.CreateGroup(ctx, tid, "sales"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate group: %v", err)
	}
	if _, err := st.CreateGroup(ctx, other.ID, "sales"); err != nil {
		t.Fatalf("same name in another tenant: %v", err)
	}
	for _, a := range []string{"zed@a.test", "amy@a.test", "amy@a.test"} { // a repeat is no error
		if err := st.AddGroupMember(ctx, tid, "sales", a); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddGroupMember(ctx, tid, "nobody", "amy@a.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("member of unknown group: %v", err)
	}
	if err := st.AddGroupMember(ctx, other.ID, "board", "amy@a.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("member of another tenant's group: %v", err)
	}
	gs, _ := st.Groups(ctx, tid)
	if names(gs, func(g store.Group) string { return fmt.Sprint(g.Name, g.Members) }) != "[board[] sales[amy@a.test zed@a.test]]" {
		t.Fatalf("groups %+v", gs)
	}
	if err := st.RemoveGroupMember(ctx, tid, "sales", "zed@a.test"); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveGroupMember(ctx, tid, "sales", "zed@a.test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("remove non-member: %v", err)
	}
	if err := st.DeleteGroup(ctx, tid, "board"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteGroup(ctx, tid, "board"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second group delete: %v", err)
	}
	if gs, _ := st.Groups(ctx, tid); names(gs, func(g store.Group) string { return fmt.Sprint(g.Name, g.Members) }) != "[sales[amy@a.test]]" {
		t.Fatalf("groups after delete %+v", gs)
	}

	if v, err := st.ListsVersion(ctx, tid); err != nil || v != 0 {
		t.Fatalf("fresh lists version %d %v", v, err)
	}
	e1, err := st.AddListEntry(ctx, store.ListEntry{TenantID: tid, Scope: store.ScopeTenant, Kind: "deny", Field: "from", Mode: "exact",
		Value: "spam@x.test", Action: "reject", Comment: "c"})
	if err != nil || e1.ID == 0 {
		t.Fatalf("add entry %+v %v", e1, err)
	}
	e2, _ := st.AddListEntry(ctx, store.ListEntry{TenantID: tid, Scope: store.ScopeDomain, Owner: "a.test", Kind: "allow", Field: "from", Mode: "domain", Value: "y.test"})
	v2, _ := st.ListsVersion(ctx, tid)
	if err := st.DeleteListEntry(ctx, other.ID, e1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant entry delete: %v", err)
	}
	if v, _ := st.ListsVersion(ctx, tid); v != v2 || v2 == 0 {
		t.Fatalf("version %d after a failed delete, %d before", v, v2)
	}
	if err := st.DeleteListEntry(ctx, tid, e1.ID); err != nil {
		t.Fatal(err)
	}
	if v, _ := st.ListsVersion(ctx, tid); v <= v2 {
		t.Fatalf("version %d after delete, %d before", v, v2)
	}
	es, _ := st.ListEntries(ctx, tid)
	if len(es) != 1 || es[0] != e2 {
		t.Fatalf("entries %+v, want %+v", es, e2)
	}
	if v, _ := st.ListsVersion(ctx, other.ID); v != 0 {
		t.Fatalf("other tenant's version %d", v)
	}

	for _, u := range []string{"b@a.test", "a@a.test", "c@a.test"} {
		st.CreateUser(ctx, tid, u)
	}
	st.SetDisplayName(ctx, tid, "b@a.test", "山田 太郎")
	st.SetDisplayName(ctx, tid, "a@a.test", "Alice")
	if err := st.SetDisplayName(ctx, other.ID, "c@a.test", "X"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("display name of another tenant's user: %v", err)
	}
	ps, _ := st.People(ctx, tid)
	if fmt.Sprint(ps) != "[{a@a.test Alice} {b@a.test 山田 太郎}]" {
		t.Fatalf("people %v", ps)
	}

	at := time.Unix(1_800_000_000, 0)
	if seen, err := st.SeenSender(ctx, tid, "s@x.test"); err != nil || seen {
		t.Fatalf("unseen sender: %v %v", seen, err)
	}
	for range 2 {
		if err := st.RecordSender(ctx, tid, "s@x.test", at); err != nil {
			t.Fatal(err)
		}
	}
	if seen, _ := st.SeenSender(ctx, tid, "s@x.test"); !seen {
		t.Fatal("recorded sender unseen")
	}
	if seen, _ := st.SeenSender(ctx, other.ID, "s@x.test"); seen {
		t.Fatal("sender history leaked across tenants")
	}
}

// testQuarantineItems: listing, lookup and state changes of quarantined
// copies; two concurrent releases of one copy, one winner.
func testQuarantineItems(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	base := time.Unix(1_600_000_000, 0).UTC() // in the past: a state change is stamped now, after it
	for i := range 6 {
		it := store.QuarantineItem{ID: fmt.Sprintf("q%d", i), TenantID: int64(1 + i%2), Rcpt: []string{"a@x.test", "a@x.test", "b@x.test"}[i%3],
			MessageID: fmt.Sprintf("m%d", i), BlobKey: fmt.Sprintf("b%d", i), MailFrom: "s@y.test", FromHdr: "S <s@y.test>", Subject: "件名",
			Size: int64(100 + i), Score: 7.5, Reasons: "SPAM", Created: base.Add(time.Duration(i) * time.Minute), Expires: base.Add(time.Hour), State: store.QHeld}
		if err := st.AddQuarantine(ctx, it, store.Event{MessageID: it.MessageID, TenantID: it.TenantID, At: it.Created, Kind: "quarantined", Rcpt: it.Rcpt}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddQuarantine(ctx, store.QuarantineItem{ID: "q0", TenantID: 1, State: store.QHeld}, store.Event{MessageID: "m0", TenantID: 1, Kind: "quarantined"}); err == nil {
		t.Fatal("duplicate quarantine ID accepted")
	}
	list := func(tid int64, rcpt string, state store.QuarantineState, limit int) string {
		t.Helper()
		items, err := st.QuarantineItems(ctx, tid, rcpt, state, limit)
		if err != nil {
			t.Fatal(err)
		}
		return names(items, func(q store.QuarantineItem) string { return q.ID })
	}
	if got := list(1, "", "", 0); got != "[q4 q2 q0]" {
		t.Fatalf("tenant 1: %s", got)
	}
	if got := list(0, "a@x.test", store.QHeld, 0); got != "[q4 q3 q1 q0]" {
		t.Fatalf("operator, a@x.test: %s", got)
	}
	if got := list(0, "", "", 2); got != "[q5 q4]" {
		t.Fatalf("limit 2: %s", got)
	}
	it, err := st.QuarantineItem(ctx, 1, "q2")
	want := store.QuarantineItem{ID: "q2", TenantID: 1, Rcpt: "b@x.test", MessageID: "m2", BlobKey: "b2", MailFrom: "s@y.test", FromHdr: "S <s@y.test>",
		Subject: "件名", Size: 102, Score: 7.5, Reasons: "SPAM", Created: base.Add(2 * time.Minute), Expires: base.Add(time.Hour), State: store.QHeld,
		Updated: base.Add(2 * time.Minute)}
	if err != nil || it != want {
		t.Fatalf("item\n got %+v\nwant %+v (%v)", it, want, err)
	}
	if _, err := st.QuarantineItem(ctx, 2, "q2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's item: %v", err)
	}
	if _, err := st.QuarantineItem(ctx, 0, "q2"); err != nil {
		t.Fatalf("operator view: %v", err)
	}
	if ok, err := st.SetQuarantineState(ctx, 2, "q2", store.QHeld, store.QReleased, store.Event{MessageID: "m2", TenantID: 2, Kind: "released"}); err != nil || ok {
		t.Fatalf("cross-tenant release: %v %v", ok, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := st.SetQuarantineState(ctx, 1, "q2", store.QHeld, store.QReleased,
				store.Event{MessageID: "m2", TenantID: 1, At: base.Add(time.Hour), Kind: "released", Rcpt: "b@x.test", Detail: "quarantine q2"})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d releases won", wins)
	}
	it, _ = st.QuarantineItem(ctx, 1, "q2")
	if it.State != store.QReleased || !it.Updated.After(it.Created) {
		t.Fatalf("released item %+v", it)
	}
	evs, _ := st.Events(ctx, 1, "m2")
	if names(evs, func(e store.Event) string { return e.Kind }) != "[quarantined released]" {
		t.Fatalf("events %+v", evs)
	}
	if got := list(1, "", store.QHeld, 0); got != "[q4 q0]" {
		t.Fatalf("held after release: %s", got)
	}
}

// testSpamApplyConcurrent: training from several sessions at once adds
// up, whatever order each session writes its tokens in, and each change
// raises the version once.
func testSpamApplyConcurrent(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	toks := make([]string, 200)
	for i := range toks {
		toks[i] = fmt.Sprintf("tok%03d", i)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				d := map[string]store.TokenCount{}
				for _, tk := range toks {
					d[tk] = store.TokenCount{Spam: 1, Ham: int64(w % 2)}
				}
				fp := fmt.Sprintf("fp-%d-%d", w, i)
				if _, err := st.SpamApply(ctx, 1, store.SpamChange{Deltas: d, Total: store.TokenCount{Spam: 1, Ham: int64(w % 2)},
					Labels: map[string]string{fp: "spam"}, Expect: map[string]string{fp: ""}, At: t0}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c := map[string]store.TokenCount{}
	info, err := st.SpamLoad(ctx, 1, func(tok string, n store.TokenCount) { c[tok] = n }, nil)
	if err != nil || len(c) != len(toks) {
		t.Fatalf("%d counts, %v", len(c), err)
	}
	for tk, n := range c {
		if n != (store.TokenCount{Spam: 40, Ham: 20}) {
			t.Fatalf("%s: %+v", tk, n)
		}
	}
	if info.Totals != (store.TokenCount{Spam: 40, Ham: 20}) || info.Messages != 40 || info.Version != 40 {
		t.Fatalf("model %+v", info)
	}
	// Two sessions racing to train the same message: exactly one wins.
	var won, lost int
	var mu sync.Mutex
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.SpamApply(ctx, 1, store.SpamChange{Deltas: map[string]store.TokenCount{"race": {Spam: 1}}, Total: store.TokenCount{Spam: 1},
				Labels: map[string]string{"fp-race": "spam"}, Expect: map[string]string{"fp-race": ""}, At: t0})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrSpamConflict):
				lost++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != 3 {
		t.Fatalf("same message trained by 4 sessions: %d applied, %d refused", won, lost)
	}
}

// testTimePrecision: times are kept to the microsecond and read back in
// UTC; zero times stay zero.
func testTimePrecision(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 21, 9, 30, 15, 123456789, time.FixedZone("JST", 9*3600))
	us := at.Truncate(time.Microsecond).UTC()
	if _, err := st.Enqueue(ctx, store.Message{ID: "m", TenantID: 1, Direction: store.Inbound, BlobKey: "m", ReceivedAt: at},
		[]store.Recipient{{Addr: "a@x.test", NextAttempt: at}}, []store.Event{{MessageID: "m", TenantID: 1, At: at, Kind: "received"}}); err != nil {
		t.Fatal(err)
	}
	m, rs, _ := st.Message(ctx, 1, "m")
	evs, _ := st.Events(ctx, 1, "m")
	for what, got := range map[string]time.Time{"received": m.ReceivedAt, "next attempt": rs[0].NextAttempt, "event": evs[0].At} {
		if got != us {
			t.Errorf("%s: %v (%s), want %v", what, got, got.Location(), us)
		}
	}
	if !rs[0].LeaseUntil.IsZero() {
		t.Errorf("zero lease read back as %v", rs[0].LeaseUntil)
	}
	a, err := st.CreateAccount(ctx, store.Account{TenantID: 1, Login: "a@x.test", Role: store.RoleUser, Created: at})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := st.Account(ctx, a.ID)
	if got.Created != us || !got.PasswordChanged.IsZero() {
		t.Errorf("account times %v %v", got.Created, got.PasswordChanged)
	}
	if err := st.SetMark(ctx, 1, "k", at); err != nil {
		t.Fatal(err)
	}
	// A claim compares at the stored precision: the nanoseconds of the
	// time given to SetMark do not make Mark's value stale.
	old, _ := st.Mark(ctx, 1, "k")
	if old != us {
		t.Errorf("mark %v", old)
	}
	if won, err := st.ClaimMark(ctx, 1, "k", old, at.Add(time.Hour)); err != nil || !won {
		t.Errorf("claim with the value read: %v %v", won, err)
	}
}
