package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// queueRow is one recipient line of `mailgate queue list`.
type queueRow struct {
	ID, From, Rcpt, State, LastReply string
	Attempts                         int
}

var columnSep = regexp.MustCompile(`\s{2,}`)

// queueRows runs `queue list` (with extra args) and parses its table.
func (g *gateway) queueRows(args ...string) []queueRow {
	g.t.Helper()
	out := g.cli(append([]string{"queue", "list"}, args...)...)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasSuffix(lines[len(lines)-1], " messages") {
		g.t.Fatalf("unexpected queue list output:\n%s", out)
	}
	var rows []queueRow
	for _, l := range lines[1 : len(lines)-1] {
		f := columnSep.Split(strings.TrimSpace(l), -1)
		// ID AGE SIZE FROM RECIPIENT STATE ATTEMPTS NEXT [LAST REPLY]
		if len(f) < 8 {
			g.t.Fatalf("queue list line %q has %d columns", l, len(f))
		}
		n, err := strconv.Atoi(f[6])
		if err != nil {
			g.t.Fatalf("queue list line %q: attempts: %v", l, err)
		}
		r := queueRow{ID: f[0], From: f[3], Rcpt: f[4], State: f[5], Attempts: n}
		if len(f) > 8 {
			r.LastReply = strings.Join(f[8:], "  ")
		}
		rows = append(rows, r)
	}
	return rows
}

