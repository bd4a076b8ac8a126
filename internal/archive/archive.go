// Package archive is mailgate's audit archive: every message a tenant
// sends and receives (the emergency mailboxes' traffic included), kept as
// the original bytes with its envelope, verdicts and delivery outcome, in
// an append-only log whose Merkle tree (package tlog) makes any change,
// deletion or reordering detectable, with signed checkpoints, search
// (Index), retention, capacity and legal holds.
//
// Archiving never delays mail: the accept transaction only inserts an
// archive-pending row (store.Accept); the archivers of every node drain
// those rows with leases, read the message from the queue's spool (the
// spool keeps the blob until then: Guard), store its body once per tenant
// and content (content-addressed blobs) and append the entry. A crash
// leaves the row pending, and it is archived by the next claim; the
// queue ID is unique in the log, so nothing is archived twice.
package archive

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mailgate/mailgate/internal/archive/tlog"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/clock"
	"github.com/mailgate/mailgate/internal/store"
)

// KeySecretName is the store secret holding the installation's archive
// signing key (an Ed25519 seed), shared by every node like the link key.
const KeySecretName = "archive-signing-key"

// LoadKey returns the installation's checkpoint signing key, creating it
// on first use.
func LoadKey(ctx context.Context, s interface {
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}) (ed25519.PrivateKey, error) {
	seed, err := s.Secret(ctx, KeySecretName, func() ([]byte, error) {
		b := make([]byte, ed25519.SeedSize)
		_, err := rand.Read(b)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("archive signing key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("archive signing key: %d bytes", len(seed))
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// Service archives, verifies, proves and searches. Safe for concurrent use.
type Service struct {
	Store store.Store
	// Blobs is the archive's namespace of the blob store; Spool the
	// queue's, which the pending messages are read from.
	Blobs blob.Store
	Spool blob.Store
	Index Index
	Key   ed25519.PrivateKey
	Clock clock.Clock
	Log   *slog.Logger
	// Node names this node's leases.
	Node string
	// Notify tells a tenant's administrators something (the 70 % notice);
	// nil: logged only.
	Notify func(ctx context.Context, tenantID int64, subject, body string) error

	mu      sync.Mutex
	touched map[int64]bool       // tenants appended to since the last checkpoint
	usageOf map[int64]usageCache // stored bytes and capacity per tenant
	// refresh lets one worker at a time read a usage from the store: the
	// others wait for its answer instead of asking the same.
	refresh sync.Mutex
	writing map[string]*nameLock // blob names being written (storeSegment)
}

func (s *Service) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// PublicKey is the key checkpoints verify with.
func (s *Service) PublicKey() ed25519.PublicKey { return s.Key.Public().(ed25519.PublicKey) }

// checkpoint signs a tenant's tree head.
func (s *Service) checkpoint(tenantID int64) func(size int64, root []byte) (store.ArchiveCheckpoint, error) {
	return func(size int64, root []byte) (store.ArchiveCheckpoint, error) {
		c := tlog.Checkpoint{TenantID: tenantID, Size: size, Root: root, Time: s.now().UTC().Truncate(time.Second)}
		text, sig := tlog.Sign(s.Key, c)
		return store.ArchiveCheckpoint{TenantID: tenantID, Size: size, Root: root, At: c.Time, Text: text, Signature: sig,
			KeyID: tlog.KeyID(s.PublicKey())}, nil
	}
}

// Checkpoint signs the current tree of a tenant now.
func (s *Service) Checkpoint(ctx context.Context, tenantID int64) (store.ArchiveCheckpoint, error) {
	if _, err := s.Store.AppendArchive(ctx, store.ArchiveAppend{TenantID: tenantID, Checkpoint: s.checkpoint(tenantID)}); err != nil {
		return store.ArchiveCheckpoint{}, fmt.Errorf("archive checkpoint: %w", err)
	}
	cps, err := s.Store.ArchiveCheckpoints(ctx, tenantID, 1)
	if err != nil || len(cps) == 0 {
		return store.ArchiveCheckpoint{}, fmt.Errorf("archive checkpoint: %w", err)
	}
	return cps[0], nil
}

// chunkSize is the span of message bytes each Chunks hash covers.
const chunkSize = 4096

// chunkHashes returns the first 8 bytes of the SHA-256 of each chunk.
func chunkHashes(b []byte) []byte {
	out := make([]byte, 0, (len(b)/chunkSize+1)*8)
	for off := 0; off < len(b) || off == 0; off += chunkSize {
		end := min(off+chunkSize, len(b))
		h := sha256.Sum256(b[off:end])
		out = append(out, h[:8]...)
		if end == len(b) {
			break
		}
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// blobName names a segment's blob: content-addressed within the tenant, so
// a write repeated after a crash finds its first copy.
func blobName(tenantID int64, sum string) string { return fmt.Sprintf("a%d-%s", tenantID, sum) }

// storeSegment makes a segment durable unless the tenant has it already.
// Writers of one name on this node take turns (the same attachment in
// messages archived side by side): the second finds the first's blob
// complete, or writes it itself when the first failed.
func (s *Service) storeSegment(ctx context.Context, tenantID int64, data []byte) (store.ArchiveBlob, bool, error) {
	sum := sha(data)
	if b, err := s.Store.ArchiveBlobBySHA(ctx, tenantID, sum); err == nil {
		return b, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.ArchiveBlob{}, false, err
	}
	name := blobName(tenantID, sum)
	unlock := s.lockName(name)
	defer unlock()
	key, size, err := blob.Put(ctx, s.Blobs, name, bytes.NewReader(data))
	if errors.Is(err, blob.ErrExists) {
		// Written before: by another message of this batch, or by an
		// attempt that crashed before its commit; same name, same content.
		// A write that crashed half-way is no blob (its temporary file is
		// swept at the next start): retried then.
		key = blob.Key(s.Blobs.Node(), name)
		r, oerr := s.Blobs.Open(ctx, key)
		if oerr != nil {
			return store.ArchiveBlob{}, false, fmt.Errorf("archive blob %s: %w", name, oerr)
		}
		r.Close()
		return store.ArchiveBlob{SHA256: sum, Key: key, Size: int64(len(data))}, true, nil
	}
	if err != nil {
		return store.ArchiveBlob{}, false, fmt.Errorf("archive blob: %w", err)
	}
	return store.ArchiveBlob{SHA256: sum, Key: key, Size: size}, true, nil
}

// storeMessage stores a message's segments (segmentsOf) and returns their
// hashes in order and the blobs it wrote.
func (s *Service) storeMessage(ctx context.Context, tenantID int64, raw []byte) ([]string, []store.ArchiveBlob, error) {
	var sums []string
	var wrote []store.ArchiveBlob
	for _, part := range segmentsOf(ctx, raw) {
		seg, w, err := s.storeSegment(ctx, tenantID, part)
		if err != nil {
			return nil, nil, err
		}
		sums = append(sums, seg.SHA256)
		if w {
			wrote = append(wrote, seg)
		}
	}
	return sums, wrote, nil
}

// lockName serialises this node's writers of one blob name.
func (s *Service) lockName(name string) (unlock func()) {
	s.mu.Lock()
	if s.writing == nil {
		s.writing = map[string]*nameLock{}
	}
	l := s.writing[name]
	if l == nil {
		l = &nameLock{}
		s.writing[name] = l
	}
	l.users++
	s.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.mu.Lock()
		if l.users--; l.users == 0 {
			delete(s.writing, name)
		}
		s.mu.Unlock()
	}
}

type nameLock struct {
	mu    sync.Mutex
	users int
}

// ReadMessage returns an archived message's original bytes, verified
// against the hash in its log entry.
func (s *Service) ReadMessage(ctx context.Context, e store.ArchiveEntry) ([]byte, error) {
	if e.Kind != store.ArchiveKindMessage {
		return nil, fmt.Errorf("archive entry %s is not a message", e.ID)
	}
	if !e.Deleted.IsZero() {
		return nil, fmt.Errorf("archive entry %s: body deleted on %s (logged)", e.ID, e.Deleted.UTC().Format(time.RFC3339))
	}
	b, err := s.readSegments(ctx, e)
	if err != nil {
		return nil, err
	}
	if sha(b) != e.SHA256 {
		return nil, fmt.Errorf("archive entry %s: content does not match its logged hash: %w", e.ID, blob.ErrDamaged)
	}
	return b, nil
}

// readSegments concatenates an entry's segments as stored (unverified:
// Verify reads through it to say what differs).
func (s *Service) readSegments(ctx context.Context, e store.ArchiveEntry) ([]byte, error) {
	var out []byte
	for _, seg := range e.Segments {
		b, err := s.Store.ArchiveBlobBySHA(ctx, e.TenantID, seg)
		if err != nil {
			return out, fmt.Errorf("segment %s: %w", seg, err)
		}
		r, err := s.Blobs.Open(ctx, b.Key)
		if err != nil {
			return out, fmt.Errorf("segment %s: %w", seg, err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		out = append(out, data...)
		if err != nil {
			return out, fmt.Errorf("segment %s: %w", seg, err)
		}
	}
	return out, nil
}

// Meta is the canonical metadata of an archived message, part of its
// leaf: what the envelope and the verdicts were when it was archived.
type Meta struct {
	QueueID    string      `json:"queue_id,omitempty"`
	Direction  string      `json:"direction"`
	Received   string      `json:"received"`
	MailFrom   string      `json:"mail_from"`
	Rcpts      []MetaRcpt  `json:"rcpts"`
	ClientIP   string      `json:"client_ip,omitempty"`
	Helo       string      `json:"helo,omitempty"`
	TLS        bool        `json:"tls,omitempty"`
	AuthUser   string      `json:"auth_user,omitempty"`
	MessageID  string      `json:"message_id,omitempty"`
	Verdicts   []string    `json:"verdicts,omitempty"`
	Findings   []string    `json:"findings,omitempty"`
	Size       int64       `json:"size"`
	Imported   *ImportInfo `json:"imported,omitempty"`
	Attachment []string    `json:"attachments,omitempty"`
}

// MetaRcpt is one envelope recipient and its outcome when archived.
type MetaRcpt struct {
	Addr  string `json:"addr"`
	State string `json:"state"`
	Reply string `json:"reply,omitempty"`
}

// ImportInfo says where an imported message came from.
type ImportInfo struct {
	By     string `json:"by"`
	Source string `json:"source"` // file name
	At     string `json:"at"`
}

func canonical(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("archive: marshal metadata: %v", err)) // only plain types
	}
	return string(b)
}

// noteTouched records that a tenant's tree grew (a checkpoint follows).
func (s *Service) noteTouched(tenantID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.touched == nil {
		s.touched = map[int64]bool{}
	}
	s.touched[tenantID] = true
}

// SignTouched signs a checkpoint for every tenant whose log grew since the
// last call.
func (s *Service) SignTouched(ctx context.Context) error {
	s.mu.Lock()
	t := s.touched
	s.touched = nil
	s.mu.Unlock()
	var errs []error
	for tid := range t {
		if _, err := s.Checkpoint(ctx, tid); err != nil {
			errs = append(errs, err)
			s.noteTouched(tid)
		}
	}
	return errors.Join(errs...)
}

// PublicKeyText is the public key in its published form.
func (s *Service) PublicKeyText() string { return tlog.EncodeKey(s.PublicKey()) }

// LogEvent appends an event (settings changed, legal hold, import run) to
// a tenant's log and signs a checkpoint over it.
func (s *Service) LogEvent(ctx context.Context, tenantID int64, kind string, what map[string]any) error {
	now := s.now()
	e := store.ArchiveEntry{ID: store.NewMessageID(now), Kind: kind, At: now, Received: now, Meta: canonical(what)}
	if _, err := s.Store.AppendArchive(ctx, store.ArchiveAppend{TenantID: tenantID, Entries: []store.ArchiveEntry{e}, Checkpoint: s.checkpoint(tenantID)}); err != nil {
		return fmt.Errorf("archive log: %w", err)
	}
	return nil
}
