// Package local keeps blobs as files in a directory of the node's own disk:
// the default for a single node. A blob is written to a temporary file,
// which is fsynced and renamed to its name, and the directory is fsynced
// before Commit returns.
//
// A failed fsync is not retried as if it worked: the store marks itself
// broken and every later Create fails, so the SMTP listener answers 4xx
// until an operator has looked at the disk and restarted mailgate.
//
// Layout: <dir>/<node>/<name>, each file a 48-byte header (magic, content
// length, SHA-256 of the content) followed by the content; damaged blobs
// go to <dir>-corrupt/<node>/<name>. Files directly in <dir> are blobs
// written before keys named their node: plain content, no header; they
// are read, recovered and deleted as before.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailgate/mailgate/internal/blob"
)

// Header layout: magic (8 bytes, version in the last), content length
// (big-endian uint64), SHA-256 of the content.
const (
	headerLen = 48
	magic     = "MGBLOB\x00\x01"
)

// Store is a directory of blobs. Safe for concurrent use.
type Store struct {
	dir     string
	aside   string
	node    string
	nodeDir string
	minFree int64
	log     *slog.Logger
	broken  atomic.Pointer[string]
	dirF    *os.File // nodeDir, for its fsyncs

	// Directory fsyncs are shared: a commit waits for one sync that started
	// after its file was renamed, so concurrent sessions cost one, not N.
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

var _ blob.Store = (*Store)(nil)

// Open creates dir, its node directory and the sibling for damaged blobs
// if needed. minFree is the free space CheckSpace requires (0: none).
func Open(dir, node string, minFree int64, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := blob.CheckNode(node); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	nodeDir := filepath.Join(dir, node)
	if err := os.MkdirAll(nodeDir, 0o700); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	aside := dir + "-corrupt"
	if err := os.MkdirAll(aside, 0o700); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	// The node directory's own entry must survive a crash too.
	if err := syncPath(dir); err != nil {
		return nil, fmt.Errorf("blobs: fsync %s: %w", dir, err)
	}
	d, err := os.Open(nodeDir)
	if err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	s := &Store{dir: dir, aside: aside, node: node, nodeDir: nodeDir, minFree: minFree, log: log, dirF: d}
	s.dcond = sync.NewCond(&s.dmu)
	return s, nil
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Close releases the directory handle.
func (s *Store) Close() error { return s.dirF.Close() }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Node is the node name of the keys this store writes.
func (s *Store) Node() string { return s.node }

// Healthy reports ErrBroken after a failed write or fsync.
func (s *Store) Healthy() error {
	if r := s.broken.Load(); r != nil {
		return fmt.Errorf("%w (%s)", blob.ErrBroken, *r)
	}
	return nil
}

func (s *Store) fail(reason string, err error) error {
	msg := reason + ": " + err.Error()
	if s.broken.CompareAndSwap(nil, &msg) {
		s.log.Error("blob store failure: no more mail is accepted until restart", "reason", msg)
	}
	return fmt.Errorf("%w: %s", blob.ErrBroken, msg)
}

// CheckSpace returns ErrLowSpace when the store's file system has less than
// the configured minimum free.
func (s *Store) CheckSpace() error {
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
		return blob.ErrLowSpace
	}
	return nil
}

// path is the file of key; legacy tells a blob without header.
func (s *Store) path(key string) (p string, legacy bool, err error) {
	node, name, ok := blob.Split(key)
	if !ok {
		return "", false, fmt.Errorf("blobs: invalid key %q", key)
	}
	if node == "" {
		return filepath.Join(s.dir, name), true, nil
	}
	return filepath.Join(s.dir, node, name), false, nil
}

func tmpName(name string) string { return "." + name + ".tmp" }

// writer writes one blob to a temporary file in the node directory.
type writer struct {
	s    *Store
	key  string
	name string
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// Create starts a new blob.
func (s *Store) Create(ctx context.Context, name string) (blob.Writer, error) {
	if err := s.Healthy(); err != nil {
		return nil, err
	}
	if !blob.ValidName(name) {
		return nil, fmt.Errorf("blobs: invalid name %q", name)
	}
	// O_EXCL on the temporary name: one writer per name at a time. A
	// committed blob of the same name is found by Commit, whose rename
	// never replaces one.
	f, err := os.OpenFile(filepath.Join(s.nodeDir, tmpName(name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("blobs: %s: %w", name, blob.ErrExists)
		}
		return nil, fmt.Errorf("blobs create: %w", err)
	}
	w := &writer{s: s, key: blob.Key(s.node, name), name: name, f: f, h: sha256.New()}
	// The header is written last, over this placeholder.
	if _, err := f.Write(make([]byte, headerLen)); err != nil {
		w.Abort()
		return nil, w.writeErr(err)
	}
	return w, nil
}

func (w *writer) writeErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("blobs write: %w", blob.ErrLowSpace)
	}
	return fmt.Errorf("blobs write: %w", err)
}

// Write appends to the blob.
func (w *writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		return n, w.writeErr(err)
	}
	return n, nil
}

