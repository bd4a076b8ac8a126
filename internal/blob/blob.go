// Package blob keeps message bodies until every recipient has a final
// outcome: the queue's blobs (the message as received and its rewritten
// copies) and the quarantine's copies. It is the first half of mailgate's
// accept order: a blob is durable before the caller commits the rows that
// refer to it and answers 250.
//
// Two implementations share one contract (conformance suite in blobtest):
// local files (package local, the default, one node) and any S3-compatible
// object store (package s3), which several nodes share.
//
// Keys name the writing node: "<node>/<name>". A node's crash recovery only
// ever touches keys of its own node, so it never removes a blob another node
// is still writing. Every blob is stored with the SHA-256 of its content,
// checked on every read: a truncated or altered blob is reported as
// damaged (ErrDamaged), never returned as if it were whole.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
)

// Store holds blobs. Implementations are safe for concurrent use.
type Store interface {
	// Create starts a new blob named name (lower-case letters, digits and
	// '-') under this node. Nothing is visible under its key before
	// Writer.Commit returns nil. A name that exists is refused, at Create
	// or at the latest by Commit (ErrExists); a committed blob is never
	// replaced.
	Create(ctx context.Context, name string) (Writer, error)
	// Open returns the content of the blob with the given key. Reading it
	// to the end verifies its checksum: a blob found truncated or altered
	// makes Open or the final Read fail with ErrDamaged instead of io.EOF.
	// A missing blob is ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes a blob. A missing blob is not an error.
	Delete(ctx context.Context, key string) error
	// List yields the blobs whose key starts with prefix, with their
	// recorded content size, in no particular order.
	List(ctx context.Context, prefix string) iter.Seq2[Info, error]
	// MoveAside takes a damaged blob out of the store's namespace without
	// deleting it, and says where it went.
	MoveAside(ctx context.Context, key string) (string, error)
	// Sweep removes what unfinished writes of this node left behind after
	// a crash. Call it only while this node has no Writer open (at start).
	Sweep(ctx context.Context) error
	// Healthy reports ErrBroken once a write failed in a way that makes
	// later writes untrustworthy (a failed fsync).
	Healthy() error
	// CheckSpace reports ErrLowSpace when the store is short of space (a
	// local file system below its configured minimum; object stores
	// report nothing).
	CheckSpace() error
	// Node is the node name in the keys this store writes.
	Node() string
	Close() error
}

// Writer writes one blob. Exactly one of Commit and Abort ends it.
type Writer interface {
	io.Writer
	// Commit makes the blob durable: it returns nil only once the blob
	// survives a crash of this node (local: file and directory fsynced;
	// S3: PUT acknowledged). On error nothing is kept under the key.
	Commit(ctx context.Context) error
	// Abort discards an uncommitted blob.
	Abort()
	// Size is the number of bytes written so far.
	Size() int64
	// Key is the blob's key ("<node>/<name>").
	Key() string
}

// Info describes a stored blob.
type Info struct {
	Key  string
	Size int64 // content size as recorded with the blob; -1 when unreadable
}

var (
	// ErrBroken is returned once a write or fsync has failed.
	ErrBroken = errors.New("blob store: an earlier write failed; refusing new mail until restart")
	// ErrLowSpace is returned when free space is below the minimum.
	ErrLowSpace = errors.New("blob store: insufficient free disk space")
	// ErrDamaged is returned when a blob's content does not match the size
	// and checksum recorded with it.
	ErrDamaged = errors.New("blob damaged")
	// ErrNotFound is returned by Open for a missing blob.
	ErrNotFound = errors.New("blob not found")
	// ErrExists is returned by Commit or Create when the name is taken.
	ErrExists = errors.New("blob already exists")
)

// maxName bounds a blob name.
const maxName = 128

// ValidName reports whether name may name a blob: 1–128 lower-case letters,
// digits and '-' (queue IDs and their copies' "-N" suffixes).
func ValidName(name string) bool {
	if name == "" || len(name) > maxName {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// CheckNode returns an error unless node can name a node in keys (and be
// a directory or an object key segment): 1–64 letters, digits, '.', '-'
// and '_', not starting with '.'. Host names qualify.
func CheckNode(node string) error {
	if node == "" || len(node) > 64 || node[0] == '.' {
		return fmt.Errorf("node name %q cannot name blobs: use 1-64 letters, digits, '.', '-' or '_', not starting with '.'", node)
	}
	for _, c := range node {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("node name %q cannot name blobs: use 1-64 letters, digits, '.', '-' or '_', not starting with '.'", node)
		}
	}
	return nil
}

// Key is the key of name written by node.
func Key(node, name string) string { return node + "/" + name }

// Split returns the node and the name of a key. Keys written before keys
// named their node (single-node installs) have no node: node is "".
// ok is false for a key that is neither form.
func Split(key string) (node, name string, ok bool) {
	node, name, found := strings.Cut(key, "/")
	if !found {
		return "", key, ValidName(key)
	}
	return node, name, CheckNode(node) == nil && ValidName(name)
}

// Put writes r as the blob name and returns once it is durable.
func Put(ctx context.Context, s Store, name string, r io.Reader) (key string, size int64, err error) {
	w, err := s.Create(ctx, name)
	if err != nil {
		return "", 0, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return "", 0, fmt.Errorf("write blob %s: %w", name, err)
	}
	if err := w.Commit(ctx); err != nil {
		return "", 0, err
	}
	return w.Key(), w.Size(), nil
}

// Check reads the blob to its end through its checksum. A blob found
// damaged is moved aside (never deleted) and the returned error, wrapping
// ErrDamaged, says where it went; a missing blob gives ErrNotFound.
func Check(ctx context.Context, s Store, key string) error {
	r, err := s.Open(ctx, key)
	if err == nil {
		_, err = io.Copy(io.Discard, r)
		r.Close()
	}
	if err == nil || !errors.Is(err, ErrDamaged) {
		return err
	}
	where, merr := s.MoveAside(ctx, key)
	if merr != nil {
		return fmt.Errorf("%w (not moved aside: %v)", err, merr)
	}
	return fmt.Errorf("%w; moved to %s", err, where)
}
