package inbound

import (
	"context"
	"io"

	"github.com/mailgate/mailgate/internal/policy"
	"github.com/mailgate/mailgate/internal/store"
)

// Rejudge runs the inbound checks over a message read through open, as
// they judge it now under the tenant's settings as change returns them
// (nil: as stored), and returns each recipient's verdict. Nothing is
// written: no copy, no tracking, no learning, no notice. Policy dry runs
// call it twice per archived message, once as the policy is and once as
// it would be.
func (p *Pipeline) Rejudge(ctx context.Context, m store.Message, rcpts []store.Recipient, open func() (io.ReadCloser, error), change func([]store.Setting) []store.Setting) ([]policy.Verdict, error) {
	env, settings, err := p.envelopeWith(ctx, m, rcpts, open, change)
	if err != nil {
		return nil, err
	}
	pm := &policy.Message{Env: env, Size: m.Size, Open: open}
	findings, verdicts := p.Runner.Run(ctx, pm, settings)
	if len(p.Post) > 0 {
		for _, ps := range p.Post {
			findings = append(findings, ps.Findings(ctx, pm, findings, settings)...)
		}
		verdicts = policy.Resolve(env.Rcpts, findings)
	}
	return verdicts, nil
}