// waitRow waits until the queue shows message id in a state where ok holds.
func (g *gateway) waitRow(id, desc string, ok func(queueRow) bool) queueRow {
	g.t.Helper()
	var last []queueRow
	deadline := time.Now().Add(15 * time.Second)
	for {
		last = g.queueRows()
		for _, r := range last {
			if r.ID == id && ok(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("timed out waiting for %s %s; queue: %+v", id, desc, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sendOne sends one message through the Python client and returns its queue ID.
func sendOne(t *testing.T, addr, tag, from string, to ...string) string {
	t.Helper()
	args := []string{"session", "--port", portOf(t, addr), "--tag", tag, "--from", from}
	for _, r := range to {
		args = append(args, "--to", r)
	}
	res := runPy(t, args...)
	d := res.step("data")
	if len(d) != 1 {
		t.Fatalf("message %s not accepted: %v", tag, res.Replies)
	}
	ids := queueIDs(fmt.Sprintf("%d %s", d[0].Code, d[0].Msg))
	if len(ids) != 1 {
		t.Fatalf("DATA reply %v, want '250 2.0.0 OK queued as ID'", d[0])
	}
	return ids[0]
}

// trackEvents returns the EVENT column of `mailgate track QUERY`, in order.
func (g *gateway) trackEvents(query string) (kinds []string, out string) {
	g.t.Helper()
	out = g.cli("track", query)
	inTable := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "  TIME") {
			inTable = true
			continue
		}
		if !inTable || strings.TrimSpace(l) == "" {
			continue
		}
		f := columnSep.Split(strings.TrimSpace(l), -1)
		if len(f) >= 2 {
			kinds = append(kinds, f[1])
		}
	}
	return kinds, out
}

// isSubsequence reports whether want appears in got in order (other events may interleave).
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestCLIWhileRunning is the operator's day: a customer's server goes down,
// mail queues up, the operator holds, releases, re-routes, flushes, bounces
// and tracks messages, and adds a user, all against the running server.
func TestCLIWhileRunning(t *testing.T) {
	t.Parallel()
	// An hour between attempts: only the operator's actions make mail due.
	g := newGateway(t, options{retry: "1h"})
	dead := deadAddr(t)
	g.cli("route", "set", "example.test", "smtp://"+dead)

	idA := sendOne(t, g.inAddr, "cli-a", "partner@remote.test", "alice@example.test")
	idB := sendOne(t, g.inAddr, "cli-b", "someone@remote.test", "bob@example.test")
	midA := "<cli-a.0@client.e2e.test>"

	deferred := func(r queueRow) bool { return r.State == "queued" && r.Attempts >= 1 && r.LastReply != "" }
	rowA := g.waitRow(idA, "deferred", deferred)
	if !strings.Contains(rowA.LastReply, dead) {
		t.Errorf("last reply %q does not name the dead route %s", rowA.LastReply, dead)
	}
	g.waitRow(idB, "deferred", deferred)

	t.Run("hold and release", func(t *testing.T) {
		if out := g.cli("queue", "hold", idA); !strings.Contains(out, "1 recipient(s) held") {
			t.Errorf("queue hold: %q", out)
		}
		held := g.queueRows("--held")
		if len(held) != 1 || held[0].ID != idA || held[0].State != "held" {
			t.Fatalf("queue list --held: %+v, want only %s", held, idA)
		}
		if out := g.cli("queue", "release", idA); !strings.Contains(out, "1 recipient(s) released") {
			t.Errorf("queue release: %q", out)
		}
		if held := g.queueRows("--held"); len(held) != 0 {
			t.Errorf("still held after release: %+v", held)
		}
		// Release makes the message due at once; it fails again on the dead route.
		g.waitRow(idA, "retried after release", func(r queueRow) bool { return r.State == "queued" && r.Attempts > rowA.Attempts })
	})

	t.Run("bounce", func(t *testing.T) {
		if out := g.cli("queue", "bounce", idB); !strings.Contains(out, "1 recipient(s) bounced") {
			t.Errorf("queue bounce: %q", out)
		}
		dsn := waitMessage(t, g.smart, "cli-b.0@client.e2e.test")
		if dsn.From != "" {
			t.Errorf("DSN envelope sender %q, want the null sender <>", dsn.From)
		}
		if strings.Join(dsn.To, ",") != "someone@remote.test" {
			t.Errorf("DSN sent to %v, want the original sender", dsn.To)
		}
		data := string(dsn.Data)
		for _, want := range []string{"multipart/report", "report-type=delivery-status", "Final-Recipient: rfc822;bob@example.test", "Action: failed"} {
			if !strings.Contains(strings.ReplaceAll(data, "rfc822; ", "rfc822;"), want) {
				t.Errorf("DSN lacks %q:\n%s", want, data)
			}
		}
		for _, r := range g.queueRows() {
			if r.ID == idB {
				t.Errorf("bounced message still queued: %+v", r)
			}
		}
	})

	t.Run("reroute and flush", func(t *testing.T) {
		g.cli("route", "set", "example.test", "smtp://"+g.sink.Addr())
		out := g.cli("queue", "flush")
		if !strings.HasPrefix(out, "1 recipient(s) due now") {
			t.Errorf("queue flush: %q", out)
		}
		m := waitMessage(t, g.sink, midA)
		if strings.Join(m.To, ",") != "alice@example.test" {
			t.Errorf("delivered to %v", m.To)
		}
		g.waitQueueEmpty()
		if n := len(messagesWith(g.sink, "cli-b.0@client.e2e.test")); n != 0 {
			t.Errorf("bounced message was delivered %d times", n)
		}
	})

	t.Run("track", func(t *testing.T) {
		kinds, out := g.trackEvents(midA)
		want := []string{"received", "deferred", "held", "released", "delivered"}
		if !isSubsequence(want, kinds) {
			t.Errorf("track %s events %v, want %v in this order\n%s", midA, kinds, want, out)
		}
		if !strings.Contains(out, "id:          "+idA) {
			t.Errorf("track output does not show queue ID %s:\n%s", idA, out)
		}
		kindsB, outB := g.trackEvents(idB)
		if !isSubsequence([]string{"received", "deferred", "bounced"}, kindsB) || contains(kindsB, "delivered") {
			t.Errorf("track %s events %v\n%s", idB, kindsB, outB)
		}
	})

	t.Run("user added while running", func(t *testing.T) {
		before := runPy(t, "session", "--port", portOf(t, g.inAddr), "--tag", "cli-carol-0", "--from", "x@remote.test", "--to", "carol@example.test")
		if r := before.step("rcpt"); len(r) != 1 || r[0].Code != 550 {
			t.Fatalf("carol before user add: %v, want 550", before.Replies)
		}
		g.cli("user", "add", "carol@example.test")
		sendOne(t, g.inAddr, "cli-carol-1", "x@remote.test", "carol@example.test")
		m := waitMessage(t, g.sink, "cli-carol-1.0@client.e2e.test")
		if strings.Join(m.To, ",") != "carol@example.test" {
			t.Errorf("delivered to %v", m.To)
		}
	})
}
