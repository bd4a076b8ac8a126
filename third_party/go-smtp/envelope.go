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
// When the server supports PIPELINING (RFC 2920), the commands go out
// together and their replies are read afterwards, in order: one round
// trip instead of one per command (a long envelope takes one round trip
// for each 4 KB of commands). A server that takes DATA although no
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
	env := &Envelope{}
	c.rcpts = nil
	// The commands go in groups that fit a small TCP window, each group's
	// replies read before the next is sent: with blocking writes, a group
	// larger than the window could leave both sides writing and neither
	// reading (RFC 2920 3.1). Most envelopes are one group.
	for start := 0; start < len(lines); {
		end, size := start, 0
		for end < len(lines) && (end == start || size+len(lines[end])+2 <= pipelineWindow) {
			size += len(lines[end]) + 2
			end++
		}
		for _, l := range lines[start:end] {
			w.WriteString(l)
			w.WriteString("\r\n")
		}
		if err := w.Flush(); err != nil {
			return env, err
		}
		for i := start; i < end; i++ {
			switch {
			case i == 0:
				if _, _, err := c.readResponse(250); endsExchange(err) {
					return env, err
				} else if err != nil {
					env.Mail = err
				}
			case i < len(lines)-1:
				_, _, err := c.readResponse(25)
				if endsExchange(err) {
					env.closingFrom(i-1, len(rcpts), err)
					return env, err
				}
				if env.Mail != nil {
					// Refused for want of MAIL (503): not the recipient's answer.
					continue
				}
				env.Rcpts = append(env.Rcpts, err)
				if err == nil {
					c.rcpts = append(c.rcpts, rcpts[i-1])
				}
			default:
				return env, c.dataReply(env)
			}
		}
		if env.Mail != nil {
			// The rest of the envelope is not sent: the server refused
			// the transaction.
			return env, nil
		}
		start = end
	}
	return env, nil
}

// pipelineWindow bounds the bytes of one group of pipelined commands: the
// TCP window RFC 2920 3.1 says to assume.
const pipelineWindow = 4096

// dataReply reads the reply to a pipelined DATA and sets env.Data or
// env.DataErr. A server that takes DATA without an accepted recipient
// gets an empty message's final dot at once.
func (c *Client) dataReply(env *Envelope) error {
	_, _, err := c.readResponse(354)
	switch {
	case endsExchange(err):
		return err
	case err != nil:
		if env.Mail == nil {
			env.DataErr = err
		}
	case env.Mail != nil || len(c.rcpts) == 0:
		w := c.text.Writer.W
		w.WriteString(".\r\n")
		if err := w.Flush(); err != nil {
			return err
		}
		if _, _, err := c.readResponse(0); endsExchange(err) {
			return err
		}
		env.DataErr = fmt.Errorf("smtp: DATA accepted without a valid recipient; ended empty")
	default:
		env.Data = &DataCommand{client: c, wc: c.text.DotWriter()}
	}
	return nil
}

// envelopeInTurn is SendEnvelope for a server without PIPELINING.
func (c *Client) envelopeInTurn(from string, mopts *MailOptions, rcpts []string, opt func(int) *RcptOptions) (*Envelope, error) {
	env := &Envelope{}
	if err := c.Mail(from, mopts); endsExchange(err) {
		return env, err
	} else if err != nil {
		env.Mail = err
		return env, nil
	}
	for i, to := range rcpts {
		err := c.Rcpt(to, opt(i))
		if endsExchange(err) {
			env.closingFrom(i, len(rcpts), err)
			return env, err
		}
		env.Rcpts = append(env.Rcpts, err)
	}
	if len(c.rcpts) == 0 {
		return env, nil
	}
	d, err := c.Data()
	if endsExchange(err) {
		return env, err
	} else if err != nil {
		env.DataErr = err
		return env, nil
	}
	env.Data = d
	return env, nil
}

// endsExchange reports whether err ends the exchange on this connection:
// it is not a reply of the server's (the connection failed), or it is a
// 421, after which the server closes the connection.
func endsExchange(err error) bool {
	var se *SMTPError
	return err != nil && (!errors.As(err, &se) || se.Code == 421)
}

// closingFrom records a 421 reply to the i-th RCPT (from 0) for it and
// every recipient after it, when MAIL was accepted.
func (env *Envelope) closingFrom(i, n int, err error) {
	if env.Mail != nil || !isClosing(err) {
		return
	}
	env.Rcpts = env.Rcpts[:i]
	for len(env.Rcpts) < n {
		env.Rcpts = append(env.Rcpts, err)
	}
}

// isClosing reports whether err is a 421 reply.
func isClosing(err error) bool {
	var se *SMTPError
	return errors.As(err, &se) && se.Code == 421
}
