package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// ErrMailboxFull is returned (wrapped) when a message does not fit in its
// mailbox's quota; nothing was committed.
var ErrMailboxFull = errors.New("mailbox full")

// Mailbox is one address's emergency mailbox (internal/mailbox).
type Mailbox struct {
	ID       int64
	TenantID int64
	Address  string // lower-case local@domain
	Domain   string // the address's domain
	// QuotaMB is the allocation in MiB (1 MB steps); 0 = no limit.
	QuotaMB int64
	// UsedBytes and Messages count the messages in the mailbox's folders.
	UsedBytes int64
	Messages  int64
	LastLogin time.Time // zero: never logged in
	Created   time.Time
	// Filled by Mailboxes only: messages received while the domain was in
	// emergency mode (Emergency) and those of them the user has not read
	// (EmergencyUnread, counting only messages still in a folder), the
	// user's sent mail of that time (EmergencySent), and the messages of
	// both kinds not handed back yet (PendingHandback).
	Emergency       int64
	EmergencyUnread int64
	EmergencySent   int64
	PendingHandback int64
}

// QuotaBytes is the quota in bytes (0 = no limit).
func (m Mailbox) QuotaBytes() int64 { return m.QuotaMB << 20 }

// MailFolder is one folder of a mailbox. Name is UTF-8 with "/" between
// levels; the inbox is "INBOX".
type MailFolder struct {
	ID         int64
	TenantID   int64
	MailboxID  int64
	Name       string
	SpecialUse string // `\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive` or ""
	// UIDValidity is unique among every folder the mailbox ever had
	// (RFC 9051 2.3.1.1): a folder deleted and created again gets a new one.
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	Created       time.Time
}

// MailFolderStatus counts a folder's messages.
type MailFolderStatus struct {
	Messages int
	Unseen   int
	Deleted  int
	Size     int64
}

// MailMessage is one message in a folder. The body is a blob in the
// mailbox blob store, named by BlobKey; copies made by COPY share it.
type MailMessage struct {
	ID           int64
	TenantID     int64
	MailboxID    int64
	FolderID     int64
	UID          uint32
	ModSeq       uint64
	Flags        []string // system flags (`\Seen`) and keywords, sorted
	InternalDate time.Time
	Size         int64
	BlobKey      string
	// Decoded summary fields (Japanese charsets too).
	From, To, Subject, MessageIDHdr string
	Date                            time.Time // Date header; zero when absent or unreadable
	// HasAttachment: the message has parts offered as files.
	HasAttachment bool
	// ThreadID names the message's conversation in its mailbox: the
	// ThreadID of a message it answers (In-Reply-To, References) that the
	// mailbox held when it was added, else its own ID.
	ThreadID int64
	// Delivery: the queue message it came from ("" for APPEND and copies),
	// its envelope sender, and whether it arrived while its domain was in
	// emergency mode (so it is handed back to the primary service).
	QueueID   string
	MailFrom  string
	Emergency bool
	// Sent marks the user's sent mail of the emergency (stored in a \Sent
	// folder while the domain was in emergency mode); Emergency is set
	// with it, as it is owed to the primary service's Sent folder too.
	Sent        bool
	HandedBack  time.Time
	HandbackHow string
}

// HasFlag reports whether the message carries flag (case-insensitive).
func (m MailMessage) HasFlag(flag string) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// MailInsert is a message to add to a folder; its blob is already durable.
type MailInsert struct {
	// Message fields used: TenantID, MailboxID, FolderID, Flags,
	// InternalDate, Size, BlobKey, the summary fields, QueueID, MailFrom,
	// Emergency, Sent.
	Message MailMessage
	// Header is the raw header section, kept so header fetches need not
	// read the blob (nil: not kept).
	Header []byte
	// SearchHeader and SearchBody are the decoded, normalised texts that
	// SearchMail looks in.
	SearchHeader, SearchBody string
	// SearchFrom, SearchTo (To and Cc) and SearchSubject are the decoded,
	// normalised fields ListMail's field filters look in.
	SearchFrom, SearchTo, SearchSubject string
	// Parents are the Message-IDs (with their angle brackets) the message
	// answers: In-Reply-To, then References from the nearest. AddMail puts
	// the message in the conversation of the first of them it finds in
	// the mailbox.
	Parents []string
	// CheckQuota makes the insert conditional on the mailbox's quota: the
	// mailbox's usage plus this message must fit, checked in the same
	// transaction (ErrMailboxFull otherwise).
	CheckQuota bool
}

