package queue

import (
	"context"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/versioned"
)

// A job from the hand-off carries its acceptance's versions only while
// they are fresh; one that waited longer, or came from the store, reads
// its own.
func TestPendingJobMemoFreshness(t *testing.T) {
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	memo := new(versioned.Memo)
	j := pendingJob{memo: memo, at: at}
	ctx := context.Background()
	if got := versioned.MemoOf(j.context(ctx, at.Add(memoFresh))); got != memo {
		t.Errorf("at the freshness bound: memo %p, want the acceptance's %p", got, memo)
	}
	if got := versioned.MemoOf(j.context(ctx, at.Add(memoFresh+time.Millisecond))); got != nil {
		t.Errorf("past the freshness bound: memo %p, want none", got)
	}
	if got := versioned.MemoOf(pendingJob{}.context(ctx, at)); got != nil {
		t.Errorf("a claimed job: memo %p, want none", got)
	}
}
