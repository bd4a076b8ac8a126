// Package dsn builds and reads delivery status notifications (RFC 3464)
// carried in a multipart/report (RFC 6522): the delay warnings, failure
// bounces and "relayed" success notices the queue sends back to an envelope
// sender, and enough parsing of such a report for tests and for recognising
// DSNs that arrive from elsewhere.
//
// Everything that can come from outside (addresses, remote replies, envelope
// IDs, the original message) is treated as hostile: it is cleaned of line
// breaks and control characters, bounded in size and encoded so that it can
// never add header fields or MIME parts to the report.
package dsn

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Kind says what a report announces. It selects the subject, the default
// per-recipient Action and Status, and the wording of the human-readable part.
type Kind int

// The kinds of report. The zero Kind is invalid so that a forgotten field is
// an error rather than a silent bounce.
const (
	// Failure: delivery was given up for the listed recipients (a bounce).
	Failure Kind = iota + 1
	// Delay: delivery is still being retried (a warning, RFC 3464 2.3.3 "delayed").
	Delay
	// Delivered: delivery succeeded (NOTIFY=SUCCESS, RFC 3461 4.1).
	Delivered
	// Relayed: the message was passed to a system that does not send DSNs.
	Relayed
)

// String returns the word used in the report's subject.
func (k Kind) String() string {
	switch k {
	case Failure:
		return "Failure"
	case Delay:
		return "Delay"
	case Delivered:
		return "Success"
	case Relayed:
		return "Relayed"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// action is the RFC 3464 2.3.3 action value a Kind implies.
func (k Kind) action() string {
	switch k {
	case Failure:
		return "failed"
	case Delay:
		return "delayed"
	case Delivered:
		return "delivered"
	case Relayed:
		return "relayed"
	}
	return ""
}

// defaultStatus is the RFC 3463 code used when a recipient carries none.
func (k Kind) defaultStatus() string {
	switch k {
	case Failure:
		return "5.0.0"
	case Delay:
		return "4.0.0"
	}
	return "2.0.0"
}

// Recipient is the outcome for one envelope recipient.
type Recipient struct {
	// FinalRecipient is the address the queue tried, without a type prefix.
	// ASCII addresses are written as "rfc822;addr"; addresses with non-ASCII
	// characters as "utf-8;" with RFC 6533 \x{HHHH} escapes, so the
	// delivery-status part stays 7-bit.
	FinalRecipient string
	// OriginalRecipient is the ORCPT value from the envelope, already in
	// "type;addr" form (RFC 3461 4.2), or "" if there was none.
	OriginalRecipient string
	// Action is the RFC 3464 action; when empty it is derived from the
	// report's Kind ("failed", "delayed", "delivered", "relayed").
	Action string
	// Status is the RFC 3463 enhanced status code, e.g. "5.1.1". When empty or
	// malformed the Kind's generic code (5.0.0, 4.0.0, 2.0.0) is used.
	Status string
	// RemoteMTA is the host the reply came from, "" if none was reached.
	RemoteMTA string
	// DiagnosticCode is the remote reply text, e.g. "550 5.1.1 no such user".
	// Multi-line replies are joined; the text is cleaned and bounded.
	DiagnosticCode string
	// DiagnosticType is the diagnostic-type (RFC 3464 2.3.6) prefixed to
	// DiagnosticCode; "smtp" when empty.
	DiagnosticType string
	// LastAttempt is the time of the last delivery attempt; omitted if zero.
	LastAttempt time.Time
	// WillRetryUntil is when the queue gives up (delays); omitted if zero.
	WillRetryUntil time.Time
}

// Report describes one notification to one envelope sender.
type Report struct {
	Kind Kind
	// ReportingMTA is our host name (an ASCII domain), written as "dns;host".
	ReportingMTA string
	// From is the header From, e.g. "Mail Delivery System <MAILER-DAEMON@host>".
	// Empty means exactly that, with ReportingMTA as host.
	From string
	// To is the original envelope sender, the report's recipient. It must not
	// be the null reverse-path: RFC 5321 4.5.5 forbids reports to "<>".
	To string
	// EnvelopeID is the ENVID from MAIL FROM (RFC 3461 4.4), xtext-decoded,
	// or "" if none.
	EnvelopeID string
	// ArrivalDate is when we accepted the message; omitted if zero.
	ArrivalDate time.Time
	// Now is the report's Date; injected so output is reproducible.
	Now        time.Time
	Recipients []Recipient
	// Original is the original message. Build reads at most MaxOriginal+1
	// bytes of it (fewer when only headers are returned). Nil omits the third
	// part. Build does not close it; cancellation is the reader's business.
	Original io.Reader
	// ReturnFull asks for the whole original (RET=FULL, RFC 3461 4.3). When
	// false, or when the original exceeds MaxOriginal or cannot be carried as
	// message/rfc822, only its header section is returned.
	ReturnFull bool
	// MaxOriginal bounds the bytes of the original included (and read);
	// DefaultMaxOriginal when zero or negative.
	MaxOriginal int64
	// Language is "en" (default) or "ja" (Japanese followed by English).
	// Other values fall back to English.
	Language string
	// MessageIDHost is the right-hand side of the report's Message-ID;
	// ReportingMTA when empty.
	MessageIDHost string
	// Rand supplies the random bytes for the Message-ID and MIME boundary;
	// crypto/rand when nil. Tests inject a fixed source for golden output.
	Rand io.Reader
}

// DefaultMaxOriginal is the cap on the original message used when
// Report.MaxOriginal is not set.
const DefaultMaxOriginal = 128 << 10

// Errors returned by Build; test with errors.Is.
var (
	ErrNullSender   = errors.New("dsn: no report is sent to the null reverse-path")
	ErrNoRecipients = errors.New("dsn: report has no recipients")
	ErrInvalid      = errors.New("dsn: invalid report")
)
