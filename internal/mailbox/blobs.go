package mailbox

import (
	"context"
	"io"
	"log/slog"

	"github.com/mailgate/mailgate/internal/spool"
)

// Blobs keeps message bodies. Create returns a writer whose Commit makes
// the body durable (nothing is acknowledged before it returns); Open reads
// a committed body; Delete removes one (a missing body is no error).
type Blobs interface {
	Create(ctx context.Context, key string) (BlobWriter, error)
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	Delete(ctx context.Context, key string) error
}

// BlobWriter writes one body: Commit or Abort ends it.
type BlobWriter interface {
	io.Writer
	Commit() error
	Abort()
}

// Recoverer is a Blobs that can reconcile itself with the store after a
// crash: bodies no message refers to were never acknowledged and go;
// bodies whose size differs are set aside. want is key → size.
type Recoverer interface {
	Recover(ctx context.Context, want map[string]int64) (missing, damaged []string, discarded int, err error)
}

// SpoolBlobs keeps the bodies in a spool directory of their own
// (data_dir/mailbox): the same write, fsync, directory fsync order as the
// queue's spool. Only this node writes the directory.
type SpoolBlobs struct{ S *spool.Spool }

// OpenSpoolBlobs opens (creating) the directory.
func OpenSpoolBlobs(dir string, log *slog.Logger) (*SpoolBlobs, error) {
	s, err := spool.Open(dir, 0, log)
	if err != nil {
		return nil, err
	}
	return &SpoolBlobs{S: s}, nil
}

var (
	_ Blobs     = (*SpoolBlobs)(nil)
	_ Recoverer = (*SpoolBlobs)(nil)
)

// Create starts a body.
func (b *SpoolBlobs) Create(_ context.Context, key string) (BlobWriter, error) {
	return b.S.Create(key)
}

// Open reads a body.
func (b *SpoolBlobs) Open(_ context.Context, key string) (io.ReadCloser, error) { return b.S.Open(key) }

// Delete removes a body.
func (b *SpoolBlobs) Delete(_ context.Context, key string) error { return b.S.Remove(key) }

// Recover reconciles the directory with the store.
func (b *SpoolBlobs) Recover(ctx context.Context, want map[string]int64) ([]string, []string, int, error) {
	rep, err := b.S.Recover(ctx, spool.Pending(want))
	return rep.Missing, rep.Damaged, rep.Discarded, err
}

// Close releases the directory.
func (b *SpoolBlobs) Close() error { return b.S.Close() }