func (w *writer) Size() int64 { return w.n }
func (w *writer) Key() string { return w.key }

// Commit writes the header, fsyncs the file, renames it to its name and
// fsyncs the directory. After a nil return the blob survives a crash; on
// error nothing is left under its name and, for fsync failures, the store
// is marked broken.
func (w *writer) Commit(ctx context.Context) error {
	if w.done {
		return errors.New("blobs: blob already finished")
	}
	w.done = true
	tmp := w.f.Name()
	var hdr [headerLen]byte
	copy(hdr[:8], magic)
	binary.BigEndian.PutUint64(hdr[8:16], uint64(w.n))
	w.h.Sum(hdr[16:16])
	if _, err := w.f.WriteAt(hdr[:], 0); err != nil {
		w.f.Close()
		os.Remove(tmp)
		return w.writeErr(err)
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(tmp)
		return w.s.fail("fsync "+w.key, err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(tmp)
		return w.s.fail("close "+w.key, err)
	}
	if err := renameNoReplace(w.s.dirF, tmpName(w.name), w.name); err != nil {
		os.Remove(tmp)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("blobs: %s: %w", w.name, blob.ErrExists)
		}
		return fmt.Errorf("blobs commit %s: %w", w.key, err)
	}
	if err := w.s.syncDir(); err != nil {
		os.Remove(filepath.Join(w.s.nodeDir, w.name))
		return w.s.fail("fsync blob directory", err)
	}
	return nil
}

// syncDir fsyncs the node directory, sharing one fsync among concurrent
// callers: each caller takes a ticket and returns once a sync that began
// after its ticket was issued has finished.
func (s *Store) syncDir() error {
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
			s.dErr = err // sticky: the store is broken from now on
		} else {
			s.dDone = cover
		}
		s.dcond.Broadcast()
	}
	return nil
}

// Abort closes and removes an uncommitted blob.
func (w *writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// readCloser hides the *os.File: callers get a reader, not a file.
type readCloser struct {
	io.Reader
	io.Closer
}

// Open opens a committed blob for reading; its size is checked against the
// header at once, its checksum at the end.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	p, legacy, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("blobs open %s: %w", key, blob.ErrNotFound)
		}
		return nil, fmt.Errorf("blobs open: %w", err)
	}
	if legacy {
		return readCloser{f, f}, nil
	}
	size, sum, err := readHeader(f, key)
	if err != nil {
		f.Close()
		return nil, err
	}
	return blob.Verified(f, f, key, size, sum), nil
}

// readHeader reads and checks the header of an open blob file.
func readHeader(f *os.File, key string) (int64, blob.Sum, error) {
	var sum blob.Sum
	fi, err := f.Stat()
	if err != nil {
		return 0, sum, fmt.Errorf("blobs open: %w", err)
	}
	var hdr [headerLen]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return 0, sum, blob.Damaged(key, "shorter than its header")
		}
		return 0, sum, fmt.Errorf("blobs open: %w", err)
	}
	if string(hdr[:8]) != magic {
		return 0, sum, blob.Damaged(key, "no blob header")
	}
	size := int64(binary.BigEndian.Uint64(hdr[8:16]))
	if size < 0 || fi.Size()-headerLen != size {
		return 0, sum, blob.Damaged(key, "%d bytes of content, %d recorded", fi.Size()-headerLen, size)
	}
	copy(sum[:], hdr[16:])
	return size, sum, nil
}

// Delete removes a blob whose message is done. Missing blobs are not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, _, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blobs remove: %w", err)
	}
	return nil
}

