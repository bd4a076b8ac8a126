package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

func testAccountsAndSessions(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	a, err := st.CreateAccount(ctx, store.Account{TenantID: 1, Login: "Alice@X.test", Role: store.RoleAdmin, Hash: "h1"})
	if err != nil || a.ID == 0 || a.Login != "alice@x.test" {
		t.Fatalf("create: %+v %v", a, err)
	}
	if _, err := st.CreateAccount(ctx, store.Account{TenantID: 2, Login: "ALICE@x.test", Role: store.RoleUser}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("login reused across tenants: %v", err)
	}
	got, err := st.AccountByLogin(ctx, "alice@X.TEST")
	if err != nil || got.ID != a.ID || got.Role != store.RoleAdmin || got.Hash != "h1" {
		t.Fatalf("by login: %+v %v", got, err)
	}
	// An update with the wrong tenant changes nothing.
	a.Hash, a.Disabled, a.PasswordChanged = "h2", true, time.Unix(1_800_000_000, 0).UTC()
	wrong := a
	wrong.TenantID = 2
	if err := st.UpdateAccount(ctx, wrong); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant update: %v", err)
	}
	if err := st.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, _ = st.Account(ctx, a.ID)
	if got.Hash != "h2" || !got.Disabled || !got.PasswordChanged.Equal(a.PasswordChanged) {
		t.Fatalf("update not written: %+v", got)
	}
	if l, _ := st.Accounts(ctx, 2); len(l) != 0 {
		t.Fatalf("tenant 2 sees %+v", l)
	}
	// The mail app password: written by SetAppPassword only, kept by
	// UpdateAccount, removed with "".
	made := time.Unix(1_800_000_100, 0).UTC()
	if err := st.SetAppPassword(ctx, 2, a.ID, "app1", made); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant app password: %v", err)
	}
	if err := st.SetAppPassword(ctx, 1, a.ID, "app1", made); err != nil {
		t.Fatal(err)
	}
	if got, _ = st.AccountByLogin(ctx, "alice@x.test"); got.AppHash != "app1" || !got.AppCreated.Equal(made) || got.Hash != "h2" {
		t.Fatalf("app password: %+v", got)
	}
	a.Lang = "ja"
	if err := st.UpdateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ = st.Account(ctx, a.ID); got.AppHash != "app1" || got.Lang != "ja" {
		t.Fatalf("app password after an update: %+v", got)
	}
	if err := st.SetAppPassword(ctx, 1, a.ID, "", made); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.Accounts(ctx, 1); len(l) != 1 || l[0].AppHash != "" || !l[0].AppCreated.IsZero() {
		t.Fatalf("app password removed: %+v", l)
	}

	now := time.Unix(1_800_000_000, 0).UTC()
	for i, exp := range []time.Duration{time.Hour, -time.Hour, 2 * time.Hour} {
		if err := st.CreateSession(ctx, store.WebSession{ID: fmt.Sprintf("s%d", i), AccountID: a.ID, TenantID: 1, CSRF: "c",
			Created: now, LastSeen: now, Expires: now.Add(exp)}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := st.Session(ctx, "s0")
	if err != nil || s.AccountID != a.ID || s.MFADone {
		t.Fatalf("session: %+v %v", s, err)
	}
	s.MFADone, s.CSRF, s.Expires = true, "c2", now.Add(3*time.Hour)
	if err := st.UpdateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if s2, _ := st.Session(ctx, "s0"); !s2.MFADone || s2.CSRF != "c2" || !s2.Expires.Equal(now.Add(3*time.Hour)) {
		t.Fatalf("session update: %+v", s2)
	}
	if n, err := st.PurgeSessions(ctx, now); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if n, err := st.DeleteSessions(ctx, a.ID); err != nil || n != 2 {
		t.Fatalf("delete sessions: %d %v", n, err)
	}
	st.CreateSession(ctx, store.WebSession{ID: "s9", AccountID: a.ID, TenantID: 1, Expires: now})
	if err := st.DeleteAccount(ctx, 2, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant delete: %v", err)
	}
	if err := st.DeleteAccount(ctx, 1, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Session(ctx, "s9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session outlived its account: %v", err)
	}
}

func testAPITokens(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	tok, err := st.CreateAPIToken(ctx, store.APIToken{TenantID: 1, Name: "ci", Hash: "abc", Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAPIToken(ctx, store.APIToken{TenantID: 2, Name: "x", Hash: "abc", Scope: "read"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate hash: %v", err)
	}
	if err := st.RevokeAPIToken(ctx, 2, tok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant revoke: %v", err)
	}
	t1, t0 := time.Unix(1_800_000_100, 0), time.Unix(1_800_000_000, 0)
	st.TouchAPIToken(ctx, tok.ID, t1)
	st.TouchAPIToken(ctx, tok.ID, t0) // late, out-of-order touch
	if err := st.RevokeAPIToken(ctx, 1, tok.ID); err != nil {
		t.Fatal(err)
	}
	got, err := st.APITokenByHash(ctx, "abc")
	if err != nil || !got.Revoked || !got.LastUsed.Equal(t1) || got.TenantID != 1 {
		t.Fatalf("token: %+v %v", got, err)
	}
	if l, _ := st.APITokens(ctx, 2); len(l) != 0 {
		t.Fatalf("tenant 2 sees %+v", l)
	}
}

func testAuditAppendOnly(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	base := time.Unix(1_800_000_000, 0)
	for i := range 10 {
		tid := int64(1 + i%2)
		if err := st.AddAudit(ctx, store.AuditEntry{TenantID: tid, At: base.Add(time.Duration(i) * time.Minute), Actor: fmt.Sprintf("u%d", i%3),
			Action: []string{"domain.add", "policy.set", "domain.delete"}[i%3], Target: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := st.AuditLog(ctx, store.AuditFilter{TenantID: 1, Action: "domain."})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range l {
		if e.TenantID != 1 || e.Action[:7] != "domain." || i > 0 && e.ID >= l[i-1].ID {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	// Paging by ID over the operator view returns each entry once.
	seen := map[int64]bool{}
	f := store.AuditFilter{All: true, Limit: 3}
	for {
		page, err := st.AuditLog(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if seen[e.ID] {
				t.Fatalf("entry %d twice", e.ID)
			}
			seen[e.ID] = true
		}
		f.BeforeID = page[len(page)-1].ID
	}
	if len(seen) != 10 {
		t.Fatalf("paged %d entries", len(seen))
	}
	// Not even direct SQL can rewrite the log.
	if err := raw(t, st).ExecSQL(ctx, `UPDATE audit_log SET actor = 'x'`); err == nil {
		t.Fatal("audit entry updated")
	}
	if err := raw(t, st).ExecSQL(ctx, `DELETE FROM audit_log`); err == nil {
		t.Fatal("audit entry deleted")
	}
	if l, _ := st.AuditLog(ctx, store.AuditFilter{All: true, Actor: "x"}); len(l) != 0 {
		t.Fatal("rewrite took effect")
	}
}

func testMarksAndSecrets(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	if at, err := st.Mark(ctx, 1, "digest:a@x.test"); err != nil || !at.IsZero() {
		t.Fatalf("unset mark: %v %v", at, err)
	}
	at := time.Unix(1_800_000_000, 123000).UTC()
	st.SetMark(ctx, 1, "digest:a@x.test", at)
	st.SetMark(ctx, 1, "digest:a@x.test", at.Add(time.Hour))
	if got, _ := st.Mark(ctx, 1, "digest:a@x.test"); !got.Equal(at.Add(time.Hour)) {
		t.Fatalf("mark %v", got)
	}
	if got, _ := st.Mark(ctx, 2, "digest:a@x.test"); !got.IsZero() {
		t.Fatal("mark leaked across tenants")
	}
	// Racing first uses all get the one stored value.
	var wg sync.WaitGroup
	vals := make([]string, 16)
	for i := range vals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := st.Secret(ctx, "link", func() ([]byte, error) { return []byte(fmt.Sprint("key", i)), nil })
			if err != nil {
				t.Error(err)
			}
			vals[i] = string(v)
		}()
	}
	wg.Wait()
	for _, v := range vals {
		if v != vals[0] || v == "" {
			t.Fatalf("secrets differ: %q", vals)
		}
	}
	if _, err := st.Secret(ctx, "other", func() ([]byte, error) { return nil, errors.New("no entropy") }); err == nil {
		t.Fatal("generator error ignored")
	}
}

func testSearchQuarantine(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	base := time.Unix(1_800_000_000, 0).UTC()
	var mine []store.QuarantineItem
	for i := range 30 {
		tid := int64(1 + i%3/2) // tenants 1 and 2
		it := store.QuarantineItem{ID: fmt.Sprintf("q%02d", i), TenantID: tid, Rcpt: fmt.Sprintf("u%d@%s", i%4, []string{"a.test", "b.test"}[i%2]),
			MessageID: "m", BlobKey: "b", MailFrom: fmt.Sprintf("s%d@spam.test", i%5), FromHdr: "Promo <x@y.test>",
			Subject: []string{"Cheap PILLS", "会議の件", "Invoice"}[i%3], Size: int64(100 * (i % 4)), Score: float64(i % 3),
			Reasons: "spam score", Created: base.Add(time.Duration(i%5) * time.Hour), Expires: base.Add(time.Duration(i) * time.Hour), State: store.QHeld}
		if err := st.AddQuarantine(ctx, it, store.Event{MessageID: "m", TenantID: tid, Kind: "quarantined", Rcpt: it.Rcpt}); err != nil {
			t.Fatal(err)
		}
		if tid == 1 {
			mine = append(mine, it)
		}
	}
	st.SetQuarantineState(ctx, 1, "q00", store.QHeld, store.QReleased, store.Event{MessageID: "m", TenantID: 1, Kind: "released", Rcpt: "u0@a.test"})
	for _, sort := range []string{"date", "score", "sender", "subject", "size", "rcpt"} {
		for _, asc := range []bool{false, true} {
			seen := map[string]bool{}
			var all []store.QuarantineItem
			for off := 0; ; off += 4 {
				page, total, err := st.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: 1, Sort: sort, Asc: asc, Limit: 4, Offset: off})
				if err != nil {
					t.Fatal(err)
				}
				if total != len(mine) {
					t.Fatalf("total %d, want %d", total, len(mine))
				}
				if len(page) == 0 {
					break
				}
				for _, it := range page {
					if it.TenantID != 1 || seen[it.ID] {
						t.Fatalf("sort %s: %s twice or foreign", sort, it.ID)
					}
					seen[it.ID] = true
				}
				all = append(all, page...)
			}
			if len(all) != len(mine) {
				t.Fatalf("sort %s asc %v: %d items paged", sort, asc, len(all))
			}
		}
	}
	// Filters.
	items, total, _ := st.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: 1, Domain: "b.test", Query: "pills", State: store.QHeld})
	want := 0
	for _, it := range mine {
		if it.Rcpt[len(it.Rcpt)-6:] == "b.test" && it.Subject == "Cheap PILLS" && it.ID != "q00" {
			want++
		}
	}
	if total != want || len(items) != want || want == 0 {
		t.Fatalf("filtered %d/%d, want %d", total, len(items), want)
	}
	nj := 0
	for _, it := range mine {
		if it.Subject == "会議の件" {
			nj++
		}
	}
	// Two characters are matched row by row, three or more through the
	// trigram index: both must agree.
	for _, q := range []string{"会議", "会議の件", "議の"} {
		if _, total, _ := st.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: 1, Query: q}); total != nj || nj == 0 {
			t.Fatalf("japanese query %q total %d, want %d", q, total, nj)
		}
	}
	// With every other filter too (the index's argument keeps its place).
	if _, total, _ := st.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: 1, Query: "会議の件", Reason: "spam", State: store.QHeld,
		From: base.Add(-time.Hour), To: base.Add(100 * time.Hour)}); total != nj {
		t.Fatalf("query with reason and dates: total %d, want %d", total, nj)
	}
	// The From header and the envelope sender are searched too.
	if _, total, _ := st.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: 1, Query: "PROMO"}); total != len(mine) {
		t.Fatalf("From header query total %d, want %d", total, len(mine))
	}
	if _, total, _ := st.SearchQuarantine(ctx, store.QuarantineFilter{TenantID: 1, Query: "s3@spam"}); total == 0 || total == len(mine) {
		t.Fatalf("sender query total %d", total)
	}
	// Usage counts held copies only.
	var size int64
	var n int
	for _, it := range mine {
		if it.Rcpt == "u0@a.test" && it.ID != "q00" {
			size += it.Size
			n++
		}
	}
	if gs, gn, err := st.QuarantineUsage(ctx, 1, "u0@a.test"); err != nil || gs != size || gn != n {
		t.Fatalf("usage %d/%d, want %d/%d (%v)", gs, gn, size, n, err)
	}
	exp, _ := st.ExpiredQuarantine(ctx, base.Add(5*time.Hour+time.Second), 100)
	var ids []string
	for _, it := range exp {
		ids = append(ids, it.ID)
	}
	if fmt.Sprint(ids) != "[q01 q02 q03 q04 q05]" { // q00 was released
		t.Fatalf("expired %v", ids)
	}
	owners, _ := st.QuarantineRecipients(ctx, base.Add(3*time.Hour+time.Second))
	for _, o := range owners {
		found := false
		for i := range 30 {
			if i%5 == 4 && fmt.Sprintf("u%d@%s", i%4, []string{"a.test", "b.test"}[i%2]) == o.Rcpt && int64(1+i%3/2) == o.TenantID {
				found = true
			}
		}
		if !found {
			t.Fatalf("owner %+v has no copy after since", o)
		}
	}
	if len(owners) == 0 {
		t.Fatal("no owners")
	}
}

