package quarantine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/signedlink"
	"github.com/mailgate/mailgate/internal/store"
)

func link(a signedlink.Action, it store.QuarantineItem) signedlink.Link {
	return signedlink.Link{Action: a, TenantID: it.TenantID, ItemID: it.ID, Rcpt: it.Rcpt, Expires: it.Expires}
}

func TestApplyLinkRelease(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	it := f.hold(t, 1, "alice@example.test", spamMsg, 0, 7)
	res, err := f.m.ApplyLink(ctx, link(signedlink.Release, it), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.QueueID == "" || res.AlreadyDone {
		t.Fatalf("result %+v", res)
	}
	if got := f.st.items[it.ID].State; got != store.QReleased {
		t.Fatalf("state %s", got)
	}
	msgs := f.q.all()
	if len(msgs) != 1 || msgs[0].rcpts[0] != "alice@example.test" || !strings.HasPrefix(msgs[0].body, "X-Mailgate-Released: "+it.ID+" by link:alice@example.test") ||
		!strings.HasSuffix(msgs[0].body, spamMsg) {
		t.Fatalf("released: %+v", msgs)
	}
	if len(f.st.audit) != 1 || f.st.audit[0].Actor != "link:alice@example.test" || f.st.audit[0].Action != "quarantine.release" || f.st.audit[0].Target != it.ID {
		t.Fatalf("audit %+v", f.st.audit)
	}
	if len(f.st.entries) != 0 {
		t.Fatalf("release added list entries %+v", f.st.entries)
	}
	// A second click does not release twice.
	res, err = f.m.ApplyLink(ctx, link(signedlink.Release, it), "")
	if err != nil || !res.AlreadyDone {
		t.Fatalf("second click: %+v, %v", res, err)
	}
	if n := len(f.q.all()); n != 1 {
		t.Fatalf("released %d times", n)
	}
}

func TestApplyLinkReleaseAllow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	it := f.hold(t, 1, "Alice@Example.test", spamMsg, 0, 7)
	res, err := f.m.ApplyLink(ctx, link(signedlink.ReleaseAllow, it), "")
	if err != nil {
		t.Fatal(err)
	}
	want := store.ListEntry{TenantID: 1, Scope: "address", Owner: "alice@example.test", Kind: "allow", Field: "from_addr", Mode: "exact", Value: "taro@sender.test"}
	if len(f.st.entries) != 1 {
		t.Fatalf("entries %+v", f.st.entries)
	}
	e := f.st.entries[0]
	if e.TenantID != want.TenantID || e.Scope != want.Scope || e.Owner != want.Owner || e.Kind != want.Kind || e.Field != want.Field || e.Mode != want.Mode || e.Value != want.Value {
		t.Fatalf("entry %+v, want %+v", e, want)
	}
	if res.Entry.ID != e.ID || f.st.items[it.ID].State != store.QReleased || len(f.q.all()) != 1 {
		t.Fatalf("result %+v, state %s", res, f.st.items[it.ID].State)
	}
	if a := f.st.audit; len(a) != 1 || a[0].Action != "quarantine.release-allow" || !strings.Contains(a[0].After, "taro@sender.test") {
		t.Fatalf("audit %+v", a)
	}
	// Another copy from the same sender: the entry is reused.
	it2 := f.hold(t, 1, "alice@example.test", spamMsg, 0, 7)
	if _, err := f.m.ApplyLink(ctx, link(signedlink.ReleaseAllow, it2), ""); err != nil {
		t.Fatal(err)
	}
	if len(f.st.entries) != 1 {
		t.Fatalf("duplicate entry: %+v", f.st.entries)
	}
}

func TestApplyLinkBlockSender(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// No From header: the envelope sender is blocked.
	it := f.hold(t, 1, "alice@example.test", "Subject: no from\r\n\r\nbody\r\n", 0, 7)
	if _, err := f.m.ApplyLink(ctx, link(signedlink.BlockSender, it), "console:alice"); err != nil {
		t.Fatal(err)
	}
	if len(f.st.entries) != 1 || f.st.entries[0].Kind != "deny" || f.st.entries[0].Field != "env_from" || f.st.entries[0].Value != "bounce@sender.test" || f.st.entries[0].Owner != "alice@example.test" {
		t.Fatalf("entries %+v", f.st.entries)
	}
	if f.st.items[it.ID].State != store.QDeleted {
		t.Fatalf("state %s", f.st.items[it.ID].State)
	}
	if _, err := f.blobs.Open(context.Background(), it.BlobKey); err == nil {
		t.Fatal("blocked copy's blob remains")
	}
	if len(f.q.all()) != 0 {
		t.Fatal("block released something")
	}
	if a := f.st.audit; len(a) != 1 || a[0].Actor != "console:alice" || a[0].Action != "quarantine.block-sender" {
		t.Fatalf("audit %+v", a)
	}
}

