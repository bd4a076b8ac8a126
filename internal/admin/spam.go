package admin

import (
	"context"
	"fmt"
	"io"

	"github.com/mailgate/mailgate/internal/store"
)

// TrainSpam adds token counts of labelled messages to a spam model, in one
// commit (operators): a's tenant's, or with no tenant the global base model
// every tenant's is layered on (spam.GlobalModel, tenant 0).
func (s *Service) TrainSpam(ctx context.Context, a Actor, deltas map[string]store.TokenCount, total store.TokenCount) error {
	if err := a.require(store.RoleOperator); err != nil {
		return err
	}
	if total.Spam+total.Ham == 0 {
		return Invalidf("nothing to train: give --spam and/or --ham")
	}
	if err := s.Store.SpamAdd(ctx, a.TenantID, deltas, total); err != nil {
		return err
	}
	return s.Audit(ctx, a, a.TenantID, "spam.train", "", "", fmt.Sprintf("%d spam, %d ham, %d tokens", total.Spam, total.Ham, len(deltas)))
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
