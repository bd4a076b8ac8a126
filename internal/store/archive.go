package store

import (
	"context"
	"errors"
	"time"
)

// Archive modes: which messages a tenant archives.
const (
	ArchiveAll      = "all"  // every inbound and outbound message
	ArchiveInbound  = "in"   // inbound only
	ArchiveOutbound = "out"  // outbound only
	ArchiveRule     = "rule" // only messages matching the tenant's rule (a search query)
)

// What a full archive does (ArchiveSettings.OnFull).
const (
	ArchiveFullStop         = "stop"          // stop archiving; mail still flows and the gap is logged
	ArchiveFullDeleteOldest = "delete-oldest" // delete the oldest day (holds respected), logged
)

// DefaultArchiveRetentionDays is six months.
const DefaultArchiveRetentionDays = 183

// ArchiveSettings is one tenant's archive configuration. A tenant without a
// row has archiving off.
type ArchiveSettings struct {
	TenantID int64
	Enabled  bool
	Mode     string // Archive* mode; "" = ArchiveAll
	Rule     string // search query selecting the messages kept (Mode ArchiveRule)
	// RetentionDays: bodies older than this are deleted (a logged event);
	// 0 = DefaultArchiveRetentionDays.
	RetentionDays int
	// CapacityBytes: 0 = 10 GB per started 10 addresses of the tenant.
	CapacityBytes int64
	OnFull        string // ArchiveFull*; "" = ArchiveFullStop
	// UserSearch lets end users search their own archived mail.
	UserSearch bool
	Updated    time.Time
}

// ArchivePending is a message queued for archiving in the transaction that
// accepted it; its blob (in the queue's spool) is kept until the archiver
// is done with it.
type ArchivePending struct {
	ID         int64
	TenantID   int64
	MessageID  string // queue message ID
	BlobKey    string // in the queue spool
	Size       int64
	Direction  Direction
	Created    time.Time
	Attempts   int
	LastError  string
	LeaseOwner string
	LeaseUntil time.Time
}

// Archive log entry kinds. Every entry is a leaf of the tenant's Merkle
// tree; a message's body leaves the store only through a logged deletion.
const (
	ArchiveKindMessage   = "message"  // an archived message
	ArchiveKindDeletion  = "deletion" // bodies removed (retention, capacity); Meta lists them
	ArchiveKindGap       = "gap"      // messages not archived (capacity full, errors); Meta says which
	ArchiveKindSettings  = "settings" // archiving turned on, off or changed
	ArchiveKindImportLog = "import"   // an import run (its messages are ArchiveKindMessage with Imported)
	ArchiveKindHold      = "hold"     // legal hold placed or lifted
)

// ArchiveEntry is one entry of a tenant's archive log.
type ArchiveEntry struct {
	TenantID int64
	Seq      int64  // position in the tenant's log, from 0; assigned by AppendArchive
	ID       string // archive ID, unique per tenant
	Kind     string // ArchiveKind*
	QueueID  string // the queue message archived ("" for imports and events)
	// Direction of the message ("in", "out"; "" for events).
	Direction Direction
	Imported  bool
	At        time.Time // when the entry was logged
	// Received is when mailgate accepted the message (or the Date of an
	// imported one).
	Received time.Time
	Size     int64
	// SHA256 is the lower-case hex SHA-256 of the message as received
	// (events: "").
	SHA256 string
	// Segments are the SHA-256 (hex) of the blobs whose concatenation is
	// the message, in order (deduplicated per tenant).
	Segments []string
	// Meta is canonical JSON describing the entry: envelope, verdicts and
	// delivery at archiving time for a message, what happened for an event.
	Meta string
	// Leaf is the entry's Merkle leaf hash, set by AppendArchive.
	Leaf []byte
	// Chunks holds the first 8 bytes of the SHA-256 of each 4 KiB of the
	// message, to say where a changed message differs.
	Chunks []byte
	// Summary for listings and search results.
	FromHdr, ToHdr, CcHdr, Subject string
	HasAttachment                  bool
	Verdict                        string // "clean", "spam", "virus", "quarantined", ...
	// Deleted is when the body was removed by a logged deletion (zero while kept).
	Deleted time.Time
	// Delivery is the recipients' outcome as last seen (mutable, not part
	// of the leaf: delivery goes on after archiving).
	Delivery string
}

// ArchiveBlob is one stored segment of archived messages.
type ArchiveBlob struct {
	SHA256 string
	Key    string // blob key in the archive namespace
	Size   int64
}

