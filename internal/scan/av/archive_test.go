package av

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/peers"
)

func testLimits() archiveLimits {
	return archiveLimits{
		maxDepth: DefaultArchiveMaxDepth, maxEntries: DefaultArchiveMaxEntries, maxBytes: DefaultArchiveMaxBytes,
		maxRatio: DefaultArchiveMaxRatio, ratioGrace: DefaultArchiveRatioGrace, maxNested: DefaultArchiveMaxNested,
	}
}

// inspectZip runs one message's archive inspection over the given
// attachments.
func inspectZip(t *testing.T, lim archiveLimits, budget time.Duration, archives ...[]byte) archiveReport {
	t.Helper()
	var rep archiveReport
	run := &archiveRun{lim: lim, budget: budget}
	for i, a := range archives {
		if err := run.inspect(context.Background(), bytes.NewReader(a), int64(len(a)), fmt.Sprintf("part %d", i+1), &rep); err != nil {
			t.Fatalf("inspect: %v", err)
		}
	}
	return rep
}

func TestInspectOrdinaryArchives(t *testing.T) {
	t.Parallel()
	text := []byte(strings.Repeat("Quarterly figures, 四半期の数字. ", 200))
	plain := zipOf(t, zipEntry{name: "report.txt", data: text}, zipEntry{name: "dir/", data: nil}, zipEntry{name: "raw.bin", data: []byte{1, 2, 3}, stored: true})
	nested := nestedZip(t, "report.txt", text, 20) // the seed's 20 levels
	storedNest := zipOf(t, zipEntry{name: "inner.zip", data: zipOf(t, zipEntry{name: "a.txt", data: text}), stored: true})
	rep := inspectZip(t, testLimits(), time.Minute, plain, nested, storedNest)
	if rep.unscannable != "" || len(rep.encrypted) != 0 {
		t.Fatalf("ordinary archives flagged: %+v", rep)
	}
}

func TestInspectBudget(t *testing.T) {
	t.Parallel()
	text := []byte("hello")
	many := make([]zipEntry, 30)
	for i := range many {
		many[i] = zipEntry{name: fmt.Sprintf("f%02d.txt", i), data: text}
	}
	tight := func(f func(*archiveLimits)) archiveLimits {
		l := testLimits()
		f(&l)
		return l
	}
	cases := []struct {
		name     string
		lim      archiveLimits
		archives [][]byte
		want     string
	}{
		{"depth 21", testLimits(), [][]byte{nestedZip(t, "a.txt", text, 21)}, "nested deeper than 20"},
		{"depth setting", tight(func(l *archiveLimits) { l.maxDepth = 3 }), [][]byte{nestedZip(t, "a.txt", text, 4)}, "nested deeper than 3"},
		{"entries", tight(func(l *archiveLimits) { l.maxEntries = 20 }), [][]byte{zipOf(t, many...)}, "more than 20 entries"},
		{"entries over attachments", tight(func(l *archiveLimits) { l.maxEntries = 40 }), [][]byte{zipOf(t, many...), zipOf(t, many...)}, "more than 40 entries"},
		{"bytes", tight(func(l *archiveLimits) { l.maxBytes = 100 }), [][]byte{zipOf(t, zipEntry{name: "a", data: bytes.Repeat(text, 30)})}, "more than 100 bytes"},
		{"ratio", tight(func(l *archiveLimits) { l.ratioGrace = 1000 }), [][]byte{zipOf(t, zipEntry{name: "blank.txt", data: make([]byte, 200000)})}, "over 100:1"},
		{"nested in memory", tight(func(l *archiveLimits) { l.maxNested = 100 }), [][]byte{nestedZip(t, "a.txt", bytes.Repeat(text, 100), 3)}, "too large to inspect in memory"},
		{"not a zip", testLimits(), [][]byte{[]byte("PK\x03\x04 but nothing else")}, "malformed ZIP"},
	}
	for _, c := range cases {
		rep := inspectZip(t, c.lim, time.Minute, c.archives...)
		if !strings.Contains(rep.unscannable, c.want) {
			t.Errorf("%s: unscannable %q, want it to mention %q", c.name, rep.unscannable, c.want)
		}
	}
}

// TestInspectZipBomb: a 1 GiB entry of zeros (about 1 MiB deflated),
// nested, is refused from its headers alone.
func TestInspectZipBomb(t *testing.T) {
	t.Parallel()
	bomb := zipBomb(t, 1<<30, 3)
	rep := inspectZip(t, testLimits(), time.Minute, bomb)
	// The wrappers compress their repetitive content beyond 100:1 too, so
	// the outermost level already gives the bomb away.
	if !strings.Contains(rep.unscannable, "part 1/bomb2.zip") || !strings.Contains(rep.unscannable, "over 100:1") {
		t.Fatalf("bomb not refused by ratio: %+v", rep)
	}
	// Without the ratio bound, the byte budget stops it.
	lim := testLimits()
	lim.maxRatio = 1e6
	rep = inspectZip(t, lim, time.Minute, bomb)
	if !strings.Contains(rep.unscannable, "expand to more than") {
		t.Fatalf("bomb not refused by size: %+v", rep)
	}
}

