package queue_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/dsn"
	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// sendNotify sends one message with NOTIFY=notify for every recipient.
func sendNotify(t *testing.T, n *mgtest.Node, notify []smtp.DSNNotify, to ...string) string {
	t.Helper()
	c, err := smtp.Dial(n.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("sender@example.net", &smtp.MailOptions{EnvelopeID: "env-1"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, &smtp.RcptOptions{Notify: notify}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: sender@example.net\r\nSubject: notify\r\n\r\nbody\r\n")
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusText[strings.LastIndex(resp.StatusText, " ")+1:]
}

// routeToServerWithoutDSN points example.test at a server that does not
// advertise DSN and returns where its messages land.
func routeToServerWithoutDSN(t *testing.T, n *mgtest.Node) *sink.Sink {
	t.Helper()
	s, err := sink.Start("127.0.0.1:0", "", true) // its backend, behind a server without DSN
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := smtp.NewServer(s)
	srv.Domain = "no-dsn.test"
	srv.EnableDSN = false
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if err := n.Store.SetRoutes(context.Background(), n.Tenant.ID, n.Domain.ID, []store.Route{{Priority: 10, Target: "smtp://" + ln.Addr().String(), TLS: "none"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

func dsnEvents(t *testing.T, n *mgtest.Node, id string) []store.Event {
	t.Helper()
	evs, err := n.Store.Events(context.Background(), 0, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Event
	for _, e := range evs {
		if e.Kind == "dsn" {
			out = append(out, e)
		}
	}
	return out
}

// NOTIFY=SUCCESS to a next hop without DSN support: the sender gets a
// "relayed" notice (RFC 3461 5.2.2), from the null sender, through the
// queue like every DSN.
func TestNotifySuccessRelayed(t *testing.T) {
	t.Parallel()
	n, _ := startQueued(t)
	next := routeToServerWithoutDSN(t, n)
	id := sendNotify(t, n, []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure}, "alice@example.test")
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return recipients(t, n, id)[0].State == store.Delivered })
	if next.Count() != 1 {
		t.Fatalf("next hop got %d messages", next.Count())
	}
	mgtest.WaitFor(t, 10*time.Second, "success notice sent", func() bool { return len(dsns(t, n)) == 1 })
	d := dsns(t, n)[0]
	if d.Kind != dsn.Relayed || len(d.Recipients) != 1 || d.EnvelopeID != "env-1" {
		t.Fatalf("notice %+v", d)
	}
	if r := d.Recipients[0]; r.FinalRecipient != "alice@example.test" || r.Action != "relayed" || r.Status != "2.0.0" {
		t.Fatalf("notice recipient %+v", r)
	}
	if m := n.Internet.Messages()[0]; m.From != "" || len(m.To) != 1 || m.To[0] != "sender@example.net" {
		t.Fatalf("notice envelope from <%s> to %v", m.From, m.To)
	}
	if evs := dsnEvents(t, n, id); len(evs) != 1 || !strings.Contains(evs[0].Detail, "relayed notice") {
		t.Fatalf("tracking %+v", evs)
	}
}

// A next hop that advertises DSN is handed NOTIFY=SUCCESS and reports the
// delivery itself (RFC 3461 5.2.1): no notice from mailgate. Without
// NOTIFY, or with NOTIFY=NEVER, no success notice either, and NEVER also
// silences the failure notice.
func TestNotifyWithoutSuccessNotice(t *testing.T) {
	t.Parallel()
	n, _ := startQueued(t)
	ctx := context.Background()
	dsnHop := sendNotify(t, n, []smtp.DSNNotify{smtp.DSNNotifySuccess}, "alice@example.test")
	n.Down.RejectRcpt("bob@example.test")
	never := sendNotify(t, n, []smtp.DSNNotify{smtp.DSNNotifyNever}, "bob@example.test")
	mgtest.WaitFor(t, 10*time.Second, "both final", func() bool {
		return recipients(t, n, dsnHop)[0].State == store.Delivered && recipients(t, n, never)[0].State == store.Bounced
	})
	next := routeToServerWithoutDSN(t, n)
	plain := send(t, n, "sender@example.net", []string{"alice@example.test"}, "no notify")
	mgtest.WaitFor(t, 10*time.Second, "delivered", func() bool { return recipients(t, n, plain)[0].State == store.Delivered })
	if next.Count() != 1 {
		t.Fatalf("next hop got %d messages", next.Count())
	}
	// A DSN is committed with the outcome it reports on: none is coming.
	for _, id := range []string{dsnHop, never, plain} {
		if evs := dsnEvents(t, n, id); len(evs) != 0 {
			t.Fatalf("%s: unexpected DSN %+v", id, evs)
		}
	}
	if es, _ := n.Store.ListQueue(ctx, store.QueueFilter{}); len(es) != 0 {
		t.Fatalf("%d messages left in the queue (a DSN?)", len(es))
	}
}
