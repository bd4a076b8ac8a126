// Package e2e drives the real mailgate binary with real SMTP clients (swaks,
// Python smtplib) and the real CLI, the way an administrator would: every
// test builds a config file, provisions a tenant with the CLI, starts
// `mailgate serve` as a subprocess and stops it with SIGTERM, asserting a
// graceful exit. Downstream servers are in-process sinks on 127.0.0.1.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/sink"
	"github.com/mailgate/mailgate/internal/testutil/peers"
	"github.com/mailgate/mailgate/internal/testutil/syncbuf"
)

// binPath is the mailgate binary built once by TestMain; read-only afterwards.
var binPath string

// Peers are optional unless MAILGATE_REQUIRE_PEERS=1 (CI with the tools installed).

const python = "/usr/bin/python3"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "mailgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binPath = filepath.Join(tmp, "mailgate")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "./cmd/mailgate")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building mailgate: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// needPeer returns the path of an external client, skipping the test when it
// is missing (or failing it when peers are required).
func needPeer(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missingPeer(t, fmt.Sprintf("%s not installed (apt-get install %s)", name, name))
	}
	return p
}

func missingPeer(t *testing.T, why string) {
	t.Helper()
	peers.Missing(t, "%s", why)
}

// options vary the config file per test; zero values keep the harness defaults.
type options struct {
	maxMessageBytes int
	maxRecipients   int
	retry           string // queue.retry entry; default "5s"
	outbound        bool   // also start the outbound relay listener
	http            bool   // also serve the console and API
	submission      bool   // also start the submission listener (STARTTLS and implicit TLS)
	imap            bool   // also start the IMAP listeners (STARTTLS and implicit TLS)
	// extra is appended to the config file (more sections, e.g.
	// "[continuity]\nhandback_tick = \"200ms\"\n").
	extra string
}

// gateway is one mailgate instance under test with its two downstreams.
type gateway struct {
	t       *testing.T
	dir     string
	cfgPath string
	inAddr  string // inbound (MX) listener
	outAddr string // outbound relay listener, "" when disabled
	webAddr string // console and API listener, "" when disabled
	// subAddr and subTLSAddr are the submission listener's STARTTLS and
	// implicit TLS addresses, "" when disabled.
	subAddr, subTLSAddr string
	// imapAddr and imapTLSAddr are the IMAP listeners' STARTTLS and
	// implicit TLS addresses, "" when disabled.
	imapAddr, imapTLSAddr string
	sink                  *sink.Sink
	smart                 *sink.Sink // delivery.smart_host
	opts                  options

	mu      sync.Mutex
	proc    *exec.Cmd
	exited  chan struct{}
	waitErr error
	stderr  *syncbuf.Buffer // every run's output, for the log of a failed test
	runs    int
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// deadAddr is a loopback address where nothing listens, so connecting is
// refused at once. It uses 127.0.0.9, where no listener of these tests binds.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// newGateway writes a config, provisions tenant acme (example.test routed to
// the sink, users alice and bob, relay from 127.0.0.1/32) with the CLI and
// starts `mailgate serve`. Cleanup stops it and asserts a graceful exit.
func newGateway(t *testing.T, o options) *gateway {
	t.Helper()
	if binPath == "" {
		t.Fatal("mailgate binary not built")
	}
	g := &gateway{t: t, dir: t.TempDir(), opts: o}
	var err error
	if g.sink, err = sink.Start("127.0.0.1:0", filepath.Join(g.dir, "sink"), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.sink.Close() })
	if g.smart, err = sink.Start("127.0.0.1:0", filepath.Join(g.dir, "smarthost"), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.smart.Close() })

	g.pickPorts()
	g.writeConfig()

	g.cli("tenant", "add", "acme")
	g.cli("domain", "add", "acme", "example.test", "--route", "smtp://"+g.sink.Addr())
	g.cli("user", "add", "alice@example.test", "bob@example.test")
	g.cli("relay", "allow", "acme", "127.0.0.1/32")

	// Registered after the sinks' cleanups, so it runs before them: the
	// server stops while its downstreams are still there.
	t.Cleanup(func() {
		if g.running() {
			g.stop()
		}
		if t.Failed() {
			g.mu.Lock()
			if g.stderr != nil {
				t.Logf("mailgate stderr:\n%s", g.stderr.String())
			}
			g.mu.Unlock()
		}
	})
	for attempt := 1; ; attempt++ {
		err := g.tryStart()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("%v; retrying with other ports", err)
		g.pickPorts()
		g.writeConfig()
	}
	return g
}

// pickPorts chooses the listener addresses.
func (g *gateway) pickPorts() {
	g.inAddr = fmt.Sprintf("127.0.0.1:%d", freePort(g.t))
	g.outAddr = ""
	if g.opts.outbound {
		g.outAddr = fmt.Sprintf("127.0.0.1:%d", freePort(g.t))
	}
	g.subAddr, g.subTLSAddr = "", ""
	if g.opts.submission {
		g.subAddr = fmt.Sprintf("127.0.0.1:%d", freePort(g.t))
		g.subTLSAddr = fmt.Sprintf("127.0.0.1:%d", freePort(g.t))
	}
	g.imapAddr, g.imapTLSAddr = "", ""
	if g.opts.imap {
		g.imapAddr = fmt.Sprintf("127.0.0.1:%d", freePort(g.t))
		g.imapTLSAddr = fmt.Sprintf("127.0.0.1:%d", freePort(g.t))
	}
	g.webAddr = ""
	if g.opts.http {
		g.webAddr = fmt.Sprintf("127.0.0.1:%d", freePort(g.t))
	}
}

