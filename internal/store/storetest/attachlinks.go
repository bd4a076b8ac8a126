package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// testAttachLinks: a link belongs to its tenant; downloads are counted
// atomically up to the limit, never after expiry or revocation, and
// logged; expired links are found across tenants and deleted with their
// log.
func testAttachLinks(t *testing.T, open Opener) {
	st := open(t)
	db, ok := st.(store.AttachLinkStore)
	if !ok {
		t.Fatalf("%T does not keep attachment links", st)
	}
	ctx := context.Background()
	a, _ := st.CreateTenant(ctx, "a")
	b, _ := st.CreateTenant(ctx, "b")
	at := time.UnixMicro(1_700_000_000_123_456).UTC()
	l := store.AttachLink{TenantID: a.ID, ID: "l1", Sender: "s@a.test", Data: []byte(`{"files":["見積書.pdf"]}`),
		Created: at, Expires: at.Add(time.Hour), MaxDownloads: 5}
	if err := db.CreateAttachLink(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateAttachLink(ctx, l); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	got, err := db.AttachLink(ctx, a.ID, "l1")
	if err != nil || got.Sender != l.Sender || string(got.Data) != string(l.Data) || !got.Created.Equal(at) || !got.Expires.Equal(l.Expires) || got.MaxDownloads != 5 || got.Revoked {
		t.Fatalf("read back %+v %v", got, err)
	}
	if _, err := db.AttachLink(ctx, b.ID, "l1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another tenant's link: %v", err)
	}
	// Ten concurrent downloads of a link allowing five: exactly five count.
	var wg sync.WaitGroup
	var mu sync.Mutex
	counted, limited := 0, 0
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, refused, err := db.CountAttachLinkDownload(ctx, a.ID, "l1", store.LinkDownload{At: at.Add(time.Minute), File: "見積書.pdf", Client: "192.0.2.1"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case refused == "":
				counted++
			case refused == store.LinkLimit:
				limited++
			}
		}()
	}
	wg.Wait()
	if counted != 5 || limited != 5 {
		t.Fatalf("counted %d, limited %d", counted, limited)
	}
	log, err := db.AttachLinkDownloads(ctx, a.ID, "l1")
	if err != nil || len(log) != 5 || log[0].File != "見積書.pdf" || log[0].Client != "192.0.2.1" || !log[0].At.Equal(at.Add(time.Minute)) {
		t.Fatalf("log %+v %v", log, err)
	}
	if _, _, err := db.CountAttachLinkDownload(ctx, b.ID, "l1", store.LinkDownload{At: at}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("count in another tenant: %v", err)
	}

	l2 := store.AttachLink{TenantID: b.ID, ID: "l2", Sender: "x@b.test", Data: []byte("{}"), Created: at.Add(time.Second), Expires: at.Add(2 * time.Hour)}
	if err := db.CreateAttachLink(ctx, l2); err != nil {
		t.Fatal(err)
	}
	if _, refused, _ := db.CountAttachLinkDownload(ctx, b.ID, "l2", store.LinkDownload{At: at.Add(2 * time.Hour)}); refused != store.LinkExpired {
		t.Fatalf("at expiry: %q", refused)
	}
	if err := db.RevokeAttachLink(ctx, a.ID, "l2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke in another tenant: %v", err)
	}
	if err := db.RevokeAttachLink(ctx, b.ID, "l2"); err != nil {
		t.Fatal(err)
	}
	if got, refused, _ := db.CountAttachLinkDownload(ctx, b.ID, "l2", store.LinkDownload{At: at}); refused != store.LinkRevoked || !got.Revoked || got.Downloads != 0 {
		t.Fatalf("revoked: %q %+v", refused, got)
	}
	if ls, err := db.AttachLinks(ctx, a.ID, "", 10); err != nil || len(ls) != 1 || ls[0].Downloads != 5 {
		t.Fatalf("tenant list %+v %v", ls, err)
	}
	if ls, _ := db.AttachLinks(ctx, b.ID, "other@b.test", 10); len(ls) != 0 {
		t.Fatalf("sender filter: %+v", ls)
	}
	exp, err := db.ExpiredAttachLinks(ctx, at.Add(90*time.Minute), 10)
	if err != nil || len(exp) != 1 || exp[0].ID != "l1" {
		t.Fatalf("expired %+v %v", exp, err)
	}
	if err := db.DeleteAttachLink(ctx, a.ID, "l1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AttachLink(ctx, a.ID, "l1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
	if log, _ := db.AttachLinkDownloads(ctx, a.ID, "l1"); len(log) != 0 {
		t.Fatalf("log kept: %d", len(log))
	}
}
