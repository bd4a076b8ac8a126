package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-smtp"
)

// Probe asks targets, in order, whether they would take mail for rcpt,
// the way a delivery begins: connect, EHLO, STARTTLS as the target's TLS
// mode says (when offered, for opportunistic), MAIL FROM:<>, RCPT
// TO:<rcpt>, then RSET and QUIT, so no message is sent. It returns the
// host that accepted the recipient, or an error describing each target's
// failure. Connections are not pooled, so a probe sees the service as a
// new delivery would.
func (c *Client) Probe(ctx context.Context, targets []Target, rcpt string) (string, error) {
	if len(targets) == 0 {
		return "", errors.New("no delivery target")
	}
	var errs []error
	for _, t := range targets {
		if t.Mailbox {
			continue
		}
		if err := c.probe(ctx, t, rcpt); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.key(), err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		return t.Host, nil
	}
	return "", errors.Join(errs...)
}

// RcptRefused is a target's permanent (5xx) refusal of a probe's
// recipient: the service is up and does not take mail for it (a callout's
// "unknown user"). A probe error wraps it when a target answered so.
type RcptRefused struct {
	Code int
	Text string
}

func (e *RcptRefused) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Text) }

func (c *Client) probe(ctx context.Context, t Target, rcpt string) error {
	p, err := c.dial(ctx, t)
	if err != nil {
		return err
	}
	defer p.conn.Close()
	stop := context.AfterFunc(ctx, func() { p.conn.SetDeadline(time.Now()) })
	defer stop()
	if err := p.c.Mail("", nil); err != nil {
		return fmt.Errorf("MAIL FROM:<>: %w", err)
	}
	if err := p.c.Rcpt(rcpt, nil); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code/100 == 5 {
			return fmt.Errorf("RCPT TO:<%s>: %w", rcpt, &RcptRefused{Code: se.Code, Text: se.Message})
		}
		if errors.As(err, &se) {
			return fmt.Errorf("RCPT TO:<%s>: %d %s", rcpt, se.Code, se.Message)
		}
		return fmt.Errorf("RCPT TO:<%s>: %w", rcpt, err)
	}
	p.c.Reset()
	p.c.Quit()
	return nil
}
