package clamd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// ErrUnavailable matches (with errors.Is) every *UnavailableError: clamd
// could not be reached, did not answer in time, or dropped the connection
// before replying. The message was not scanned; a gateway normally answers
// with a temporary failure.
var ErrUnavailable = errors.New("clamd unavailable")

// ErrSizeLimit matches (with errors.Is) the *ReplyError clamd sends when the
// stream exceeds its StreamMaxLength ("INSTREAM size limit exceeded"). The
// message was not scanned; the caller decides whether that is unscannable,
// a rejection or a pass.
var ErrSizeLimit = errors.New("clamd: INSTREAM size limit exceeded")

// UnavailableError reports that clamd could not be used for a command:
// dialling failed, an I/O operation failed, a timeout (DialTimeout or
// ScanTimeout) expired, or the connection closed without a reply.
// Cancellation of the caller's context is not reported with this type; it is
// returned as an error wrapping ctx.Err().
type UnavailableError struct {
	Op      string // "dial", "write", "read"
	Network string
	Address string
	Err     error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("clamd %s %s: %s: %v", e.Network, e.Address, e.Op, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Timeout reports whether the failure was a deadline (DialTimeout or
// ScanTimeout) expiring rather than a refused or broken connection.
func (e *UnavailableError) Timeout() bool {
	if errors.Is(e.Err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// ReplyError is a well-formed reply in which clamd reports an error of its
// own ("... ERROR"), for example a size limit or a failure to create a
// temporary file. errors.Is(err, ErrSizeLimit) picks out the size limit.
type ReplyError struct {
	// Reply is clamd's reply without the terminating NUL.
	Reply string
}

func (e *ReplyError) Error() string { return "clamd replied: " + e.Reply }

// Is makes errors.Is(err, ErrSizeLimit) true for the INSTREAM size limit.
func (e *ReplyError) Is(target error) bool {
	return target == ErrSizeLimit && strings.Contains(e.Reply, "size limit exceeded")
}

// ProtocolError is a reply that does not follow the clamd protocol: not
// NUL-terminated, too long, or not one of the forms clamd sends. It points at
// a misconfigured address (something other than clamd listening) or a broken
// peer; the message was not scanned.
type ProtocolError struct {
	Reason string
	// Reply holds the start of what was received, for logs.
	Reply string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("clamd protocol error: %s (reply %q)", e.Reason, e.Reply)
}
