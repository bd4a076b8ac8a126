package continuity

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Store is the continuity switch's part of the store: domain modes,
// hand-back jobs and items, its events and secret, and the marks that make
// its jobs run once across nodes.
type Store interface {
	Accounts(ctx context.Context, tenantID int64) ([]store.Account, error)
	AddContinuityEvent(ctx context.Context, e store.ContinuityEvent) error
	AddHandbackItems(ctx context.Context, items []store.HandbackItem) (doneAlready []int64, err error)
	AdvanceHandbackJob(ctx context.Context, tenantID int64, jobID int64, cursor int64, scanned bool) error
	ClaimHandbackItems(ctx context.Context, owner string, now time.Time, until time.Time, limit int) ([]store.HandbackItem, error)
	ClaimMark(ctx context.Context, tenantID int64, key string, old time.Time, at time.Time) (bool, error)
	ContinuityEvents(ctx context.Context, f store.ContinuityEventFilter) ([]store.ContinuityEvent, error)
	ContinuitySecret(ctx context.Context, tenantID int64, provider string) ([]byte, time.Time, error)
	CreateHandbackJob(ctx context.Context, j store.HandbackJob) (store.HandbackJob, error)
	DomainMode(ctx context.Context, tenantID int64, domainID int64) (store.DomainMode, error)
	DomainModes(ctx context.Context, tenantID int64) ([]store.DomainMode, error)
	Domains(ctx context.Context, tenantID int64) ([]store.Domain, error)
	Events(ctx context.Context, tenantID int64, messageID string) ([]store.Event, error)
	FinishHandbackItem(ctx context.Context, it store.HandbackItem, owner string) (bool, error)
	FinishHandbackJob(ctx context.Context, tenantID int64, jobID int64, at time.Time) (bool, error)
	HandbackJobs(ctx context.Context, tenantID int64, running bool) ([]store.HandbackJob, error)
	HandbackProgress(ctx context.Context, tenantID int64, jobID int64) (store.HandbackCounts, error)
	Mark(ctx context.Context, tenantID int64, key string) (time.Time, error)
	PurgeContinuityEvents(ctx context.Context, before time.Time) (int, error)
	ReleaseHandbackLeases(ctx context.Context, owner string) (int, error)
	RetryHandbackItems(ctx context.Context, tenantID int64, domain string, now time.Time) (int, error)
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
	SetContinuitySecret(ctx context.Context, tenantID int64, provider string, sealed []byte, at time.Time) error
	SetDomainMode(ctx context.Context, m store.DomainMode, from string) (bool, error)
	SetMark(ctx context.Context, tenantID int64, key string, at time.Time) error
	Settings(ctx context.Context, tenantID int64) ([]store.Setting, error)
	Tenants(ctx context.Context) ([]store.Tenant, error)
	WakeDomain(ctx context.Context, tenantID int64, domain string, now time.Time) (int, error)
}
