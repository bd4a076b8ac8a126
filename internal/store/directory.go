package store

import (
	"context"
	"time"
)

// Recipient check modes of a domain: how RCPT decides about an address
// that is not in the tenant's user list.
const (
	// RcptCheckNone: the tenant's user list (and mailing lists) decide
	// alone; any other address of the domain is unknown.
	RcptCheckNone = "none"
	// RcptCheckDirectory: addresses of the directory synchronised from
	// the primary service (Microsoft Graph or the Google Directory API)
	// are known too.
	RcptCheckDirectory = "directory"
	// RcptCheckCallout: the primary service's own servers are asked at
	// RCPT (SMTP callout), and their answer is cached.
	RcptCheckCallout = "callout"
)

// Directory sources (RecipientCheck.Source).
const (
	DirectoryGraph  = "graph"
	DirectoryGoogle = "google"
)

// RecipientCheck is a domain's recipient check setting with the state of
// its directory synchronisation.
type RecipientCheck struct {
	TenantID int64
	DomainID int64
	Mode     string // RcptCheckNone, RcptCheckDirectory or RcptCheckCallout
	Source   string // directory: DirectoryGraph or DirectoryGoogle
	// Admin is the Google Workspace administrator the service account
	// acts as (domain-wide delegation); unused for Graph.
	Admin string

	// Written by the synchronisation. Synced is when the directory was
	// last replaced, Entries how many addresses it holds. Attempted and
	// Error are the last attempt and its failure ("" when it worked).
	// Held says the last list fetched was not applied because it was
	// empty or removed too much; it waits for a confirmed sync.
	Synced    time.Time
	Entries   int
	Attempted time.Time
	Error     string
	Held      bool
}

// Kinds of directory entries.
const (
	DirUser  = "user"
	DirAlias = "alias"
	DirGroup = "group"
)

// DirectoryEntry is one address of a domain's synchronised directory.
type DirectoryEntry struct {
	Address string // lower-case local@domain
	Kind    string // DirUser, DirAlias or DirGroup
	// Target is the primary address an alias belongs to ("" otherwise).
	Target string
	Name   string // display name
}

// DirectoryStore keeps the domains' recipient check settings and their
// synchronised directories. The SQLite and PostgreSQL stores implement it.
// Rows go with their domain (and tenant) when it is deleted.
type DirectoryStore interface {
	// RecipientCheck returns a domain's setting; a domain never set is
	// RcptCheckNone (no error).
	RecipientCheck(ctx context.Context, tenantID, domainID int64) (RecipientCheck, error)
	// RecipientChecks lists the tenant's domains whose mode is not none.
	RecipientChecks(ctx context.Context, tenantID int64) ([]RecipientCheck, error)
	// SetRecipientCheck sets Mode, Source and Admin, keeping the directory
	// and the synchronisation state.
	SetRecipientCheck(ctx context.Context, c RecipientCheck) error
	// ReplaceDirectory replaces the domain's directory with entries in one
	// commit and records a successful synchronisation at at (Synced,
	// Attempted, Entries; Error and Held cleared).
	ReplaceDirectory(ctx context.Context, tenantID, domainID int64, entries []DirectoryEntry, at time.Time) error
	// RecordDirectoryAttempt records a synchronisation that did not
	// replace the directory: its time, its error and whether its list is
	// held for confirmation. The directory is kept.
	RecordDirectoryAttempt(ctx context.Context, tenantID, domainID int64, at time.Time, errText string, held bool) error
	// Directory lists a domain's entries by address.
	Directory(ctx context.Context, tenantID, domainID int64) ([]DirectoryEntry, error)
	// DirectoryHas reports whether address is in a directory of the tenant.
	DirectoryHas(ctx context.Context, tenantID int64, address string) (bool, error)
}
