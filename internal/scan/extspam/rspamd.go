package extspam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
)

// DefaultRspamdURL is rspamd's normal worker on the local host.
const DefaultRspamdURL = "http://127.0.0.1:11333"

// defaultRspamdThreshold is rspamd's default reject score, used when a
// reply carries no usable required_score.
const defaultRspamdThreshold = 15.0

// RspamdConfig configures the rspamd check. Zero values take the defaults
// in brackets.
type RspamdConfig struct {
	// URL of the normal worker ["http://127.0.0.1:11333"]; "/checkv2" is
	// appended unless the path already names it.
	URL string
	// Password is sent in the Password header, for a worker or proxy that
	// requires one; empty sends none.
	Password string
	// Timeout bounds one message's whole exchange [10s].
	Timeout time.Duration
	// MaxSize is the largest message sent, in bytes [10 MiB]; larger ones
	// get a zero-score RSPAMD_SKIPPED finding.
	MaxSize int64
	// MaxReply bounds the reply body in bytes [1 MiB].
	MaxReply int64
	// Transport replaces the HTTP transport (TLS to a remote worker, tests).
	// The default dials directly and never uses a proxy from the environment.
	Transport http.RoundTripper
	// QueueID and Hostname, when set, supply rspamd's Queue-Id header (for
	// its logs) and Hostname header (the client's verified reverse DNS name;
	// without it rspamd treats the client as having none).
	QueueID  func(*policy.Message) string
	Hostname func(*policy.Message) string
}

// Rspamd is the "rspamd" body check. It holds only configuration and an
// HTTP client and is safe for concurrent use.
type Rspamd struct {
	cfg    RspamdConfig
	url    string
	client *http.Client
}

var _ policy.BodyCheck = (*Rspamd)(nil)

// NewRspamd returns an rspamd check; it fails when the URL is not an
// http(s) URL.
func NewRspamd(cfg RspamdConfig) (*Rspamd, error) {
	if cfg.URL == "" {
		cfg.URL = DefaultRspamdURL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("rspamd url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rspamd url %q: want http://host:port", cfg.URL)
	}
	if !strings.HasSuffix(u.Path, "/checkv2") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/checkv2"
	}
	if strings.ContainsAny(cfg.Password, "\r\n\x00") {
		return nil, errors.New("rspamd password contains a line break or NUL")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = defaultMaxSize
	}
	if cfg.MaxReply <= 0 {
		cfg.MaxReply = defaultMaxReply
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:               nil, // mail must not leave through an environment proxy
			DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     60 * time.Second,
			DisableCompression:  true,
		}
	}
	return &Rspamd{cfg: cfg, url: u.String(), client: &http.Client{
		Transport: tr,
		// rspamd never redirects; following one could send the message elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// Close releases idle keep-alive connections to rspamd. The check stays
// usable; it is for shutdown and reconfiguration.
func (r *Rspamd) Close() error {
	r.client.CloseIdleConnections()
	return nil
}

// Name returns "rspamd".
func (r *Rspamd) Name() string { return RspamdName }

// RspamdResult is rspamd's verdict on one message.
type RspamdResult struct {
	Score         float64
	RequiredScore float64 // rspamd's reject threshold; 0 when it gave none
	// Action is rspamd's action, sanitised: "no action", "greylist",
	// "add header", "rewrite subject", "soft reject", "reject" or a custom one.
	Action    string
	Skipped   bool     // rspamd stopped early (pre-result such as GTUBE, or settings)
	Symbols   []Symbol // strongest first
	MessageID string   // as rspamd read it, sanitised
}

// rspamdReply is the part of the /checkv2 JSON reply mailgate reads.
type rspamdReply struct {
	IsSkipped     bool                    `json:"is_skipped"`
	Score         *float64                `json:"score"`
	RequiredScore float64                 `json:"required_score"`
	Action        *string                 `json:"action"`
	Symbols       map[string]rspamdSymbol `json:"symbols"`
	MessageID     string                  `json:"message-id"`
}

type rspamdSymbol struct {
	Name        string   `json:"name"`
	Score       float64  `json:"score"`
	Description string   `json:"description"`
	Options     []string `json:"options"`
}

// parseRspamdReply decodes a 200 reply body. Fields mailgate does not use
// are ignored; score and action are required.
func parseRspamdReply(data []byte) (*RspamdResult, error) {
	var rep rspamdReply
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, &ProtocolError{Engine: RspamdName, Reason: "reply is not rspamd JSON: " + err.Error(), Reply: sanitize(string(data), replyClip)}
	}
	if rep.Score == nil || rep.Action == nil {
		return nil, &ProtocolError{Engine: RspamdName, Reason: "reply lacks score or action", Reply: sanitize(string(data), replyClip)}
	}
	res := &RspamdResult{
		Score:         *rep.Score,
		RequiredScore: math.Max(0, rep.RequiredScore),
		Action:        strings.ToLower(sanitize(*rep.Action, 32)),
		Skipped:       rep.IsSkipped,
		MessageID:     sanitize(rep.MessageID, maxTextLen),
	}
	for key, s := range rep.Symbols {
		if len(res.Symbols) == maxSymbols {
			break
		}
		name := s.Name
		if name == "" {
			name = key
		}
		sym := Symbol{Name: token(name, maxNameLen), Score: s.Score, Description: sanitize(s.Description, maxTextLen)}
		for i, o := range s.Options {
			if i == 8 {
				break
			}
			sym.Options = append(sym.Options, sanitize(o, maxTextLen))
		}
		res.Symbols = append(res.Symbols, sym)
	}
	// Map order is random: sort so results and reasons are reproducible.
	sort.Slice(res.Symbols, func(i, j int) bool {
		a, b := res.Symbols[i], res.Symbols[j]
		if math.Abs(a.Score) != math.Abs(b.Score) {
			return math.Abs(a.Score) > math.Abs(b.Score)
		}
		return a.Name < b.Name
	})
	return res, nil
}

// setHeader sets a header under exactly the name given: rspamd documents
// "IP", and Go would canonicalise it to "Ip".
func setHeader(h http.Header, name, value string) {
	h[name] = append(h[name], strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, value))
}

