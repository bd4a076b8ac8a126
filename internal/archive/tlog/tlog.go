// Package tlog is the archive's tamper-evident log: a Merkle tree hashed
// as in Certificate Transparency (RFC 6962 2.1, RFC 9162 2.1), the leaf
// encoding of archive entries, inclusion proofs and signed checkpoints.
//
// Hashing: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left ||
// right); the tree of n leaves splits at the largest power of two below n.
// The empty tree's root is SHA-256 of nothing.
//
// Everything here is small enough to check by hand: docs/archive.md
// describes the same procedure and ships a Python checker.
package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// HashSize is the size of every hash in the tree.
const HashSize = sha256.Size

// LeafHash is SHA-256(0x00 || data).
func LeafHash(data []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	return h.Sum(nil)
}

// NodeHash is SHA-256(0x01 || left || right).
func NodeHash(left, right []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(left)
	h.Write(right)
	return h.Sum(nil)
}

// EmptyRoot is the root of the tree with no leaves.
func EmptyRoot() []byte {
	s := sha256.Sum256(nil)
	return s[:]
}

// LeafData is the encoding of one archive log entry, the data its leaf
// hash is computed over. Lines end with "\n"; contentSHA is "-" for
// entries without a message body (events); metaSHA is the hex SHA-256 of
// the entry's canonical metadata JSON.
func LeafData(tenantID, seq int64, id, kind, contentSHA, metaSHA string) []byte {
	if contentSHA == "" {
		contentSHA = "-"
	}
	var b strings.Builder
	b.WriteString("mailgate-archive-leaf/1\n")
	fmt.Fprintf(&b, "tenant: %d\nseq: %d\nid: %s\nkind: %s\nsha256: %s\nmeta-sha256: %s\n", tenantID, seq, id, kind, contentSHA, metaSHA)
	return []byte(b.String())
}

// MetaSHA is the hex SHA-256 of an entry's metadata.
func MetaSHA(meta string) string {
	s := sha256.Sum256([]byte(meta))
	return hex.EncodeToString(s[:])
}

// EntryLeaf is the leaf hash of an entry.
func EntryLeaf(tenantID, seq int64, id, kind, contentSHA, meta string) []byte {
	return LeafHash(LeafData(tenantID, seq, id, kind, contentSHA, MetaSHA(meta)))
}

// Append adds a leaf to a tree of size leaves whose frontier (the roots of
// its perfect subtrees, largest first: one per bit set in size) is given,
// and returns the new frontier. The input is not modified.
func Append(frontier [][]byte, size int64, leaf []byte) [][]byte {
	out := make([][]byte, len(frontier), len(frontier)+1)
	copy(out, frontier)
	h := leaf
	// Each trailing one bit of size is a subtree of the same height as
	// the carry: merge them, as binary addition carries.
	for s := size; s&1 == 1; s >>= 1 {
		h = NodeHash(out[len(out)-1], h)
		out = out[:len(out)-1]
	}
	return append(out, h)
}

// RootOf folds a frontier into the tree's root (RFC 6962's MTH: the right
// part of each split is the smaller subtrees).
func RootOf(frontier [][]byte) []byte {
	if len(frontier) == 0 {
		return EmptyRoot()
	}
	h := frontier[len(frontier)-1]
	for i := len(frontier) - 2; i >= 0; i-- {
		h = NodeHash(frontier[i], h)
	}
	return h
}

// Root computes the root of the tree over leaves directly.
func Root(leaves [][]byte) []byte {
	if len(leaves) == 0 {
		return EmptyRoot()
	}
	return mth(leaves)
}

func mth(l [][]byte) []byte {
	if len(l) == 1 {
		return l[0]
	}
	k := split(len(l))
	return NodeHash(mth(l[:k]), mth(l[k:]))
}

// split is the largest power of two smaller than n (n > 1).
func split(n int) int {
	return 1 << (bits.Len(uint(n-1)) - 1)
}

// InclusionProof returns the audit path of leaf index in the tree over
// leaves (RFC 6962 2.1.1 PATH), from the leaf's sibling upwards.
func InclusionProof(leaves [][]byte, index int64) ([][]byte, error) {
	if index < 0 || index >= int64(len(leaves)) {
		return nil, fmt.Errorf("tlog: leaf %d not in a tree of %d", index, len(leaves))
	}
	return path(int(index), leaves), nil
}

