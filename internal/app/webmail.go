package app

import (
	"context"
	"errors"

	"github.com/mailgate/mailgate/internal/smtpin"
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