// Scan sends m to rspamd and returns its verdict. The message is streamed
// from m.Open with a Content-Length, with the envelope in rspamd's request
// headers (IP and Helo of the sender as policy.Envelope.SenderIP sees it,
// From, one Rcpt per recipient, User when authenticated).
//
// Errors: ErrTooLarge (not sent); *UnavailableError (unreachable, timeout,
// connection broken); *ReplyError (HTTP status other than 200);
// *ProtocolError (reply not rspamd's JSON, or over MaxReply); an error
// wrapping ctx.Err() when ctx ends.
func (r *Rspamd) Scan(ctx context.Context, m *policy.Message) (*RspamdResult, error) {
	b, err := openBody(m, nil, r.cfg.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("rspamd: %w", err)
	}
	defer b.Close()
	sctx, cancel := withTimeout(ctx, r.cfg.Timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(sctx, http.MethodPost, r.url, b)
	if err != nil {
		return nil, fmt.Errorf("rspamd request: %w", err)
	}
	req.ContentLength = b.size
	if b.size == 0 {
		req.Body = http.NoBody
	}
	h := req.Header
	if e := m.Env; e != nil {
		if ip := e.SenderIP(); ip.IsValid() {
			setHeader(h, "IP", ip.Unmap().String())
		}
		if helo := e.SenderHelo(); helo != "" {
			setHeader(h, "Helo", helo)
		}
		if e.MailFrom != "" {
			setHeader(h, "From", e.MailFrom)
		} else {
			setHeader(h, "From", "<>") // null reverse-path (RFC 5321 4.5.5)
		}
		for _, rc := range e.Rcpts {
			setHeader(h, "Rcpt", rc.Addr)
		}
		if e.AuthUser != "" {
			setHeader(h, "User", e.AuthUser)
		}
	}
	if r.cfg.QueueID != nil {
		if id := r.cfg.QueueID(m); id != "" {
			setHeader(h, "Queue-Id", id)
		}
	}
	if r.cfg.Hostname != nil {
		if hn := r.cfg.Hostname(m); hn != "" {
			setHeader(h, "Hostname", hn)
		}
	}
	if r.cfg.Password != "" {
		setHeader(h, "Password", r.cfg.Password)
	}

	resp, err := r.client.Do(req)
	if err != nil {
		return nil, classify(ctx, sctx, b, RspamdName, "request", r.url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxReply+1))
	if err != nil {
		return nil, classify(ctx, sctx, nil, RspamdName, "read", r.url, err)
	}
	// The transport closes the body once it has sent it; only then is it
	// known that the message matched its recorded size.
	if b.size > 0 {
		select {
		case <-b.done:
		case <-sctx.Done():
			return nil, classify(ctx, sctx, b, RspamdName, "request", r.url, sctx.Err())
		}
		if err := b.readErr(); err != nil {
			return nil, fmt.Errorf("rspamd: reading message: %w", err)
		}
	}
	if int64(len(data)) > r.cfg.MaxReply {
		return nil, &ProtocolError{Engine: RspamdName, Reason: fmt.Sprintf("reply larger than %d bytes", r.cfg.MaxReply)}
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(data))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, &ReplyError{Engine: RspamdName, Code: resp.StatusCode, Message: sanitize(msg, replyClip)}
	}
	return parseRspamdReply(data)
}

// rspamdReject reads rspamd.reject for one recipient.
func rspamdReject(s policy.Settings) bool {
	v, ok := s.Get("rspamd.reject")
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "yes", "on":
			return true
		}
		return false
	}
	return b
}

// Check scans m with rspamd and returns the RSPAMD_SCORE finding, plus an
// RSPAMD_REJECT finding for recipients with rspamd.reject set when rspamd's
// action is "reject". Errors are those of Scan, except that a message over
// MaxSize yields an RSPAMD_SKIPPED finding instead.
func (r *Rspamd) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	res, err := r.Scan(ctx, m)
	if errors.Is(err, ErrTooLarge) {
		return skippedFinding(RspamdName, "RSPAMD_SKIPPED", m.Size, r.cfg.MaxSize), nil
	}
	if err != nil {
		return nil, err
	}
	action := token(strings.ReplaceAll(res.Action, " ", "_"), 32)
	threshold := res.RequiredScore
	if threshold <= 0 {
		threshold = defaultRspamdThreshold
	}
	reason := fmt.Sprintf("rspamd %s/%s action=%s", formatScore(res.Score), formatScore(threshold), action)
	if res.Skipped {
		reason += " (stopped early)"
	}
	if top := topSymbols(res.Symbols, reasonSymbols, true); top != "" {
		reason += ": " + top
	}
	out := []policy.Finding{{
		Check: RspamdName, Symbol: "RSPAMD_SCORE", Action: policy.Header, Overridable: true,
		Score:  MapScore(res.Score, res.RequiredScore, defaultRspamdThreshold),
		Reason: reason,
		Headers: []policy.HeaderField{{Name: "X-Mailgate-Rspamd",
			Value: fmt.Sprintf("score=%s/%s action=%s", formatScore(res.Score), formatScore(threshold), action)}},
	}}
	if res.Action == "reject" {
		out = append(out, rejectFinding(m, s, rspamdReject, RspamdName, "RSPAMD_REJECT", reason)...)
	}
	return out, nil
}
