package app_test

import (
	"context"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/admin"
	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/continuity"
	"github.com/mailgate/mailgate/internal/dirsync/dirsynctest"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// rcptReplies opens one SMTP session to addr and returns the reply code
// to RCPT TO of each recipient (250 for accepted), then quits without
// sending data.
func rcptReplies(t *testing.T, addr string, rcpts ...string) map[string]int {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@remote.test"); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rcpts {
		err := c.Rcpt(r)
		var te *textproto.Error
		switch {
		case err == nil:
			out[r] = 250
		case errors.As(err, &te):
			out[r] = te.Code
			if te.Code == 550 && !strings.HasPrefix(te.Msg, "5.1.1 ") {
				t.Errorf("RCPT %s: %d %s, want 5.1.1", r, te.Code, te.Msg)
			}
		default:
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	c.Quit()
	return out
}

func wantReplies(t *testing.T, got map[string]int, want map[string]int) {
	t.Helper()
	for r, w := range want {
		if got[r] != w {
			t.Errorf("RCPT %s: %d, want %d", r, got[r], w)
		}
	}
}

// TestDirectoryAtRCPT: with the recipient check "directory", the
// addresses synchronised from Microsoft Graph are accepted at RCPT and
// other addresses refused with 550 5.1.1, over a real SMTP session;
// users renamed and removed upstream follow the next sync; the user list
// still counts.
func TestDirectoryAtRCPT(t *testing.T) {
	g := dirsynctest.NewGraph(t)
	n := mgtest.Start(t, mgtest.Options{Config: func(c *config.Config) {
		c.Continuity.GraphURL, c.Continuity.GraphLoginURL = g.URL, g.URL
	}})
	ctx := context.Background()
	op := admin.Operator("test").In(n.Tenant.ID)
	svc := n.Admin()
	if _, err := svc.SetRecipientCheck(ctx, op, "example.test", "directory", "graph", ""); err == nil {
		t.Fatal("directory mode accepted without credentials")
	}
	if _, err := svc.SetHandbackCredentials(ctx, op, continuity.PathGraph, g.Credentials()); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetRecipientCheck(ctx, op, "example.test", "directory", "graph", ""); err != nil {
		t.Fatal(err)
	}
	g.Set([]dirsynctest.GraphObject{
		{Mail: "carol@example.test", ProxyAddresses: []string{"SMTP:carol@example.test", "smtp:c.tanaka@example.test"}},
		{Mail: "dave@example.test"},
	}, []dirsynctest.GraphObject{{Mail: "sales@example.test"}})
	if res, err := svc.SyncDirectory(ctx, op, "example.test", false); err != nil || !res.Applied {
		t.Fatalf("sync: %+v %v", res, err)
	}
	got := rcptReplies(t, n.InboundAddr(), "carol@example.test", "C.Tanaka@example.test", "sales@example.test", "alice@example.test",
		"nobody@example.test", "postmaster@example.test")
	wantReplies(t, got, map[string]int{"carol@example.test": 250, "C.Tanaka@example.test": 250, "sales@example.test": 250,
		"alice@example.test": 250, "nobody@example.test": 550, "postmaster@example.test": 250})

	// carol becomes caroline (her old address kept as an alias), dave leaves.
	g.Set([]dirsynctest.GraphObject{
		{Mail: "caroline@example.test", ProxyAddresses: []string{"SMTP:caroline@example.test", "smtp:carol@example.test"}},
	}, []dirsynctest.GraphObject{{Mail: "sales@example.test"}})
	if res, err := svc.SyncDirectory(ctx, op, "example.test", false); err != nil || !res.Applied {
		t.Fatalf("second sync: %+v %v", res, err)
	}
	got = rcptReplies(t, n.InboundAddr(), "caroline@example.test", "carol@example.test", "c.tanaka@example.test", "dave@example.test")
	wantReplies(t, got, map[string]int{"caroline@example.test": 250, "carol@example.test": 250, "c.tanaka@example.test": 550, "dave@example.test": 550})

	// A broken upstream answering nothing is held: mail still flows.
	g.Set(nil, nil)
	res, err := svc.SyncDirectory(ctx, op, "example.test", false)
	if err != nil || !res.Held {
		t.Fatalf("empty upstream: %+v %v", res, err)
	}
	wantReplies(t, rcptReplies(t, n.InboundAddr(), "caroline@example.test"), map[string]int{"caroline@example.test": 250})
	entries, err := n.Store.AuditLog(ctx, store.AuditFilter{TenantID: n.Tenant.ID, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	held := false
	for _, e := range entries {
		held = held || (e.Action == "directory.held" && e.Target == "example.test")
	}
	if !held {
		t.Fatal("held sync not in the audit log")
	}
	st, err := svc.RecipientCheck(ctx, op, "example.test")
	if err != nil || !st.Held || st.Entries != 3 {
		t.Fatalf("state: %+v %v", st, err)
	}
}

// TestCalloutAtRCPT: with the recipient check "callout", the domain's
// route (the customer's server) is asked at RCPT: what it takes is
// accepted, what it refuses gets 550 5.1.1, and when it is unreachable a
// new recipient gets 450 (never 550) while known ones are served from
// the cache.
func TestCalloutAtRCPT(t *testing.T) {
	n := mgtest.Start(t, mgtest.Options{})
	ctx := context.Background()
	op := admin.Operator("test").In(n.Tenant.ID)
	if _, err := n.Admin().SetRecipientCheck(ctx, op, "example.test", "callout", "", ""); err != nil {
		t.Fatal(err)
	}
	n.Down.RejectRcpt("ghost@example.test")
	got := rcptReplies(t, n.InboundAddr(), "dave@example.test", "ghost@example.test", "alice@example.test")
	wantReplies(t, got, map[string]int{"dave@example.test": 250, "ghost@example.test": 550, "alice@example.test": 250})

	// The customer's server goes away.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	if _, err := n.Admin().SetRoutes(ctx, op, "example.test", []string{"smtp://" + gone}, "none"); err != nil {
		t.Fatal(err)
	}
	got = rcptReplies(t, n.InboundAddr(), "erin@example.test", "dave@example.test", "ghost@example.test")
	wantReplies(t, got, map[string]int{"erin@example.test": 450, "dave@example.test": 250, "ghost@example.test": 550})
}
