package mailbox

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Store is the mailboxes' part of the store, including what the IMAP
// server (their protocol front end) reads through the service.
type Store interface {
	AccountByLogin(ctx context.Context, login string) (store.Account, error)
	Accounts(ctx context.Context, tenantID int64) ([]store.Account, error)
	AddMail(ctx context.Context, in store.MailInsert) (store.MailAdded, error)
	ClaimMark(ctx context.Context, tenantID int64, key string, old time.Time, at time.Time) (bool, error)
	CopyMail(ctx context.Context, tenantID int64, fromFolder int64, uids []uint32, toFolder int64, checkQuota bool) (src []uint32, dst []uint32, err error)
	CreateMailFolder(ctx context.Context, f store.MailFolder) (store.MailFolder, error)
	CreateMailbox(ctx context.Context, m store.Mailbox, folders []store.MailFolder) (store.Mailbox, error)
	DeleteMailFolder(ctx context.Context, tenantID int64, folderID int64) (free []string, err error)
	DomainByName(ctx context.Context, name string) (store.Domain, error)
	DomainMode(ctx context.Context, tenantID int64, domainID int64) (store.DomainMode, error)
	ExpungeMail(ctx context.Context, tenantID int64, folderID int64, uids []uint32) (expunged []uint32, free []string, err error)
	FolderMail(ctx context.Context, tenantID int64, folderID int64) ([]store.MailMessage, error)
	HandbackMessage(ctx context.Context, tenantID int64, id int64) (store.PendingMail, error)
	ListMail(ctx context.Context, q store.MailQuery) (page []store.MailListed, more bool, err error)
	MailBlobKeys(ctx context.Context) (map[string]int64, error)
	MailByUID(ctx context.Context, tenantID int64, folderID int64, uids []uint32) ([]store.MailMessage, error)
	MailChangesSince(ctx context.Context, tenantID int64, folderID int64, since uint64) (store.MailChanges, error)
	MailFolder(ctx context.Context, tenantID int64, folderID int64) (store.MailFolder, error)
	MailFolderCounts(ctx context.Context, tenantID int64, mailboxID int64) (map[int64]store.MailFolderStatus, error)
	MailFolderStatus(ctx context.Context, tenantID int64, folderID int64) (store.MailFolderStatus, error)
	MailFolders(ctx context.Context, tenantID int64, mailboxID int64) ([]store.MailFolder, error)
	MailHeaders(ctx context.Context, tenantID int64, blobKeys []string) (map[string][]byte, error)
	MailThread(ctx context.Context, tenantID int64, mailboxID int64, threadID int64, limit int) ([]store.MailMessage, error)
	MailSubscriptions(ctx context.Context, tenantID int64, mailboxID int64) ([]string, error)
	MailboxByAddress(ctx context.Context, tenantID int64, address string) (store.Mailbox, error)
	Mailboxes(ctx context.Context, tenantID int64) ([]store.Mailbox, error)
	Mark(ctx context.Context, tenantID int64, key string) (time.Time, error)
	MarkHandedBack(ctx context.Context, tenantID int64, id int64, how string, at time.Time) (free []string, err error)
	MoveMail(ctx context.Context, tenantID int64, fromFolder int64, uids []uint32, toFolder int64) (src []uint32, dst []uint32, err error)
	PendingHandback(ctx context.Context, tenantID int64, domain string, afterID int64, limit int) ([]store.PendingMail, error)
	PurgeHandedBack(ctx context.Context, tenantID int64, domain string, before time.Time) (n int, free []string, err error)
	RenameMailFolder(ctx context.Context, tenantID int64, mailboxID int64, from string, to string) error
	SearchMail(ctx context.Context, tenantID int64, folderID int64, where store.MailTextField, term string) ([]store.MailTextHit, error)
	SetMailSubscription(ctx context.Context, tenantID int64, mailboxID int64, name string, on bool) error
	SetMailboxQuota(ctx context.Context, tenantID int64, address string, quotaMB int64) error
	Settings(ctx context.Context, tenantID int64) ([]store.Setting, error)
	StoreMailFlags(ctx context.Context, tenantID int64, folderID int64, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64) (changed []store.MailMessage, modified []uint32, err error)
	TouchMailboxLogin(ctx context.Context, tenantID int64, mailboxID int64, at time.Time) error
	UserExists(ctx context.Context, tenantID int64, address string) (bool, error)
	Users(ctx context.Context, tenantID int64) ([]store.User, error)
}
