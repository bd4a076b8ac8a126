package extspam

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
)

// Replies recorded from SpamAssassin 4.0.1's spamd.
const (
	replyGTUBESymbols = "SPAMD/1.1 0 EX_OK\r\nContent-length: 81\r\nSpam: True ; 1004.7 / 5.0\r\n\r\n" +
		"GTUBE,MSGID_SHORT,RCVD_ILLEGAL_IP,RDNS_NONE,TVD_SPACE_RATIO,TVD_SPACE_RATIO_MINFP"
	replyHamSymbols = "SPAMD/1.1 0 EX_OK\r\nContent-length: 33\r\nSpam: False ; -0.0 / 5.0\r\n\r\n" +
		"MSGID_SHORT,NO_RECEIVED,NO_RELAYS"
	replyCheck   = "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 7.5 / 5.0\r\n\r\n"
	replyBadLine = "SPAMD/1.0 76 Bad header line: BOGUS SPAMC/1.5\r\n"
)

// reportBody is a REPORT reply body as spamd writes it (LF line endings).
const reportBody = "Spam detection software, running on the system \"vm\",\n" +
	"has identified this incoming email as possible spam.  The original\n" +
	"message has been attached to this so you can view it or label\n" +
	"similar future email.  If you have any questions, see\n" +
	"@@CONTACT_ADDRESS@@ for details.\n\n" +
	"Content preview:  This is the GTUBE test. [...]\n   \n\n" +
	"Content analysis details:   (1004.7 points, 5.0 required)\n\n" +
	" pts rule name              description\n" +
	"---- ---------------------- --------------------------------------------------\n" +
	" 0.0 MSGID_SHORT            Message-ID is unusually short\n" +
	" 1.3 RCVD_ILLEGAL_IP        Received: contains illegal IP address\n" +
	"1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email\n" +
	"-0.5 EXAMPLE_NEG            An invented negative rule whose description is\n" +
	"                            wrapped onto a second line\n" +
	" 2.4 RDNS_NONE              Delivered to internal network by a host with no rDNS\n\n"

func replyReport() string {
	return fmt.Sprintf("SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: True ; 1004.7 / 5.0\r\n\r\n%s", len(reportBody), reportBody)
}

// spamdRequest is what the fake received.
type spamdRequest struct {
	line    string
	headers map[string]string
	body    []byte
	err     error
}

// fakeSpamd accepts connections and lets handle speak to each.
type fakeSpamd struct {
	ln   net.Listener
	mu   sync.Mutex
	reqs []spamdRequest
	wg   sync.WaitGroup
}

func startFakeSpamd(t *testing.T, network string, handle func(c net.Conn, f *fakeSpamd)) *fakeSpamd {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "spamd.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSpamd{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c, f)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

// readRequest parses a SPAMC request as spamd does: line, headers, then
// exactly Content-length bytes.
func (f *fakeSpamd) readRequest(c net.Conn) spamdRequest {
	br := bufio.NewReader(c)
	req := spamdRequest{headers: map[string]string{}}
	line, err := br.ReadString('\n')
	req.line = strings.TrimRight(line, "\r\n")
	for err == nil {
		var h string
		h, err = br.ReadString('\n')
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		req.headers[k] = strings.TrimSpace(v)
	}
	if err == nil {
		n, _ := strconv.Atoi(req.headers["Content-length"])
		req.body = make([]byte, n)
		_, err = io.ReadFull(br, req.body)
	}
	req.err = err
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	return req
}

func (f *fakeSpamd) requests() []spamdRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]spamdRequest(nil), f.reqs...)
}

// answer reads the request and writes reply.
func answer(reply string) func(net.Conn, *fakeSpamd) {
	return func(c net.Conn, f *fakeSpamd) {
		if req := f.readRequest(c); req.err == nil {
			io.WriteString(c, reply)
		}
	}
}

