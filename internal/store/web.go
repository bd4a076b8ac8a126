package store

import (
	"context"
	"time"
)

// Role is what a console or API identity may do.
type Role string

// Roles, from most to least powerful.
const (
	RoleOperator Role = "operator" // every tenant (TenantID 0)
	RoleAdmin    Role = "admin"    // one tenant
	RoleUser     Role = "user"     // one address of one tenant
)

// Account is a console login. Operators have TenantID 0; a user's Login is
// their mail address.
type Account struct {
	ID         int64
	TenantID   int64
	Login      string // lower-case, unique across tenants
	Role       Role
	Hash       string // argon2id; "" = no local password (delegated login only)
	TOTPSecret string // base32; "" = not enrolled
	Lang       string // "ja", "en" or "" (browser decides)
	Disabled   bool
	// PasswordChanged invalidates sessions created before it.
	PasswordChanged time.Time
	Created         time.Time
	// AppHash is the argon2id hash of the account's mail app password
	// ("" = none) and AppCreated when it was made. They are read with the
	// account but written only by SetAppPassword.
	AppHash    string
	AppCreated time.Time
}

// MailHash is the password hash IMAP and submission check for the
// account. A mail app cannot give a second factor, so an account that
// has one (TOTP enrolled, or required of its role: requireTOTP for every
// role but user, as the console asks) signs in to them only with its mail
// app password, "" (no password works) until it has one. Any account
// with a mail app password uses that one; others use their console
// password.
func (a Account) MailHash(requireTOTP bool) string {
	switch {
	case a.AppHash != "":
		return a.AppHash
	case a.TOTPSecret != "" || requireTOTP && a.Role != RoleUser:
		return ""
	}
	return a.Hash
}

// WebSession is a console login session. The cookie holds a random token;
// the store keeps only its SHA-256 (ID), so a leaked database does not
// hand out sessions.
type WebSession struct {
	ID        string // hex SHA-256 of the cookie token
	AccountID int64
	TenantID  int64
	CSRF      string // per-session anti-CSRF token
	MFADone   bool   // the second factor was given (or is not required)
	RemoteIP  string
	Created   time.Time
	LastSeen  time.Time
	Expires   time.Time
}

// APIToken authenticates REST API calls. The secret is shown once; the store
// keeps its SHA-256.
type APIToken struct {
	ID        int64
	TenantID  int64 // 0 = operator token (all tenants)
	Name      string
	Hash      string // hex SHA-256 of the secret
	Scope     string // "read" or "write"
	CreatedBy string
	Created   time.Time
	Expires   time.Time // zero = never
	LastUsed  time.Time
	Revoked   bool
}

// AuditEntry is one administrative change. Entries are append-only: the
// store offers no way to edit or delete one.
type AuditEntry struct {
	ID       int64
	TenantID int64 // 0 = system-wide change
	At       time.Time
	Actor    string // account login, "api:<token name>", "cli:<unix user>", "link:<rcpt>"
	IP       string
	Action   string // e.g. "domain.add", "policy.set", "quarantine.release"
	Target   string
	Before   string // JSON or text; "" when created
	After    string // JSON or text; "" when deleted
}

// AuditFilter narrows AuditLog.
type AuditFilter struct {
	TenantID int64 // 0 with AllTenants = operator view
	All      bool  // operator: every tenant
	Actor    string
	Action   string // prefix
	From, To time.Time
	Limit    int
	BeforeID int64 // paging: entries with ID < BeforeID
}

// TrackFilter narrows SearchMessages. Text fields match substrings,
// case-insensitively; Subject matches the decoded subject (Japanese too).
type TrackFilter struct {
	TenantID  int64 // 0 with All = operator view
	All       bool
	Sender    string
	Recipient string
	Subject   string
	MessageID string // queue ID or Message-ID header (substring)
	From, To  time.Time
	// Verdict is a recipient outcome or pipeline finding: "queued",
	// "delivered", "deferred", "bounced", "quarantined", "rejected",
	// "discarded", "spam", "virus", "held" or "" for any.
	Verdict   string
	Direction Direction // "" = any
	Limit     int
	// Before pages backwards: only messages received before this one
	// (ReceivedAt, ID) cursor.
	BeforeTime time.Time
	BeforeID   string
}

// TrackRow is one message of a tracking search.
type TrackRow struct {
	Message    Message
	Recipients []Recipient
	Verdicts   []string // findings summarised: "spam", "virus", "dmarc", ...
}

// Report metrics, counted per recipient address and day.
const (
	MetricReceived    = "received"
	MetricDelivered   = "delivered"
	MetricSpam        = "spam"
	MetricVirus       = "virus"
	MetricQuarantined = "quarantined"
	MetricReleased    = "released"
	MetricRejected    = "rejected"
	MetricDeleted     = "deleted" // quarantine copies deleted or expired
	MetricBounced     = "bounced"
	MetricDiscarded   = "discarded"

	// Outbound protection, per message under its sender (counting.go).
	MetricOutBlocked   = "out_blocked"
	MetricOutHeld      = "out_held"
	MetricOutApproved  = "out_approved"
	MetricOutRejected  = "out_rejected"
	MetricOutDelayed   = "out_delayed"
	MetricOutCancelled = "out_cancelled"
	MetricOutConverted = "out_converted"
	MetricOutZipped    = "out_zipped"
	MetricOutLinked    = "out_linked"
)

