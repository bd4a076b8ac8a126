package extspam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mailgate/mailgate/internal/policy"
)

// Check names, as in Finding.Check and the stage configuration.
const (
	RspamdName       = "rspamd"
	SpamAssassinName = "spamassassin"
)

// Score mapping constants (see the package doc). otherWeight must match the
// divisor package scan/spam applies to scores of checks other than "spam".
const (
	otherWeight        = 16.0
	logOddsAtThreshold = 3.0
	maxMappedScore     = 120.0
)

// MapScore converts an engine score into a Finding Score: the engine's
// threshold becomes +3 log-odds in mailgate's spam combination, linearly,
// clipped to ±120. A threshold that is not a positive finite number is
// replaced by def.
func MapScore(engineScore, threshold, def float64) float64 {
	if !(threshold > 0) || math.IsInf(threshold, 0) {
		threshold = def
	}
	if math.IsNaN(engineScore) {
		return 0
	}
	s := otherWeight * logOddsAtThreshold * engineScore / threshold
	if s == 0 {
		return 0 // spamd's "-0.0" is no evidence either way
	}
	return math.Max(-maxMappedScore, math.Min(maxMappedScore, s))
}

// Symbol is one rule an engine reports as matched.
type Symbol struct {
	Name        string
	Score       float64 // 0 when the engine does not say (spamd SYMBOLS)
	Description string
	Options     []string // rspamd's options (matched values), sanitised
}

// publicReject is the SMTP text for reject findings: generic, naming no
// engine (policy.Finding.Public must say nothing about internals).
const publicReject = "Message rejected as spam"

// Reply and message bounds.
const (
	maxSymbols      = 1000 // symbols kept from one reply
	maxNameLen      = 128
	maxTextLen      = 256
	reasonSymbols   = 10 // symbols listed in a finding's Reason
	replyClip       = 200
	defaultMaxSize  = 10 << 20
	defaultSAMax    = 500 << 10 // spamc's default limit
	defaultMaxReply = 1 << 20
	defaultSAReply  = 256 << 10
)