// List yields the blobs whose key starts with prefix. Sizes come from the
// file sizes (content without the header).
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[blob.Info, error] {
	return func(yield func(blob.Info, error) bool) {
		entries, err := os.ReadDir(s.dir)
		if err != nil {
			yield(blob.Info{}, fmt.Errorf("blobs list: %w", err))
			return
		}
		for _, e := range entries {
			if ctx.Err() != nil {
				yield(blob.Info{}, ctx.Err())
				return
			}
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			if !e.IsDir() {
				if strings.HasPrefix(name, prefix) && blob.ValidName(name) && !s.yieldFile(e, name, true, yield) {
					return
				}
				continue
			}
			nodePrefix := name + "/"
			if blob.CheckNode(name) != nil || !strings.HasPrefix(nodePrefix, prefix) && !strings.HasPrefix(prefix, nodePrefix) {
				continue
			}
			files, err := os.ReadDir(filepath.Join(s.dir, name))
			if err != nil {
				yield(blob.Info{}, fmt.Errorf("blobs list: %w", err))
				return
			}
			for _, f := range files {
				key := nodePrefix + f.Name()
				if f.IsDir() || !blob.ValidName(f.Name()) || !strings.HasPrefix(key, prefix) {
					continue
				}
				if !s.yieldFile(f, key, false, yield) {
					return
				}
			}
		}
	}
}

func (s *Store) yieldFile(e os.DirEntry, key string, legacy bool, yield func(blob.Info, error) bool) bool {
	fi, err := e.Info()
	if errors.Is(err, os.ErrNotExist) {
		return true // deleted meanwhile
	}
	if err != nil {
		return yield(blob.Info{}, fmt.Errorf("blobs list: %w", err))
	}
	size := fi.Size()
	if !legacy {
		size -= headerLen
		if size < 0 {
			size = -1
		}
	}
	return yield(blob.Info{Key: key, Size: size}, nil)
}

// ListLegacy yields the blobs written before keys named their node (the
// files directly in the directory).
func (s *Store) ListLegacy(ctx context.Context) iter.Seq2[blob.Info, error] {
	return func(yield func(blob.Info, error) bool) {
		entries, err := os.ReadDir(s.dir)
		if err != nil {
			yield(blob.Info{}, fmt.Errorf("blobs list: %w", err))
			return
		}
		for _, e := range entries {
			if e.IsDir() || !blob.ValidName(e.Name()) {
				continue
			}
			if !s.yieldFile(e, e.Name(), true, yield) {
				return
			}
		}
	}
}

// MoveAside moves a blob to the "-corrupt" sibling directory, never
// replacing an earlier one there.
func (s *Store) MoveAside(ctx context.Context, key string) (string, error) {
	src, _, err := s.path(key)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(s.aside, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", fmt.Errorf("blobs move aside: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		dst += fmt.Sprintf(".%d", time.Now().UnixNano())
	}
	if err := os.Rename(src, dst); err != nil {
		return "", fmt.Errorf("blobs move aside: %w", err)
	}
	for _, d := range []string{filepath.Dir(dst), filepath.Dir(src)} {
		if err := syncPath(d); err != nil {
			return "", s.fail("fsync "+d, err)
		}
	}
	return dst, nil
}

// Sweep removes this node's temporary files (writes a crash interrupted).
func (s *Store) Sweep(ctx context.Context) error {
	entries, err := os.ReadDir(s.nodeDir)
	if err != nil {
		return fmt.Errorf("blobs sweep: %w", err)
	}
	n := 0
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(s.nodeDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("blobs sweep: %w", err)
			}
			n++
		}
	}
	if n > 0 {
		if err := s.dirF.Sync(); err != nil {
			return s.fail("fsync blob directory", err)
		}
	}
	return nil
}

// renameChecked renames oldName to newName in dir unless newName exists.
// The check and the rename are two steps; the callers' names are unique to
// one writer, so nothing comes between them.
func renameChecked(dir, oldName, newName string) error {
	dst := filepath.Join(dir, newName)
	if _, err := os.Lstat(dst); err == nil {
		return &os.LinkError{Op: "rename", Old: oldName, New: newName, Err: os.ErrExist}
	}
	return os.Rename(filepath.Join(dir, oldName), dst)
}
