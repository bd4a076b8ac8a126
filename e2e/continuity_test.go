package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// mailAppPassword is the console password the tests' users give their
// mail apps.
const mailAppPassword = "the user's long mail password"

// fastHandback makes the hand-back look for work every 200 ms.
const fastHandback = "[continuity]\nhandback_tick = \"200ms\"\n"

// mailUser gives a user of acme a console login (their IMAP and
// submission password).
func (g *gateway) mailUser(address string) {
	g.t.Helper()
	if _, err := g.cliIn(mailAppPassword+"\n", "account", "add", address, "--tenant", "acme", "--role", "user"); err != nil {
		g.t.Fatal(err)
	}
}

// imapMsg is one message as testdata/imapuser.py lists it.
type imapMsg struct {
	UID       int      `json:"uid"`
	Flags     []string `json:"flags"`
	MessageID string   `json:"message_id"`
	Subject   string   `json:"subject"`
	Seq       string   `json:"seq"`
}

// imapResult is what testdata/imapuser.py printed.
type imapResult struct {
	List   map[string][]imapMsg `json:"list"`
	Read   map[string]int       `json:"read"`
	Append map[string]string    `json:"append"`
	Send   map[string]string    `json:"send"`
}

// imapUser runs testdata/imapuser.py, Python's imaplib (and smtplib for
// send steps) as user's mail app, against the implicit TLS listener.
func (g *gateway) imapUser(user string, steps ...string) imapResult {
	g.t.Helper()
	if _, err := os.Stat(python); err != nil {
		missingPeer(g.t, python+" not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{filepath.Join("testdata", "imapuser.py"), "127.0.0.1", portOf(g.t, g.imapTLSAddr), user, mailAppPassword}, steps...)
	cmd := exec.CommandContext(ctx, python, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("imapuser.py %s: %v\nstdout: %s\nstderr: %s", strings.Join(steps, " "), err, stdout.String(), stderr.String())
	}
	var res imapResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		g.t.Fatalf("imapuser.py output: %v\n%s", err, stdout.String())
	}
	return res
}

// sendSMTP delivers one message over plain SMTP (the inbound listener).
func sendSMTP(addr, from, to string, body []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

var seqHeader = regexp.MustCompile(`(?m)^X-Test-Seq: (\S+)\r?$`)

// kill stops mailgate with SIGKILL: no shutdown work at all.
func (g *gateway) kill() {
	g.t.Helper()
	g.mu.Lock()
	cmd, exited := g.proc, g.exited
	g.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		g.t.Fatalf("SIGKILL: %v", err)
	}
	<-exited
}

// handbackDone waits until `continuity handback status DOMAIN` shows
// every hand-back done and returns the output.
func (g *gateway) handbackDone(domain string, timeout time.Duration) string {
	g.t.Helper()
	var out string
	waitFor(g.t, timeout, "hand-back of "+domain+" done", func() bool {
		out = g.cli("continuity", "handback", "status", domain)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 2 {
			return false
		}
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) < 2 || f[1] != "done" {
				return false
			}
		}
		return true
	})
	return out
}

