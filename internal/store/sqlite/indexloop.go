package sqlite

import (
	"context"
	"time"
)

// indexLoop is the shape of the store's background indexers (the mailbox
// texts', the tracking search's): at start and after every kick it calls
// step while step reports more work (more(n)), logging a failure and
// waiting for the next kick. After a kick it waits delay more first, so
// the work of the kicks meanwhile is done in one go. paused, when not nil,
// holds it (tests). It returns when the store closes.
type indexLoop struct {
	what   string // for the log
	kick   <-chan struct{}
	delay  time.Duration
	paused func() bool
	step   func(ctx context.Context) (int, error)
	more   func(n int) bool
}

func (db *DB) runIndexLoop(l indexLoop) {
	defer db.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-db.stop; cancel() }()
	for {
		for l.paused == nil || !l.paused() {
			n, err := l.step(ctx)
			if err != nil {
				if ctx.Err() == nil {
					db.log.Warn(l.what, "err", err)
				}
				break
			}
			if !l.more(n) {
				break
			}
		}
		select {
		case <-db.stop:
			return
		case <-l.kick:
		}
		if l.delay <= 0 {
			continue
		}
		select {
		case <-db.stop:
			return
		case <-time.After(l.delay):
		}
	}
}
