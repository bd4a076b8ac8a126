package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestRestartKeepsQueue queues mail for a dead customer server, restarts
// mailgate (SIGTERM, start again) and checks that every accepted message is
// delivered exactly once after the route is fixed and the queue flushed.
func TestRestartKeepsQueue(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{retry: "1h"})
	dead := deadAddr(t)
	g.cli("route", "set", "example.test", "smtp://"+dead)

	const n = 10
	tag := "restart-8e21"
	res := runPy(t, "bulk", "--port", portOf(t, g.inAddr), "--tag", tag, "--count", fmt.Sprint(n),
		"--from", "partner@remote.test", "--to", "alice@example.test", "--to", "bob@example.test")
	accepted := map[string]bool{}
	for _, r := range res.step("data") {
		for _, id := range queueIDs(fmt.Sprintf("%d %s", r.Code, r.Msg)) {
			accepted[id] = true
		}
	}
	if len(accepted) != n {
		t.Fatalf("%d messages accepted, want %d: %v", len(accepted), n, res.Replies)
	}
	// Wait for the first (failed) attempt, so the restart happens with
	// deferred mail rather than mail never tried.
	for id := range accepted {
		g.waitRow(id, "deferred", func(r queueRow) bool { return r.Attempts >= 1 && r.LastReply != "" })
	}

	g.stop()
	if g.sink.Count() != 0 {
		t.Fatalf("sink got %d messages while the route was dead", g.sink.Count())
	}
	g.start()

	// The queue survived the restart: every accepted message, both recipients.
	rows := g.queueRows()
	perMsg := map[string]int{}
	for _, r := range rows {
		perMsg[r.ID]++
		if r.State != "queued" {
			t.Errorf("after restart %s %s is %s, want queued", r.ID, r.Rcpt, r.State)
		}
	}
	for id := range accepted {
		if perMsg[id] != 2 {
			t.Errorf("after restart %s has %d recipients queued, want 2", id, perMsg[id])
		}
	}

	g.cli("route", "set", "example.test", "smtp://"+g.sink.Addr())
	if out := g.cli("queue", "flush"); !strings.HasPrefix(out, fmt.Sprintf("%d recipient(s) due now", 2*n)) {
		t.Errorf("queue flush: %q", out)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("%d messages at the sink", n), func() bool {
		return len(messagesWith(g.sink, tag)) >= n
	})
	// Delivered is final: once the queue is empty nothing can be sent again.
	g.waitQueueEmpty()
	for i := 0; i < n; i++ {
		mid := fmt.Sprintf("<%s.%d@client.e2e.test>", tag, i)
		ms := messagesWith(g.sink, mid)
		if len(ms) != 1 {
			t.Errorf("message %s delivered %d times, want once", mid, len(ms))
			continue
		}
		if got := strings.Join(ms[0].To, ","); got != "alice@example.test,bob@example.test" && got != "bob@example.test,alice@example.test" {
			t.Errorf("message %s delivered to %s", mid, got)
		}
	}
	if c := g.sink.Count(); c != n {
		t.Errorf("sink received %d transactions, want %d", c, n)
	}
}

// TestShutdownWithIdleClient stops mailgate while a client sits between
// transactions. RFC 5321 3.8: a server shutting down should answer 421 and
// close, and an idle client must not hold the process for the whole
// shutdown budget.
func TestShutdownWithIdleClient(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{})
	c, err := net.DialTimeout("tcp", g.inAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	readReply := func() string {
		t.Helper()
		var all string
		for {
			l, err := r.ReadString('\n')
			all += l
			if err != nil {
				t.Fatalf("reading reply: %v (got %q)", err, all)
			}
			if len(l) < 4 || l[3] != '-' {
				return all
			}
		}
	}
	if greet := readReply(); !strings.HasPrefix(greet, "220 ") {
		t.Fatalf("greeting %q", greet)
	}
	fmt.Fprintf(c, "EHLO client.e2e.test\r\n")
	if ehlo := readReply(); !strings.HasPrefix(ehlo, "250") {
		t.Fatalf("EHLO reply %q", ehlo)
	}
	g.sigterm()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "421 ") {
		t.Errorf("idle client got %q (%v) within 10s of SIGTERM, want 421", l, err)
	}
	// The connection stays open: the process must not wait for the client.
	g.waitExit(10 * time.Second)
}
