package archive

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailgate/mailgate/internal/archive/tlog"
	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/store"
)

// Problem kinds Verify reports.
const (
	ProblemMissing      = "missing"         // an entry of the log is gone (no logged deletion)
	ProblemMoved        = "moved"           // an entry is at another position than it was logged at
	ProblemEntryChanged = "entry-changed"   // an entry's fields no longer give its leaf
	ProblemBodyChanged  = "body-changed"    // a message's bytes differ from its logged hash
	ProblemBodyMissing  = "body-missing"    // a message's body is gone without a logged deletion
	ProblemUnlogged     = "unlogged-delete" // marked deleted, but no deletion entry names it
	ProblemCheckpoint   = "checkpoint"      // the log does not give the signed root
	ProblemSignature    = "signature"       // a checkpoint's signature does not verify
	ProblemTreeState    = "tree-state"      // the stored frontier disagrees with the leaves
	ProblemExtraEntries = "extra"           // entries beyond the latest checkpoint are not signed yet (information)
	ProblemDuplicateSeq = "duplicate"       // two entries at one position
)

// Problem is one finding of Verify.
type Problem struct {
	Kind   string `json:"kind"`
	Seq    int64  `json:"seq"`
	ID     string `json:"id,omitempty"`
	Detail string `json:"detail"`
}

// Report is Verify's result.
type Report struct {
	TenantID   int64     `json:"tenant"`
	At         time.Time `json:"at"`
	Entries    int64     `json:"entries"`
	Messages   int64     `json:"messages"`
	Deleted    int64     `json:"deleted"`
	Checkpoint string    `json:"checkpoint,omitempty"` // text of the latest checkpoint
	Problems   []Problem `json:"problems,omitempty"`
}

// OK reports whether nothing is wrong (unsigned new entries are not wrong).
func (r Report) OK() bool {
	for _, p := range r.Problems {
		if p.Kind != ProblemExtraEntries {
			return false
		}
	}
	return true
}

func (r *Report) add(kind string, seq int64, id, format string, a ...any) {
	r.Problems = append(r.Problems, Problem{Kind: kind, Seq: seq, ID: id, Detail: fmt.Sprintf(format, a...)})
}