// Metrics lists every report metric in column order.
var Metrics = []string{MetricReceived, MetricDelivered, MetricSpam, MetricVirus, MetricQuarantined,
	MetricReleased, MetricRejected, MetricDeleted, MetricBounced, MetricDiscarded,
	MetricOutBlocked, MetricOutHeld, MetricOutApproved, MetricOutRejected, MetricOutDelayed, MetricOutCancelled,
	MetricOutConverted, MetricOutZipped, MetricOutLinked}

// ReportFilter narrows Report. Days are "YYYY-MM-DD" in the report time zone.
type ReportFilter struct {
	TenantID int64 // 0 with All = every tenant
	All      bool
	Domain   string // "" = every domain
	Address  string // "" = every address
	FromDay  string
	ToDay    string // inclusive
	// GroupBy: "day" or "month" rows; ByAddress splits rows per address,
	// ByDomain per domain (else one row per period).
	GroupBy   string
	ByDomain  bool
	ByAddress bool
}

// ReportRow is the counts of one period (and domain/address when split).
type ReportRow struct {
	Period  string // "2026-11-21" or "2026-11"
	Domain  string
	Address string
	Counts  map[string]int64 // by Metric*
}

// QuarantineFilter narrows SearchQuarantine.
type QuarantineFilter struct {
	TenantID int64
	Rcpt     string // "" = every address of the tenant (admin view)
	Domain   string // "" = any
	State    QuarantineState
	Query    string // substring of sender, From header or decoded subject
	Reason   string // substring of reasons
	From, To time.Time
	Sort     string // "date" (default), "score", "sender", "subject", "size", "rcpt"
	Asc      bool
	Limit    int
	Offset   int
}

// WebStore holds what the console, API and quarantine life cycle need.
type WebStore interface {
	CreateAccount(ctx context.Context, a Account) (Account, error)
	Account(ctx context.Context, id int64) (Account, error)
	AccountByLogin(ctx context.Context, login string) (Account, error) // crosses tenants
	Accounts(ctx context.Context, tenantID int64) ([]Account, error)   // 0 = operators
	// UpdateAccount writes every field of a (matched by ID and TenantID)
	// but the mail app password's.
	UpdateAccount(ctx context.Context, a Account) error
	// SetAppPassword sets (hash "" removes) the mail app password of the
	// tenant's account id, made at at.
	SetAppPassword(ctx context.Context, tenantID, id int64, hash string, at time.Time) error
	DeleteAccount(ctx context.Context, tenantID, id int64) error

	CreateSession(ctx context.Context, s WebSession) error
	Session(ctx context.Context, id string) (WebSession, error)
	// UpdateSession writes MFADone, CSRF, LastSeen and Expires.
	UpdateSession(ctx context.Context, s WebSession) error
	DeleteSession(ctx context.Context, id string) error
	// DeleteSessions ends every session of an account (password change,
	// disable, delete) and returns how many there were.
	DeleteSessions(ctx context.Context, accountID int64) (int, error)
	// PurgeSessions deletes sessions expired before now.
	PurgeSessions(ctx context.Context, now time.Time) (int, error)

	CreateAPIToken(ctx context.Context, t APIToken) (APIToken, error)
	APITokenByHash(ctx context.Context, hash string) (APIToken, error) // crosses tenants
	APITokens(ctx context.Context, tenantID int64) ([]APIToken, error)
	RevokeAPIToken(ctx context.Context, tenantID, id int64) error
	TouchAPIToken(ctx context.Context, id int64, at time.Time) error

	AddAudit(ctx context.Context, a AuditEntry) error
	AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error)

	SearchMessages(ctx context.Context, f TrackFilter) ([]TrackRow, error)
	// Report sums the per-recipient daily counters that the store keeps
	// up to date from the tracking events it writes (so reports and the
	// tracking log always agree).
	Report(ctx context.Context, f ReportFilter) ([]ReportRow, error)
	// PurgeReports deletes daily counters before day (retention).
	PurgeReports(ctx context.Context, beforeDay string) (int, error)

	SearchQuarantine(ctx context.Context, f QuarantineFilter) (items []QuarantineItem, total int, err error)
	// QuarantineUsage is the size and count of an address's held copies.
	QuarantineUsage(ctx context.Context, tenantID int64, rcpt string) (bytes int64, count int, err error)
	// ExpiredQuarantine lists held copies whose Expires is before now,
	// across tenants (retention job).
	ExpiredQuarantine(ctx context.Context, now time.Time, limit int) ([]QuarantineItem, error)
	// QuarantineRecipients lists addresses with held copies created after
	// since (digest job), across tenants.
	QuarantineRecipients(ctx context.Context, since time.Time) ([]QuarantineOwner, error)

	// Marks are small per-key timestamps for scheduled jobs (last digest
	// sent to an address, last quota warning), shared by every node.
	Mark(ctx context.Context, tenantID int64, key string) (time.Time, error) // zero when unset
	SetMark(ctx context.Context, tenantID int64, key string, at time.Time) error
	// ClaimMark moves a mark from old (as read by Mark; zero = unset) to
	// at and reports whether it did: of several nodes racing for the same
	// job, exactly one wins.
	ClaimMark(ctx context.Context, tenantID int64, key string, old, at time.Time) (bool, error)

	// Secret returns the named cluster-wide secret, creating it from gen
	// on first use (link signing keys).
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}

// QuarantineOwner is an address with held copies.
type QuarantineOwner struct {
	TenantID int64
	Rcpt     string
}
