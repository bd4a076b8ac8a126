package store

import (
	"context"
	"time"
)

// Onboarding is where a domain's onboarding wizard is: the primary mail
// service chosen, the steps the administrator has completed, the test
// message sent through mailgate, and when the MX switch was confirmed.
type Onboarding struct {
	TenantID int64
	Domain   string // lowercased; a served domain or a tenant's claim
	// Service is the primary mail service: "m365", "google" or "other";
	// "" until chosen.
	Service string
	// Done is the set of completed steps, bit n-1 for step n.
	Done int
	// TestMessage is the queue ID of the last test message sent.
	TestMessage string
	// Finished is when the last step's check passed; zero while not.
	Finished  time.Time
	Updated   time.Time
	UpdatedBy string
}

// StepDone reports whether step n (1-based) is completed.
func (o Onboarding) StepDone(n int) bool { return n >= 1 && o.Done&(1<<(n-1)) != 0 }

// OnboardingStore keeps the onboarding wizard's state per domain.
type OnboardingStore interface {
	// Onboarding returns the tenant's state for domain; ErrNotFound when
	// the wizard was never started for it.
	Onboarding(ctx context.Context, tenantID int64, domain string) (Onboarding, error)
	// Onboardings lists the tenant's states by domain name (tenant 0: of
	// every tenant).
	Onboardings(ctx context.Context, tenantID int64) ([]Onboarding, error)
	// SaveOnboarding creates or replaces o's row.
	SaveOnboarding(ctx context.Context, o Onboarding) error
	// DeleteOnboarding removes the tenant's state for domain, if any.
	DeleteOnboarding(ctx context.Context, tenantID int64, domain string) error
}
