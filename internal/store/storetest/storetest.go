// Package storetest is the store conformance suite: the same tests run
// against every store.Store implementation, so a behaviour a caller relies
// on holds whichever backend it is given.
//
// A backend's test calls Run with an Opener that returns a fresh, empty
// store per test. The stores it returns must also implement ReportZoner
// and RawSQL (the latter usually through a test-only wrapper), and may
// implement SearchPlans.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/store"
)

// Opener returns a fresh, empty store for one test; the store is closed
// by the test's cleanup.
type Opener func(t *testing.T) store.Store

// ReportZoner is a store whose report days follow a settable time zone.
type ReportZoner interface {
	SetReportZone(loc *time.Location)
}

// RawSQL runs one SQL statement on the store's database in a transaction
// of its own, bypassing the store's methods (tests of what the schema
// itself refuses).
type RawSQL interface {
	ExecSQL(ctx context.Context, sql string) error
	// QueryIntSQL runs a query whose result is one integer.
	QueryIntSQL(ctx context.Context, sql string) (int64, error)
}

// SearchFunc runs a tracking search one way.
type SearchFunc func(ctx context.Context, f store.TrackFilter) ([]store.TrackRow, error)

// SearchPlans is a store (usually a backend test's wrapper) that can run a
// tracking search through each of its query plans, forced; the reference
// search test then checks every one of them.
type SearchPlans interface {
	SearchPlans() []SearchFunc
}

// Run runs every conformance test against the stores open returns.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"AcceptAllOrNothing", testAcceptAllOrNothing},
		{"ArchiveAcceptQueues", testArchiveAcceptQueues},
		{"ArchiveClaimAndAppend", testArchiveClaimAndAppend},
		{"ArchiveAppendBatch", testArchiveAppendBatch},
		{"ArchiveAppendBatchSettles", testArchiveAppendBatchSettles},
		{"ArchiveAppendConcurrent", testArchiveAppendConcurrent},
		{"ArchiveRetentionAndGrants", testArchiveRetentionAndGrants},
		{"AcceptQuota", testAcceptQuota},
		{"AcceptQuotaConcurrent", testAcceptQuotaConcurrent},
		{"Tenancy", testTenancy},
		{"DomainClaims", testDomainClaims},
		{"RoutesAndRelay", testRoutesAndRelay},
		{"RelayNetMostSpecificWins", testRelayNetMostSpecificWins},
		{"LeasesAcrossNodes", testLeasesAcrossNodes},
		{"ClaimDueConcurrent", testClaimDueConcurrent},
		{"CompleteConcurrent", testCompleteConcurrent},
		{"LeaseFencing", testLeaseFencing},
		{"LeaseRenewal", testLeaseRenewal},
		{"ClaimsAcrossExpiry", testClaimsAcrossExpiry},
		{"Nodes", testNodes},
		{"Throttle", testThrottle},
		{"QueueAdmin", testQueueAdmin},
		{"EventsAndFind", testEventsAndFind},
		{"OddBytes", testOddBytes},
		{"Policy", testPolicy},
		{"PolicyVersion", testPolicyVersion},
		{"AddressingVersion", testAddressingVersion},
		{"QuarantineItems", testQuarantineItems},
		{"SpamModels", testSpamModels},
		{"SpamWeights", testSpamWeights},
		{"SpamApplyConcurrent", testSpamApplyConcurrent},
		{"ReportAgreesWithEvents", testReportAgreesWithEvents},
		{"ReportDaysZoneAndPurge", testReportDaysZoneAndPurge},
		{"RefusedUnknownRecipientsAggregated", testRefusedUnknownRecipientsAggregated},
		{"SearchMessagesMatchesReference", testSearchMessagesMatchesReference},
		{"SearchMessagesCursorPaging", testSearchMessagesCursorPaging},
		{"SearchJapaneseSubject", testSearchJapaneseSubject},
		{"SearchFindsJustAccepted", testSearchFindsJustAccepted},
		{"AcceptSettledIsDone", testAcceptSettledIsDone},
		{"SearchMessagesLiteralTerms", testSearchMessagesLiteralTerms},
		{"AccountsAndSessions", testAccountsAndSessions},
		{"APITokens", testAPITokens},
		{"AuditAppendOnly", testAuditAppendOnly},
		{"MarksAndSecrets", testMarksAndSecrets},
		{"ClaimMark", testClaimMark},
		{"SearchQuarantine", testSearchQuarantine},
		{"SearchQuarantineLiteralTerms", testSearchQuarantineLiteralTerms},
		{"TimePrecision", testTimePrecision},
		{"DomainModes", testDomainModes},
		{"WakeDomain", testWakeDomain},
		{"ContinuityEvents", testContinuityEvents},
		{"Handback", testHandback},
		{"ContinuitySecrets", testContinuitySecrets},
		{"AttachLinks", testAttachLinks},
		{"Onboarding", testOnboarding},
		{"Directory", testDirectory},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
	for _, c := range mailboxTests {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
	for _, c := range outboundTests {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
	for _, c := range mlistTests {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}

// zone sets st's report zone.
func zone(t *testing.T, st store.Store, loc *time.Location) {
	t.Helper()
	z, ok := st.(ReportZoner)
	if !ok {
		t.Fatalf("%T has no SetReportZone", st)
	}
	z.SetReportZone(loc)
}

// raw returns st's raw SQL access.
func raw(t *testing.T, st store.Store) RawSQL {
	t.Helper()
	r, ok := st.(RawSQL)
	if !ok {
		t.Fatalf("%T has no ExecSQL (wrap the store in the backend's test)", st)
	}
	return r
}