// TestContinuitySwitchUnderLoad: senders keep sending to the domain while
// an administrator switches it to emergency mode and back twice with the
// CLI. When the queue is empty, every accepted message is in exactly one
// place: at the primary service (the sink) or in its user's mailbox, read
// over IMAP with Python's imaplib. After the hand-back, every one is at
// the primary service exactly once.
func TestContinuitySwitchUnderLoad(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{imap: true, extra: fastHandback})
	g.mailUser("alice@example.test")
	g.mailUser("bob@example.test")
	// Hand-back by hand, so the placement can be checked first.
	g.cli("policy", "set", "--domain", "example.test", "continuity.handback=manual")

	var mu sync.Mutex
	accepted := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := 0; s < 3; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seq := fmt.Sprintf("%d-%04d", s+1, i)
				rcpt := []string{"alice@example.test", "bob@example.test"}[i%2]
				body := "From: sender@remote.test\r\nTo: " + rcpt + "\r\nSubject: load " + seq + "\r\nMessage-ID: <" + seq + "@load.remote.test>\r\n" +
					"X-Test-Seq: " + seq + "\r\n\r\nhello\r\n"
				if err := sendSMTP(g.inAddr, "sender@remote.test", rcpt, []byte(body)); err == nil {
					mu.Lock()
					accepted[seq] = true
					mu.Unlock()
				}
			}
		}(s)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	for i, mode := range []string{"emergency", "primary", "emergency", "primary"} {
		waitFor(t, 60*time.Second, "messages sent", func() bool { return count() >= (i+1)*40 })
		g.cli("continuity", "switch", "example.test", mode, "--reason", fmt.Sprintf("drill %d", i))
	}
	waitFor(t, 60*time.Second, "messages sent", func() bool { return count() >= 200 })
	close(stop)
	wg.Wait()
	g.waitQueueEmpty()

	atPrimary := map[string]int{}
	for _, m := range g.sink.Messages() {
		for _, s := range seqHeader.FindAllSubmatch(m.Data, -1) {
			atPrimary[string(s[1])]++
		}
	}
	inBox := map[string]int{}
	for _, u := range []string{"alice@example.test", "bob@example.test"} {
		for _, m := range g.imapUser(u, "list:INBOX").List["INBOX"] {
			inBox[m.Seq]++
			if m.MessageID != "<"+m.Seq+"@load.remote.test>" {
				t.Errorf("%s: message %s has Message-ID %q", u, m.Seq, m.MessageID)
			}
		}
	}
	if len(atPrimary) == 0 || len(inBox) == 0 {
		t.Fatalf("the switches had no effect: %d at the primary, %d in mailboxes", len(atPrimary), len(inBox))
	}
	mu.Lock()
	total := len(accepted)
	for seq := range accepted {
		if atPrimary[seq]+inBox[seq] != 1 {
			t.Errorf("message %s: %d at the primary, %d in mailboxes", seq, atPrimary[seq], inBox[seq])
		}
	}
	mu.Unlock()
	if n := len(atPrimary) + len(inBox); n != total {
		t.Errorf("%d messages delivered, %d accepted", n, total)
	}
	t.Logf("%d messages: %d at the primary, %d in mailboxes before the hand-back", total, len(atPrimary), len(inBox))

	g.cli("continuity", "handback", "start", "example.test")
	status := g.handbackDone("example.test", 60*time.Second)
	atPrimary = map[string]int{}
	handedBack := 0
	for _, m := range g.sink.Messages() {
		for _, s := range seqHeader.FindAllSubmatch(m.Data, -1) {
			atPrimary[string(s[1])]++
		}
		if bytes.HasPrefix(m.Data, []byte("X-Mailgate-Handback: ")) {
			handedBack++
		}
	}
	mu.Lock()
	for seq := range accepted {
		if atPrimary[seq] != 1 {
			t.Errorf("message %s is %d times at the primary after the hand-back", seq, atPrimary[seq])
		}
	}
	mu.Unlock()
	if handedBack != len(inBox) {
		t.Errorf("%d messages handed back, %d were in mailboxes\n%s", handedBack, len(inBox), status)
	}
}

// idRecorder is a primary mail service that records the Message-ID of
// every message it accepts, with the time, and takes delay to answer
// each DATA after recording it: a message it has when mailgate is killed
// may not have been acknowledged yet.
type idRecorder struct {
	mu    sync.Mutex
	got   map[string][]time.Time
	delay time.Duration
	addr  string
}

func startIDRecorder(t *testing.T, delay time.Duration) *idRecorder {
	t.Helper()
	r := &idRecorder{got: map[string][]time.Time{}, delay: delay}
	srv := gosmtp.NewServer(r)
	srv.Domain = "primary.invalid"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

var messageIDHeader = regexp.MustCompile(`(?mi)^Message-ID: (<[^>]+>)\r?$`)

func (r *idRecorder) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return &idSession{r: r}, nil }

// snapshot returns the copies per Message-ID and how many in all.
func (r *idRecorder) snapshot() (map[string][]time.Time, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, n := map[string][]time.Time{}, 0
	for k, v := range r.got {
		out[k] = append([]time.Time(nil), v...)
		n += len(v)
	}
	return out, n
}

type idSession struct{ r *idRecorder }