// ArchiveAppend is one append to a tenant's log, in one transaction.
type ArchiveAppend struct {
	TenantID int64
	// PendingID, when not 0, is the pending row this append archives: it
	// is deleted in the same transaction (with Owner's lease), and when
	// its queue message is archived already nothing is appended.
	PendingID int64
	Owner     string
	Entries   []ArchiveEntry
	// Blobs are the segments the entries refer to that this call wrote;
	// a segment stored meanwhile under another key keeps that key and the
	// new one is returned in Appended.Unused.
	Blobs []ArchiveBlob
	// Checkpoint signs the tree after the append: called inside the
	// transaction with the new size and root; its result is stored as the
	// latest checkpoint. nil: no checkpoint.
	Checkpoint func(size int64, root []byte) (ArchiveCheckpoint, error)
}

// ArchiveAppended is AppendArchive's result.
type ArchiveAppended struct {
	Entries   []ArchiveEntry // with Seq and Leaf
	Duplicate bool           // the pending row's message was archived already
	// SpoolFree: the pending row's spool blob is needed by nobody now
	// (its queue message is done, or gone): the caller deletes it.
	SpoolFree bool
	// Lost (AppendArchiveBatch only): the pending row is no longer leased
	// to Owner (another node has it); nothing was done for this append.
	Lost   bool
	Unused []string // blob keys written by the caller but not used
	Size   int64    // tree size after the append
	Root   []byte
}

// ArchiveCheckpoint is a signed tree head of a tenant's log.
type ArchiveCheckpoint struct {
	TenantID  int64
	Size      int64
	Root      []byte
	At        time.Time
	Text      string // the signed text (see package archive/tlog)
	Signature []byte // Ed25519 over Text
	KeyID     string
}

// ArchiveHold suspends deletion of matching messages.
type ArchiveHold struct {
	ID       int64
	TenantID int64
	Kind     string // "address" or "query"
	Value    string // an address, or a search query
	Reason   string
	By       string
	Created  time.Time
}

// ArchiveUsage is how much a tenant's archive holds.
type ArchiveUsage struct {
	Messages     int64 // entries with a body
	Bytes        int64 // stored bytes (deduplicated segments)
	LogicalBytes int64 // sum of message sizes
	Pending      int64 // messages waiting to be archived
	Entries      int64 // log size
}

// ArchiveStats summarises a tenant's archive for the statistics page.
type ArchiveStats struct {
	Usage       ArchiveUsage
	Inbound     int64
	Outbound    int64
	Imported    int64
	Attachments int64 // messages with attachments
	Deleted     int64 // bodies removed by logged deletions
	ByVerdict   map[string]int64
	TopSenders  []ArchiveCount
	ByDay       []ArchiveCount // last 31 days: Key "YYYY-MM-DD"
}

// ArchiveCount is a labelled count.
type ArchiveCount struct {
	Key   string
	Count int64
	Bytes int64
}

// ErrArchiveLease is returned when a pending row is no longer leased to the
// caller (another node took it over).
var ErrArchiveLease = errors.New("archive: pending message leased to another node")

