package extspam

import (
	"errors"
	"fmt"
)

// ErrUnavailable is matched (errors.Is) by every error meaning the engine
// could not be used right now: it could not be reached, it did not answer
// within the timeout, or the connection broke before a complete reply.
var ErrUnavailable = errors.New("spam engine unavailable")

// ErrTooLarge is returned by Scan when the message exceeds MaxSize and was
// therefore not sent. Check turns it into a zero-score finding.
var ErrTooLarge = errors.New("message larger than the configured maximum")

// UnavailableError reports an engine that could not be used. It matches
// ErrUnavailable and wraps the underlying error, which is or wraps
// context.DeadlineExceeded when the per-message timeout fired.
type UnavailableError struct {
	Engine  string // "rspamd" or "spamassassin"
	Op      string // dial, write, read, request
	Address string
	Err     error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s %s %s: unavailable: %v", e.Engine, e.Op, e.Address, e.Err)
}

// Unwrap exposes both ErrUnavailable and the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// ProtocolError reports a reply that does not follow the engine's protocol:
// malformed, truncated, too large, or arriving before the whole message was
// sent.
type ProtocolError struct {
	Engine string
	Reason string
	Reply  string // the start of the offending reply, sanitised
}

func (e *ProtocolError) Error() string {
	if e.Reply == "" {
		return fmt.Sprintf("%s protocol error: %s", e.Engine, e.Reason)
	}
	return fmt.Sprintf("%s protocol error: %s (reply %q)", e.Engine, e.Reason, e.Reply)
}

// ReplyError reports an engine that answered but refused to judge: spamd's
// non-zero EX_* code or an rspamd HTTP status other than 200.
type ReplyError struct {
	Engine  string
	Code    int    // spamd exit code (sysexits.h) or HTTP status
	Message string // the engine's text, sanitised and clipped
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("%s refused: %d %s", e.Engine, e.Code, e.Message)
}
