package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/archive"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

func relay(t *testing.T, addr, from string, to []string, data string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

// Mail through the node's SMTP listeners, in and out, is archived by the
// node's own archiver after delivery went on unhindered; the spool blobs
// go once both the queue and the archive are done with them.
func TestArchiveThroughSMTP(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{NoChecks: true, Config: func(c *config.Config) {
		c.Archive.Interval = config.D(20 * time.Millisecond)
	}})
	ctx := context.Background()
	if err := n.Store.SetArchiveSettings(ctx, store.ArchiveSettings{TenantID: n.Tenant.ID, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	relay(t, n.InboundAddr(), "partner@example.net", []string{"alice@example.test"},
		"From: partner@example.net\r\nTo: alice@example.test\r\nSubject: =?UTF-8?B?5Lya6K2w44Gu5qGI5YaF?=\r\n\r\n東京で会議をします。\r\n")
	relay(t, n.OutboundAddr(), "alice@example.test", []string{"partner@example.net"},
		"From: alice@example.test\r\nTo: partner@example.net\r\nSubject: quarterly numbers\r\n\r\nattached\r\n")
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return n.Down.Count() == 1 && n.Internet.Count() == 1 })
	var es []store.ArchiveEntry
	mgtest.WaitFor(t, 10*time.Second, "archiving", func() bool {
		es, _ = n.Store.ArchiveEntries(ctx, n.Tenant.ID, 0, 10)
		return len(es) == 2
	})
	dirs := map[store.Direction]bool{}
	for _, e := range es {
		dirs[e.Direction] = true
	}
	if !dirs[store.Inbound] || !dirs[store.Outbound] {
		t.Fatalf("directions %v", dirs)
	}
	svc, err := n.OpenArchive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgtest.WaitFor(t, 10*time.Second, "search", func() bool {
		h, err := svc.Search(ctx, n.Tenant.ID, archive.Query{Text: "会議"}, archive.Page{})
		return err == nil && len(h.Entries) == 1
	})
	for _, e := range es {
		mgtest.WaitFor(t, 10*time.Second, "spool cleanup", func() bool {
			_, err := n.Spool.Open(ctx, blob.Key(n.Config.NodeID, e.QueueID))
			return errors.Is(err, blob.ErrNotFound)
		})
	}
	if r, err := svc.Verify(ctx, n.Tenant.ID); err != nil || !r.OK() {
		t.Fatalf("verify %+v %v", r, err)
	}
}
