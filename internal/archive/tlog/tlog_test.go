package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"
)

func leaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = LeafHash([]byte(fmt.Sprint("leaf ", i)))
	}
	return out
}

// The frontier kept while appending gives the same root as the tree
// computed from all leaves, and every inclusion proof verifies against it
// and fails for any other leaf, index or root.
func TestFrontierRootsAndProofs(t *testing.T) {
	for n := 1; n <= 70; n++ {
		l := leaves(n)
		var fr [][]byte
		for i, h := range l {
			fr = Append(fr, int64(i), h)
		}
		root := Root(l)
		if !bytes.Equal(RootOf(fr), root) {
			t.Fatalf("n=%d: frontier root differs", n)
		}
		for i := range l {
			p, err := InclusionProof(l, int64(i))
			if err != nil {
				t.Fatal(err)
			}
			if !VerifyInclusion(l[i], int64(i), int64(n), p, root) {
				t.Fatalf("n=%d i=%d: proof does not verify", n, i)
			}
			if n > 1 && VerifyInclusion(l[(i+1)%n], int64(i), int64(n), p, root) {
				t.Fatalf("n=%d i=%d: proof verifies another leaf", n, i)
			}
			if n > 1 && VerifyInclusion(l[i], int64((i+1)%n), int64(n), p, root) {
				t.Fatalf("n=%d i=%d: proof verifies at another index", n, i)
			}
		}
	}
}

// Known answers from RFC 6962's hashing: a tree of one leaf is its leaf
// hash; of two, the node hash; the empty tree is SHA-256 of nothing.
func TestKnownAnswers(t *testing.T) {
	if hex.EncodeToString(EmptyRoot()) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatal("empty root")
	}
	// SHA-256(0x00) is the hash of an empty leaf (RFC 6962 test vectors).
	if hex.EncodeToString(LeafHash(nil)) != "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d" {
		t.Fatal("empty leaf")
	}
	a, b := LeafHash([]byte("a")), LeafHash([]byte("b"))
	want := sha256.Sum256(append(append([]byte{1}, a...), b...))
	if !bytes.Equal(Root([][]byte{a, b}), want[:]) {
		t.Fatal("two leaves")
	}
}

func TestCheckpointSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	c := Checkpoint{TenantID: 3, Size: 9, Root: Root(leaves(9)), Time: time.Date(2026, 12, 1, 2, 3, 4, 0, time.UTC)}
	text, sig := Sign(priv, c)
	got, err := VerifyCheckpoint(pub, text, sig)
	if err != nil || got.Size != 9 || !bytes.Equal(got.Root, c.Root) || !got.Time.Equal(c.Time) {
		t.Fatalf("%v %+v", err, got)
	}
	if _, err := VerifyCheckpoint(pub, text[:len(text)-2]+"5\n", sig); err == nil {
		t.Fatal("altered checkpoint verified")
	}
	k, err := DecodeKey(EncodeKey(pub))
	if err != nil || !bytes.Equal(k, pub) {
		t.Fatal("key round trip")
	}
}
