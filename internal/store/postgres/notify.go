package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// queueChannel is the NOTIFY channel on which a transaction that made
// queue work due for any node (not leased to the writer) says so; the
// payload is the message ID, or "" for many messages.
const queueChannel = "mailgate_queue"

// listenerName is the application_name of the listening connection, so
// that an operator (or a test) can find it in pg_stat_activity.
const listenerName = "mailgate-queue-listen"

// Backoff between attempts to listen again after the connection dropped.
const (
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 30 * time.Second
)

// notifyQueue tells every listening node, when x commits, that the
// message has due recipients no node holds.
func notifyQueue(x tx, messageID string) error {
	_, err := x.Exec(`SELECT pg_notify($1, $2)`, queueChannel, messageID)
	return err
}

// WatchQueue listens on its own connection (outside the pool) for queue
// work made due by any node or tool and sends on the returned channel
// (coalesced: one pending wake-up at most). When the connection drops it
// logs it, tries again with a growing delay, and sends once when it is
// back, since work may have been made due meanwhile; the queue's regular
// polling covers the gap. The channel is closed when ctx ends.
func (db *DB) WatchQueue(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		wait := listenRetryMin
		for {
			err := db.listen(ctx, ch, func() { wait = listenRetryMin })
			if ctx.Err() != nil {
				return
			}
			db.log.Warn("queue wake-ups from other nodes interrupted; polling until they are back", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, listenRetryMax)
		}
	}()
	return ch
}

// listen runs one listening connection until it fails or ctx ends;
// listening calls up once it listens.
func (db *DB) listen(ctx context.Context, ch chan<- struct{}, listening func()) error {
	cfg := db.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+queueChannel); err != nil {
		return err
	}
	listening()
	wake(ch)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		wake(ch)
	}
}

func wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
