package extspam

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/scan/spam"
)

// fakeRspamd is an httptest server answering /checkv2 with a fixed reply
// and recording what it was sent.
type fakeRspamd struct {
	srv *httptest.Server

	mu     sync.Mutex
	hits   int
	header http.Header
	body   []byte
	clen   int64
	path   string
}

func newFakeRspamd(t *testing.T, status int, reply []byte) *fakeRspamd {
	t.Helper()
	f := &fakeRspamd{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.hits++
		f.header = r.Header.Clone()
		f.body = b
		f.clen = r.ContentLength
		f.path = r.Method + " " + r.URL.Path
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(reply)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rspamd", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRspamdT(t *testing.T, cfg RspamdConfig) *Rspamd {
	t.Helper()
	r, err := NewRspamd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRspamdRequestAndHam(t *testing.T) {
	t.Parallel()
	f := newFakeRspamd(t, 200, fixture(t, "no_action.json"))
	r := newRspamdT(t, RspamdConfig{URL: f.srv.URL, Password: "s3cret",
		QueueID: func(*policy.Message) string { return "Q1234" }})
	m := newMessage(hamText, "bob@example.org", "carol@example.org")
	// The sender is the hop before a trusted relay: rspamd must judge it,
	// not the relay.
	m.Env.HopIP = netip.MustParseAddr("203.0.113.9")
	m.Env.HopHelo = "outer.example.net"
	m.Env.AuthUser = "alice"
	fs, err := r.Check(context.Background(), m, policy.MapSettings{"rspamd.reject": "true"})
	if err != nil {
		t.Fatal(err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path != "POST /checkv2" {
		t.Errorf("request %q, want POST /checkv2", f.path)
	}
	if string(f.body) != hamText || f.clen != int64(len(hamText)) {
		t.Errorf("body %d bytes (Content-Length %d), want the message's %d bytes", len(f.body), f.clen, len(hamText))
	}
	want := map[string][]string{
		"Ip": {"203.0.113.9"}, "Helo": {"outer.example.net"}, "From": {"alice@example.com"},
		"Rcpt": {"bob@example.org", "carol@example.org"}, "User": {"alice"}, "Queue-Id": {"Q1234"},
		"Password": {"s3cret"},
	}
	for k, v := range want {
		if got := f.header.Values(k); strings.Join(got, ",") != strings.Join(v, ",") {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}

	if len(fs) != 1 {
		t.Fatalf("want one finding (no reject for action \"no action\"), got %+v", fs)
	}
	got := fs[0]
	if got.Check != "rspamd" || got.Symbol != "RSPAMD_SCORE" || got.Action != policy.Header || !got.Overridable {
		t.Errorf("finding %+v", got)
	}
	if want := 48 * 0.9 / 15; math.Abs(got.Score-want) > 1e-9 {
		t.Errorf("score %v, want %v", got.Score, want)
	}
	if len(got.Headers) != 1 || got.Headers[0].Name != "X-Mailgate-Rspamd" || got.Headers[0].Value != "score=0.90/15.00 action=no_action" {
		t.Errorf("headers %+v", got.Headers)
	}
}

func TestRspamdNullSenderAndNoPassword(t *testing.T) {
	t.Parallel()
	f := newFakeRspamd(t, 200, fixture(t, "no_action.json"))
	r := newRspamdT(t, RspamdConfig{URL: f.srv.URL + "/"})
	m := newMessage(hamText)
	m.Env.MailFrom = ""
	if _, err := r.Check(context.Background(), m, policy.MapSettings{}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.header.Get("From") != "<>" || f.header.Get("Ip") != "198.51.100.7" {
		t.Errorf("From %q IP %q", f.header.Get("From"), f.header.Get("Ip"))
	}
	for _, h := range []string{"Password", "User", "Queue-Id"} {
		if _, ok := f.header[h]; ok {
			t.Errorf("header %s sent though not configured", h)
		}
	}
}

func TestRspamdAddHeaderReason(t *testing.T) {
	t.Parallel()
	f := newFakeRspamd(t, 200, fixture(t, "add_header.json"))
	r := newRspamdT(t, RspamdConfig{URL: f.srv.URL})
	fs, err := r.Check(context.Background(), newMessage(hamText), policy.MapSettings{"rspamd.reject": "yes"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Fatalf("findings %+v", fs)
	}
	if want := 48 * 7.3 / 15; math.Abs(fs[0].Score-want) > 1e-9 {
		t.Errorf("score %v, want %v", fs[0].Score, want)
	}
	// Strongest symbol first, with its score.
	if !strings.Contains(fs[0].Reason, ": HFILTER_HOSTNAME_UNKNOWN(+2.50) HFILTER_FROMHOST_NORES_A_OR_MX(+1.50)") {
		t.Errorf("reason %q", fs[0].Reason)
	}
	if fs[0].Headers[0].Value != "score=7.30/15.00 action=add_header" {
		t.Errorf("header %q", fs[0].Headers[0].Value)
	}
}

func TestRspamdRejectPerRecipient(t *testing.T) {
	t.Parallel()
	f := newFakeRspamd(t, 200, fixture(t, "gtube.json"))
	r := newRspamdT(t, RspamdConfig{URL: f.srv.URL})
	m := newMessage(spamText(), "bob@example.org", "carol@example.org")
	s := rcptSettings(policy.MapSettings{}, map[string]policy.MapSettings{
		"bob@example.org": {"rspamd.reject": "true"},
	})
	fs, err := r.Check(context.Background(), m, s)
	if err != nil {
		t.Fatal(err)
	}
	score := findSymbol(fs, "RSPAMD_SCORE")
	rej := findSymbol(fs, "RSPAMD_REJECT")
	if score == nil || rej == nil || len(fs) != 2 {
		t.Fatalf("findings %+v", fs)
	}
	if math.Abs(score.Score-48) > 1e-9 {
		t.Errorf("score at the threshold is %v, want 48 (+3 log-odds)", score.Score)
	}
	if score.Headers[0].Value != "score=15.00/15.00 action=reject" {
		t.Errorf("header %q", score.Headers[0].Value)
	}
	if rej.Action != policy.Reject || rej.Code != 550 || rej.Enhanced != "5.7.1" || !rej.Overridable ||
		strings.Contains(strings.ToLower(rej.Public), "rspamd") || len(rej.Rcpts) != 1 || rej.Rcpts[0] != "bob@example.org" {
		t.Errorf("reject finding %+v", rej)
	}
	vs := policy.Resolve(m.Env.Rcpts, fs)
	if vs[0].Action != policy.Reject || vs[1].Action != policy.Header {
		t.Errorf("verdicts bob=%v carol=%v", vs[0].Action, vs[1].Action)
	}
	// An allow-list match waives the reject.
	allow := append(fs, policy.Finding{Check: "lists", Symbol: "ALLOW", Action: policy.Allow})
	if vs := policy.Resolve(m.Env.Rcpts, allow); vs[0].Action != policy.Allow {
		t.Errorf("allow-listed bob got %v", vs[0].Action)
	}
}

func TestRspamdRejectDefaultOff(t *testing.T) {
	t.Parallel()
	f := newFakeRspamd(t, 200, fixture(t, "gtube.json"))
	r := newRspamdT(t, RspamdConfig{URL: f.srv.URL})
	for _, v := range []string{"", "false", "maybe"} {
		s := policy.MapSettings{}
		if v != "" {
			s["rspamd.reject"] = v
		}
		fs, err := r.Check(context.Background(), newMessage(spamText()), s)
		if err != nil {
			t.Fatal(err)
		}
		if findSymbol(fs, "RSPAMD_REJECT") != nil {
			t.Errorf("rspamd.reject=%q rejected", v)
		}
	}
}

func TestRspamdBadReplies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		reply  string
		check  func(error) bool
	}{
		{"not json", 200, "<html>hello</html>", isProto},
		{"truncated json", 200, `{"score": 1.0, "required_score": 15.0, "action": "no ac`, isProto},
		{"no score", 200, `{"required_score": 15.0, "action": "no action", "symbols": {}}`, isProto},
		{"symbols wrong type", 200, `{"score": 1, "action": "no action", "symbols": []}`, isProto},
		{"oversized", 200, `{"score": 1, "action": "no action", "messages": {"x": "` + strings.Repeat("a", 5000) + `"}}`, isProto},
		{"error status", 500, `{"error":"cannot parse input"}`, func(err error) bool {
			var re *ReplyError
			return errors.As(err, &re) && re.Code == 500 && re.Message == "cannot parse input"
		}},
		{"too large status", 413, "", func(err error) bool {
			var re *ReplyError
			return errors.As(err, &re) && re.Code == 413
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeRspamd(t, c.status, []byte(c.reply))
			r := newRspamdT(t, RspamdConfig{URL: f.srv.URL, MaxReply: 4096})
			fs, err := r.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
			if err == nil || !c.check(err) || fs != nil {
				t.Fatalf("got %+v, %v", fs, err)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Errorf("a reply was received, yet %v counts as unavailable", err)
			}
		})
	}
}

func isProto(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe)
}

func TestRspamdSlowServerTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	r := newRspamdT(t, RspamdConfig{URL: srv.URL, Timeout: 200 * time.Millisecond})
	_, err := r.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want unavailable by deadline", err)
	}
}

func TestRspamdCallerCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	r := newRspamdT(t, RspamdConfig{URL: srv.URL, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := r.Check(ctx, newMessage(hamText), policy.MapSettings{})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want the caller's cancellation", err)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRspamdConnectionRefused(t *testing.T) {
	t.Parallel()
	r := newRspamdT(t, RspamdConfig{URL: "http://" + closedAddr(t), Timeout: 5 * time.Second})
	_, err := r.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Engine != "rspamd" || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want unavailable (refused)", err)
	}
}

func TestRspamdSizeHandling(t *testing.T) {
	t.Parallel()
	f := newFakeRspamd(t, 200, fixture(t, "no_action.json"))
	r := newRspamdT(t, RspamdConfig{URL: f.srv.URL, MaxSize: 100})

	// Over MaxSize: not sent, a zero-score finding instead of an error.
	fs, err := r.Check(context.Background(), newMessage(hamText), policy.MapSettings{})
	if err != nil || len(fs) != 1 || fs[0].Symbol != "RSPAMD_SKIPPED" || fs[0].Score != 0 || fs[0].Action != policy.Continue {
		t.Fatalf("over MaxSize: %+v, %v", fs, err)
	}
	// Unknown size: measured by reading at most MaxSize+1 bytes.
	m := newMessage(hamText)
	m.Size = 0
	if fs, err := r.Check(context.Background(), m, policy.MapSettings{}); err != nil || fs[0].Symbol != "RSPAMD_SKIPPED" {
		t.Fatalf("unknown size over MaxSize: %+v, %v", fs, err)
	}
	f.mu.Lock()
	if f.hits != 0 {
		t.Errorf("rspamd contacted %d times for oversized messages", f.hits)
	}
	f.mu.Unlock()

	r = newRspamdT(t, RspamdConfig{URL: f.srv.URL})
	if _, err := r.Check(context.Background(), m, policy.MapSettings{}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	if string(f.body) != hamText || f.clen != int64(len(hamText)) {
		t.Errorf("unknown size: sent %d bytes, Content-Length %d", len(f.body), f.clen)
	}
	f.mu.Unlock()

	// A spool file that does not match the recorded size must not be judged.
	for _, size := range []int64{int64(len(hamText)) + 10, int64(len(hamText)) - 10} {
		m := newMessage(hamText)
		m.Size = size
		fs, err := r.Check(context.Background(), m, policy.MapSettings{})
		if !errors.Is(err, errSizeMismatch) || fs != nil {
			t.Errorf("size %d for %d bytes: %+v, %v", size, len(hamText), fs, err)
		}
	}
}

func TestNewRspamdValidates(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://127.0.0.1/", "127.0.0.1:11333", "http://"} {
		if _, err := NewRspamd(RspamdConfig{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if _, err := NewRspamd(RspamdConfig{Password: "a\r\nX-Evil: 1"}); err == nil {
		t.Error("password with CRLF accepted")
	}
	r, err := NewRspamd(RspamdConfig{})
	if err != nil || r.url != "http://127.0.0.1:11333/checkv2" {
		t.Errorf("default URL %q, %v", r.url, err)
	}
	r, _ = NewRspamd(RspamdConfig{URL: "http://[::1]:11333/checkv2"})
	if r.url != "http://[::1]:11333/checkv2" {
		t.Errorf("explicit /checkv2 URL became %q", r.url)
	}
}

func TestParseRspamdFixtures(t *testing.T) {
	t.Parallel()
	res, err := parseRspamdReply(fixture(t, "gtube.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Skipped || res.Action != "reject" || res.Score != 15 || res.RequiredScore != 15 ||
		len(res.Symbols) != 1 || res.Symbols[0].Name != "GTUBE" || res.MessageID != "x@example.com" {
		t.Errorf("gtube: %+v", res)
	}
	res, err = parseRspamdReply(fixture(t, "add_header.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped || res.Action != "add header" || len(res.Symbols) != 19 {
		t.Errorf("add header: %+v", res)
	}
	first := res.Symbols[0]
	if first.Name != "HFILTER_HOSTNAME_UNKNOWN" || first.Score != 2.5 ||
		first.Description != "Unknown client hostname (PTR or FCrDNS verification failed)" {
		t.Errorf("strongest symbol %+v", first)
	}
	for i := 1; i < len(res.Symbols); i++ {
		if math.Abs(res.Symbols[i].Score) > math.Abs(res.Symbols[i-1].Score) {
			t.Errorf("symbols not strongest first at %d: %+v", i, res.Symbols)
		}
	}
}

func TestMapScore(t *testing.T) {
	t.Parallel()
	cases := []struct{ score, threshold, def, want float64 }{
		{5, 5, 5, 48},             // the engine's threshold is +3 log-odds
		{15, 15, 15, 48},          // rspamd's reject score likewise
		{2.5, 5, 5, 24},           // linear
		{-2, 5, 5, -19.2},         // negative evidence stays negative
		{1000, 5, 5, 120},         // GTUBE is clipped
		{-1000, 5, 5, -120},       // and so is a huge negative score
		{7.5, 0, 5, 72},           // missing threshold: the default
		{7.5, -3, 5, 72},          // negative threshold: the default
		{7.5, math.Inf(1), 5, 72}, // infinite threshold: the default
		{math.Copysign(0, -1), 5, 5, 0},
	}
	for _, c := range cases {
		got := MapScore(c.score, c.threshold, c.def)
		if math.Abs(got-c.want) > 1e-9 || math.Signbit(got) != math.Signbit(c.want) {
			t.Errorf("MapScore(%v, %v, %v) = %v, want %v", c.score, c.threshold, c.def, got, c.want)
		}
	}
	// In the spam stage's combination (Score/16 log-odds) an engine exactly
	// at its threshold alone gives about 95%.
	for _, check := range []string{RspamdName, SpamAssassinName} {
		p, _ := spam.Combine([]policy.Finding{{Check: check, Symbol: "X_SCORE", Score: MapScore(15, 15, 15)}})
		if p < 94 || p > 96 {
			t.Errorf("%s at its threshold alone gives %.1f%%", check, p)
		}
	}
}