func path(m int, l [][]byte) [][]byte {
	if len(l) <= 1 {
		return nil
	}
	k := split(len(l))
	if m < k {
		return append(path(m, l[:k]), mth(l[k:]))
	}
	return append(path(m-k, l[k:]), mth(l[:k]))
}

// RootFromProof computes the root that an inclusion proof of leaf at index
// in a tree of size leads to (RFC 9162 2.1.3.2).
func RootFromProof(leaf []byte, index, size int64, proof [][]byte) ([]byte, error) {
	if index < 0 || index >= size {
		return nil, fmt.Errorf("tlog: leaf %d not in a tree of %d", index, size)
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return nil, errors.New("tlog: proof too long")
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return nil, errors.New("tlog: proof too short")
	}
	return r, nil
}

// VerifyInclusion reports whether proof shows leaf at index in the tree of
// size whose root is root.
func VerifyInclusion(leaf []byte, index, size int64, proof [][]byte, root []byte) bool {
	r, err := RootFromProof(leaf, index, size, proof)
	return err == nil && bytes.Equal(r, root)
}

// Checkpoint is a tree head: a tenant's log size and root at a time.
type Checkpoint struct {
	TenantID int64
	Size     int64
	Root     []byte
	Time     time.Time
}

// Text is the checkpoint's signed text: five lines, each ending in "\n".
func (c Checkpoint) Text() string {
	return fmt.Sprintf("mailgate-archive-checkpoint/1\ntenant: %d\nsize: %d\nroot: %s\ntime: %s\n",
		c.TenantID, c.Size, hex.EncodeToString(c.Root), c.Time.UTC().Format(time.RFC3339))
}

// ParseCheckpoint reads a checkpoint's text.
func ParseCheckpoint(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 5 || lines[0] != "mailgate-archive-checkpoint/1" {
		return c, errors.New("tlog: not a checkpoint")
	}
	var err error
	field := func(line, name string) string {
		v, ok := strings.CutPrefix(line, name+": ")
		if !ok && err == nil {
			err = fmt.Errorf("tlog: checkpoint line %q", line)
		}
		return v
	}
	t, s, r, tm := field(lines[1], "tenant"), field(lines[2], "size"), field(lines[3], "root"), field(lines[4], "time")
	if err != nil {
		return c, err
	}
	if c.TenantID, err = strconv.ParseInt(t, 10, 64); err != nil {
		return c, fmt.Errorf("tlog: checkpoint tenant: %w", err)
	}
	if c.Size, err = strconv.ParseInt(s, 10, 64); err != nil {
		return c, fmt.Errorf("tlog: checkpoint size: %w", err)
	}
	if c.Root, err = hex.DecodeString(r); err != nil || len(c.Root) != HashSize {
		return c, errors.New("tlog: checkpoint root")
	}
	if c.Time, err = time.Parse(time.RFC3339, tm); err != nil {
		return c, fmt.Errorf("tlog: checkpoint time: %w", err)
	}
	return c, nil
}

// KeyID names a public key: the first 8 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:4])
}

// Sign signs a checkpoint's text.
func Sign(priv ed25519.PrivateKey, c Checkpoint) (text string, sig []byte) {
	text = c.Text()
	return text, ed25519.Sign(priv, []byte(text))
}

// VerifyCheckpoint checks a signed checkpoint text and parses it.
func VerifyCheckpoint(pub ed25519.PublicKey, text string, sig []byte) (Checkpoint, error) {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, []byte(text), sig) {
		return Checkpoint{}, errors.New("tlog: checkpoint signature does not verify")
	}
	return ParseCheckpoint(text)
}

// EncodeKey is the text form of a public key: "ed25519:" and base64.
func EncodeKey(pub ed25519.PublicKey) string {
	return "ed25519:" + base64.StdEncoding.EncodeToString(pub)
}

// DecodeKey reads EncodeKey's form.
func DecodeKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "ed25519:"))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("tlog: not an Ed25519 public key")
	}
	return ed25519.PublicKey(b), nil
}