func (g *gateway) writeConfig() {
	o := g.opts
	retry := o.retry
	if retry == "" {
		retry = "5s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hostname = %q\n", "mailgate.test")
	fmt.Fprintf(&b, "data_dir = %q\n", filepath.Join(g.dir, "data"))
	fmt.Fprintf(&b, "log_level = %q\n", "info")
	fmt.Fprintf(&b, "[inbound]\nlisten = [%q]\n", g.inAddr)
	if g.outAddr != "" {
		fmt.Fprintf(&b, "[outbound]\nlisten = [%q]\n", g.outAddr)
	}
	if g.webAddr != "" {
		fmt.Fprintf(&b, "[http]\nlisten = %q\n", g.webAddr)
	}
	if g.subAddr != "" {
		fmt.Fprintf(&b, "[submission]\nlisten = [%q]\nlisten_tls = [%q]\n", g.subAddr, g.subTLSAddr)
	}
	if g.imapAddr != "" {
		fmt.Fprintf(&b, "[imap]\nlisten = [%q]\nlisten_tls = [%q]\npoll_interval = %q\n", g.imapAddr, g.imapTLSAddr, "200ms")
	}
	// The anti-spam check stays off: these clients look like spam bots to
	// its header-shape features (plain SMTP from 127.0.0.1 with no reverse
	// DNS, SPF temperror for the made-up sender domains, no Date), and a
	// [SPAM] tag or a per-recipient copy would change what these tests
	// check. The spam verdicts are tested in internal/scan/spam and
	// internal/app.
	fmt.Fprintf(&b, "[checks]\nenabled = [%q, %q, %q, %q, %q]\n", "lists", "structure", "auth", "av", "bec")
	fmt.Fprintf(&b, "[limits]\nmin_free_bytes = 0\n")
	if o.maxMessageBytes > 0 {
		fmt.Fprintf(&b, "max_message_bytes = %d\n", o.maxMessageBytes)
	}
	if o.maxRecipients > 0 {
		fmt.Fprintf(&b, "max_recipients = %d\n", o.maxRecipients)
	}
	fmt.Fprintf(&b, "[queue]\nretry = [%q]\njitter = 0.0\npoll_interval = %q\n", retry, "200ms")
	fmt.Fprintf(&b, "[delivery]\nsmart_host = %q\nconnect_timeout = %q\n", "smtp://"+g.smart.Addr(), "5s")
	b.WriteString(o.extra)
	g.cfgPath = filepath.Join(g.dir, "mailgate.toml")
	if err := os.WriteFile(g.cfgPath, []byte(b.String()), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// cli runs an admin command against the instance's config and returns its
// standard output; a non-zero exit fails the test.
func (g *gateway) cli(args ...string) string {
	g.t.Helper()
	out, err := g.cliIn("", args...)
	if err != nil {
		g.t.Fatalf("mailgate %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// cliIn runs an admin command with stdin; the error carries stderr.
func (g *gateway) cliIn(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append([]string{"-c", g.cfgPath}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// errPortTaken means a listener port chosen by freePort was taken by
// someone else before mailgate bound it; newGateway then picks new ports.
var errPortTaken = errors.New("listen port taken")

// start runs `mailgate serve` and waits until every listener greets.
func (g *gateway) start() {
	g.t.Helper()
	if err := g.tryStart(); err != nil {
		g.t.Fatal(err)
	}
}

func (g *gateway) tryStart() error {
	g.mu.Lock()
	if g.stderr == nil {
		g.stderr = &syncbuf.Buffer{}
	}
	stderr := g.stderr
	g.runs++
	fmt.Fprintf(stderr, "--- mailgate serve, run %d ---\n", g.runs)
	mark := len(stderr.String())
	cmd := exec.Command(binPath, "serve", "-c", g.cfgPath)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		g.mu.Unlock()
		return fmt.Errorf("start mailgate: %w", err)
	}
	g.proc = cmd
	exited := make(chan struct{})
	g.exited = exited
	g.mu.Unlock()
	go func() {
		err := cmd.Wait()
		g.mu.Lock()
		g.waitErr = err
		g.mu.Unlock()
		close(exited)
	}()

	addrs := []string{g.inAddr}
	if g.outAddr != "" {
		addrs = append(addrs, g.outAddr)
	}
	if g.subAddr != "" {
		addrs = append(addrs, g.subAddr)
	}
	if g.imapAddr != "" {
		addrs = append(addrs, g.imapAddr)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		for {
			greeting, err := greet(a)
			if err == nil && (strings.HasPrefix(greeting, "220 mailgate.test ") || a == g.imapAddr && strings.HasPrefix(greeting, "* OK ")) {
				break
			}
			select {
			case <-exited:
				if strings.Contains(stderr.String()[mark:], "address already in use") {
					return fmt.Errorf("%w: %s", errPortTaken, a)
				}
				return fmt.Errorf("mailgate serve exited before listening on %s: %v\n%s", a, g.exitErr(), stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("mailgate serve not greeting on %s after 30s (last: %q, %v)\n%s", a, greeting, err, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// greet reads the SMTP (or IMAP) greeting at addr, so the harness knows
// mailgate (and not some other listener) owns the port, then quits
// politely (an IMAP server answers the SMTP QUIT with BAD and the client
// hangs up).
func greet(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return l, err
	}
	_, err = io.WriteString(c, "QUIT\r\n")
	return l, err
}

func (g *gateway) exitErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waitErr
}

func (g *gateway) running() bool {
	g.mu.Lock()
	ch := g.exited
	g.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and asserts that mailgate exits with status 0 within
// 30 s (its graceful-shutdown budget).
func (g *gateway) stop() {
	g.t.Helper()
	g.sigterm()
	g.waitExit(30 * time.Second)
}

// sigterm asks mailgate to shut down gracefully.
func (g *gateway) sigterm() {
	g.t.Helper()
	g.mu.Lock()
	cmd := g.proc
	g.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		g.t.Errorf("SIGTERM: %v", err)
	}
}

// waitExit asserts that mailgate exits with status 0 within budget,
// killing it otherwise.
func (g *gateway) waitExit(budget time.Duration) {
	g.t.Helper()
	g.mu.Lock()
	cmd, exited := g.proc, g.exited
	g.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(budget):
		cmd.Process.Kill()
		<-exited
		g.t.Errorf("mailgate did not exit within %v of SIGTERM\n%s", budget, g.stderr.String())
		return
	}
	if err := g.exitErr(); err != nil {
		g.t.Errorf("mailgate exited uncleanly after SIGTERM: %v\n%s", err, g.stderr.String())
	}
}

// waitFor polls cond until it holds or timeout passes; desc names what was awaited.
func waitFor(t *testing.T, timeout time.Duration, desc string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, desc)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// messagesWith returns the sink's messages whose data contains s.
func messagesWith(sk *sink.Sink, s string) []sink.Message {
	var out []sink.Message
	for _, m := range sk.Messages() {
		if bytes.Contains(m.Data, []byte(s)) {
			out = append(out, m)
		}
	}
	return out
}

// waitMessage waits for exactly one sink message containing s and returns it.
func waitMessage(t *testing.T, sk *sink.Sink, s string) sink.Message {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("a message containing %q at %s", s, sk.Addr()), func() bool {
		return len(messagesWith(sk, s)) > 0
	})
	ms := messagesWith(sk, s)
	if len(ms) != 1 {
		t.Fatalf("%d messages contain %q, want 1", len(ms), s)
	}
	return ms[0]
}

var queuedAs = regexp.MustCompile(`250 2\.0\.0 OK queued as (\S+)`)

// queueIDs extracts the queue IDs from "250 2.0.0 OK queued as ID" replies in text.
func queueIDs(text string) []string {
	var ids []string
	for _, m := range queuedAs.FindAllStringSubmatch(text, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// reply is one SMTP reply as the Python client saw it.
type reply struct {
	Step string `json:"step"`
	Code int    `json:"code"`
	Msg  string `json:"msg"`
}

func (r reply) String() string { return fmt.Sprintf("%s: %d %s", r.Step, r.Code, r.Msg) }

// pyResult is the JSON printed by testdata/smtpclient.py.
type pyResult struct {
	Replies       []reply           `json:"replies"`
	StartTLS      *reply            `json:"starttls"`
	Auth          *reply            `json:"auth"`
	Disconnected  string            `json:"disconnected"`
	Refused       map[string][2]any `json:"refused"`
	SubjectHeader string            `json:"subject_header"`
	BodyB64       string            `json:"body_b64"`
	ESMTP         []string          `json:"esmtp"`
}

// step returns the replies for one step (mail, rcpt, data) in order.
func (p pyResult) step(name string) []reply {
	var out []reply
	for _, r := range p.Replies {
		if r.Step == name {
			out = append(out, r)
		}
	}
	return out
}

// runPy runs testdata/smtpclient.py with args and decodes its JSON output.
func runPy(t *testing.T, args ...string) pyResult {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		missingPeer(t, python+" not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{filepath.Join("testdata", "smtpclient.py")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("smtpclient.py %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	var res pyResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("smtpclient.py output: %v\n%s", err, stdout.String())
	}
	return res
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, a string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(a)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitQueueEmpty waits until `queue list` reports no message left.
func (g *gateway) waitQueueEmpty() {
	g.t.Helper()
	var out string
	deadline := time.Now().Add(15 * time.Second)
	for {
		out = g.cli("queue", "list")
		if strings.HasSuffix(strings.TrimSpace(out), "\n0 messages") {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("queue not empty after 15s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
