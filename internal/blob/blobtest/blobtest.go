// Package blobtest is the conformance suite of blob stores: every
// implementation of blob.Store runs the same tests (durability contract,
// checksum detection, listing by prefix, node-scoped recovery, concurrent
// writers).
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/internal/blob"
)

// Backend is one test's shared backing storage (a directory, a bucket).
type Backend struct {
	// Open opens a store writing as node on this backing; several stores
	// (nodes) may be open at once. The store is closed when t ends.
	Open func(t *testing.T, node string) blob.Store
	// Damage replaces the stored content of key by change(content),
	// keeping what the store recorded with it (size, checksum), as a
	// failing disk would.
	Damage func(t *testing.T, key string, change func([]byte) []byte)
}

// Run runs the suite; newBackend gives each test a fresh backing.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"NothingBeforeCommit", testNothingBeforeCommit},
		{"DurableAcrossReopen", testDurableAcrossReopen},
		{"NamesAndKeys", testNamesAndKeys},
		{"NoOverwrite", testNoOverwrite},
		{"Delete", testDelete},
		{"DamageDetected", testDamageDetected},
		{"ListByPrefix", testListByPrefix},
		{"RecoveryIsNodeScoped", testRecoveryIsNodeScoped},
		{"ConcurrentWriters", testConcurrentWriters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBackend(t))
		})
	}
}

func put(t *testing.T, s blob.Store, name, body string) string {
	t.Helper()
	key, size, err := blob.Put(context.Background(), s, name, strings.NewReader(body))
	if err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
	if size != int64(len(body)) {
		t.Fatalf("put %s: size %d, want %d", name, size, len(body))
	}
	return key
}

