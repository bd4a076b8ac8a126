package smtp

import (
	"errors"
	"fmt"
	"time"
)

// Envelope holds the server's replies to a mail transaction's envelope:
// MAIL, each RCPT and DATA. See Client.SendEnvelope.
type Envelope struct {
	// Mail is the reply to MAIL when it was refused (an *SMTPError), nil
	// when it was accepted.
	Mail error
	// Rcpts has the reply to each RCPT read, in order: nil for an
	// accepted recipient, an *SMTPError for a refused one. After MAIL was
	// refused it holds no entries.
	Rcpts []error
	// Data is the open DATA command when the server answered 354 and at
	// least one recipient was accepted: write the message to it and close
	// it. It is nil otherwise, and the caller resets the transaction.
	Data *DataCommand
	// DataErr is the reply to DATA when it was refused (an *SMTPError).
	DataErr error
}

// SendEnvelope starts a mail transaction: MAIL FROM, a RCPT TO for each
// recipient (ropts, when not nil, holds each one's options, nil for none)
// and, once a recipient is accepted, DATA.
//
// When the server supports PIPELINING (RFC 2920), the commands go out in
// one write and their replies are read afterwards, in order: one round
// trip instead of one per command. A server that takes DATA although no
// recipient was accepted (RFC 2920 3.1 says it must refuse it) gets an
// empty message's final dot, whose reply is read and ignored. Without
// PIPELINING the commands go one at a time, as Mail, Rcpt and Data do.
//
// Replies are in the returned Envelope. The error is for everything else
// (the connection failed, a command could not be written); the Envelope
// then holds the replies read before it. A 421 reply means the server is
// closing the connection: no further reply is read, the 421 stands for
// the commands after it, and the error is that reply.
func (c *Client) SendEnvelope(from string, mopts *MailOptions, rcpts []string, ropts []*RcptOptions) (*Envelope, error) {
	if err := c.hello(); err != nil {
		return &Envelope{}, err
	}
	if len(rcpts) == 0 {
		return &Envelope{}, errors.New("smtp: SendEnvelope without recipients")
	}
	opt := func(i int) *RcptOptions {
		if i < len(ropts) {
			return ropts[i]
		}
		return nil
	}
	if _, ok := c.ext["PIPELINING"]; !ok {
		return c.envelopeInTurn(from, mopts, rcpts, opt)
	}
	lines := make([]string, 0, len(rcpts)+2)
	line, err := c.mailLine(from, mopts)
	if err != nil {
		return &Envelope{}, err
	}
	lines = append(lines, line)
	for i, to := range rcpts {
		line, err := c.rcptLine(to, opt(i))
		if err != nil {
			return &Envelope{}, err
		}
		lines = append(lines, line)
	}
	lines = append(lines, "DATA")

	c.conn.SetDeadline(time.Now().Add(c.CommandTimeout))
	defer c.conn.SetDeadline(time.Time{})
	w := c.text.Writer.W
	for _, l := range lines {
		w.WriteString(l)
		w.WriteString("\r\n")
	}
	if err := w.Flush(); err != nil {
		return &Envelope{}, err
	}

	env := &Envelope{}
	c.rcpts = nil
	if _, _, err := c.readResponse(250); err != nil {
		if !isReply(err) || isClosing(err) {
			return env, err
		}
		// Every RCPT and DATA is refused too (503): read their replies
		// so the connection stays in step.
		env.Mail = err
		for i := 0; i <= len(rcpts); i++ {
			if _, _, err := c.readResponse(0); err != nil && (!isReply(err) || isClosing(err)) {
				return env, err
			}
		}
		return env, nil
	}
	for i := range rcpts {
		_, _, err := c.readResponse(25)
		if err != nil && (!isReply(err) || isClosing(err)) {
			if isClosing(err) {
				for len(env.Rcpts) < len(rcpts) {
					env.Rcpts = append(env.Rcpts, err)
				}
			}
			return env, err
		}
		env.Rcpts = append(env.Rcpts, err)
		if err == nil {
			c.rcpts = append(c.rcpts, rcpts[i])
		}
	}
	_, _, err = c.readResponse(354)
	switch {
	case err != nil && (!isReply(err) || isClosing(err)):
		return env, err
	case err != nil:
		env.DataErr = err
	case len(c.rcpts) == 0:
		// DATA taken without a recipient: end the empty message at once.
		if _, err := w.WriteString(".\r\n"); err != nil {
			return env, err
		}
		if err := w.Flush(); err != nil {
			return env, err
		}
		if _, _, err := c.readResponse(0); err != nil && (!isReply(err) || isClosing(err)) {
			return env, err
		}
		env.DataErr = fmt.Errorf("smtp: DATA accepted without a valid recipient; ended empty")
	default:
		env.Data = &DataCommand{client: c, wc: c.text.DotWriter()}
	}
	return env, nil
}

// envelopeInTurn is SendEnvelope for a server without PIPELINING.
func (c *Client) envelopeInTurn(from string, mopts *MailOptions, rcpts []string, opt func(int) *RcptOptions) (*Envelope, error) {
	env := &Envelope{}
	if err := c.Mail(from, mopts); err != nil {
		if !isReply(err) || isClosing(err) {
			return env, err
		}
		env.Mail = err
		return env, nil
	}
	for i, to := range rcpts {
		err := c.Rcpt(to, opt(i))
		if err != nil && (!isReply(err) || isClosing(err)) {
			return env, err
		}
		env.Rcpts = append(env.Rcpts, err)
	}
	if len(c.rcpts) == 0 {
		return env, nil
	}
	d, err := c.Data()
	if err != nil {
		if !isReply(err) || isClosing(err) {
			return env, err
		}
		env.DataErr = err
		return env, nil
	}
	env.Data = d
	return env, nil
}

// isReply reports whether err is the server's reply (an *SMTPError).
func isReply(err error) bool {
	var se *SMTPError
	return errors.As(err, &se)
}

// isClosing reports whether err is a 421 reply: the server closes the
// connection after it.
func isClosing(err error) bool {
	var se *SMTPError
	return errors.As(err, &se) && se.Code == 421
}
