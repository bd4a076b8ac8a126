package queue

import (
	"context"
	"io"
	"log/slog"

	"github.com/mailgate/mailgate/internal/delivery"
	"github.com/mailgate/mailgate/internal/store"
)

// ListHandler takes over recipients that are no mailbox anywhere but
// mailgate's own: mailing list addresses, whose message it expands into a
// copy for the members, and their bounce addresses (mlist.Service).
type ListHandler interface {
	// Take returns an outcome for each recipient of m it handles, in any
	// order; the others are delivered as usual. body opens the message as
	// delivered. A Copy's blob is durable when Take returns; the queue
	// commits the copy with the outcome in one transaction (so a list
	// message is distributed once, fenced by the recipient's lease) and
	// removes the blob when that does not happen. Whatever else Take
	// writes must be safe to repeat: the attempt may be made again.
	Take(ctx context.Context, m store.Message, rcpts []store.Recipient, body func() (io.ReadCloser, error)) []Taken
}

// Taken is the outcome of one recipient a ListHandler handled.
type Taken struct {
	Rcpt   int64 // the recipient's ID
	Result delivery.Result
	// Copy is the message the recipient became (the members' copy of a
	// list message), queued when the outcome is recorded; nil for none.
	Copy *store.QueuedMessage
}

// takeLists runs the list handler on a job; open returns the message as
// delivered. It returns the results of the recipients it took, by ID, and
// the copies to queue with them.
func (q *Queue) takeLists(ctx context.Context, m store.Message, rs []store.Recipient, open func() (io.ReadCloser, error), log *slog.Logger) (map[int64]delivery.Result, []store.Notice) {
	if q.d.Lists == nil {
		return nil, nil
	}
	ids := make(map[int64]bool, len(rs))
	for _, r := range rs {
		ids[r.ID] = true
	}
	taken := q.d.Lists.Take(ctx, m, rs, open)
	if len(taken) == 0 {
		return nil, nil
	}
	out := make(map[int64]delivery.Result, len(taken))
	var copies []store.Notice
	running := q.running()
	for _, t := range taken {
		if !ids[t.Rcpt] {
			log.Error("list handler answered for a recipient not in the job", "rcpt", t.Rcpt)
			continue
		}
		out[t.Rcpt] = t.Result
		if t.Copy != nil && !t.Result.OK() {
			// A copy is only ever queued with a delivered list recipient.
			log.Error("list handler made a copy for a recipient it did not deliver", "rcpt", t.Rcpt)
			if err := q.d.Spool.Delete(context.WithoutCancel(ctx), t.Copy.Message.BlobKey); err != nil {
				log.Warn("remove unqueued list copy", "err", err)
			}
			continue
		}
		if t.Copy != nil {
			q.leaseNew(t.Copy.Recipients, running)
			copies = append(copies, store.Notice{Message: *t.Copy, About: []int64{t.Rcpt}})
		}
	}
	return out, copies
}
