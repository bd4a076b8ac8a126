package extspam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/policy"
)

// DefaultSpamdAddress is spamd's default TCP listener.
const DefaultSpamdAddress = "127.0.0.1:783"

// defaultSAThreshold is SpamAssassin's default required_score.
const defaultSAThreshold = 5.0

// SpamdConfig configures the spamassassin check. Zero values take the
// defaults in brackets.
type SpamdConfig struct {
	// Network is "tcp" or "unix" ["unix" when Address contains a slash,
	// else "tcp"].
	Network string
	// Address is host:port or a socket path ["127.0.0.1:783"].
	Address string
	// User is sent in the User header: the user whose preferences spamd
	// applies (spamc -u); empty sends none.
	User string
	// Command is SYMBOLS, REPORT or CHECK [SYMBOLS]. SYMBOLS lists the
	// matched rules by name; REPORT also gives each rule's points (parsed
	// from SpamAssassin's default report layout); CHECK gives only the score.
	Command string
	// Timeout bounds one message's whole exchange, connecting included [20s].
	Timeout time.Duration
	// MaxSize is the largest message sent, in bytes [500 KiB, spamc's
	// default]; larger ones get a zero-score SA_SKIPPED finding.
	MaxSize int64
	// MaxReply bounds the whole reply in bytes [256 KiB].
	MaxReply int64
	// ReceivedBy names this host in the Received header prepended to the
	// copy sent to spamd ["mailgate"].
	ReceivedBy string
	// Dialer replaces net.Dialer (tests, proxies).
	Dialer interface {
		DialContext(ctx context.Context, network, address string) (net.Conn, error)
	}
	// Now replaces time.Now for the Received header's date.
	Now func() time.Time
}

// Spamd is the "spamassassin" body check. It opens one connection per
// message (spamd answers one request per connection) and is safe for
// concurrent use; spamd's own child count provides the back-pressure.
type Spamd struct {
	cfg SpamdConfig
}

var _ policy.BodyCheck = (*Spamd)(nil)

// NewSpamd returns a spamassassin check; it fails on an unknown Network or
// Command, or a User or ReceivedBy that could break the request.
func NewSpamd(cfg SpamdConfig) (*Spamd, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultSpamdAddress
	}
	if cfg.Network == "" {
		cfg.Network = "tcp"
		if strings.Contains(cfg.Address, "/") {
			cfg.Network = "unix"
		}
	}
	switch cfg.Network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("spamd network %q: want tcp or unix", cfg.Network)
	}
	cfg.Command = strings.ToUpper(cfg.Command)
	switch cfg.Command {
	case "":
		cfg.Command = "SYMBOLS"
	case "SYMBOLS", "REPORT", "CHECK":
	default:
		return nil, fmt.Errorf("spamd command %q: want SYMBOLS, REPORT or CHECK", cfg.Command)
	}
	if strings.ContainsAny(cfg.User, "\r\n\x00 \t") {
		return nil, errors.New("spamd user contains white space, a line break or NUL")
	}
	if cfg.ReceivedBy == "" {
		cfg.ReceivedBy = "mailgate"
	}
	if token(cfg.ReceivedBy, 255) != cfg.ReceivedBy {
		return nil, fmt.Errorf("spamd ReceivedBy %q is not a host name", cfg.ReceivedBy)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = defaultSAMax
	}
	if cfg.MaxReply <= 0 {
		cfg.MaxReply = defaultSAReply
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Spamd{cfg: cfg}, nil
}

// Name returns "spamassassin".
func (d *Spamd) Name() string { return SpamAssassinName }

// SpamdResult is spamd's verdict on one message.
type SpamdResult struct {
	Spam      bool    // SpamAssassin's own verdict (score >= threshold)
	Score     float64 // points
	Threshold float64 // required_score for the user
	// Symbols are the rules that matched: names only for SYMBOLS, with
	// points and descriptions for REPORT, none for CHECK.
	Symbols []Symbol
}

// received formats the Received header that stands in for mailgate's own
// (policy.Message.Open leaves it out), so SpamAssassin's relay analysis
// (RDNS_NONE, HELO and DNSBL rules on the first untrusted relay) sees the
// connecting host. It names the sender as policy.Envelope.SenderIP does.
// The layout is Postfix's, which SpamAssassin parses; RFC 5322 3.6.7.
func (d *Spamd) received(m *policy.Message) []byte {
	if m.Env == nil {
		return nil
	}
	ip := m.Env.SenderIP()
	if !ip.IsValid() {
		return nil
	}
	helo := token(m.Env.SenderHelo(), 255)
	if helo == "" {
		helo = "unknown"
	}
	proto := "ESMTP"
	if m.Env.TLS {
		proto = "ESMTPS"
	}
	if m.Env.AuthUser != "" {
		proto += "A"
	}
	return fmt.Appendf(nil, "Received: from %s (unknown [%s])\r\n\tby %s (mailgate) with %s;\r\n\t%s\r\n",
		helo, ip.Unmap().String(), d.cfg.ReceivedBy, proto, d.cfg.Now().Format(time.RFC1123Z))
}

