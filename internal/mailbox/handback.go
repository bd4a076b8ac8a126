package mailbox

import (
	"context"
	"io"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// PendingHandback lists messages of domain received in emergency mode and
// not handed back yet, with ID > afterID, oldest first (at most limit).
// Messages the user deleted are listed too (Folder ""): the primary
// service still gets them.
func (s *Service) PendingHandback(ctx context.Context, tenantID int64, domain string, afterID int64, limit int) ([]store.HandbackItem, error) {
	return s.Store.PendingHandback(ctx, tenantID, domain, afterID, limit)
}

// MarkHandedBack records that message id reached the primary service
// (how: "smtp", "graph", "gmail"). It returns a store.ErrNotFound error
// when the message was marked already or is gone. A message the user had
// deleted is removed now.
func (s *Service) MarkHandedBack(ctx context.Context, tenantID, id int64, how string) error {
	free, err := s.Store.MarkHandedBack(ctx, tenantID, id, how, s.now())
	s.deleteBlobs(ctx, free)
	return err
}

// PurgeHandedBack removes the domain's messages handed back before the
// given time (retention of the local copies) and returns how many.
func (s *Service) PurgeHandedBack(ctx context.Context, tenantID int64, domain string, before time.Time) (int, error) {
	n, free, err := s.Store.PurgeHandedBack(ctx, tenantID, domain, before)
	s.deleteBlobs(ctx, free)
	return n, err
}

// OpenBody reads a message's body as stored (the whole RFC 5322 message).
func (s *Service) OpenBody(ctx context.Context, m store.MailMessage) (io.ReadCloser, error) {
	return s.Blobs.Open(ctx, m.BlobKey)
}

// Recover reconciles the blobs with the store after a crash: bodies that
// no message refers to were never acknowledged and are removed; bodies of
// the wrong size are set aside and logged, as are missing ones.
func (s *Service) Recover(ctx context.Context) error {
	r, ok := s.Blobs.(Recoverer)
	if !ok {
		return nil
	}
	want, err := s.Store.MailBlobKeys(ctx)
	if err != nil {
		return err
	}
	missing, damaged, discarded, err := r.Recover(ctx, want)
	if err != nil {
		return err
	}
	for _, k := range missing {
		s.log().Error("mailbox message body missing after restart", "key", k)
	}
	for _, k := range damaged {
		s.log().Error("mailbox message body damaged (size differs); set aside", "key", k)
	}
	s.log().Info("mailbox blobs recovered", "kept", len(want)-len(missing)-len(damaged), "discarded_unacknowledged", discarded,
		"missing", len(missing), "damaged", len(damaged))
	return nil
}
