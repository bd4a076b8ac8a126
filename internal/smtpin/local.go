package smtpin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/addr"
)

// Local is a message mailgate's webmail submits for a logged-in user. It
// goes through the submission listener's own session, as if the user's
// mail app had sent it after SMTP AUTH: the sender and the From field must
// be the user's own address in a domain of their tenant, the guard's
// limits apply (line and header lengths, bare LF, size), and the message
// is durable in the spool and committed through the queue's policy
// pipeline (outbound) before SubmitLocal returns.
type Local struct {
	TenantID int64
	// Address is the user's own address: their login, and the envelope
	// sender.
	Address string
	Rcpts   []string
	// Body is the whole message without a Received field (one is added).
	Body io.Reader
	// ClientIP is the browser's address, for the trace field and the log.
	ClientIP string
	// TLS says the console was reached over HTTPS.
	TLS bool
}

// localSession is what a session without a connection knows.
type localSession struct {
	ctx   context.Context
	helo  string
	proto string
}

// helo is the client's HELO name as the trace field and the tracking log
// show it.
func (se *session) helo() string {
	if se.local != nil {
		return se.local.helo
	}
	return sanitizeHelo(se.conn.Hostname())
}

// ErrNotSubmission: SubmitLocal was called on a listener of another kind.
var ErrNotSubmission = errors.New("smtpin: local submission needs the submission listener")

// SubmitLocal submits m as its user and returns the queue ID. A refusal is
// a *smtp.SMTPError with the reply a mail app would have got (5xx: the
// message as written will never be accepted, such as a From that is not
// the user's own; 4xx: try again later); other errors are local failures.
// Nothing is queued unless it returns nil.
func (s *Server) SubmitLocal(ctx context.Context, m Local) (string, error) {
	if s.d.Kind != Submission {
		return "", ErrNotSubmission
	}
	a, err := addr.Parse(m.Address)
	if err != nil || m.TenantID == 0 {
		return "", smtpErr(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")
	}
	if len(m.Rcpts) == 0 {
		return "", smtpErr(554, smtp.EnhancedCode{5, 5, 1}, "No valid recipients")
	}
	if max := s.d.Limits.MaxRecipients; max > 0 && len(m.Rcpts) > max {
		return "", smtpErr(452, smtp.EnhancedCode{4, 5, 3}, fmt.Sprintf("Maximum limit of %d recipients reached", max))
	}
	proto := "HTTP"
	if m.TLS {
		proto = "HTTPS"
	}
	ip := m.ClientIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	se := &session{s: s, ip: ip, tls: m.TLS, authUser: a.Key(), authTID: m.TenantID, authAddr: a.Key(),
		local: &localSession{ctx: ctx, helo: "webmail", proto: proto},
		log:   s.log.With("conn", "webmail", "client", ip)}
	defer se.Logout()
	if err := se.Mail(a.Key(), nil); err != nil {
		return "", err
	}
	for _, r := range m.Rcpts {
		if err := se.Rcpt(strings.TrimSpace(r), nil); err != nil {
			return "", err
		}
	}
	// go-smtp enforces the size on the wire; here the reader does.
	body := io.Reader(&sizeLimit{r: m.Body, left: s.d.Limits.MaxMessageBytes})
	err = se.Data(body)
	var reply *smtp.SMTPError
	if errors.As(err, &reply) && reply.Code == 250 && se.accepted != "" {
		return se.accepted, nil
	}
	if errors.Is(err, smtp.ErrDataTooLarge) {
		return "", smtpErr(552, smtp.EnhancedCode{5, 3, 4}, fmt.Sprintf("Message size exceeds limit of %d bytes", s.d.Limits.MaxMessageBytes))
	}
	if err == nil {
		err = errors.New("smtpin: message not accepted")
	}
	return "", err
}

// sizeLimit fails with smtp.ErrDataTooLarge past left bytes (0: no
// limit), as go-smtp's DATA reader does.
type sizeLimit struct {
	r    io.Reader
	left int64
	seen int64
}

func (l *sizeLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.seen += int64(n)
	if l.left > 0 && l.seen > l.left {
		return 0, smtp.ErrDataTooLarge
	}
	return n, err
}