// Verify checks a tenant's whole archive: every entry against its leaf,
// every stored message against its logged hash (saying which bytes
// differ), every deleted body against a logged deletion, the leaves
// against every signed checkpoint, and the checkpoints' signatures. It
// reads every message: run it off-peak on large archives.
func (s *Service) Verify(ctx context.Context, tid int64) (Report, error) {
	rep := Report{TenantID: tid, At: s.now()}
	pub := s.PublicKey()
	cps, err := s.Store.ArchiveCheckpoints(ctx, tid, 1<<20)
	if err != nil {
		return rep, err
	}
	type signed struct {
		size int64
		root []byte
		text string
	}
	var good []signed // newest first
	for _, c := range cps {
		cp, err := tlog.VerifyCheckpoint(pub, c.Text, c.Signature)
		if err != nil || cp.TenantID != tid {
			rep.add(ProblemSignature, c.Size, "", "checkpoint of size %d signed at %s does not verify with this installation's key", c.Size, c.At.UTC().Format(time.RFC3339))
			continue
		}
		good = append(good, signed{cp.Size, cp.Root, c.Text})
	}
	if len(good) > 0 {
		rep.Checkpoint = good[0].text
	}
	// Pass 1: the entries in order, their leaves recomputed.
	var leaves [][]byte // by position, as stored
	var recomputed [][]byte
	type bad struct {
		e   store.ArchiveEntry
		pos int64
	}
	var mismatched []bad
	deletedBy := map[string]bool{}
	var marked []store.ArchiveEntry
	next := int64(0)
	for {
		es, err := s.Store.ArchiveEntries(ctx, tid, next, 1000)
		if err != nil {
			return rep, err
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			for int64(len(leaves)) < e.Seq {
				// Positions with no entry: removed from the log.
				pos := int64(len(leaves))
				rep.add(ProblemMissing, pos, "", "log entry %d is missing: deleted without a logged deletion", pos)
				leaves = append(leaves, nil)
				recomputed = append(recomputed, nil)
			}
			if int64(len(leaves)) > e.Seq {
				rep.add(ProblemDuplicateSeq, e.Seq, e.ID, "a second entry at position %d", e.Seq)
				continue
			}
			rep.Entries++
			leaves = append(leaves, e.Leaf)
			l := tlog.EntryLeaf(tid, e.Seq, e.ID, e.Kind, e.SHA256, e.Meta)
			recomputed = append(recomputed, l)
			if !bytes.Equal(l, e.Leaf) {
				mismatched = append(mismatched, bad{e, e.Seq})
			}
			switch e.Kind {
			case store.ArchiveKindDeletion:
				var m struct {
					IDs []string `json:"ids"`
				}
				_ = jsonUnmarshal(e.Meta, &m)
				for _, id := range m.IDs {
					deletedBy[id] = true
				}
			case store.ArchiveKindMessage:
				rep.Messages++
				if !e.Deleted.IsZero() {
					rep.Deleted++
					marked = append(marked, e)
					continue
				}
				s.checkBody(ctx, &rep, e)
			}
		}
		next = es[len(es)-1].Seq + 1
	}
	size := int64(len(leaves))
	// Pass 2: entries whose leaf is another position's are moved ones.
	for _, m := range mismatched {
		found := int64(-1)
		for _, o := range mismatched {
			if o.pos != m.pos && bytes.Equal(tlog.EntryLeaf(tid, o.pos, m.e.ID, m.e.Kind, m.e.SHA256, m.e.Meta), m.e.Leaf) {
				found = o.pos
				break
			}
		}
		if found < 0 {
			for _, p := range rep.Problems {
				if p.Kind == ProblemMissing && bytes.Equal(tlog.EntryLeaf(tid, p.Seq, m.e.ID, m.e.Kind, m.e.SHA256, m.e.Meta), m.e.Leaf) {
					found = p.Seq
					break
				}
			}
		}
		if found >= 0 {
			rep.add(ProblemMoved, m.pos, m.e.ID, "entry %s was logged at position %d and is now at position %d: the log was reordered", m.e.ID, found, m.pos)
		} else {
			rep.add(ProblemEntryChanged, m.pos, m.e.ID, "entry %s at position %d was changed after it was logged (its fields no longer give its leaf hash)", m.e.ID, m.pos)
		}
	}
	for _, e := range marked {
		if !deletedBy[e.ID] {
			rep.add(ProblemUnlogged, e.Seq, e.ID, "message %s is marked deleted but no deletion entry of the log names it", e.ID)
		}
	}
	// The leaves, as recomputed from the entries, against every checkpoint.
	root := func(n int64, ls [][]byte) ([]byte, bool) {
		if n > int64(len(ls)) {
			return nil, false
		}
		for _, l := range ls[:n] {
			if l == nil {
				return nil, false
			}
		}
		return tlog.Root(ls[:n]), true
	}
	for i, c := range good {
		r, ok := root(c.size, recomputed)
		if !ok || !bytes.Equal(r, c.root) {
			detail := fmt.Sprintf("the log's first %d entries do not give the root signed for size %d", c.size, c.size)
			if i+1 < len(good) {
				// The newest older checkpoint that still matches bounds where.
				for _, older := range good[i+1:] {
					if r2, ok := root(older.size, recomputed); ok && bytes.Equal(r2, older.root) {
						detail += fmt.Sprintf("; the first %d still match: the change is in positions %d to %d", older.size, older.size, c.size-1)
						break
					}
				}
			}
			rep.add(ProblemCheckpoint, c.size, "", "%s", detail)
			break
		}
	}
	if len(good) > 0 && size > good[0].size {
		rep.add(ProblemExtraEntries, good[0].size, "", "%d entries logged after the latest checkpoint (not signed yet)", size-good[0].size)
	}
	if n, fr, err := s.Store.ArchiveTree(ctx, tid); err == nil {
		if r, ok := root(n, leaves); n != size || !ok || !bytes.Equal(tlog.RootOf(fr), r) {
			rep.add(ProblemTreeState, n, "", "the stored tree state (size %d) disagrees with the %d stored entries", n, size)
		}
	}
	return rep, nil
}

// checkBody compares a stored message with its logged hash and, when it
// differs, says which 4 KiB spans changed.
func (s *Service) checkBody(ctx context.Context, rep *Report, e store.ArchiveEntry) {
	b, err := s.readSegments(ctx, e)
	if err != nil && (errors.Is(err, store.ErrNotFound) || errors.Is(err, blob.ErrNotFound)) {
		rep.add(ProblemBodyMissing, e.Seq, e.ID, "message %s: its body is gone without a logged deletion (%v)", e.ID, err)
		return
	}
	if err != nil && !errors.Is(err, blob.ErrDamaged) {
		rep.add(ProblemBodyMissing, e.Seq, e.ID, "message %s: its body cannot be read: %v", e.ID, err)
		return
	}
	if sha(b) == e.SHA256 && int64(len(b)) == e.Size {
		return
	}
	rep.add(ProblemBodyChanged, e.Seq, e.ID, "message %s: %s", e.ID, describeChange(b, e))
}

// describeChange says where a message's bytes differ from the logged ones,
// from the per-chunk hashes kept with the entry.
func describeChange(b []byte, e store.ArchiveEntry) string {
	var spans []string
	got := chunkHashes(b)
	want := e.Chunks
	n := max(len(got), len(want)) / 8
	for i := 0; i < n; i++ {
		var g, w []byte
		if (i+1)*8 <= len(got) {
			g = got[i*8 : (i+1)*8]
		}
		if (i+1)*8 <= len(want) {
			w = want[i*8 : (i+1)*8]
		}
		if !bytes.Equal(g, w) {
			lo, hi := int64(i)*chunkSize, min(int64(i+1)*chunkSize, e.Size)-1
			spans = append(spans, fmt.Sprintf("bytes %d-%d", lo, hi))
		}
	}
	what := "content changed"
	if int64(len(b)) != e.Size {
		what = fmt.Sprintf("size is %d bytes, %d were logged", len(b), e.Size)
	}
	if len(spans) > 0 {
		what += " in " + strings.Join(spans, ", ")
	}
	s := sha(b)
	return fmt.Sprintf("%s (SHA-256 now %s, logged %s)", what, s[:16], e.SHA256[:min(16, len(e.SHA256))])
}

