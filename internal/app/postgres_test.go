package app_test

import (
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/mgtest"
)

// TestContinuityOnPostgres runs the switch under load again with the
// node's store on PostgreSQL (the cluster store, where the switch and the
// queue's claims are separate transactions on a shared database).
func TestContinuityOnPostgres(t *testing.T) {
	mgtest.OnPostgres(t)
	t.Run("SwitchUnderLoad", TestSwitchUnderLoad)
}