// Of many callers claiming the same mark at once exactly one wins, and a
// claim can be rolled back to unset and won again.
func testClaimMark(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	at := time.Unix(1_800_000_000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			won, err := st.ClaimMark(ctx, 1, "digest:a@b.test", time.Time{}, at)
			if err != nil {
				t.Error(err)
			}
			if won {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d winners", wins)
	}
	if got, _ := st.Mark(ctx, 1, "digest:a@b.test"); !got.Equal(at) {
		t.Fatalf("mark %v", got)
	}
	if won, _ := st.ClaimMark(ctx, 1, "digest:a@b.test", time.Time{}, at.Add(time.Hour)); won {
		t.Fatal("a stale claim won")
	}
	if won, _ := st.ClaimMark(ctx, 1, "digest:a@b.test", at, time.Time{}); !won {
		t.Fatal("roll back to unset failed")
	}
	last, _ := st.Mark(ctx, 1, "digest:a@b.test")
	if !last.IsZero() {
		t.Fatalf("rolled back mark reads %v", last)
	}
	if won, _ := st.ClaimMark(ctx, 1, "digest:a@b.test", last, at); !won {
		t.Fatal("claim after roll back failed")
	}
}

// Quarantine search terms are literal text: FTS5 syntax, LIKE wildcards
// and control characters find exactly the copies containing them, never
// fail, and a NUL byte (which SQLite would cut the term at) matches nothing.
func testSearchQuarantineLiteralTerms(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	subjects := []string{`Say "hi" * NEAR(x) OR y`, `50% off_sale`, "Invoice\tMarch", `{sender subject}: odd`, `back\slash 'q'`, "plain words", "請求書 NEAR(見積)"}
	for i, s := range subjects {
		it := store.QuarantineItem{ID: fmt.Sprintf("q%02d", i), TenantID: 1, Rcpt: "u@a.test", MessageID: "m", BlobKey: "b",
			MailFrom: "s@x.test", Subject: s, Created: time.Unix(int64(1_800_000_000+i), 0), Expires: time.Unix(1_900_000_000, 0), State: store.QHeld}
		if err := st.AddQuarantine(ctx, it, store.Event{MessageID: "m", TenantID: 1, Kind: "quarantined", Rcpt: it.Rcpt}); err != nil {
			t.Fatal(err)
		}
	}
	terms := append(append([]string(nil), hostileTerms...), `"hi" *`, `NEAR(x) OR`, `% off_`, "\tMarch", `: odd`, `\slash '`, `NEAR(見積)`)
	for _, term := range terms {
		want := 0
		if !strings.Contains(term, "\x00") {
			for _, s := range subjects {
				if containsFold(s, term) || containsFold("s@x.test", term) {
					want++
				}
			}
		}
		for _, f := range []store.QuarantineFilter{{TenantID: 1, Query: term}, {TenantID: 1, Query: term, Reason: "\x00"}} {
			items, total, err := st.SearchQuarantine(ctx, f)
			if err != nil {
				t.Fatalf("term %q: %v", term, err)
			}
			if f.Reason != "" {
				if total != 0 {
					t.Errorf("reason NUL with term %q matched %d", term, total)
				}
				continue
			}
			if total != want || len(items) != want {
				t.Errorf("term %q: %d/%d copies, want %d", term, total, len(items), want)
			}
		}
	}
}
