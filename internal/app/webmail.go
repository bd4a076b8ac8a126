package app

import (
	"context"
	"errors"
	"io"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/smtpin"
	"github.com/mailgate/mailgate/internal/web"
)

// SubmitWebmail submits a message a user wrote in the webmail through the
// submission listener's own checks (own address only, the guard's limits)
// and the outbound path; see smtpin.Server.SubmitLocal. It needs a started
// node.
func (a *App) SubmitWebmail(ctx context.Context, m smtpin.Local) (string, error) {
	if a.submission == nil {
		return "", errors.New("the node is not started: no submission")
	}
	m.TLS = a.Config.HTTP.TLS
	return a.submission.SubmitLocal(ctx, m)
}

// submitFromWeb is the console's Submit: SubmitWebmail, with a refusal as
// the console's type.
func (a *App) submitFromWeb(ctx context.Context, tenantID int64, address string, rcpts []string, body io.Reader, clientIP string) (string, error) {
	id, err := a.SubmitWebmail(ctx, smtpin.Local{TenantID: tenantID, Address: address, Rcpts: rcpts, Body: body, ClientIP: clientIP})
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return "", &web.SubmitRefusal{Code: se.Code, Text: se.Message}
	}
	return id, err
}
