package store

import (
	"context"
	"time"
)

// Delivery modes of a domain (mail continuity).
const (
	// ModePrimary delivers to the domain's routes (the customer's own
	// mail service): the normal state, and the mode of a domain that was
	// never switched.
	ModePrimary = "primary"
	// ModeEmergency delivers into mailgate's own mailboxes while the
	// primary service is down.
	ModeEmergency = "emergency"
	// ModeMailbox keeps the domain's mail in mailgate's mailboxes for
	// good (a hosted domain, the separate-domain plan): delivered there
	// as in emergency mode, but never handed back to a primary service.
	ModeMailbox = "mailbox"
)

// DomainMode is where a served domain's mail goes, and who set it.
type DomainMode struct {
	TenantID int64
	DomainID int64
	Domain   string
	Mode     string // ModePrimary, ModeEmergency or ModeMailbox
	// Changed is when the mode was last set (zero: never switched).
	Changed   time.Time
	ChangedBy string // the audit log's actor
	Reason    string
}

// ContinuityEvent is one line of a domain's continuity log: a failed or
// recovered probe, a switch, a hand-back started, finished or failing.
type ContinuityEvent struct {
	ID       int64
	TenantID int64
	Domain   string
	At       time.Time
	Kind     string // see package continuity for the kinds
	Actor    string // who caused it: a login, "cli:…", "failover", "" for the system
	Detail   string
}

// ContinuityEventFilter narrows ContinuityEvents.
type ContinuityEventFilter struct {
	TenantID int64
	Domain   string // "" = every domain of the tenant
	BeforeID int64  // paging: events with ID < BeforeID
	Limit    int
}

// Hand-back job and item states.
const (
	HandbackRunning = "running" // job: items are being found and handed back
	HandbackDone    = "done"    // job: every item it found is final; item: handed back
	HandbackPending = "pending" // item: waiting for an attempt (or its next one)
	HandbackFailed  = "failed"  // item: refused for good by the primary service
	HandbackSkipped = "skipped" // item: the path cannot take it (sent mail over SMTP)
)

// HandbackJob is one request to hand the mail a domain (or one user of it)
// received in emergency mode back to the primary service.
type HandbackJob struct {
	ID        int64
	TenantID  int64
	Domain    string
	User      string // "" = every user of the domain
	Path      string // "smtp", "graph" or "gmail"
	State     string // HandbackRunning or HandbackDone
	Cursor    int64  // mailbox message ID the search for items has reached
	Scanned   bool   // the search has reached the end once
	Created   time.Time
	CreatedBy string
	Finished  time.Time
}

// HandbackItem is the hand-back state of one mailbox message. It is
// claimed with a lease (several nodes run hand-backs); Attempts grows with
// every claim and fences its completion, so a node whose lease was taken
// over cannot record an outcome.
type HandbackItem struct {
	TenantID   int64
	ItemID     int64 // the mailbox message ID
	JobID      int64
	Domain     string
	User       string
	Sent       bool // the user's sent mail (into the Sent folder on the API paths)
	State      string
	Attempts   int
	NextTry    time.Time
	LastError  string
	How        string // how it was handed back ("smtp 250 …", "graph …")
	LeaseOwner string
	LeaseUntil time.Time
	Updated    time.Time
}

// HandbackCounts is a job's (or a domain's) progress by item state; Tried
// counts pending items that have had at least one attempt (deferred).
type HandbackCounts struct {
	Pending, Tried, Done, Failed, Skipped int
}

// Total is the number of items found.
func (c HandbackCounts) Total() int { return c.Pending + c.Done + c.Failed + c.Skipped }

// Add counts n items in state (tried: they have had an attempt).
func (c *HandbackCounts) Add(state string, tried bool, n int) {
	switch state {
	case HandbackPending:
		c.Pending += n
		if tried {
			c.Tried += n
		}
	case HandbackDone:
		c.Done += n
	case HandbackFailed:
		c.Failed += n
	case HandbackSkipped:
		c.Skipped += n
	}
}