// A link acts only on its own item for its own recipient and tenant.
func TestApplyLinkRefusesOtherItems(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	it := f.hold(t, 1, "alice@example.test", spamMsg, 0, 7)
	l := link(signedlink.Release, it)
	l.Rcpt = "bob@example.test"
	if _, err := f.m.ApplyLink(ctx, l, ""); !errors.Is(err, ErrWrongItem) {
		t.Fatalf("other recipient: %v", err)
	}
	l = link(signedlink.Release, it)
	l.TenantID = 2
	if _, err := f.m.ApplyLink(ctx, l, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant: %v", err)
	}
	if _, err := f.m.ApplyLink(ctx, link(signedlink.Open, it), ""); !errors.Is(err, ErrNotAction) {
		t.Fatalf("open: %v", err)
	}
	if f.st.items[it.ID].State != store.QHeld || len(f.q.all()) != 0 || len(f.st.audit) != 0 {
		t.Fatal("a refused link changed something")
	}
}

func TestAllowAndBlockHelpers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	it := f.hold(t, 1, "alice@example.test", spamMsg, 0, 7)
	e, err := f.m.Allow(ctx, 1, it.ID, "admin@example.test")
	if err != nil || e.Kind != "allow" || e.Value != "taro@sender.test" {
		t.Fatalf("allow: %+v %v", e, err)
	}
	if f.st.items[it.ID].State != store.QHeld {
		t.Fatal("Allow changed the copy")
	}
	e, err = f.m.Block(ctx, 1, it.ID, "admin@example.test")
	if err != nil || e.Kind != "deny" || e.Value != "taro@sender.test" || f.st.items[it.ID].State != store.QDeleted {
		t.Fatalf("block: %+v %v %s", e, err, f.st.items[it.ID].State)
	}
	if len(f.st.audit) != 2 || f.st.audit[0].Action != "list.allow" || f.st.audit[1].Action != "list.deny" || f.st.audit[1].Actor != "admin@example.test" {
		t.Fatalf("audit %+v", f.st.audit)
	}
	// Null sender and no From: nothing to list.
	it = f.hold(t, 1, "alice@example.test", "Subject: x\r\n\r\n", 0, 7)
	f.st.items[it.ID].MailFrom = ""
	if _, err := f.m.Allow(ctx, 1, it.ID, "admin"); !errors.Is(err, ErrNoSender) {
		t.Fatalf("no sender: %v", err)
	}
}

// FuzzSender: any stored copy gives a sender address with an @ or none,
// without panicking, and reading stops at the header.
func FuzzSender(f *testing.F) {
	f.Add(spamMsg)
	f.Add("From: a@b, c@d\r\n\r\n")
	f.Add("From: \"=?ISO-2022-JP?B?GyRCOzNFRBsoQg==?=\" <x@y.test>\r\n\r\nFrom: z@z\r\n")
	f.Add("From:\r\n <folded@example.test>\r\n\r\n")
	f.Add("\r\n\r\n")
	// One fixture for every run: a spool directory a run made the target
	// too slow to fuzz.
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, raw string) {
		it := fx.hold(t, 1, "alice@example.test", raw, 0, 7)
		name, addr := fx.m.sender(context.Background(), it)
		if addr != "" && !strings.Contains(addr, "@") {
			t.Fatalf("address %q", addr)
		}
		if addr == "" && name != "" {
			t.Fatalf("name %q without address", name)
		}
	})
}

// A link whose copy is no longer held changes nothing: no list entry, no
// release, no audit entry. The copy may have gone by the console, the CLI,
// another link or retention; an old block-sender link is not a standing
// order either.
func TestApplyLinkOnGoneCopyChangesNothing(t *testing.T) {
	ctx := context.Background()
	gone := map[string]func(f *fixture, it store.QuarantineItem) error{
		"released": func(f *fixture, it store.QuarantineItem) error {
			_, err := f.m.Release(ctx, it.TenantID, it.ID, "admin@example.test")
			return err
		},
		"deleted": func(f *fixture, it store.QuarantineItem) error {
			return f.m.Delete(ctx, it.TenantID, it.ID, "admin@example.test")
		},
	}
	for how, remove := range gone {
		for _, a := range []signedlink.Action{signedlink.ReleaseAllow, signedlink.BlockSender, signedlink.Release} {
			t.Run(how+"/"+string(a), func(t *testing.T) {
				f := newFixture(t)
				it := f.hold(t, 1, "alice@example.test", spamMsg, 0, 7)
				if err := remove(f, it); err != nil {
					t.Fatal(err)
				}
				state, sent, audits := f.st.items[it.ID].State, len(f.q.all()), len(f.st.audit)
				res, err := f.m.ApplyLink(ctx, link(a, it), "")
				if err != nil || !res.AlreadyDone {
					t.Fatalf("result %+v, %v; want AlreadyDone", res, err)
				}
				if len(f.st.entries) != 0 {
					t.Errorf("a link for a %s copy added list entries %+v", how, f.st.entries)
				}
				if f.st.items[it.ID].State != state || len(f.q.all()) != sent || len(f.st.audit) != audits {
					t.Errorf("a link for a %s copy changed state %s→%s, sent %d→%d, audit %d→%d", how, state, f.st.items[it.ID].State,
						sent, len(f.q.all()), audits, len(f.st.audit))
				}
			})
		}
	}
}
