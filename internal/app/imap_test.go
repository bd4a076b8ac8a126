package app_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailgate/mailgate/internal/mailbox"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// A node with [imap] listeners serves the mailboxes over STARTTLS and
// implicit TLS with its certificate.
func TestIMAPListeners(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{IMAP: true, NoChecks: true})
	n.MailUser(t, "alice@example.test", "s3cret-pass")
	msg := []byte("From: a@example.net\r\nSubject: =?ISO-2022-JP?B?GyRCMnE1RBsoQg==?=\r\n\r\nhello\r\n")
	if err := n.Mailboxes.Deliver(context.Background(), n.Tenant.ID, "alice@example.test", bytes.NewReader(msg), mailbox.DeliverMeta{QueueID: "q1", Emergency: true}); err != nil {
		t.Fatal(err)
	}
	if n.IMAPAddr() == "" || n.IMAPTLSAddr() == "" {
		t.Fatalf("IMAP addresses %q %q", n.IMAPAddr(), n.IMAPTLSAddr())
	}
	for _, dial := range []func() (*imapclient.Client, error){
		func() (*imapclient.Client, error) {
			return imapclient.DialStartTLS(n.IMAPAddr(), &imapclient.Options{TLSConfig: n.IMAPClientTLS(t)})
		},
		func() (*imapclient.Client, error) {
			return imapclient.DialTLS(n.IMAPTLSAddr(), &imapclient.Options{TLSConfig: n.IMAPClientTLS(t)})
		},
	} {
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login("alice@example.test", "s3cret-pass").Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
		if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "会議" {
			t.Fatalf("fetch %+v %v", msgs, err)
		}
		c.Close()
	}
}

// A mailbox body written before a crash but never acknowledged (no row)
// is removed when the node starts again; acknowledged ones stay.
func TestMailboxBlobsRecoveredAtStart(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{NoStart: true})
	ctx := context.Background()
	if err := n.Mailboxes.Deliver(ctx, n.Tenant.ID, "bob@example.test", bytes.NewReader([]byte("Subject: kept\r\n\r\nx\r\n")), mailbox.DeliverMeta{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(n.Dir, "mailbox")
	orphan := filepath.Join(dir, "mb-0000000000000orphan")
	if err := os.WriteFile(orphan, []byte("Subject: never acknowledged\r\n\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("unacknowledged body still there: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d bodies left, want 1", len(ents))
	}
}