func (s *idSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s *idSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (s *idSession) Reset()                                 {}
func (s *idSession) Logout() error                          { return nil }

func (s *idSession) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	id := "(none)"
	if m := messageIDHeader.FindSubmatch(b); m != nil {
		id = string(m[1])
	}
	s.r.mu.Lock()
	s.r.got[id] = append(s.r.got[id], time.Now())
	s.r.mu.Unlock()
	time.Sleep(s.r.delay)
	return nil
}

// TestHandbackSurvivesSIGKILL: 300 messages received in emergency mode are
// being handed back over SMTP when mailgate is killed with SIGKILL. After
// the restart the hand-back resumes by itself and every message reaches
// the primary service. A message reaches it twice only if the primary had
// taken it and mailgate had not heard the answer when it was killed (the
// duplicate RFC 1047 describes for any SMTP relay): at most one per
// hand-back worker, each with its first copy from before the kill.
func TestHandbackSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	const total, workers = 300, 4
	primary := startIDRecorder(t, 15*time.Millisecond)
	g := newGateway(t, options{extra: fastHandback + fmt.Sprintf("handback_workers = %d\n", workers)})
	g.cli("domain", "add", "acme", "crash.test", "--route", "smtp://"+primary.addr)
	users := []string{"u1@crash.test", "u2@crash.test", "u3@crash.test"}
	g.cli(append([]string{"user", "add"}, users...)...)
	g.cli("continuity", "switch", "crash.test", "emergency")

	var wg sync.WaitGroup
	errs := make(chan error, total)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < total; i += 4 {
				rcpt := users[i%len(users)]
				body := fmt.Sprintf("From: sender@remote.test\r\nTo: %s\r\nSubject: handback %d\r\nMessage-ID: <hb-%d@remote.test>\r\n\r\nbody %d\r\n", rcpt, i, i, i)
				if err := sendSMTP(g.inAddr, "sender@remote.test", rcpt, []byte(body)); err != nil {
					errs <- fmt.Errorf("message %d: %w", i, err)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	g.waitQueueEmpty()
	if _, n := primary.snapshot(); n != 0 {
		t.Fatalf("%d messages reached the primary in emergency mode", n)
	}

	g.cli("continuity", "switch", "crash.test", "primary")
	waitFor(t, 60*time.Second, "the hand-back under way", func() bool {
		_, n := primary.snapshot()
		return n >= total/3
	})
	g.kill()
	killedAt := time.Now()
	before, atKill := primary.snapshot()
	if atKill >= total {
		t.Fatalf("the hand-back finished (%d messages) before the kill", atKill)
	}
	// Nothing is handed back while mailgate is down.
	time.Sleep(300 * time.Millisecond)
	if _, n := primary.snapshot(); n != atKill {
		t.Fatalf("%d messages arrived after the kill, %d before", n, atKill)
	}

	g.start()
	status := g.handbackDone("crash.test", 90*time.Second)
	got, n := primary.snapshot()
	dups := 0
	for i := 0; i < total; i++ {
		id := fmt.Sprintf("<hb-%d@remote.test>", i)
		copies := got[id]
		switch {
		case len(copies) == 0:
			t.Errorf("message %d never reached the primary", i)
		case len(copies) > 2:
			t.Errorf("message %d reached the primary %d times", i, len(copies))
		case len(copies) == 2:
			dups++
			if len(before[id]) != 1 || !copies[0].Before(killedAt) {
				t.Errorf("message %d reached the primary twice without a kill between its copies", i)
			}
		}
	}
	if len(got) != total {
		t.Errorf("%d distinct messages at the primary, want %d", len(got), total)
	}
	if dups > workers {
		t.Errorf("%d duplicates, more than the %d attempts that can be under way at a kill", dups, workers)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^\d+\s+done\s+smtp\s+\(all\)\s+%d\s+%d\s+0\s+0\s+0\s+0\s`, total, total)).MatchString(status) {
		t.Errorf("hand-back status:\n%s", status)
	}
	recent := 0
	for _, c := range before {
		if killedAt.Sub(c[0]) < 100*time.Millisecond {
			recent++
		}
	}
	t.Logf("hand-back of %d messages, SIGKILL after %d (%d in its last 100 ms): %d copies in all, %d duplicates", total, atKill, recent, n, dups)
}

// TestEmergencyUserReadsAndSends is one user during an outage with a
// mail app (Python's imaplib and smtplib): mail delivered in emergency
// mode is read over IMAP, a reply to a partner and a colleague is sent
// through submission (out through the outbound path to the partner, into
// the colleague's mailbox) and filed in Sent. The outage console's API
// shows what each user received, left unread and sent, and their login.
func TestEmergencyUserReadsAndSends(t *testing.T) {
	t.Parallel()
	g := newGateway(t, options{imap: true, submission: true, http: true, extra: fastHandback})
	g.mailUser("alice@example.test")
	out := g.cli("token", "create", "--tenant", "acme", "--scope", "read", "--name", "e2e")
	token := regexp.MustCompile(`mgt_[A-Za-z0-9_-]+`).FindString(out)
	if token == "" {
		t.Fatalf("no token in %q", out)
	}
	g.cli("continuity", "switch", "example.test", "emergency", "--reason", "M365 outage")
	for _, subj := range []string{"outage-1", "outage-2"} {
		sendOne(t, g.inAddr, subj, "partner@remote.test", "alice@example.test")
	}
	waitFor(t, 20*time.Second, "two messages in alice's INBOX", func() bool {
		return len(g.imapUser("alice@example.test", "list:INBOX").List["INBOX"]) == 2
	})
	inbox := g.imapUser("alice@example.test", "list:INBOX").List["INBOX"]
	if n := len(g.sink.Messages()); n != 0 {
		t.Fatalf("%d messages went to the primary service in emergency mode", n)
	}

	reply := filepath.Join(t.TempDir(), "reply.eml")
	msg := "From: Alice <alice@example.test>\r\nTo: partner@remote.test, bob@example.test\r\nSubject: Re: " + inbox[0].Subject +
		"\r\nMessage-ID: <reply-7f3a@example.test>\r\nDate: Mon, 07 Dec 2026 09:00:00 +0900\r\n\r\nAnswered from the backup account.\r\n"
	if err := os.WriteFile(reply, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	res := g.imapUser("alice@example.test", "read:"+inbox[0].Subject, "send:"+portOf(t, g.subAddr)+":partner@remote.test,bob@example.test:"+reply,
		"append:Sent:"+reply, "list:INBOX", "list:Sent")
	if res.Read[inbox[0].Subject] == 0 || res.Send["partner@remote.test,bob@example.test"] != "sent" || !strings.HasPrefix(res.Append["Sent"], "OK ") {
		t.Fatalf("mail app: %+v", res)
	}
	var seen int
	for _, m := range res.List["INBOX"] {
		for _, f := range m.Flags {
			if f == `\Seen` {
				seen++
			}
		}
	}
	if seen != 1 || len(res.List["Sent"]) != 1 || res.List["Sent"][0].MessageID != "<reply-7f3a@example.test>" {
		t.Fatalf("after reading and sending: %+v", res.List)
	}
	out1 := waitMessage(t, g.smart, "reply-7f3a@example.test")
	if out1.From != "alice@example.test" || len(out1.To) != 1 || out1.To[0] != "partner@remote.test" || !strings.Contains(string(out1.Data), "with ESMTPSA") {
		t.Fatalf("sent mail went out as from %s to %v:\n%s", out1.From, out1.To, out1.Data)
	}

	api := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+g.webAddr+"/api/v1"+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || json.Unmarshal(b, v) != nil {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	type usage struct {
		Address    string    `json:"address"`
		Received   int       `json:"received"`
		Unread     int       `json:"unread"`
		Sent       int       `json:"sent"`
		HandedBack int       `json:"handed_back"`
		LastLogin  time.Time `json:"last_login"`
	}
	var users []usage
	waitFor(t, 20*time.Second, "the reply in bob's mailbox", func() bool {
		api("/domains/example.test/continuity/users", &users)
		for _, u := range users {
			if u.Address == "bob@example.test" && u.Received == 1 {
				return true
			}
		}
		return false
	})
	by := map[string]usage{}
	for _, u := range users {
		by[u.Address] = u
	}
	if a := by["alice@example.test"]; a.Received != 2 || a.Unread != 1 || a.Sent != 1 || a.HandedBack != 0 || a.LastLogin.IsZero() {
		t.Errorf("alice: %+v", a)
	}
	if b := by["bob@example.test"]; b.Received != 1 || b.Unread != 1 || b.Sent != 0 || !b.LastLogin.IsZero() {
		t.Errorf("bob: %+v", b)
	}
}
