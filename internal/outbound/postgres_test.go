package outbound_test

import (
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestOutboundOnPostgres runs the pipeline and hold tests again on the
// cluster store: the hold committed with its message, decisions by
// compare-and-set, the timer.
func TestOutboundOnPostgres(t *testing.T) {
	mgtest.OnPostgres(t)
	t.Run("RulesOverSMTP", TestRulesOverSMTP)
	t.Run("Approval", TestApproval)
	t.Run("DelayAndTimeouts", TestDelayAndTimeouts)
	t.Run("OutboundActionsInReports", TestOutboundActionsInReports)
}
