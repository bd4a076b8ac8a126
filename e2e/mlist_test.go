package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/sink"
)

// TestSmtplibMailingList posts to a mailing list, set up with the CLI,
// from Python's smtplib. Every member, inside the domain (the domain's
// route) or outside it (the internet, here the smart host), and through a
// nested list, gets exactly one copy with the list's headers, sent from
// the list's bounce address; a non-member is refused at RCPT under the
// members-only policy, and accepted once the policy says anyone; a member
// whose server refuses the copy has its bounce counted; the serial
// number goes on after a restart.
func TestSmtplibMailingList(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{})
	g.cli("ml", "add", "team@example.test", "--serial", "--reply-to-list", "--description", "Team")
	g.cli("ml", "add", "sub@example.test")
	if _, err := g.cliIn("address,comment\nalice@example.test,Alice\nbob@example.test,Bob\npartner@remote.test,Partner Inc.\ngone@remote.test,Gone\nsub@example.test,nested\n",
		"ml", "import", "team@example.test"); err != nil {
		t.Fatal(err)
	}
	g.cli("ml", "member", "add", "sub@example.test", "alice@example.test") // a member through two lists
	g.cli("ml", "member", "add", "sub@example.test", "ext@remote.test")
	g.smart.RejectRcpt("gone@remote.test")

	// A member posts.
	tag := "ml-post-5c1d"
	res := runPy(t, "session", "--port", portOf(t, g.inAddr), "--tag", tag, "--from", "partner@remote.test", "--to", "team@example.test")
	if r := res.step("rcpt"); len(r) != 1 || r[0].Code != 250 {
		t.Fatalf("member's RCPT: %v", res.Replies)
	}
	if d := res.step("data"); len(d) != 1 || d[0].Code != 250 {
		t.Fatalf("member's DATA: %v", res.Replies)
	}
	inside := map[string]bool{"alice@example.test": true, "bob@example.test": true}
	outside := map[string]bool{"partner@remote.test": true, "ext@remote.test": true}
	waitCopies(t, g.sink, tag, inside)
	waitCopies(t, g.smart, tag, outside)
	for _, m := range append(messagesWith(g.sink, tag), messagesWith(g.smart, tag)...) {
		if m.From != "team-bounces@example.test" {
			t.Errorf("copy sent from %q, want the bounce address", m.From)
		}
		hdr, _, _ := bytes.Cut(m.Data, []byte("\r\n\r\n"))
		for _, want := range []string{
			"List-Id: \"Team\" <team.example.test>\r\n",
			"List-Post: <mailto:team@example.test>\r\n",
			"Reply-To: <team@example.test>\r\n",
			"Precedence: list\r\n",
			"Subject: [team:00001] " + tag + " 0\r\n",
			"From: <partner@remote.test>\r\n",
		} {
			if !bytes.Contains(hdr, []byte(want)) {
				t.Errorf("copy to %v lacks %q:\n%s", m.To, want, hdr)
			}
		}
	}

	// A non-member is refused in the dialogue: nothing is accepted, so
	// nothing can bounce later.
	stranger := "ml-stranger-77a0"
	res = runPy(t, "session", "--port", portOf(t, g.inAddr), "--tag", stranger, "--from", "stranger@remote.test", "--to", "team@example.test")
	if r := res.step("rcpt"); len(r) != 1 || r[0].Code != 550 || !strings.Contains(r[0].Msg, "5.7.1 Only members may post to this list") {
		t.Fatalf("non-member's RCPT: %v", res.Replies)
	}
	if d := res.step("data"); len(d) != 0 {
		t.Fatalf("non-member's message sent: %v", d)
	}

	// The member whose server refused the copy: one hard bounce counted,
	// through the DSN the queue sent to the list's bounce address.
	waitFor(t, 30*time.Second, "gone@remote.test's bounce counted", func() bool {
		return strings.Contains(g.cli("ml", "members", "team@example.test"), "gone@remote.test,Gone,1,false\n")
	})

	// The policy changes while running; the next post gets the next number.
	g.cli("ml", "set", "team@example.test", "--posting", "anyone")
	res = runPy(t, "session", "--port", portOf(t, g.inAddr), "--tag", stranger, "--from", "stranger@remote.test", "--to", "team@example.test")
	if d := res.step("data"); len(d) != 1 || d[0].Code != 250 {
		t.Fatalf("post under the anyone policy: %v", res.Replies)
	}
	waitCopies(t, g.sink, stranger, inside)
	if m := messagesWith(g.sink, stranger); !bytes.Contains(m[0].Data, []byte("Subject: [team:00002] "+stranger+" 0\r\n")) {
		t.Errorf("second post:\n%s", m[0].Data)
	}
	g.waitQueueEmpty()

	// The serial number goes on after a restart.
	g.stop()
	g.start()
	third := "ml-restart-0b93"
	res = runPy(t, "session", "--port", portOf(t, g.inAddr), "--tag", third, "--from", "partner@remote.test", "--to", "team@example.test")
	if d := res.step("data"); len(d) != 1 || d[0].Code != 250 {
		t.Fatalf("post after the restart: %v", res.Replies)
	}
	waitCopies(t, g.sink, third, inside)
	if m := messagesWith(g.sink, third); !bytes.Contains(m[0].Data, []byte("Subject: [team:00003] "+third+" 0\r\n")) {
		t.Errorf("post after the restart:\n%s", m[0].Data)
	}
	g.waitQueueEmpty()
	// Nothing more arrived meanwhile: still one copy per member.
	waitCopies(t, g.sink, tag, inside)
	waitCopies(t, g.smart, tag, outside)
}

// waitCopies waits until the messages at sk containing tag were sent to
// exactly the addresses of want, and fails when one got more than one
// copy or an address not in want got one.
func waitCopies(t *testing.T, sk *sink.Sink, tag string, want map[string]bool) {
	t.Helper()
	var got map[string]int
	waitFor(t, 30*time.Second, fmt.Sprintf("copies of %s for %v", tag, want), func() bool {
		got = map[string]int{}
		for _, m := range messagesWith(sk, tag) {
			for _, r := range m.To {
				got[strings.ToLower(r)]++
			}
		}
		return len(got) >= len(want)
	})
	for a, n := range got {
		if !want[a] || n != 1 {
			t.Errorf("%s got %d copies of %s (want one each for %v)", a, n, tag, want)
		}
	}
}
