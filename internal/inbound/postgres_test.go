package inbound_test

import (
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestAcceptOnPostgres runs the inbound accept tests again on the
// PostgreSQL store: one transaction for everything a message becomes, and
// the per-recipient outcomes through SMTP.
func TestAcceptOnPostgres(t *testing.T) {
	mgtest.OnPostgres(t)
	t.Run("AcceptIsAllOrNothing", TestAcceptIsAllOrNothing)
	t.Run("PerRecipientOutcomes", TestPerRecipientOutcomes)
}

// TestAcceptOnPostgresAndS3 runs them once more with the message bodies
// and quarantine copies on S3 as well, as several nodes share them.
func TestAcceptOnPostgresAndS3(t *testing.T) {
	mgtest.OnPostgres(t)
	mgtest.OnS3(t)
	t.Run("AcceptIsAllOrNothing", TestAcceptIsAllOrNothing)
	t.Run("PerRecipientOutcomes", TestPerRecipientOutcomes)
}
