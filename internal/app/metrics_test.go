package app_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// scrape reads /metrics through the node's HTTP handler from loopback and
// returns every sample by its series as exposed (name{labels}).
func scrape(t *testing.T, n *mgtest.Node) map[string]float64 {
	t.Helper()
	h, err := n.App.Web()
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body.String())
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsCountASMTPSession(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{})
	before := scrape(t, n)
	moved := func(after map[string]float64, series string) float64 { return after[series] - before[series] }

	c, err := smtp.Dial(n.InboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@example.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("someone@elsewhere.test", nil); err == nil {
		t.Fatal("relay accepted")
	}
	if err := c.Rcpt("alice@example.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("From: sender@example.net\r\nTo: alice@example.test\r\nSubject: metrics\r\n\r\nHello.\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// While the session is open it is counted as open.
	if got := scrape(t, n)[`mailgate_smtp_sessions{listener="inbound"}`]; got != 1 {
		t.Fatalf("open inbound sessions %v, want 1", got)
	}
	c.Quit()
	mgtest.WaitFor(t, 10*time.Second, "delivery", func() bool { return len(n.Down.Messages()) == 1 })
	var after map[string]float64
	// The queue figures are cached for a few seconds, so they may show the
	// message queued for a moment after its delivery.
	mgtest.WaitFor(t, 20*time.Second, "session closed, delivery counted, queue empty", func() bool {
		after = scrape(t, n)
		return after[`mailgate_smtp_sessions{listener="inbound"}`] == 0 && moved(after, `mailgate_delivery_results_total{result="delivered"}`) == 1 &&
			after[`mailgate_queue_recipients{state="queued"}`] == 0
	})
	for series, want := range map[string]float64{
		`mailgate_smtp_sessions_total{listener="inbound"}`:                                        1,
		`mailgate_smtp_sessions_total{listener="outbound"}`:                                       0,
		`mailgate_messages_accepted_total{listener="inbound"}`:                                    1,
		`mailgate_smtp_replies_total{class="2xx",code="250",enhanced="2.0.0",listener="inbound"}`: 3, // MAIL, RCPT, DATA
		`mailgate_smtp_replies_total{class="5xx",code="554",enhanced="5.7.1",listener="inbound"}`: 1, // relay refused
		`mailgate_delivery_results_total{result="deferred"}`:                                      0,
		`mailgate_check_duration_seconds_count{check="auth"}`:                                     1,
		`mailgate_check_duration_seconds_count{check="spf"}`:                                      1,
		`mailgate_check_duration_seconds_count{check="dkim"}`:                                     1,
		`mailgate_check_duration_seconds_count{check="dmarc"}`:                                    1,
		`mailgate_check_duration_seconds_count{check="spam"}`:                                     1,
		`mailgate_check_verdicts_total{check="dkim",result="none"}`:                               1,
		`mailgate_check_verdicts_total{check="spf",result="temperror"}`:                           1, // no resolver configured
		`mailgate_clamd_errors_total`:                                                             0,
		`mailgate_store_errors_total{op="accept"}`:                                                0,
	} {
		if got := moved(after, series); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	// Gauges read from the store: the message left the queue.
	for _, series := range []string{`mailgate_queue_recipients{state="queued"}`, `mailgate_queue_recipients{state="deferred"}`,
		`mailgate_queue_recipients{state="held"}`, `mailgate_queue_oldest_age_seconds`, `mailgate_archive_backlog_messages`} {
		if v, ok := after[series]; !ok || v != 0 {
			t.Errorf("%s = %v (exposed %v), want 0", series, v, ok)
		}
	}
}

func TestMetricsCountIMAPCommands(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{IMAP: true})
	before := scrape(t, n)
	c, err := net.Dial("tcp", n.App.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	readUntil := func(tag string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading until %s: %v", tag, err)
			}
			if strings.HasPrefix(line, tag) {
				return
			}
		}
	}
	readUntil("*") // greeting
	for _, cmd := range []string{"a1 CAPABILITY", "a2 NOOP"} {
		io.WriteString(c, cmd+"\r\n")
		readUntil(strings.Fields(cmd)[0])
	}
	// An unknown command before login ends the session.
	io.WriteString(c, "a3 XYZZY\r\n")
	readUntil("* BYE")
	after := scrape(t, n)
	for series, want := range map[string]float64{
		`mailgate_imap_sessions_total`:                       1,
		`mailgate_imap_commands_total{command="CAPABILITY"}`: 1,
		`mailgate_imap_commands_total{command="NOOP"}`:       1,
		`mailgate_imap_commands_total{command="OTHER"}`:      1,
	} {
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
}

func TestMetricsCountOutboundActions(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{})
	before := scrape(t, n)
	c, err := smtp.Dial(n.OutboundAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("alice@example.test", []string{"partner@elsewhere.test"},
		strings.NewReader("From: alice@example.test\r\nTo: partner@elsewhere.test\r\nSubject: hi\r\n\r\nHello.\r\n")); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, n)
	for series, want := range map[string]float64{
		`mailgate_outbound_actions_total{action="continue"}`:                                       1,
		`mailgate_messages_accepted_total{listener="outbound"}`:                                    1,
		`mailgate_smtp_replies_total{class="2xx",code="250",enhanced="2.0.0",listener="outbound"}`: 3,
	} {
		if got := after[series] - before[series]; got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
}
