package smtpin_test

import (
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRelayOnPostgres runs the relay tests again with the node's store on
// PostgreSQL: accepted mail relayed downstream, outbound relay by network
// and by login, never an open relay, recipients of two tenants.
func TestRelayOnPostgres(t *testing.T) {
	mgtest.OnPostgres(t)
	t.Run("AcceptAndRelayToDownstream", TestAcceptAndRelayToDownstream)
	t.Run("OutboundRelay", TestOutboundRelay)
	t.Run("InboundIsNeverOpenRelay", TestInboundIsNeverOpenRelay)
	t.Run("RecipientsOfTwoTenantsSplit", TestRecipientsOfTwoTenantsSplit)
}

// TestRelayOnPostgresAndS3 runs the relay tests with the message bodies on
// S3 as well, as several nodes share them.
func TestRelayOnPostgresAndS3(t *testing.T) {
	mgtest.OnPostgres(t)
	mgtest.OnS3(t)
	t.Run("AcceptAndRelayToDownstream", TestAcceptAndRelayToDownstream)
	t.Run("OutboundRelay", TestOutboundRelay)
	t.Run("InboundIsNeverOpenRelay", TestInboundIsNeverOpenRelay)
	t.Run("RecipientsOfTwoTenantsSplit", TestRecipientsOfTwoTenantsSplit)
}
