package migratestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/local"
	"github.com/mailgate/mailgate/internal/blob/s3"
)

// namespaces are the blob namespaces a node opens (internal/app) and the
// rows that refer to their blobs: a queued message's body and rewritten
// copies until it is done or while it waits to be archived, a quarantined
// copy while its row exists, an archived body while the archive refers to
// it.
var namespaces = []struct{ name, keys string }{
	{"spool", `SELECT blob_key FROM messages WHERE NOT done UNION SELECT blob_key FROM archive_pending`},
	{"quarantine", `SELECT DISTINCT blob_key FROM quarantine`},
	{"archive", `SELECT DISTINCT blob_key FROM archive_blobs`},
}

// blobWorkers is how many blobs are copied at once.
const blobWorkers = 4

// blobs copies every blob the source's rows refer to into S3, under the
// key its row will have in the target, and reads each back to compare its
// SHA-256 with the source's.
func (m *mover) blobs(ctx context.Context, rep *Report) error {
	for _, ns := range namespaces {
		if err := m.namespace(ctx, ns.name, ns.keys, rep); err != nil {
			return err
		}
	}
	return nil
}

func (m *mover) namespace(ctx context.Context, ns, query string, rep *Report) error {
	rows, err := m.src.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("source: blob keys: %w", err)
	}
	refs := map[string]bool{}
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return fmt.Errorf("source: blob keys: %w", err)
		}
		if !refs[k] {
			refs[k] = true
			keys = append(keys, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("source: blob keys: %w", err)
	}
	sort.Strings(keys)
	src, err := local.Open(filepath.Join(m.o.DataDir, ns), m.o.Node, 0, m.o.Log)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	for info, err := range src.List(ctx, "") {
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		if !refs[info.Key] {
			rep.Unreferenced++
		}
	}
	d := &dests{cfg: *m.o.S3, ns: ns, m: m}
	if d.cfg.SpillDir == "" {
		d.cfg.SpillDir = filepath.Join(m.o.DataDir, "blob-spill")
	}
	var (
		mu              sync.Mutex
		done, copied    int
		absent          []string
		firstErr        error
		last            = time.Now()
		next            = make(chan string)
		wg              sync.WaitGroup
		ctxW, cancelAll = context.WithCancel(ctx)
	)
	defer cancelAll()
	for range blobWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				wrote, why, err := m.copyBlob(ctxW, src, d, k)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = err
						cancelAll()
					}
				case why != "":
					absent = append(absent, fmt.Sprintf("%s %s (%s)", ns, k, why))
				default:
					done++
					if wrote {
						copied++
					}
				}
				if time.Since(last) >= progressEvery {
					m.o.Progress(fmt.Sprintf("blobs %s: %d of %d checked", ns, done+len(absent), len(keys)))
					last = time.Now()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, k := range keys {
		select {
		case next <- k:
		case <-ctxW.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sort.Strings(absent)
	rep.Blobs += done
	rep.Copied += copied
	rep.Absent = append(rep.Absent, absent...)
	m.o.Progress(fmt.Sprintf("blobs %s: %d in S3 and verified (%d copied now, %d from an earlier run), %d not in %s",
		ns, done, copied, done-copied, len(absent), filepath.Join(m.o.DataDir, ns)))
	return nil
}

// dests opens one S3 blob store per node named in the keys.
type dests struct {
	cfg s3.Config
	ns  string
	m   *mover

	mu     sync.Mutex
	stores map[string]*s3.Store
}

func (d *dests) store(ctx context.Context, node string) (*s3.Store, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.stores[node]; s != nil {
		return s, nil
	}
	s, err := s3.Open(ctx, d.cfg, d.ns, node, d.m.o.Log)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if d.stores == nil {
		d.stores = map[string]*s3.Store{}
	}
	d.stores[node] = s
	return s, nil
}

// copyBlob puts one blob into S3 unless an earlier run did, then reads it
// back and compares checksums. why says why a blob could not be copied
// (not in the source, or damaged there); err is a failure of the run.
func (m *mover) copyBlob(ctx context.Context, src *local.Store, d *dests, key string) (wrote bool, why string, err error) {
	srcSum, err := sum(ctx, src, key)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return false, "missing", nil
	case errors.Is(err, blob.ErrDamaged):
		return false, "damaged: " + err.Error(), nil
	case err != nil:
		return false, "", fmt.Errorf("source: %w", err)
	}
	tk := m.blobKey(key)
	node, name, ok := blob.Split(tk)
	if !ok || node == "" {
		return false, "", fmt.Errorf("source: blob key %q cannot be copied", key)
	}
	dst, err := d.store(ctx, node)
	if err != nil {
		return false, "", err
	}
	dstSum, err := sum(ctx, dst, tk)
	if errors.Is(err, blob.ErrNotFound) {
		if err := put(ctx, src, dst, key, name); err != nil {
			return false, "", err
		}
		wrote = true
		dstSum, err = sum(ctx, dst, tk)
	}
	if err != nil {
		return false, "", fmt.Errorf("target: read back %s: %w", tk, err)
	}
	if !bytes.Equal(srcSum, dstSum) {
		return false, "", fmt.Errorf("target: the S3 blob %s differs from the source's %s (SHA-256 %x, source %x); it is not replaced: remove it if it is left from elsewhere",
			tk, key, dstSum, srcSum)
	}
	return wrote, "", nil
}

// put writes the source's blob key as name in dst. A blob that appeared
// under the name meanwhile is left for the caller's comparison.
func put(ctx context.Context, src, dst blob.Store, key, name string) error {
	r, err := src.Open(ctx, key)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer r.Close()
	w, err := dst.Create(ctx, name)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return fmt.Errorf("copy blob %s: %w", key, err)
	}
	if err := w.Commit(ctx); err != nil && !errors.Is(err, blob.ErrExists) {
		return fmt.Errorf("target: %w", err)
	}
	return nil
}

// sum reads a blob to its end (which checks it against its recorded
// checksum, where it has one) and returns its SHA-256.
func sum(ctx context.Context, s blob.Store, key string) ([]byte, error) {
	r, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