func newSpamdT(t *testing.T, cfg SpamdConfig) *Spamd {
	t.Helper()
	d, err := NewSpamd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var fixedNow = func() time.Time { return time.Date(2025, 11, 22, 13, 0, 0, 0, time.UTC) }

func TestSpamdSpamAndRequest(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			f := startFakeSpamd(t, network, answer(replyGTUBESymbols))
			d := newSpamdT(t, SpamdConfig{Network: network, Address: f.ln.Addr().String(), User: "filter", Now: fixedNow})
			m := newMessage(spamText(), "bob@example.org", "carol@example.org")
			s := rcptSettings(policy.MapSettings{}, map[string]policy.MapSettings{
				"carol@example.org": {"spamassassin.reject_at": "10"},
				"bob@example.org":   {"spamassassin.reject_at": "off"},
			})
			fs, err := d.Check(context.Background(), m, s)
			if err != nil {
				t.Fatal(err)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			req := reqs[0]
			if req.err != nil || req.line != "SYMBOLS SPAMC/1.5" || req.headers["User"] != "filter" {
				t.Errorf("request %q %v %v", req.line, req.headers, req.err)
			}
			wantRcvd := "Received: from mail.example.com (unknown [198.51.100.7])\r\n\tby mailgate (mailgate) with ESMTP;\r\n\tSat, 22 Nov 2025 13:00:00 +0000\r\n"
			if string(req.body) != wantRcvd+spamText() {
				t.Errorf("body sent:\n%q\nwant Received header + message", req.body)
			}

			sc, rej := findSymbol(fs, "SA_SCORE"), findSymbol(fs, "SA_REJECT")
			if sc == nil || rej == nil || len(fs) != 2 {
				t.Fatalf("findings %+v", fs)
			}
			if sc.Check != "spamassassin" || sc.Score != 120 || sc.Action != policy.Header || !sc.Overridable {
				t.Errorf("score finding %+v", sc)
			}
			if sc.Headers[0].Name != "X-Mailgate-SpamAssassin" || sc.Headers[0].Value != "score=1004.70/5.00" {
				t.Errorf("header %+v", sc.Headers)
			}
			if !strings.Contains(sc.Reason, "spam: GTUBE MSGID_SHORT RCVD_ILLEGAL_IP") {
				t.Errorf("reason %q", sc.Reason)
			}
			if len(rej.Rcpts) != 1 || rej.Rcpts[0] != "carol@example.org" || rej.Action != policy.Reject || rej.Code != 550 {
				t.Errorf("reject finding %+v", rej)
			}
		})
	}
}

func TestSpamdHam(t *testing.T) {
	t.Parallel()
	f := startFakeSpamd(t, "tcp", answer(replyHamSymbols))
	d := newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String()})
	fs, err := d.Check(context.Background(), newMessage(hamText), policy.MapSettings{"spamassassin.reject_at": "-5"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 {
		// reject_at -5 is reached by -0.0: the setting is honoured literally
		t.Fatalf("findings %+v", fs)
	}
	if fs[0].Score != 0 || math.Signbit(fs[0].Score) || fs[0].Headers[0].Value != "score=0.00/5.00" {
		t.Errorf("ham finding %+v", fs[0])
	}
	fs, err = d.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
	if err != nil || len(fs) != 1 || !strings.Contains(fs[0].Reason, " ham: MSGID_SHORT NO_RECEIVED NO_RELAYS") {
		t.Fatalf("ham without reject_at: %+v %v", fs, err)
	}
}

func TestSpamdReportAndCheck(t *testing.T) {
	t.Parallel()
	f := startFakeSpamd(t, "tcp", answer(replyReport()))
	d := newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String(), Command: "report"})
	res, err := d.Scan(context.Background(), newMessage(spamText()))
	if err != nil {
		t.Fatal(err)
	}
	if f.requests()[0].line != "REPORT SPAMC/1.5" {
		t.Errorf("request line %q", f.requests()[0].line)
	}
	want := []Symbol{
		{Name: "MSGID_SHORT", Score: 0, Description: "Message-ID is unusually short"},
		{Name: "RCVD_ILLEGAL_IP", Score: 1.3, Description: "Received: contains illegal IP address"},
		{Name: "GTUBE", Score: 1000, Description: "BODY: Generic Test for Unsolicited Bulk Email"},
		{Name: "EXAMPLE_NEG", Score: -0.5, Description: "An invented negative rule whose description is"},
		{Name: "RDNS_NONE", Score: 2.4, Description: "Delivered to internal network by a host with no rDNS"},
	}
	if fmt.Sprint(res.Symbols) != fmt.Sprint(want) || !res.Spam || res.Score != 1004.7 || res.Threshold != 5 {
		t.Errorf("report result %+v", res)
	}
	fs, err := d.Check(context.Background(), newMessage(spamText()), policy.MapSettings{})
	if err != nil || !strings.Contains(fs[0].Reason, ": GTUBE(+1000.00) RDNS_NONE(+2.40) RCVD_ILLEGAL_IP(+1.30) EXAMPLE_NEG(-0.50)") {
		t.Errorf("report reason: %+v %v", fs, err)
	}

	f = startFakeSpamd(t, "tcp", answer(replyCheck))
	d = newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String(), Command: "CHECK"})
	fs, err = d.Check(context.Background(), newMessage(spamText()), policy.MapSettings{"spamassassin.reject_at": "7.5"})
	if err != nil || len(fs) != 2 || fs[0].Score != 72 || fs[1].Symbol != "SA_REJECT" {
		t.Errorf("check: %+v %v", fs, err)
	}
}