// sanitize keeps printable ASCII and valid non-control UTF-8 of s, replacing
// the rest with '?', and clips it to max bytes: engine replies are
// untrusted and end up in logs and headers.
func sanitize(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			r = ' '
		case r < 0x20 || r == 0x7f || r == utf8.RuneError || (r >= 0x80 && r < 0xa0):
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// token reduces an engine-chosen word (action, symbol name) to
// [A-Za-z0-9_.-], so it is safe in a header value; other characters become
// '_'.
func token(s string, max int) string {
	b := []byte(s)
	if len(b) > max {
		b = b[:max]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// topSymbols lists up to n symbols, strongest (by absolute score) first,
// with their scores when known.
func topSymbols(syms []Symbol, n int, withScores bool) string {
	s := append([]Symbol(nil), syms...)
	if withScores {
		sort.SliceStable(s, func(i, j int) bool {
			ai, aj := math.Abs(s[i].Score), math.Abs(s[j].Score)
			if ai != aj {
				return ai > aj
			}
			return s[i].Name < s[j].Name
		})
	}
	if len(s) > n {
		s = s[:n]
	}
	parts := make([]string, len(s))
	for i, sym := range s {
		if withScores {
			parts[i] = fmt.Sprintf("%s(%+.2f)", sym.Name, sym.Score)
		} else {
			parts[i] = sym.Name
		}
	}
	return strings.Join(parts, " ")
}

// formatScore writes two decimals; spamd's "-0.0" is shown as 0.00.
func formatScore(f float64) string {
	s := strconv.FormatFloat(f, 'f', 2, 64)
	if s == "-0.00" {
		s = "0.00"
	}
	return s
}

// rejectFinding returns a Reject finding for the recipients whose settings
// say yes, or nil. Without recipients the message-level settings decide.
func rejectFinding(m *policy.Message, s policy.Settings, want func(policy.Settings) bool, check, symbol, reason string) []policy.Finding {
	f := policy.Finding{Check: check, Symbol: symbol, Action: policy.Reject, Overridable: true,
		Public: publicReject, Code: 550, Enhanced: "5.7.1", Reason: reason}
	if m.Env == nil || len(m.Env.Rcpts) == 0 {
		if want(s) {
			return []policy.Finding{f}
		}
		return nil
	}
	for _, r := range m.Env.Rcpts {
		if want(policy.ForRcpt(s, r.Addr)) {
			f.Rcpts = append(f.Rcpts, r.Addr)
		}
	}
	if f.Rcpts == nil {
		return nil
	}
	return []policy.Finding{f}
}

// skippedFinding reports a message not sent to the engine because of its size.
func skippedFinding(check, symbol string, size, max int64) []policy.Finding {
	return []policy.Finding{{Check: check, Symbol: symbol, Action: policy.Continue, Overridable: true,
		Reason: fmt.Sprintf("%s not consulted: message of %d bytes exceeds the limit of %d", check, size, max)}}
}

// body is the message as sent to an engine: exactly size bytes, streamed.
// An HTTP transport reads and closes it from its own goroutine, possibly
// after the request returned, hence the lock and the done channel.
type body struct {
	r    io.Reader
	size int64
	c    io.Closer
	ex   *exactReader // nil when the message was measured in memory
	once sync.Once
	done chan struct{} // closed by Close

	mu sync.Mutex
	// err is the first error reading the message itself (not the network),
	// recorded so a failed send can be told apart from a failed peer.
	err error
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.setErr(err)
	}
	return n, err
}

func (b *body) setErr(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

func (b *body) readErr() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Close closes the message reader once, however often it is called. A
// reader that sent its recorded size but was not read to the end (an HTTP
// transport stops at Content-Length) is checked for surplus bytes first.
func (b *body) Close() error {
	var err error
	b.once.Do(func() {
		if b.ex != nil && b.ex.n == 0 && !b.ex.probed {
			var one [1]byte
			if _, perr := b.ex.Read(one[:]); perr != nil && perr != io.EOF {
				b.setErr(perr)
			}
		}
		err = b.c.Close()
		close(b.done)
	})
	return err
}

// errSizeMismatch means the spool held a different number of bytes than the
// message's recorded Size: the Content-Length already sent would be a lie.
var errSizeMismatch = errors.New("message size differs from its recorded size")

// exactReader yields exactly n bytes of r and fails if r has fewer or more.
type exactReader struct {
	r      io.Reader
	n      int64
	probed bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		e.probed = true
		var one [1]byte
		k, err := io.ReadFull(e.r, one[:])
		if k > 0 {
			return 0, errSizeMismatch
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, io.EOF
		}
		return 0, err
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	k, err := e.r.Read(p)
	e.n -= int64(k)
	if err == io.EOF && e.n > 0 {
		return k, fmt.Errorf("%w: %d bytes missing", errSizeMismatch, e.n)
	}
	if err == io.EOF {
		err = nil
	}
	return k, err
}

// openBody opens m for sending, with prefix (already formatted header lines)
// in front. It streams when m.Size is known; otherwise it reads at most
// max+1 bytes into memory to learn the size. ErrTooLarge when the message
// (without prefix) exceeds max.
func openBody(m *policy.Message, prefix []byte, max int64) (*body, error) {
	if m.Open == nil {
		return nil, errors.New("message has no content")
	}
	if m.Size > max {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, m.Size, max)
	}
	rc, err := m.Open()
	if err != nil {
		return nil, fmt.Errorf("opening message: %w", err)
	}
	if m.Size > 0 {
		ex := &exactReader{r: rc, n: m.Size}
		return &body{r: io.MultiReader(bytes.NewReader(prefix), ex), ex: ex,
			size: int64(len(prefix)) + m.Size, c: rc, done: make(chan struct{})}, nil
	}
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("reading message: %w", err)
	}
	if int64(len(data)) > max {
		rc.Close()
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return &body{r: io.MultiReader(bytes.NewReader(prefix), bytes.NewReader(data)),
		size: int64(len(prefix) + len(data)), c: rc, done: make(chan struct{})}, nil
}

// withTimeout applies the per-message timeout under ctx.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// classify turns a transport failure into the error Check returns: the
// caller's own cancellation stays as it is, the engine's timeout and network
// failures become *UnavailableError, a failure reading the message is
// reported as such.
func classify(parent, ctx context.Context, b *body, engine, op, addr string, err error) error {
	if rerr := b.readErr(); rerr != nil {
		return fmt.Errorf("%s: reading message: %w", engine, rerr)
	}
	if parent.Err() != nil {
		return fmt.Errorf("%s %s: %w", engine, op, parent.Err())
	}
	var pe *ProtocolError
	var re *ReplyError
	if errors.As(err, &pe) || errors.As(err, &re) {
		return err
	}
	// A connection deadline (set from ctx's) may fire a moment before ctx
	// itself reports it.
	if (ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return &UnavailableError{Engine: engine, Op: op, Address: addr, Err: err}
}
