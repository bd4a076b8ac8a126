package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// testDirectory: a domain's recipient check defaults to none, keeps its
// setting apart from the synchronisation state, replaces its directory
// in one piece, records failed and held attempts without touching the
// directory, stays inside its tenant, and goes with its domain.
func testDirectory(t *testing.T, open Opener) {
	st := open(t)
	db, ok := st.(store.DirectoryStore)
	if !ok {
		t.Fatalf("%T does not keep directories", st)
	}
	ctx := context.Background()
	a, _ := st.CreateTenant(ctx, "a")
	b, _ := st.CreateTenant(ctx, "b")
	da, _ := st.CreateDomain(ctx, a.ID, "a.test")
	da2, _ := st.CreateDomain(ctx, a.ID, "a2.test")
	db1, _ := st.CreateDomain(ctx, b.ID, "b.test")

	c, err := db.RecipientCheck(ctx, a.ID, da.ID)
	if err != nil || c.Mode != store.RcptCheckNone || c.DomainID != da.ID || c.TenantID != a.ID {
		t.Fatalf("default: %+v %v", c, err)
	}
	if err := db.SetRecipientCheck(ctx, store.RecipientCheck{TenantID: b.ID, DomainID: da.ID, Mode: store.RcptCheckCallout}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's domain: %v", err)
	}
	if err := db.SetRecipientCheck(ctx, store.RecipientCheck{TenantID: a.ID, DomainID: da.ID, Mode: store.RcptCheckDirectory,
		Source: store.DirectoryGoogle, Admin: "admin@a.test"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetRecipientCheck(ctx, store.RecipientCheck{TenantID: a.ID, DomainID: da2.ID, Mode: store.RcptCheckCallout}); err != nil {
		t.Fatal(err)
	}
	at := time.UnixMicro(1_700_000_000_123_456).UTC()
	entries := []store.DirectoryEntry{
		{Address: "alice@a.test", Kind: store.DirUser, Name: "山田 アリス"},
		{Address: "al@a.test", Kind: store.DirAlias, Target: "alice@a.test"},
		{Address: "sales@a.test", Kind: store.DirGroup, Name: "Sales"},
		{Address: "alice@a.test", Kind: store.DirAlias, Target: "alice@a.test"}, // duplicate: kept once
	}
	if err := db.ReplaceDirectory(ctx, a.ID, da.ID, entries, at); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceDirectory(ctx, b.ID, da.ID, entries, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("replace in another tenant's domain: %v", err)
	}
	c, err = db.RecipientCheck(ctx, a.ID, da.ID)
	if err != nil || c.Mode != store.RcptCheckDirectory || c.Source != store.DirectoryGoogle || c.Admin != "admin@a.test" ||
		!c.Synced.Equal(at) || !c.Attempted.Equal(at) || c.Entries != 3 || c.Error != "" || c.Held {
		t.Fatalf("after sync: %+v %v", c, err)
	}
	got, err := db.Directory(ctx, a.ID, da.ID)
	if err != nil || len(got) != 3 || got[0] != (store.DirectoryEntry{Address: "al@a.test", Kind: store.DirAlias, Target: "alice@a.test"}) ||
		got[1] != entries[0] || got[2] != entries[2] {
		t.Fatalf("directory: %+v %v", got, err)
	}
	for _, c := range []struct {
		tenant int64
		addr   string
		want   bool
	}{{a.ID, "al@a.test", true}, {a.ID, "sales@a.test", true}, {a.ID, "bob@a.test", false}, {b.ID, "alice@a.test", false}} {
		if ok, err := db.DirectoryHas(ctx, c.tenant, c.addr); err != nil || ok != c.want {
			t.Errorf("DirectoryHas(%d, %s) = %v %v", c.tenant, c.addr, ok, err)
		}
	}
	// A failed or held attempt keeps the directory and the last sync.
	later := at.Add(time.Hour)
	if err := db.RecordDirectoryAttempt(ctx, a.ID, da.ID, later, "held: 0 addresses upstream", true); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordDirectoryAttempt(ctx, a.ID, da.ID, later, "held: 1 of 3 addresses upstream", true); err != nil {
		t.Fatal(err)
	}
	c, _ = db.RecipientCheck(ctx, a.ID, da.ID)
	if !c.Synced.Equal(at) || !c.Attempted.Equal(later) || c.Error != "held: 1 of 3 addresses upstream" || !c.Held || c.Entries != 3 {
		t.Fatalf("after a held attempt: %+v", c)
	}
	if ok, _ := db.DirectoryHas(ctx, a.ID, "alice@a.test"); !ok {
		t.Fatal("held attempt changed the directory")
	}
	// Changing the mode keeps the state; a new sync replaces everything.
	if err := db.SetRecipientCheck(ctx, store.RecipientCheck{TenantID: a.ID, DomainID: da.ID, Mode: store.RcptCheckDirectory, Source: store.DirectoryGraph}); err != nil {
		t.Fatal(err)
	}
	if c, _ = db.RecipientCheck(ctx, a.ID, da.ID); c.Source != store.DirectoryGraph || c.Admin != "" || c.Entries != 3 || !c.Held {
		t.Fatalf("after a mode change: %+v", c)
	}
	if err := db.ReplaceDirectory(ctx, a.ID, da.ID, []store.DirectoryEntry{{Address: "alicia@a.test", Kind: store.DirUser}}, later); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Directory(ctx, a.ID, da.ID); len(got) != 1 || got[0].Address != "alicia@a.test" {
		t.Fatalf("after a second sync: %+v", got)
	}
	if c, _ = db.RecipientCheck(ctx, a.ID, da.ID); c.Entries != 1 || c.Held || c.Error != "" {
		t.Fatalf("state after a second sync: %+v", c)
	}
	cs, err := db.RecipientChecks(ctx, a.ID)
	if err != nil || len(cs) != 2 || cs[0].DomainID != da.ID || cs[1].DomainID != da2.ID || cs[1].Mode != store.RcptCheckCallout {
		t.Fatalf("checks of a: %+v %v", cs, err)
	}
	if cs, _ := db.RecipientChecks(ctx, b.ID); len(cs) != 0 {
		t.Fatalf("checks of b: %+v", cs)
	}
	if err := db.SetRecipientCheck(ctx, store.RecipientCheck{TenantID: b.ID, DomainID: db1.ID, Mode: store.RcptCheckNone}); err != nil {
		t.Fatal(err)
	}
	if cs, _ := db.RecipientChecks(ctx, b.ID); len(cs) != 0 {
		t.Fatalf("mode none listed: %+v", cs)
	}
	// The directory goes with its domain.
	if err := st.DeleteDomain(ctx, a.ID, "a.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := db.DirectoryHas(ctx, a.ID, "alicia@a.test"); ok {
		t.Fatal("directory outlived its domain")
	}
	if cs, _ := db.RecipientChecks(ctx, a.ID); len(cs) != 1 {
		t.Fatalf("setting outlived its domain: %+v", cs)
	}
}