// TestInspectLyingHeader: an entry that declares 1,000 bytes but inflates
// to 4 MiB is caught by the streaming read, which stops after the declared
// size.
func TestInspectLyingHeader(t *testing.T) {
	t.Parallel()
	comp := zeroDeflate(t, 4<<20)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "small.txt", Method: zip.Deflate, CRC32: zerosCRC(4 << 20),
		CompressedSize64: uint64(len(comp)), UncompressedSize64: 1000})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp)
	zw.Close()
	rep := inspectZip(t, testLimits(), time.Minute, buf.Bytes())
	if !strings.Contains(rep.unscannable, "small.txt") || !strings.Contains(rep.unscannable, "does not match its header") {
		t.Fatalf("lying header not caught: %+v", rep)
	}
}

func TestInspectDirectoryFlood(t *testing.T) {
	t.Parallel()
	// Central directory signatures beyond the entry budget are refused
	// before archive/zip loads them.
	lim := testLimits()
	lim.maxEntries = 5
	flood := append(bytes.Repeat([]byte("PK\x01\x02"), 10), zipOf(t, zipEntry{name: "a", data: []byte("x")})...)
	rep := inspectZip(t, lim, time.Minute, flood)
	if !strings.Contains(rep.unscannable, "more than 5 entries") {
		t.Fatalf("flood: %+v", rep)
	}
}

func TestInspectTimeBudget(t *testing.T) {
	t.Parallel()
	rep := inspectZip(t, testLimits(), time.Nanosecond, zipOf(t, zipEntry{name: "a.txt", data: []byte("x")}))
	if !strings.Contains(rep.unscannable, "time budget") {
		t.Fatalf("expired budget: %+v", rep)
	}
	// The caller's cancellation is an error, not a finding.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := zipOf(t, zipEntry{name: "a.txt", data: []byte("x")})
	var r archiveReport
	if err := (&archiveRun{lim: testLimits(), budget: time.Minute}).inspect(ctx, bytes.NewReader(a), int64(len(a)), "part 1", &r); err == nil {
		t.Fatalf("cancelled inspection returned no error: %+v", r)
	}
}

func TestInspectEncrypted(t *testing.T) {
	t.Parallel()
	enc := encryptedZip(t, "請求書.txt", "secret", []byte("invoice text\n"))
	wrapped := zipOf(t, zipEntry{name: "outer.zip", data: enc})
	rep := inspectZip(t, testLimits(), time.Minute, enc, wrapped)
	want := []string{"part 1/請求書.txt", "part 2/outer.zip/請求書.txt"}
	if rep.unscannable != "" || fmt.Sprint(rep.encrypted) != fmt.Sprint(want) {
		t.Fatalf("encrypted: %+v, want %q", rep, want)
	}
}

// TestZipCryptoHelper checks the test's ZipCrypto writer against unzip, so
// that the encrypted-archive tests use archives real tools accept.
func TestZipCryptoHelper(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unzip"); err != nil {
		peers.Missing(t, "unzip not installed (apt-get install unzip)")
	}
	data := []byte("invoice text\n")
	p := filepath.Join(t.TempDir(), "enc.zip")
	if err := os.WriteFile(p, encryptedZip(t, "invoice.txt", "secret", data), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("unzip", "-p", "-P", "secret", p, "invoice.txt").Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("unzip -P: %v, %q", err, out)
	}
	if out, err := exec.Command("unzip", "-p", "-P", "wrong", p, "invoice.txt").Output(); err == nil && bytes.Equal(out, data) {
		t.Fatal("wrong password accepted")
	}
}

// FuzzInspectZip feeds arbitrary bytes to the archive inspection as an
// attachment: no panic, no error (budget breaches and malformed archives
// are findings), and a verdict within small bounds.
func FuzzInspectZip(f *testing.F) {
	f.Add(zipOf(f, zipEntry{name: "a.txt", data: []byte("hello hello hello")}))
	f.Add(nestedZip(f, "a.txt", []byte("x"), 3))
	f.Add(encryptedZip(f, "e.txt", "pw", []byte("secret")))
	f.Add(zipOf(f, zipEntry{name: "in.zip", data: zipOf(f, zipEntry{name: "b", data: []byte("b")}), stored: true}))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	lim := archiveLimits{maxDepth: 4, maxEntries: 64, maxBytes: 1 << 20, maxRatio: 100, ratioGrace: 4096, maxNested: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		var rep archiveReport
		run := &archiveRun{lim: lim, budget: 5 * time.Second}
		if err := run.inspect(context.Background(), bytes.NewReader(data), int64(len(data)), "part 1", &rep); err != nil {
			t.Fatalf("inspect: %v", err)
		}
		if run.in.entries > lim.maxEntries+1 && rep.unscannable == "" {
			t.Fatalf("%d entries accepted", run.in.entries)
		}
		if run.in.held != 0 {
			t.Fatalf("nested memory not released: %d", run.in.held)
		}
	})
}
