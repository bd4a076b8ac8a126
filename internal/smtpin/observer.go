package smtpin

import (
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-smtp"
)

// Observer hears about a listener's sessions and replies (the node's
// metrics). Its methods are called from the sessions' goroutines and must
// not block.
type Observer interface {
	// SessionOpened is called when a connection is admitted, and
	// SessionClosed once when it ends.
	SessionOpened(k Kind)
	SessionClosed(k Kind)
	// Reply is called for each reply to MAIL, RCPT and DATA (or BDAT) and
	// for the replies that refuse or end a connection outside a command
	// (limits, early talkers, shutdown), with the reply code and its
	// enhanced status code ("" when it has none).
	Reply(k Kind, code int, enhanced string)
}

// observedSession reports the replies of a session's transaction commands.
// They are observed here rather than on the wire because after STARTTLS
// the connection under go-smtp carries only ciphertext.
type observedSession struct{ *session }

func (o observedSession) Mail(from string, opts *smtp.MailOptions) error {
	err := o.session.Mail(from, opts)
	o.observe(err)
	return err
}

func (o observedSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	err := o.session.Rcpt(to, opts)
	o.observe(err)
	return err
}

func (o observedSession) Data(r io.Reader) error {
	err := o.session.Data(r)
	o.observe(err)
	return err
}

// observe reports the reply go-smtp writes for err: 250 for nil, the
// SMTPError's code, and 451 4.0.0 for any other error.
func (o observedSession) observe(err error) {
	code, enhanced := 250, "2.0.0"
	var se *smtp.SMTPError
	switch {
	case err == nil:
	case errors.As(err, &se):
		code, enhanced = se.Code, enhancedString(se.Code, se.EnhancedCode)
	default:
		code, enhanced = 451, "4.0.0"
	}
	o.s.d.Observer.Reply(o.s.d.Kind, code, enhanced)
}

// enhancedString is the RFC 3463 code go-smtp writes with a reply.
func enhancedString(code int, ec smtp.EnhancedCode) string {
	switch ec {
	case smtp.NoEnhancedCode:
		return ""
	case smtp.EnhancedCodeNotSet:
		// go-smtp fills in the class of the reply code.
		if c := code / 100; c == 2 || c == 4 || c == 5 {
			return fmt.Sprintf("%d.0.0", c)
		}
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
}