func TestSpamdBadReplies(t *testing.T) {
	t.Parallel()
	isReply := func(code int) func(error) bool {
		return func(err error) bool {
			var re *ReplyError
			return errors.As(err, &re) && re.Code == code
		}
	}
	cases := []struct {
		name  string
		reply string
		check func(error) bool
	}{
		{"error code", replyBadLine, isReply(76)},
		{"http", "HTTP/1.1 200 OK\r\n\r\n", isProto},
		{"no spam header", "SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\n\r\nGTUBE", isProto},
		{"nan score", "SPAMD/1.1 0 EX_OK\r\nSpam: True ; NaN / 5.0\r\n\r\n", isProto},
		{"bad flag", "SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1.0 / 5.0\r\n\r\n", isProto},
		{"header without colon", "SPAMD/1.1 0 EX_OK\r\nSpam True\r\n\r\n", isProto},
		{"truncated body", "SPAMD/1.1 0 EX_OK\r\nContent-length: 50\r\nSpam: True ; 1.0 / 5.0\r\n\r\nGTUBE", isProto},
		{"truncated headers", "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1.0 / 5.0\r\n", isProto},
		{"declared oversized", "SPAMD/1.1 0 EX_OK\r\nContent-length: 99999999\r\nSpam: True ; 1.0 / 5.0\r\n\r\n", isProto},
		{"oversized body", "SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1.0 / 5.0\r\n\r\n" + strings.Repeat("RULE_NAME,", 1000), isProto},
		{"endless line", "SPAMD/1.1 0 EX_OK\r\nX: " + strings.Repeat("a", 9000), isProto},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := startFakeSpamd(t, "tcp", answer(c.reply))
			d := newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String(), MaxReply: 4096})
			fs, err := d.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
			if err == nil || !c.check(err) || fs != nil {
				t.Fatalf("got %+v, %v", fs, err)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Errorf("%v counts as unavailable", err)
			}
		})
	}
}

func TestSpamdClosedWithoutReply(t *testing.T) {
	t.Parallel()
	f := startFakeSpamd(t, "tcp", func(c net.Conn, f *fakeSpamd) { f.readRequest(c) })
	d := newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String()})
	_, err := d.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want unavailable", err)
	}
}

func TestSpamdSlowServerTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	f := startFakeSpamd(t, "tcp", func(c net.Conn, f *fakeSpamd) {
		f.readRequest(c)
		<-release // silent until the test ends
	})
	t.Cleanup(func() { close(release) })
	d := newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String(), Timeout: 200 * time.Millisecond})
	_, err := d.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want unavailable by deadline", err)
	}
}

func TestSpamdCallerCancel(t *testing.T) {
	t.Parallel()
	got := make(chan struct{}, 1)
	release := make(chan struct{})
	f := startFakeSpamd(t, "tcp", func(c net.Conn, f *fakeSpamd) {
		f.readRequest(c)
		got <- struct{}{}
		<-release
	})
	t.Cleanup(func() { close(release) })
	d := newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String(), Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-got; cancel() }()
	_, err := d.Check(ctx, newMessage(hamText), policy.MapSettings{})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want the caller's cancellation", err)
	}
}

func TestSpamdConnectionRefused(t *testing.T) {
	t.Parallel()
	for _, cfg := range []SpamdConfig{
		{Address: closedAddr(t)},
		{Address: filepath.Join(t.TempDir(), "missing.sock")},
	} {
		d := newSpamdT(t, cfg)
		_, err := d.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
		var ue *UnavailableError
		if !errors.As(err, &ue) || ue.Op != "dial" || ue.Engine != "spamassassin" {
			t.Errorf("%s: err %v, want unavailable at dial", cfg.Address, err)
		}
	}
}

