// Package storetest is the store conformance suite: the same tests run
// against every store.Store implementation, so a behaviour a caller relies
// on holds whichever backend it is given.
package storetest

import (
	"testing"

	"github.com/mailgate/mailgate/internal/store"
)

// Opener returns a fresh, empty store for one test; the store is closed
// by the test's cleanup.
type Opener func(t *testing.T) store.Store

// Run runs every conformance test against the stores open returns.
func Run(t *testing.T, open Opener) {
	t.Run("AcceptAllOrNothing", func(t *testing.T) { testAcceptAllOrNothing(t, open) })
	t.Run("AcceptQuota", func(t *testing.T) { testAcceptQuota(t, open) })
	t.Run("AcceptQuotaConcurrent", func(t *testing.T) { testAcceptQuotaConcurrent(t, open) })
	t.Run("SpamModels", func(t *testing.T) { testSpamModels(t, open) })
}
