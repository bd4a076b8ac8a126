package blobtest

import (
	"context"
	"io"
	"sync"

	"github.com/mailgate/mailgate/internal/blob"
)

// Counting is a blob store that counts the opens of each blob, for tests
// of how often a stage reads a message.
type Counting struct {
	blob.Store
	mu    sync.Mutex
	opens map[string]int
}

// NewCounting wraps s.
func NewCounting(s blob.Store) *Counting { return &Counting{Store: s, opens: map[string]int{}} }

func (c *Counting) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	c.mu.Lock()
	c.opens[key]++
	c.mu.Unlock()
	return c.Store.Open(ctx, key)
}

// Opens is how many times key was opened.
func (c *Counting) Opens(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opens[key]
}
