package admin

import (
	"context"
	"fmt"
	"io"

	"github.com/mailgate/mailgate/internal/store"
)

// ChangeSpamModel runs change on a spam model (operators): a's tenant's,
// or with no tenant the global base model every tenant's is layered on
// (tenant 0); train, untrain and reset from the CLI come through here.
// change returns what it did, which goes to the audit log.
func (s *Service) ChangeSpamModel(ctx context.Context, a Actor, action string, change func(ctx context.Context) (string, error)) error {
	if err := a.require(store.RoleOperator); err != nil {
		return err
	}
	what, err := change(ctx)
	if err != nil {
		return err
	}
	return s.Audit(ctx, a, a.TenantID, "spam."+action, "", "", what)
}

// LearnMessage trains a's tenant's model with one message reported as
// spam or not spam.
func (s *Service) LearnMessage(ctx context.Context, a Actor, raw []byte, spam bool) error {
	if err := a.require(store.RoleAdmin); err != nil {
		return err
	}
	tid, err := a.tenant()
	if err != nil {
		return err
	}
	if s.Learn == nil {
		return Invalidf("spam feedback is not configured on this node")
	}
	if err := s.Learn(ctx, tid, raw, spam); err != nil {
		return err
	}
	return s.Audit(ctx, a, tid, "spam."+map[bool]string{true: "report_spam", false: "report_ham"}[spam], "", "", fmt.Sprintf("%d bytes", len(raw)))
}

func readAtMost(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > n {
		return nil, Invalidf("message larger than %d bytes", n)
	}
	return b, nil
}