// ArchiveStore keeps the audit archive's rows: tenants' settings, messages
// waiting to be archived (inserted by Accept), the append-only log with its
// Merkle tree state and signed checkpoints, deduplicated body segments,
// legal holds and access grants. Writes are durable when they return.
type ArchiveStore interface {
	ArchiveSettings(ctx context.Context, tenantID int64) (ArchiveSettings, error) // zero value (off) when unset
	SetArchiveSettings(ctx context.Context, s ArchiveSettings) error
	// ArchiveTenants lists tenants with a settings row (archiving on or
	// off: retention still applies to what was archived).
	ArchiveTenants(ctx context.Context) ([]ArchiveSettings, error)

	// ClaimArchivePending leases up to limit pending messages (unleased or
	// lease expired) to owner, oldest first, across tenants.
	ClaimArchivePending(ctx context.Context, owner string, now, until time.Time, limit int) ([]ArchivePending, error)
	// FailArchivePending records a failed attempt and releases the lease
	// until retryAt.
	FailArchivePending(ctx context.Context, id int64, owner, reason string, retryAt time.Time) error
	// DropArchivePending deletes a pending row without archiving (not
	// selected by the tenant's rule, or logged as a gap) and reports
	// whether its spool blob is needed by nobody now.
	DropArchivePending(ctx context.Context, id int64, owner string) (spoolFree bool, err error)
	// ArchivePendingBlob reports whether a pending row refers to the spool
	// blob key (the queue then leaves the blob to the archiver).
	ArchivePendingBlob(ctx context.Context, key string) (bool, error)

	// AppendArchive appends entries to the tenant's log in one transaction
	// (appends to one tenant's log are serialised across nodes).
	AppendArchive(ctx context.Context, a ArchiveAppend) (ArchiveAppended, error)
	// AppendArchiveBatch makes several appends in one transaction, in the
	// order given (callers order them by tenant, so that nodes lock the
	// tenants' logs in one order); results are in the same order. An
	// append whose pending row lost its lease is skipped (Lost); any
	// other failure fails the whole batch and nothing is appended.
	AppendArchiveBatch(ctx context.Context, as []ArchiveAppend) ([]ArchiveAppended, error)
	// ArchiveBlobBySHA returns the stored segment with that hash.
	ArchiveBlobBySHA(ctx context.Context, tenantID int64, sha string) (ArchiveBlob, error)
	// ArchiveEntries lists the tenant's log from seq fromSeq on, in order.
	ArchiveEntries(ctx context.Context, tenantID, fromSeq int64, limit int) ([]ArchiveEntry, error)
	ArchiveEntry(ctx context.Context, tenantID int64, id string) (ArchiveEntry, error)
	// ArchiveEntriesByID returns the entries with these IDs (missing ones
	// are left out), in the order given.
	ArchiveEntriesByID(ctx context.Context, tenantID int64, ids []string) ([]ArchiveEntry, error)
	// ArchiveLeaves returns the leaf hashes of seqs [0, size).
	ArchiveLeaves(ctx context.Context, tenantID, size int64) ([][]byte, error)
	// ArchiveTree returns the log's size and Merkle frontier (the roots of
	// its perfect subtrees, largest first).
	ArchiveTree(ctx context.Context, tenantID int64) (size int64, frontier [][]byte, err error)
	// ArchiveCheckpoints returns the newest checkpoints, newest first.
	ArchiveCheckpoints(ctx context.Context, tenantID int64, limit int) ([]ArchiveCheckpoint, error)
	// SetArchiveDelivery updates an entry's delivery outcome.
	SetArchiveDelivery(ctx context.Context, tenantID int64, id, delivery string) error

	// UnindexedArchive lists entries not yet seen by the search indexer,
	// across tenants, in log order; MarkArchiveIndexed records them.
	UnindexedArchive(ctx context.Context, limit int) ([]ArchiveEntry, error)
	MarkArchiveIndexed(ctx context.Context, tenantID int64, ids []string) error

	// ArchiveDeletable lists message entries with a body received before
	// before, oldest first (retention and capacity).
	ArchiveDeletable(ctx context.Context, tenantID int64, before time.Time, limit int) ([]ArchiveEntry, error)
	// DeleteArchiveBodies removes the bodies of the entries (by ID) and
	// appends ev (a deletion entry) in one transaction; it returns the
	// blob keys no entry refers to any more, for the caller to delete.
	DeleteArchiveBodies(ctx context.Context, tenantID int64, ids []string, ev ArchiveAppend) (free []string, app ArchiveAppended, err error)

	ArchiveUsage(ctx context.Context, tenantID int64) (ArchiveUsage, error)
	ArchiveStats(ctx context.Context, tenantID int64, now time.Time) (ArchiveStats, error)

	AddArchiveHold(ctx context.Context, h ArchiveHold) (ArchiveHold, error)
	DeleteArchiveHold(ctx context.Context, tenantID, id int64) error
	ArchiveHolds(ctx context.Context, tenantID int64) ([]ArchiveHold, error)

	// Archive access grants: principals are console logins or
	// "api:<token name>".
	SetArchiveAccess(ctx context.Context, tenantID int64, principal string, on bool) error
	ArchiveAccess(ctx context.Context, tenantID int64, principal string) (bool, error)
	ArchiveAccessList(ctx context.Context, tenantID int64) ([]string, error)
}

// ArchiveSelects reports whether a tenant with settings s archives a
// message of direction d at accept time (the rule, if any, is applied by
// the archiver on the content).
func ArchiveSelects(s ArchiveSettings, d Direction) bool {
	if !s.Enabled || (d != Inbound && d != Outbound) {
		return false
	}
	switch s.Mode {
	case ArchiveInbound:
		return d == Inbound
	case ArchiveOutbound:
		return d == Outbound
	}
	return true
}

// ArchiveQueued reports whether Accept queues the message for archiving
// (for tenants that archive its direction): a message as a client sent it,
// not mailgate's own copies, notices and re-submissions.
func ArchiveQueued(m Message) bool {
	return (m.Direction == Inbound || m.Direction == Outbound) && m.BlobKey != "" && m.ClientIP != "local"
}