// Scan sends m to spamd and returns its verdict. The message is streamed
// with a Content-length, preceded by a Received header for the connecting
// host; the reply is read concurrently so an early error reply from spamd
// is seen. Scan returns only after it has stopped reading m.
//
// Errors: ErrTooLarge (not sent); *UnavailableError (unreachable, timeout,
// connection broken before a full reply); *ReplyError (spamd answered with
// a non-zero EX_* code); *ProtocolError (not a SPAMD reply, over MaxReply,
// or a verdict before the whole message was sent); an error wrapping
// ctx.Err() when ctx ends.
func (d *Spamd) Scan(ctx context.Context, m *policy.Message) (*SpamdResult, error) {
	b, err := openBody(m, d.received(m), d.cfg.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("spamd: %w", err)
	}
	defer b.Close()
	sctx, cancel := withTimeout(ctx, d.cfg.Timeout)
	defer cancel()

	conn, err := d.cfg.Dialer.DialContext(sctx, d.cfg.Network, d.cfg.Address)
	if err != nil {
		return nil, classify(ctx, sctx, nil, SpamAssassinName, "dial", d.cfg.Address, err)
	}
	defer conn.Close()
	if dl, ok := sctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Cancellation closes the connection, which unblocks reads and writes.
	stop := context.AfterFunc(sctx, func() { conn.Close() })
	defer stop()

	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "%s SPAMC/1.5\r\nContent-length: %d\r\n", d.cfg.Command, b.size)
	if d.cfg.User != "" {
		fmt.Fprintf(&hdr, "User: %s\r\n", d.cfg.User)
	}
	hdr.WriteString("\r\n")

	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, io.MultiReader(&hdr, b))
		if err != nil {
			// spamd would wait for the rest of Content-length: end the
			// exchange so the reader does not wait for the timeout.
			conn.Close()
		} else if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			// Like spamc: half-close, so a spamd waiting for more sees EOF.
			cw.CloseWrite()
		}
		sent <- err
	}()

	res, rerr := readSpamdReply(conn, d.cfg.Command, d.cfg.MaxReply)
	var werr error
	select {
	case werr = <-sent:
	default:
		// The reply (or a failure) came before the sender finished: spamd
		// will read no more, so stop sending rather than wait for a timeout.
		conn.Close()
		werr = <-sent
	}
	if merr := b.readErr(); merr != nil {
		return nil, fmt.Errorf("spamd: reading message: %w", merr)
	}
	var re *ReplyError
	switch {
	case errors.As(rerr, &re):
		return nil, rerr
	case rerr != nil:
		if werr != nil && sctx.Err() == nil && !isProtocol(rerr) {
			rerr = fmt.Errorf("%w (sending: %w)", rerr, werr)
		}
		return nil, classify(ctx, sctx, b, SpamAssassinName, "read", d.cfg.Address, rerr)
	case werr != nil:
		return nil, &ProtocolError{Engine: SpamAssassinName, Reason: "verdict before the whole message was sent"}
	}
	return res, nil
}

func isProtocol(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe)
}

// saRejectAt reads spamassassin.reject_at for one recipient.
func saRejectAt(s policy.Settings) float64 {
	v, ok := s.Get("spamassassin.reject_at")
	if !ok {
		return math.Inf(1)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) {
		return math.Inf(1) // "off", empty, garbage
	}
	return f
}

// Check scans m with spamd and returns the SA_SCORE finding, plus an
// SA_REJECT finding for recipients whose spamassassin.reject_at the score
// reaches. Errors are those of Scan, except that a message over MaxSize
// yields an SA_SKIPPED finding instead.
func (d *Spamd) Check(ctx context.Context, m *policy.Message, s policy.Settings) ([]policy.Finding, error) {
	res, err := d.Scan(ctx, m)
	if errors.Is(err, ErrTooLarge) {
		return skippedFinding(SpamAssassinName, "SA_SKIPPED", m.Size, d.cfg.MaxSize), nil
	}
	if err != nil {
		return nil, err
	}
	threshold := res.Threshold
	if !(threshold > 0) {
		threshold = defaultSAThreshold
	}
	verdict := "ham"
	if res.Spam {
		verdict = "spam"
	}
	reason := fmt.Sprintf("spamassassin %s/%s %s", formatScore(res.Score), formatScore(threshold), verdict)
	if top := topSymbols(res.Symbols, reasonSymbols, d.cfg.Command == "REPORT"); top != "" {
		reason += ": " + top
	}
	out := []policy.Finding{{
		Check: SpamAssassinName, Symbol: "SA_SCORE", Action: policy.Header, Overridable: true,
		Score:   MapScore(res.Score, res.Threshold, defaultSAThreshold),
		Reason:  reason,
		Headers: []policy.HeaderField{{Name: "X-Mailgate-SpamAssassin", Value: "score=" + formatScore(res.Score) + "/" + formatScore(threshold)}},
	}}
	want := func(s policy.Settings) bool { return res.Score >= saRejectAt(s) }
	return append(out, rejectFinding(m, s, want, SpamAssassinName, "SA_REJECT", reason)...), nil
}