// MailAdded is the outcome of AddMail.
type MailAdded struct {
	Message MailMessage // with its UID and ModSeq
	// Duplicate: a message with the same QueueID was already in the
	// mailbox; Message is that one and nothing was written.
	Duplicate bool
	// UsedBytes and QuotaBytes of the mailbox after the insert.
	UsedBytes, QuotaBytes int64
}

// FlagOp says how StoreMailFlags changes flags.
type FlagOp int

// Flag operations (RFC 9051 6.4.6).
const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// ApplyFlags returns cur changed by op with flags, sorted, without
// duplicates (flags compare case-insensitively; system flags take their
// canonical case).
func ApplyFlags(cur []string, op FlagOp, flags []string) []string {
	set := map[string]string{}
	if op != FlagsSet {
		for _, f := range cur {
			set[strings.ToLower(f)] = CanonicalFlag(f)
		}
	}
	for _, f := range flags {
		f = CanonicalFlag(f)
		if f == "" {
			continue
		}
		if op == FlagsRemove {
			delete(set, strings.ToLower(f))
		} else {
			set[strings.ToLower(f)] = f
		}
	}
	out := make([]string, 0, len(set))
	for _, f := range set {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// CanonicalFlag gives system flags their RFC 9051 spelling; keywords are
// kept as written. Flags with spaces or control characters are dropped
// (returned as "").
func CanonicalFlag(f string) string {
	if f == "" || strings.ContainsAny(f, " \t\r\n\x00") {
		return ""
	}
	for _, s := range []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, `\Recent`, `$Forwarded`, `$Junk`, `$NotJunk`, `$MDNSent`, `$Phishing`} {
		if strings.EqualFold(f, s) {
			return s
		}
	}
	return f
}

// SameFlags reports whether two sorted flag lists are equal.
func SameFlags(a, b []string) bool { return slices.Equal(a, b) }

// JoinFlags and SplitFlags convert a flag list to and from its column form.
func JoinFlags(f []string) string { return strings.Join(f, " ") }

// SplitFlags is JoinFlags' inverse.
func SplitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

// MailTextField says where SearchMail looks.
type MailTextField int

// Search fields (RFC 9051 6.4.4: HEADER/FROM/... look in the header, BODY
// in the body, TEXT in both).
const (
	InHeader MailTextField = iota
	InBody
	InText
)

// MailTextHit is a message whose text holds the searched term.
type MailTextHit struct {
	UID uint32
	// Header is the message's normalised header text ("name: value"
	// lines), for callers that narrow a header search to one field.
	Header string
}

// MailChanges is what changed in a folder after a mod-sequence.
type MailChanges struct {
	Folder   MailFolder // as it is now
	Changed  []MailMessage
	Expunged []uint32 // UIDs removed, ascending
}

// PendingMail is a message received in emergency mode (or sent mail of
// that time, Message.Sent) that has not been handed back to the primary
// service yet.
type PendingMail struct {
	Message MailMessage
	Address string // the mailbox's address (the recipient)
	// Folder is where the user keeps it now; "" when the user deleted it
	// (it is kept until handed back).
	Folder string
}

// Orders of ListMail.
const (
	MailSortDate    = "date" // arrival (internal date), the default
	MailSortFrom    = "from"
	MailSortSubject = "subject"
	MailSortSize    = "size"
)

// MailQuery selects and orders messages of one mailbox for a message list
// or a search, one page at a time.
type MailQuery struct {
	TenantID, MailboxID int64
	// FolderID is the folder listed; 0 searches every folder.
	FolderID int64
	Sort     string // MailSort*; "" is MailSortDate
	Asc      bool   // oldest, A to Z, smallest first; default newest first
	// After resumes the order after this row (the last of the previous
	// page); nil starts at the beginning.
	After *MailCursor
	Limit int // at most 500; 0 = 50
	// Threads lists, of each conversation in the folder, only its newest
	// message, with the conversation's size in the folder (MailListed.
	// Thread). Only with FolderID set and the date order.
	Threads bool
	// Filters, all of which must hold. Texts are normalised as the search
	// texts are (mailbox.Fold) and match as substrings.
	From, To, Subject, Body string
	Text                    string    // anywhere in header or body
	Since, Before           time.Time // internal date: Since <= t < Before
	Unseen, Flagged         bool
}

// MailCursor is the position of a row in a ListMail order: its sort value
// (Num for date and size, Str for from and subject) and its ID.
type MailCursor struct {
	Num int64
	Str string
	ID  int64
}

// MailListed is one row of a ListMail page.
type MailListed struct {
	Message MailMessage // every field
	// Thread counts the messages of the conversation in the folder
	// (Threads queries; otherwise 1).
	Thread int
	Cursor MailCursor // this row's position, to resume after it
}

// MailboxStore keeps the emergency mailboxes (internal/mailbox): every
// address's folders and messages, with UIDs, mod-sequences and flags that
// survive restarts and hold across nodes. Every write is durable before it
// returns; UIDs and mod-sequences of a folder are assigned in its row, so
// two writers (on any node) never hand out the same one. Methods that
// return blob keys ("free") name the blobs no message refers to any more:
// the caller deletes them after the call returned.
type MailboxStore interface {
	// CreateMailbox adds a mailbox with its first folders (their
	// UIDValidity and UIDNext are assigned here); ErrExists when the
	// address has one.
	CreateMailbox(ctx context.Context, m Mailbox, folders []MailFolder) (Mailbox, error)
	MailboxByAddress(ctx context.Context, tenantID int64, address string) (Mailbox, error)
	// Mailboxes lists a tenant's mailboxes with their emergency counts.
	Mailboxes(ctx context.Context, tenantID int64) ([]Mailbox, error)
	SetMailboxQuota(ctx context.Context, tenantID int64, address string, quotaMB int64) error
	TouchMailboxLogin(ctx context.Context, tenantID, mailboxID int64, at time.Time) error
	DeleteMailbox(ctx context.Context, tenantID int64, address string) (free []string, err error)

	CreateMailFolder(ctx context.Context, f MailFolder) (MailFolder, error)
	MailFolders(ctx context.Context, tenantID, mailboxID int64) ([]MailFolder, error)
	MailFolder(ctx context.Context, tenantID, folderID int64) (MailFolder, error)
	// RenameMailFolder renames a folder and every folder below it
	// ("from/..."), keeping their UIDs; ErrExists when a target name is
	// taken. The inbox cannot be renamed this way.
	RenameMailFolder(ctx context.Context, tenantID, mailboxID int64, from, to string) error
	// DeleteMailFolder removes a folder and its messages (messages still
	// to be handed back stay, without a folder, until they are).
	DeleteMailFolder(ctx context.Context, tenantID, folderID int64) (free []string, err error)
	MailFolderStatus(ctx context.Context, tenantID, folderID int64) (MailFolderStatus, error)
	SetMailSubscription(ctx context.Context, tenantID, mailboxID int64, name string, on bool) error
	MailSubscriptions(ctx context.Context, tenantID, mailboxID int64) ([]string, error)

	// AddMail adds a message to a folder: a new UID and mod-sequence, the
	// mailbox's usage, and, when QueueID is set, idempotence: a second
	// insert with the same QueueID in the same mailbox writes nothing and
	// reports the first (Duplicate).
	AddMail(ctx context.Context, in MailInsert) (MailAdded, error)
	// FolderMail lists a folder's messages by UID, without the summary
	// fields (the session view of SELECT).
	FolderMail(ctx context.Context, tenantID, folderID int64) ([]MailMessage, error)
	// MailByUID returns the named messages with every field, by UID.
	MailByUID(ctx context.Context, tenantID, folderID int64, uids []uint32) ([]MailMessage, error)
	// MailHeaders returns the kept raw headers of the tenant's messages
	// with the given blob keys (those not kept are absent).
	MailHeaders(ctx context.Context, tenantID int64, blobKeys []string) (map[string][]byte, error)
	// MailChangesSince lists messages whose mod-sequence is above since
	// and UIDs expunged after it.
	MailChangesSince(ctx context.Context, tenantID, folderID int64, since uint64) (MailChanges, error)
	// StoreMailFlags changes the flags of the messages with the given UIDs
	// and gives every message it changed one new mod-sequence. With
	// unchangedSince > 0, messages whose mod-sequence is above it are left
	// alone and listed in modified (RFC 7162 3.1.3).
	StoreMailFlags(ctx context.Context, tenantID, folderID int64, uids []uint32, op FlagOp, flags []string, unchangedSince uint64) (changed []MailMessage, modified []uint32, err error)
	// ExpungeMail removes the folder's messages flagged \Deleted (only
	// those among uids when uids is not nil) and returns their UIDs.
	ExpungeMail(ctx context.Context, tenantID, folderID int64, uids []uint32) (expunged []uint32, free []string, err error)
	// CopyMail copies messages to another folder of the same mailbox
	// (sharing their blobs) and returns source and new UIDs, pairwise in
	// ascending source order. With checkQuota the copies must fit.
	CopyMail(ctx context.Context, tenantID, fromFolder int64, uids []uint32, toFolder int64, checkQuota bool) (src, dst []uint32, err error)
	// MoveMail moves messages to another folder of the same mailbox
	// (RFC 6851): new UIDs there, expunged here, in one transaction.
	MoveMail(ctx context.Context, tenantID, fromFolder int64, uids []uint32, toFolder int64) (src, dst []uint32, err error)
	// SearchMail finds the folder's messages whose normalised text holds
	// term (already normalised).
	SearchMail(ctx context.Context, tenantID, folderID int64, where MailTextField, term string) ([]MailTextHit, error)
	// ListMail returns one page of a mailbox's messages in q's order with
	// q's filters (the webmail's message list and search), and whether
	// there are more after it. Messages without a folder (deleted, kept
	// for the hand-back) are never listed. A mailbox or folder of another
	// tenant lists nothing.
	ListMail(ctx context.Context, q MailQuery) (page []MailListed, more bool, err error)
	// MailFolderCounts counts each folder's messages and unseen messages
	// (Messages, Unseen and Size of MailFolderStatus) by folder ID.
	MailFolderCounts(ctx context.Context, tenantID, mailboxID int64) (map[int64]MailFolderStatus, error)
	// MailThread lists the messages of a conversation in any folder of
	// the mailbox, oldest first, at most limit.
	MailThread(ctx context.Context, tenantID, mailboxID, threadID int64, limit int) ([]MailMessage, error)

	// PendingHandback lists messages received in emergency mode for
	// addresses of domain, and their users' sent mail of that time, not
	// handed back yet, with ID > afterID, by ID.
	PendingHandback(ctx context.Context, tenantID int64, domain string, afterID int64, limit int) ([]PendingMail, error)
	// MarkHandedBack records that a message was handed back (how: "smtp",
	// "graph", "gmail", ...); ErrNotFound when it was already, or is gone.
	// A message the user had deleted goes for good, and its blob is
	// returned when nothing else refers to it.
	// HandbackMessage is one emergency message (received or sent) not
	// handed back yet, by ID; ErrNotFound when there is none (handed back, or gone).
	HandbackMessage(ctx context.Context, tenantID, id int64) (PendingMail, error)
	MarkHandedBack(ctx context.Context, tenantID, id int64, how string, at time.Time) (free []string, err error)
	// PurgeHandedBack deletes messages of the domain's mailboxes handed
	// back before the given time.
	PurgeHandedBack(ctx context.Context, tenantID int64, domain string, before time.Time) (n int, free []string, err error)
	// MailBlobKeys lists every blob key that a mailbox message refers to,
	// with the size of its body, across tenants (recovery after a crash).
	MailBlobKeys(ctx context.Context) (map[string]int64, error)
}

// MailboxDomain is the domain part of a mailbox address.
func MailboxDomain(address string) string {
	return address[strings.LastIndexByte(address, '@')+1:]
}