// Proof is an inclusion proof of one archived message, self-contained: an
// auditor checks it with the message file and the published public key
// (docs/archive.md).
type Proof struct {
	Format        string   `json:"format"`
	Tenant        int64    `json:"tenant"`
	ID            string   `json:"id"`
	Seq           int64    `json:"seq"`
	LeafData      string   `json:"leaf_data"` // the leaf's text; its sha256 line is the message's SHA-256
	Meta          string   `json:"meta"`      // the metadata JSON whose SHA-256 is the leaf's meta-sha256 line
	TreeSize      int64    `json:"tree_size"`
	AuditPath     []string `json:"audit_path"` // hex, from the leaf's sibling upwards (RFC 6962 2.1.1)
	Checkpoint    string   `json:"checkpoint"`
	Signature     string   `json:"signature"` // base64 Ed25519 over checkpoint
	PublicKey     string   `json:"public_key"`
	MessageSHA256 string   `json:"message_sha256,omitempty"`
}

// ProofFormat names the proof layout.
const ProofFormat = "mailgate-archive-proof/1"

// Proof builds the inclusion proof of entry id against the latest signed
// checkpoint (a new checkpoint is signed when the entry is newer).
func (s *Service) Proof(ctx context.Context, tid int64, id string) (Proof, error) {
	e, err := s.Store.ArchiveEntry(ctx, tid, id)
	if err != nil {
		return Proof{}, err
	}
	cps, err := s.Store.ArchiveCheckpoints(ctx, tid, 1)
	if err != nil {
		return Proof{}, err
	}
	if len(cps) == 0 || cps[0].Size <= e.Seq {
		c, err := s.Checkpoint(ctx, tid)
		if err != nil {
			return Proof{}, err
		}
		cps = []store.ArchiveCheckpoint{c}
	}
	c := cps[0]
	leaves, err := s.Store.ArchiveLeaves(ctx, tid, c.Size)
	if err != nil {
		return Proof{}, err
	}
	path, err := tlog.InclusionProof(leaves, e.Seq)
	if err != nil {
		return Proof{}, err
	}
	p := Proof{Format: ProofFormat, Tenant: tid, ID: e.ID, Seq: e.Seq, Meta: e.Meta, TreeSize: c.Size,
		LeafData:   string(tlog.LeafData(tid, e.Seq, e.ID, e.Kind, e.SHA256, tlog.MetaSHA(e.Meta))),
		Checkpoint: c.Text, Signature: base64.StdEncoding.EncodeToString(c.Signature), PublicKey: tlog.EncodeKey(s.PublicKey()),
		MessageSHA256: e.SHA256}
	for _, h := range path {
		p.AuditPath = append(p.AuditPath, hex.EncodeToString(h))
	}
	return p, nil
}

// CheckProof is the auditor's procedure in Go (the tests hold the Python
// one to the same answers): the message's hash is the leaf's, the leaf is
// in the tree the checkpoint signs, and the signature verifies.
func CheckProof(p Proof, message []byte, pubText string) error {
	pub, err := tlog.DecodeKey(pubText)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(p.Signature)
	if err != nil {
		return errors.New("signature is not base64")
	}
	cp, err := tlog.VerifyCheckpoint(pub, p.Checkpoint, sig)
	if err != nil {
		return err
	}
	if cp.Size != p.TreeSize || cp.TenantID != p.Tenant {
		return errors.New("proof and checkpoint disagree on the tree")
	}
	if message != nil && !strings.Contains(p.LeafData, "\nsha256: "+sha(message)+"\n") {
		return errors.New("the message's SHA-256 is not the one in the leaf")
	}
	if !strings.Contains(p.LeafData, "\nmeta-sha256: "+tlog.MetaSHA(p.Meta)+"\n") {
		return errors.New("the metadata's SHA-256 is not the one in the leaf")
	}
	if !strings.Contains(p.LeafData, fmt.Sprintf("\nseq: %d\n", p.Seq)) {
		return errors.New("the leaf's position is not the proof's")
	}
	var path [][]byte
	for _, h := range p.AuditPath {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != tlog.HashSize {
			return errors.New("audit path is not hex hashes")
		}
		path = append(path, b)
	}
	if !tlog.VerifyInclusion(tlog.LeafHash([]byte(p.LeafData)), p.Seq, p.TreeSize, path, cp.Root) {
		return errors.New("the audit path does not lead to the signed root")
	}
	return nil
}
