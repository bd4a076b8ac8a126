package imapd

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Store is what an IMAP session reads of the store through the mailbox
// service.
type Store interface {
	AccountByLogin(ctx context.Context, login string) (store.Account, error)
	FolderMail(ctx context.Context, tenantID int64, folderID int64) ([]store.MailMessage, error)
	MailByUID(ctx context.Context, tenantID int64, folderID int64, uids []uint32) ([]store.MailMessage, error)
	MailChangesSince(ctx context.Context, tenantID int64, folderID int64, since uint64) (store.MailChanges, error)
	MailFolder(ctx context.Context, tenantID int64, folderID int64) (store.MailFolder, error)
	MailFolderStatus(ctx context.Context, tenantID int64, folderID int64) (store.MailFolderStatus, error)
	MailFolders(ctx context.Context, tenantID int64, mailboxID int64) ([]store.MailFolder, error)
	MailHeaders(ctx context.Context, tenantID int64, blobKeys []string) (map[string][]byte, error)
	MailSubscriptions(ctx context.Context, tenantID int64, mailboxID int64) ([]string, error)
	MailboxByAddress(ctx context.Context, tenantID int64, address string) (store.Mailbox, error)
	SearchMail(ctx context.Context, tenantID int64, folderID int64, where store.MailTextField, term string) ([]store.MailTextHit, error)
	SetMailSubscription(ctx context.Context, tenantID int64, mailboxID int64, name string, on bool) error
	Settings(ctx context.Context, tenantID int64) ([]store.Setting, error)
	TouchMailboxLogin(ctx context.Context, tenantID int64, mailboxID int64, at time.Time) error
	Users(ctx context.Context, tenantID int64) ([]store.User, error)
}