// A spamd that answers before reading the whole message: an error reply is
// reported as such (not as a timeout), a verdict is refused.
func TestSpamdEarlyReply(t *testing.T) {
	t.Parallel()
	// Larger than loopback socket buffers, so the sender is still busy
	// when the reply arrives.
	big := hamText + strings.Repeat("All work and no play makes a dull message.\r\n", 500000)
	for _, c := range []struct {
		reply string
		check func(error) bool
	}{
		{replyBadLine, func(err error) bool { var re *ReplyError; return errors.As(err, &re) && re.Code == 76 }},
		{replyGTUBESymbols, isProto},
	} {
		release := make(chan struct{})
		f := startFakeSpamd(t, "tcp", func(conn net.Conn, f *fakeSpamd) {
			br := bufio.NewReader(conn)
			br.ReadString('\n')
			io.WriteString(conn, c.reply)
			// Neither read nor close (a close with unread data would reset
			// the connection and could discard the reply in flight).
			<-release
		})
		t.Cleanup(func() { close(release) })
		d := newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String(), MaxSize: 64 << 20, Timeout: 20 * time.Second})
		_, err := d.Check(context.Background(), newMessage(big), policy.MapSettings{})
		if !c.check(err) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("reply %q: err %v", c.reply, err)
		}
	}
}

func TestSpamdSizeHandling(t *testing.T) {
	t.Parallel()
	f := startFakeSpamd(t, "tcp", answer(replyHamSymbols))
	d := newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String(), MaxSize: 100})
	fs, err := d.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
	if err != nil || len(fs) != 1 || fs[0].Symbol != "SA_SKIPPED" || fs[0].Score != 0 {
		t.Fatalf("over MaxSize: %+v %v", fs, err)
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("spamd contacted %d times", n)
	}
	d = newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String()})
	m := newMessage(hamText)
	m.Size = int64(len(hamText)) + 1
	if _, err := d.Check(context.Background(), m, policy.MapSettings{}); !errors.Is(err, errSizeMismatch) {
		t.Errorf("short spool file: %v", err)
	}
	// Without an envelope IP there is no Received header to add, and an
	// unknown size is measured.
	f = startFakeSpamd(t, "tcp", answer(replyHamSymbols))
	d = newSpamdT(t, SpamdConfig{Address: f.ln.Addr().String()})
	m = newMessage(hamText)
	m.Size = 0
	m.Env.ClientIP = netipZero
	if _, err := d.Check(context.Background(), m, policy.MapSettings{}); err != nil {
		t.Fatal(err)
	}
	last := f.requests()[0]
	if string(last.body) != hamText || last.headers["Content-length"] != strconv.Itoa(len(hamText)) {
		t.Errorf("sent %q with Content-length %s", last.body, last.headers["Content-length"])
	}
}

func TestNewSpamdValidates(t *testing.T) {
	t.Parallel()
	bad := []SpamdConfig{
		{Network: "udp"},
		{Command: "PROCESS"},
		{User: "a\r\nX: y"},
		{ReceivedBy: "host (evil)"},
	}
	for _, c := range bad {
		if _, err := NewSpamd(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	d, err := NewSpamd(SpamdConfig{Address: "/run/spamd.sock"})
	if err != nil || d.cfg.Network != "unix" || d.cfg.Command != "SYMBOLS" {
		t.Errorf("defaults: %+v %v", d.cfg, err)
	}
}

func TestSpamdReceivedHeader(t *testing.T) {
	t.Parallel()
	d := newSpamdT(t, SpamdConfig{ReceivedBy: "gw.example.org", Now: fixedNow})
	m := newMessage(hamText)
	m.Env.HopIP = mustAddr("2001:db8::25")
	m.Env.HopHelo = "bad helo\r\nX-Injected: yes"
	m.Env.TLS = true
	m.Env.AuthUser = "alice"
	got := string(d.received(m))
	want := "Received: from bad_helo__X-Injected__yes (unknown [2001:db8::25])\r\n\tby gw.example.org (mailgate) with ESMTPSA;\r\n\tSat, 22 Nov 2025 13:00:00 +0000\r\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