// ContinuityStore keeps the mail-continuity state: each domain's delivery
// mode, the continuity event log, the hand-back jobs with the state of
// every message handed back, and the sealed API credentials of the
// hand-back paths.
type ContinuityStore interface {
	// DomainMode returns a served domain's mode; ModePrimary (with a zero
	// Changed) when it was never switched.
	DomainMode(ctx context.Context, tenantID, domainID int64) (DomainMode, error)
	// DomainModes lists the modes of the tenant's domains that were ever
	// switched (tenant 0: of every tenant).
	DomainModes(ctx context.Context, tenantID int64) ([]DomainMode, error)
	// SetDomainMode sets m.Mode on m's domain when its mode is still from
	// (compare and set: of two nodes or administrators switching at once,
	// one wins) and reports whether it changed it.
	SetDomainMode(ctx context.Context, m DomainMode, from string) (bool, error)
	// WakeDomain makes the tenant's queued recipients in domain due at now
	// (a switch applies to mail already queued) and returns how many.
	WakeDomain(ctx context.Context, tenantID int64, domain string, now time.Time) (int, error)

	AddContinuityEvent(ctx context.Context, e ContinuityEvent) error
	// ContinuityEvents lists events newest first.
	ContinuityEvents(ctx context.Context, f ContinuityEventFilter) ([]ContinuityEvent, error)
	// PurgeContinuityEvents deletes events older than before (retention).
	PurgeContinuityEvents(ctx context.Context, before time.Time) (int, error)

	CreateHandbackJob(ctx context.Context, j HandbackJob) (HandbackJob, error)
	// HandbackJobs lists the tenant's jobs newest first (tenant 0: every
	// tenant's), only running ones when running is set.
	HandbackJobs(ctx context.Context, tenantID int64, running bool) ([]HandbackJob, error)
	// AdvanceHandbackJob records how far the search for a job's items got.
	AdvanceHandbackJob(ctx context.Context, tenantID, jobID, cursor int64, scanned bool) error
	// FinishHandbackJob marks a running job done when every item it found
	// is final and its search reached the end; it reports whether it did.
	FinishHandbackJob(ctx context.Context, tenantID, jobID int64, at time.Time) (bool, error)
	// AddHandbackItems records items found by a job (pending, due now).
	// An item already recorded, by this job or another, is left as it is;
	// the IDs of those already handed back are returned (their mailbox
	// mark may be missing after a crash).
	AddHandbackItems(ctx context.Context, items []HandbackItem) (doneAlready []int64, err error)
	// ClaimHandbackItems leases up to limit due pending items of running
	// jobs to owner until until (free or expired leases), each with its
	// Attempts counted up.
	ClaimHandbackItems(ctx context.Context, owner string, now, until time.Time, limit int) ([]HandbackItem, error)
	// FinishHandbackItem records an attempt's outcome (state, how,
	// lastErr; next for a pending item) and frees the lease, when owner
	// still holds the item's claim number attempts; it reports whether.
	FinishHandbackItem(ctx context.Context, it HandbackItem, owner string) (bool, error)
	// ReleaseHandbackLeases frees every lease owner holds (at start-up).
	ReleaseHandbackLeases(ctx context.Context, owner string) (int, error)
	// HandbackItems lists a job's items (state "" = any), by item ID.
	HandbackItems(ctx context.Context, tenantID, jobID int64, state string, limit int) ([]HandbackItem, error)
	// HandbackProgress counts a job's items by state.
	HandbackProgress(ctx context.Context, tenantID, jobID int64) (HandbackCounts, error)
	// RetryHandbackItems makes the failed and skipped items of the
	// tenant's jobs for domain pending again, due now, and their jobs
	// running; it returns how many items.
	RetryHandbackItems(ctx context.Context, tenantID int64, domain string, now time.Time) (int, error)

	// SetContinuitySecret stores a tenant's sealed credentials for a
	// hand-back path ("graph", "gmail"); nil deletes them.
	SetContinuitySecret(ctx context.Context, tenantID int64, provider string, sealed []byte, at time.Time) error
	// ContinuitySecret returns them; ErrNotFound when there are none.
	ContinuitySecret(ctx context.Context, tenantID int64, provider string) ([]byte, time.Time, error)
}
