package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store"
	"github.com/mailgate/mailgate/internal/store/postgres"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// On PostgreSQL a "retry now" made elsewhere (another node, the CLI)
// wakes the node's poller at once: with an hour between polls, the
// message is delivered without waiting for the next one.
func TestRetryElsewhereWakesPoller(t *testing.T) {
	t.Parallel()
	n := mgtest.Start(t, mgtest.Options{Postgres: true, NoChecks: true, Config: func(c *config.Config) {
		c.Queue.PollInterval = config.D(time.Hour)
	}})
	n.Down.FailWith(451)
	id := send(t, n, "sender@example.net", []string{"alice@example.test"}, "wake")
	waitAttempts(t, n, id, 1)
	n.Down.FailWith(0)

	other, err := postgres.Open(context.Background(), postgres.Config{DSN: n.Config.Store.DSN}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if k, err := other.SetState(context.Background(), 0, id, []store.RcptState{store.Queued}, store.Queued, time.Now(),
		store.Event{Kind: "retry", Detail: "retry requested by cli:test"}); err != nil || k != 1 {
		t.Fatalf("retry: %d %v", k, err)
	}
	mgtest.WaitFor(t, 20*time.Second, "delivery after the retry", func() bool {
		return recipients(t, n, id)[0].State == store.Delivered
	})
}