func read(s blob.Store, key string) (string, error) {
	r, err := s.Open(context.Background(), key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

func mustRead(t *testing.T, s blob.Store, key, want string) {
	t.Helper()
	got, err := read(s, key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if got != want {
		t.Fatalf("read %s: %d bytes %.40q, want %d bytes %.40q", key, len(got), got, len(want), want)
	}
}

func list(t *testing.T, s blob.Store, prefix string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for in, err := range s.List(context.Background(), prefix) {
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		out[in.Key] = in.Size
	}
	return out
}

func keys(m map[string]int64) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// bigBody is larger than any in-memory buffer of a writer.
func bigBody() string {
	var b strings.Builder
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "line %d of a large message body\r\n", i)
	}
	return b.String()
}

func testRoundTrip(t *testing.T, b Backend) {
	s := b.Open(t, "node1")
	ctx := context.Background()
	for _, body := range []string{"", "From: a@example.net\r\n\r\nhello\r\n", bigBody()} {
		name := fmt.Sprintf("m%d", len(body))
		w, err := s.Create(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		// Written in pieces, as smtpin streams DATA.
		for rest := body; rest != ""; {
			n := min(len(rest), 1000)
			if _, err := io.WriteString(w, rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if w.Size() != int64(len(body)) {
			t.Fatalf("Size %d, want %d", w.Size(), len(body))
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if w.Key() != "node1/"+name {
			t.Fatalf("key %q, want node1/%s", w.Key(), name)
		}
		mustRead(t, s, w.Key(), body)
		if got := list(t, s, w.Key()); got[w.Key()] != int64(len(body)) {
			t.Fatalf("listed size %v, want %d", got, len(body))
		}
	}
	if err := s.Healthy(); err != nil {
		t.Fatal(err)
	}
	if s.Node() != "node1" {
		t.Fatalf("Node() = %q", s.Node())
	}
}

// Nothing is visible under a key before Commit; Abort leaves nothing and
// frees the name.
func testNothingBeforeCommit(t *testing.T, b Backend) {
	s := b.Open(t, "node1")
	ctx := context.Background()
	w, err := s.Create(ctx, "pending")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "half a message")
	if _, err := s.Open(ctx, w.Key()); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("open before commit: %v, want ErrNotFound", err)
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Fatalf("listed before commit: %v", got)
	}
	w.Abort()
	if got := list(t, s, ""); len(got) != 0 {
		t.Fatalf("listed after abort: %v", got)
	}
	if err := w.Commit(ctx); err == nil {
		t.Fatal("commit after abort succeeded")
	}
	put(t, s, "pending", "second try")
	mustRead(t, s, "node1/pending", "second try")
}

// A committed blob is there for a store opened afterwards (a restarted
// node, another node).
func testDurableAcrossReopen(t *testing.T, b Backend) {
	s := b.Open(t, "node1")
	key := put(t, s, "kept", "durable body")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mustRead(t, b.Open(t, "node1"), key, "durable body")
	mustRead(t, b.Open(t, "node2"), key, "durable body")
}

func testNamesAndKeys(t *testing.T, b Backend) {
	s := b.Open(t, "node1")
	ctx := context.Background()
	for _, n := range []string{"", "../x", "a/b", "UPPER", "x.y", ".hidden", strings.Repeat("a", 129)} {
		if w, err := s.Create(ctx, n); err == nil {
			w.Abort()
			t.Errorf("name %q accepted", n)
		}
	}
	for _, k := range []string{"", "../x", "node1/../x", "node1/", "/x", "node1/a/b", ".x/y"} {
		if _, err := s.Open(ctx, k); err == nil || errors.Is(err, blob.ErrNotFound) {
			t.Errorf("key %q: %v, want an invalid-key error", k, err)
		}
	}
	if _, err := s.Open(ctx, "node1/absent"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("missing blob: %v, want ErrNotFound", err)
	}
}

// A committed blob is never replaced by a second blob of the same name.
func testNoOverwrite(t *testing.T, b Backend) {
	s := b.Open(t, "node1")
	ctx := context.Background()
	key := put(t, s, "one", "first")
	if w, err := s.Create(ctx, "one"); err == nil {
		io.WriteString(w, "second")
		if err := w.Commit(ctx); err == nil {
			t.Fatal("existing blob overwritten")
		}
	}
	mustRead(t, s, key, "first")
}

func testDelete(t *testing.T, b Backend) {
	s := b.Open(t, "node1")
	ctx := context.Background()
	key := put(t, s, "gone", "x")
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("open after delete: %v", err)
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
	if err := s.Delete(ctx, "../x"); err == nil {
		t.Fatal("invalid key deleted")
	}
	// Another node's blobs are read and deleted by key like one's own.
	other := put(t, b.Open(t, "node2"), "theirs", "y")
	mustRead(t, s, other, "y")
	if err := s.Delete(ctx, other); err != nil {
		t.Fatal(err)
	}
}

// A blob whose content changed, shrank or grew after it was committed is
// reported as damaged, never returned as if whole, and Check moves it
// aside.
func testDamageDetected(t *testing.T, b Backend) {
	s := b.Open(t, "node1")
	ctx := context.Background()
	body := "From: a@example.net\r\nSubject: pay\r\n\r\nIBAN DE00 1234\r\n" + bigBody()
	for name, change := range map[string]func([]byte) []byte{
		"flipped":   func(c []byte) []byte { c[len(c)/2] ^= 0x20; return c },
		"truncated": func(c []byte) []byte { return c[:len(c)-100] },
		"longer":    func(c []byte) []byte { return append(c, "extra\r\n"...) },
		"emptied":   func(c []byte) []byte { return nil },
	} {
		key := put(t, s, name, body)
		b.Damage(t, key, change)
		got, err := read(s, key)
		if !errors.Is(err, blob.ErrDamaged) {
			t.Fatalf("%s: read gave %v, want ErrDamaged", name, err)
		}
		if len(got) > len(body) {
			t.Fatalf("%s: %d bytes handed out, more than the %d recorded", name, len(got), len(body))
		}
		err = blob.Check(ctx, s, key)
		if !errors.Is(err, blob.ErrDamaged) || !strings.Contains(err.Error(), "moved to") {
			t.Fatalf("%s: Check = %v", name, err)
		}
		if _, err := s.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("%s: damaged blob still in place after Check: %v", name, err)
		}
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Fatalf("damaged blobs still listed: %v", keys(got))
	}
	intact := put(t, s, "intact", body)
	if err := blob.Check(ctx, s, intact); err != nil {
		t.Fatalf("Check of an intact blob: %v", err)
	}
	if err := blob.Check(ctx, s, "node1/absent"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Check of a missing blob: %v", err)
	}
}

func testListByPrefix(t *testing.T, b Backend) {
	s1, s2 := b.Open(t, "node1"), b.Open(t, "node2")
	put(t, s1, "abc1", "1")
	put(t, s1, "abc2", "22")
	put(t, s1, "xyz", "333")
	put(t, s2, "abc1", "4444")
	for prefix, want := range map[string]string{
		"":           "node1/abc1 node1/abc2 node1/xyz node2/abc1",
		"node1/":     "node1/abc1 node1/abc2 node1/xyz",
		"node1/abc":  "node1/abc1 node1/abc2",
		"node2/":     "node2/abc1",
		"node":       "node1/abc1 node1/abc2 node1/xyz node2/abc1",
		"node3/":     "",
		"node1/abc2": "node1/abc2",
	} {
		got := list(t, s2, prefix)
		if strings.Join(keys(got), " ") != want {
			t.Errorf("List(%q) = %v, want %s", prefix, keys(got), want)
		}
	}
	if got := list(t, s1, "node1/"); got["node1/abc2"] != 2 || got["node1/xyz"] != 3 {
		t.Fatalf("listed sizes %v", got)
	}
}

// Recovery only touches the recovering node's blobs: another node's
// unreferenced and in-flight blobs survive it.
func testRecoveryIsNodeScoped(t *testing.T, b Backend) {
	ctx := context.Background()
	a, other := b.Open(t, "a"), b.Open(t, "b")
	kept := put(t, a, "kept", "0123456789")
	orphan := put(t, a, "orphan", "never acknowledged")
	damaged := put(t, a, "damaged", "short")
	// A write the crash interrupted.
	w, err := a.Create(ctx, "partial")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "half a message")
	theirs := put(t, other, "theirs", "not referenced yet")
	inflight, err := other.Create(ctx, "inflight")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(inflight, "being written by node b")

	// Node a restarts.
	a2 := b.Open(t, "a")
	pending := map[string]int64{kept: 10, damaged: 500, "a/missing": 42, "b/elsewhere": 7}
	rep, err := blob.Recover(ctx, a2, func(context.Context) (map[string]int64, error) { return pending, nil })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kept != 1 || rep.Discarded != 1 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Missing) != 1 || rep.Missing[0] != "a/missing" {
		t.Fatalf("missing %v (only node a's pending keys are its business)", rep.Missing)
	}
	if len(rep.Damaged) != 1 || rep.Damaged[damaged] == "" {
		t.Fatalf("damaged %v", rep.Damaged)
	}
	if got := strings.Join(keys(list(t, a2, "")), " "); got != kept+" "+theirs {
		t.Fatalf("after recovery: %s", got)
	}
	if _, err := read(a2, orphan); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("orphan: %v", err)
	}
	mustRead(t, a2, theirs, "not referenced yet")
	if err := inflight.Commit(ctx); err != nil {
		t.Fatalf("node b's write after node a's recovery: %v", err)
	}
	mustRead(t, a2, inflight.Key(), "being written by node b")
	// The interrupted write left nothing that blocks its name.
	put(t, a2, "partial", "again")
}

func testConcurrentWriters(t *testing.T, b Backend) {
	ctx := context.Background()
	stores := []blob.Store{b.Open(t, "node1"), b.Open(t, "node2")}
	const writers, each = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[i%len(stores)]
			for j := 0; j < each; j++ {
				name := fmt.Sprintf("w%d-%d", i, j)
				body := bytes.Repeat([]byte(name+"\r\n"), 100*(j+1))
				w, err := s.Create(ctx, name)
				if err != nil {
					errs <- err
					return
				}
				for k := 0; k < len(body); k += 512 {
					if _, err := w.Write(body[k:min(k+512, len(body))]); err != nil {
						errs <- err
						return
					}
				}
				if err := w.Commit(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := list(t, stores[0], "")
	if len(got) != writers*each {
		t.Fatalf("%d blobs listed, want %d", len(got), writers*each)
	}
	for i := 0; i < writers; i++ {
		for j := 0; j < each; j++ {
			name := fmt.Sprintf("w%d-%d", i, j)
			key := blob.Key(stores[i%len(stores)].Node(), name)
			mustRead(t, stores[(i+1)%len(stores)], key, strings.Repeat(name+"\r\n", 100*(j+1)))
		}
	}
}
