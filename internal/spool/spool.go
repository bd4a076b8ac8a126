// Package spool keeps message bodies on disk until every recipient has a
// final outcome. It is the first half of mailgate's accept order (mox's
// queue.Add): write the blob, fsync it, fsync its directory; only then may the
// caller commit the envelope row and answer 250.
//
// A failed fsync is not retried as if it worked: the spool marks itself broken
// and every later Create fails, so the SMTP listener answers 4xx until an
// operator has looked at the disk and restarted mailgate.
package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrBroken is returned once a write or fsync has failed.
var ErrBroken = errors.New("spool: an earlier write failed; refusing new mail until restart")

// ErrLowSpace is returned by CheckSpace when free space is below the minimum.
var ErrLowSpace = errors.New("spool: insufficient free disk space")

// Spool is a directory of message blobs. Safe for concurrent use.
type Spool struct {
	dir     string
	aside   string
	minFree int64
	log     *slog.Logger
	broken  atomic.Pointer[string]
	dirF    *os.File

	// Directory fsyncs are shared: a commit waits for one sync that started
	// after its file was synced, so concurrent sessions cost one, not N.
	dmu      sync.Mutex
	dcond    *sync.Cond
	dWant    uint64
	dDone    uint64
	dRunning bool
	dErr     error

	// free-space check is cached briefly: statfs per MAIL would be cheap but
	// pointless under load.
	spaceAt   atomic.Int64
	spaceFree atomic.Int64
}

// Open creates dir (and its sibling for damaged blobs) if needed.
func Open(dir string, minFree int64, log *slog.Logger) (*Spool, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	aside := dir + "-corrupt"
	if err := os.MkdirAll(aside, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, aside: aside, minFree: minFree, log: log, dirF: d}
	s.dcond = sync.NewCond(&s.dmu)
	return s, nil
}

// Close releases the directory handle.
func (s *Spool) Close() error { return s.dirF.Close() }

// Dir is the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Healthy reports ErrBroken after a failed write or fsync.
func (s *Spool) Healthy() error {
	if r := s.broken.Load(); r != nil {
		return fmt.Errorf("%w (%s)", ErrBroken, *r)
	}
	return nil
}

func (s *Spool) fail(reason string, err error) error {
	msg := reason + ": " + err.Error()
	if s.broken.CompareAndSwap(nil, &msg) {
		s.log.Error("spool failure: no more mail is accepted until restart", "reason", msg)
	}
	return fmt.Errorf("%w: %s", ErrBroken, msg)
}

// CheckSpace returns ErrLowSpace when the spool's file system has less than
// the configured minimum free.
func (s *Spool) CheckSpace() error {
	if s.minFree <= 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if now-s.spaceAt.Load() > int64(time.Second) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(s.dir, &st); err == nil {
			s.spaceFree.Store(int64(st.Bavail) * int64(st.Bsize))
			s.spaceAt.Store(now)
		}
	}
	if s.spaceFree.Load() < s.minFree {
		return ErrLowSpace
	}
	return nil
}

func validKey(key string) bool {
	if key == "" || len(key) > 128 {
		return false
	}
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Writer writes one blob. Call Commit to make it durable or Abort to remove it.
type Writer struct {
	s    *Spool
	key  string
	f    *os.File
	n    int64
	done bool
}

// Create starts a new blob named key (lower-case letters, digits, '-').
func (s *Spool) Create(key string) (*Writer, error) {
	if err := s.Healthy(); err != nil {
		return nil, err
	}
	if !validKey(key) {
		return nil, fmt.Errorf("spool: invalid key %q", key)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, key), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool create: %w", err)
	}
	return &Writer{s: s, key: key, f: f}, nil
}

// Write appends to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return n, fmt.Errorf("spool write: %w", ErrLowSpace)
		}
		return n, fmt.Errorf("spool write: %w", err)
	}
	return n, nil
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Key is the blob's name.
func (w *Writer) Key() string { return w.key }

// Commit fsyncs the file and the directory. After a nil return the blob
// survives a crash; on error the blob is removed and, for fsync failures, the
// spool is marked broken.
func (w *Writer) Commit() error {
	if w.done {
		return errors.New("spool: blob already finished")
	}
	w.done = true
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		return w.s.fail("fsync "+w.key, err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return w.s.fail("close "+w.key, err)
	}
	if err := w.s.syncDir(); err != nil {
		os.Remove(w.f.Name())
		return w.s.fail("fsync spool directory", err)
	}
	return nil
}

// syncDir fsyncs the spool directory, sharing one fsync among concurrent
// callers: each caller takes a ticket and returns once a sync that began
// after its ticket was issued has finished.
func (s *Spool) syncDir() error {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	s.dWant++
	mine := s.dWant
	for s.dDone < mine {
		if s.dErr != nil {
			return s.dErr
		}
		if s.dRunning {
			s.dcond.Wait()
			continue
		}
		s.dRunning = true
		cover := s.dWant
		s.dmu.Unlock()
		err := s.dirF.Sync()
		s.dmu.Lock()
		s.dRunning = false
		if err != nil {
			s.dErr = err // sticky: the spool is broken from now on
		} else {
			s.dDone = cover
		}
		s.dcond.Broadcast()
	}
	return nil
}

// Abort closes and removes an uncommitted blob.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// Open opens a committed blob for reading.
func (s *Spool) Open(key string) (*os.File, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("spool: invalid key %q", key)
	}
	f, err := os.Open(filepath.Join(s.dir, key))
	if err != nil {
		return nil, fmt.Errorf("spool open: %w", err)
	}
	return f, nil
}

// Remove deletes a blob whose message is done. Missing blobs are not an error.
func (s *Spool) Remove(key string) error {
	if !validKey(key) {
		return fmt.Errorf("spool: invalid key %q", key)
	}
	err := os.Remove(filepath.Join(s.dir, key))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool remove: %w", err)
	}
	return nil
}

// Pending is what the store believes is queued: blob key → expected size.
type Pending map[string]int64

// RecoveryReport says what Recover found.
type RecoveryReport struct {
	Kept      int      // blobs with a pending message, intact
	Discarded int      // blobs without a committed message (never acknowledged) or already done
	Missing   []string // pending blob keys with no file
	Damaged   []string // pending blob keys whose file is shorter or longer than recorded; moved aside
}

// Recover reconciles the directory with the store after a restart. Blobs that
// no committed message refers to were never acknowledged (or belong to done
// messages) and are removed. Blobs of pending messages whose size is wrong are
// moved to the "-corrupt" sibling directory, never deleted.
func (s *Spool) Recover(ctx context.Context, pending Pending) (RecoveryReport, error) {
	var rep RecoveryReport
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return rep, fmt.Errorf("spool recover: %w", err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		want, ok := pending[name]
		if !ok {
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
				return rep, fmt.Errorf("spool recover: %w", err)
			}
			rep.Discarded++
			continue
		}
		seen[name] = true
		info, err := e.Info()
		if err != nil {
			return rep, fmt.Errorf("spool recover: %w", err)
		}
		if info.Size() != want {
			if err := os.Rename(filepath.Join(s.dir, name), filepath.Join(s.aside, name)); err != nil {
				return rep, fmt.Errorf("spool recover: move aside %s: %w", name, err)
			}
			rep.Damaged = append(rep.Damaged, name)
			continue
		}
		rep.Kept++
	}
	for key := range pending {
		if !seen[key] && !contains(rep.Damaged, key) {
			rep.Missing = append(rep.Missing, key)
		}
	}
	if err := s.dirF.Sync(); err != nil {
		return rep, s.fail("fsync spool directory", err)
	}
	return rep, nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
