package mailbox

import (
	"context"
	"io"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/store"
)

// PendingHandback lists messages of domain received in emergency mode and
// not handed back yet, with ID > afterID, oldest first (at most limit).
// Messages the user deleted are listed too (Folder ""): the primary
// service still gets them.
func (s *Service) PendingHandback(ctx context.Context, tenantID int64, domain string, afterID int64, limit int) ([]store.PendingMail, error) {
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

// Recover reconciles this node's mailbox bodies with the store after a
// crash (blob.Recover): bodies that no message refers to were never
// acknowledged and are removed; damaged ones are set aside and logged, as
// are missing ones. Other nodes' bodies are theirs to recover.
func (s *Service) Recover(ctx context.Context) error {
	rep, err := blob.Recover(ctx, s.Blobs, s.Store.MailBlobKeys)
	if err != nil {
		return err
	}
	for _, k := range rep.Missing {
		s.log().Error("mailbox message body missing after restart", "key", k)
	}
	for k, where := range rep.Damaged {
		s.log().Error("mailbox message body damaged; set aside", "key", k, "moved_to", where)
	}
	s.log().Info("mailbox blobs recovered", "kept", rep.Kept, "discarded_unacknowledged", rep.Discarded,
		"missing", len(rep.Missing), "damaged", len(rep.Damaged))
	return nil
}
