package clamd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/scan/av/clamd"
	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// These tests run against a real clamd started by clamdtest; they skip when
// clamd is not installed (fail under MAILGATE_REQUIRE_PEERS=1).

// fdpassMax is the fdpass client's FDPassMax: longer messages are streamed.
const fdpassMax = 2 << 20

// clients returns one client per transport clamd listens on, and one that
// passes descriptors on the unix socket.
func clients(d *clamdtest.Clamd) map[string]*clamd.Client {
	return map[string]*clamd.Client{
		"unix":   {Network: "unix", Address: d.Socket(), DialTimeout: 5 * time.Second, ScanTimeout: 60 * time.Second},
		"tcp":    {Network: "tcp", Address: d.Addr(), DialTimeout: 5 * time.Second, ScanTimeout: 60 * time.Second},
		"fdpass": {Network: "unix", Address: d.Socket(), DialTimeout: 5 * time.Second, ScanTimeout: 60 * time.Second, FDPassMax: fdpassMax},
	}
}

type want int

const (
	wantClean want = iota
	wantInfected
	wantEncrypted
	wantLimits
)

func checkResult(t *testing.T, res clamd.Result, w want, sigPrefix string) {
	t.Helper()
	got := fmt.Sprintf("%+v", res)
	switch w {
	case wantClean:
		if !res.Clean() || res.Signature != "" || !strings.HasSuffix(res.Raw, ": OK") {
			t.Fatalf("want clean, got %s", got)
		}
		return
	case wantInfected:
		if !res.Infected || res.Encrypted || res.LimitsExceeded || res.Clean() {
			t.Fatalf("want infected, got %s", got)
		}
	case wantEncrypted:
		if !res.Encrypted || res.Infected || res.LimitsExceeded || res.Clean() {
			t.Fatalf("want encrypted, got %s", got)
		}
	case wantLimits:
		if !res.LimitsExceeded || res.Infected || res.Encrypted || res.Clean() {
			t.Fatalf("want limits exceeded, got %s", got)
		}
	}
	if !strings.HasPrefix(res.Signature, sigPrefix) {
		t.Fatalf("signature %q, want prefix %q (%s)", res.Signature, sigPrefix, got)
	}
	if !strings.Contains(res.Raw, res.Signature) || !strings.HasSuffix(res.Raw, " FOUND") {
		t.Fatalf("Raw %q does not carry signature %q", res.Raw, res.Signature)
	}
}

func TestScanRealClamd(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	eicar := clamdtest.EICAR()
	// The EICAR string inside a larger file: the .hdb hash cannot match, so
	// this is found only by the body signature.
	embedded := append(append([]byte("Quarterly figures follow.\n"), eicar...), "\nEnd of report.\n"...)

	cases := []struct {
		name string
		data []byte
		want want
		sig  string
	}{
		{"clean text", []byte("Hello,\r\nthe meeting is at 10:00.\r\n"), wantClean, ""},
		{"empty", nil, wantClean, ""},
		{"clean zip", zipOf(t, "notes.txt", []byte("nothing to see here")), wantClean, ""},
		{"clean MIME", mimeWithAttachment("notes.txt", []byte("nothing to see here")), wantClean, ""},
		{"EICAR plain", eicar, wantInfected, "Mailgate.Test.EICAR."},
		{"EICAR in zip", zipOf(t, "eicar.com", eicar), wantInfected, "Mailgate.Test.EICAR."},
		{"EICAR in zip nested 5 deep", nestedZip(t, "eicar.com", eicar, 5), wantInfected, "Mailgate.Test.EICAR."},
		{"EICAR base64 in MIME", mimeWithAttachment("eicar.com", eicar), wantInfected, "Mailgate.Test.EICAR."},
		{"EICAR embedded in MIME part", mimeWithAttachment("report.txt", embedded), wantInfected, clamdtest.SigEICARBody + ".UNOFFICIAL"},
		{"EICAR embedded in zipped MIME", zipOf(t, "mail.eml", mimeWithAttachment("report.txt", embedded)), wantInfected, clamdtest.SigEICARBody},
		{"encrypted zip", zipCryptoOf(t, "secret.txt", []byte("the password is in the next mail"), "s3cret"), wantEncrypted, "Heuristics.Encrypted."},
		{"encrypted zip in MIME", mimeWithAttachment("secret.zip", zipCryptoOf(t, "secret.txt", []byte("x"), "pw")), wantEncrypted, "Heuristics.Encrypted."},
		// clamdtest sets MaxRecursion 20.
		{"zip nested 25 deep", nestedZip(t, "eicar.com", eicar, 25), wantLimits, "Heuristics.Limits.Exceeded.MaxRecursion"},
	}
	for netName, c := range clients(d) {
		for _, tc := range cases {
			t.Run(netName+"/"+tc.name, func(t *testing.T) {
				res, err := c.Scan(context.Background(), bytes.NewReader(tc.data))
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				checkResult(t, res, tc.want, tc.sig)
			})
		}
	}
}

// TestZipCryptoHelperReadable checks the test's ZipCrypto writer against an
// independent implementation, so the encrypted-zip case above is a real
// encrypted archive and not just a flagged one.
func TestZipCryptoHelperReadable(t *testing.T) {
	t.Parallel()
	unzip, err := exec.LookPath("unzip")
	if err != nil {
		peers.Missing(t, "unzip not installed (apt-get install unzip)")
	}
	plain := []byte("confidential: 会議は東京で\n")
	path := t.TempDir() + "/enc.zip"
	if err := os.WriteFile(path, zipCryptoOf(t, "doc.txt", plain, "pa55"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(unzip, "-p", "-P", "pa55", path, "doc.txt").Output()
	if err != nil {
		t.Fatalf("unzip -P: %v", err)
	}
	if !bytes.Equal(out, plain) {
		t.Fatalf("unzip gave %q, want %q", out, plain)
	}
	if err := exec.Command(unzip, "-p", "-P", "wrong", path, "doc.txt").Run(); err == nil {
		t.Fatal("unzip accepted a wrong password")
	}
}

func TestScanClamAVTestFiles(t *testing.T) {
	t.Parallel()
	clamExe, err := os.ReadFile(clamdtest.TestFile(t, "clam.exe"))
	if err != nil {
		t.Fatal(err)
	}
	d := clamdtest.Start(t)
	c := clients(d)["unix"]
	inputs := map[string][]byte{
		"clam.exe":              clamExe,
		"clam.exe in built zip": zipOf(t, "clam.exe", clamExe),
		"clam.exe in MIME":      mimeWithAttachment("clam.exe", clamExe),
	}
	for _, name := range []string{"clam.zip", "clam.7z", "clam.tar.gz", "clam.exe.mbox.base64"} {
		data, err := os.ReadFile(clamdtest.TestFile(t, name))
		if err != nil {
			t.Fatal(err)
		}
		inputs[name] = data
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			res, err := c.Scan(context.Background(), bytes.NewReader(data))
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			checkResult(t, res, wantInfected, clamdtest.SigClamExe)
		})
	}
}

func TestScanStreamMaxLength(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	d := clamdtest.Start(t, clamdtest.WithStreamMaxLength(limit))
	for netName, c := range clients(d) {
		t.Run(netName, func(t *testing.T) {
			// Under the limit: scanned normally.
			res, err := c.Scan(context.Background(), bytes.NewReader(bytes.Repeat([]byte("a"), limit/2)))
			if err != nil {
				t.Fatalf("under the limit: %v", err)
			}
			checkResult(t, res, wantClean, "")

			// Over it: clamd answers early and closes; the client must
			// report the size limit, not a broken pipe.
			_, err = c.Scan(context.Background(), io.LimitReader(zeroReader{}, 4*limit))
			if !errors.Is(err, clamd.ErrSizeLimit) {
				t.Fatalf("over the limit: got %v, want ErrSizeLimit", err)
			}
			var re *clamd.ReplyError
			if !errors.As(err, &re) || !strings.Contains(re.Reply, "size limit") {
				t.Fatalf("over the limit: %v is not a ReplyError with clamd's text", err)
			}
			if errors.Is(err, clamd.ErrUnavailable) {
				t.Fatalf("size limit reported as unavailable: %v", err)
			}
		})
	}
}

func TestScanMaxFileSize(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t, clamdtest.WithMaxFileSize(64<<10))
	c := clients(d)["unix"]
	res, err := c.Scan(context.Background(), bytes.NewReader(bytes.Repeat([]byte("b"), 32<<10)))
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, wantClean, "")
	res, err = c.Scan(context.Background(), bytes.NewReader(bytes.Repeat([]byte("b"), 128<<10)))
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, wantLimits, "Heuristics.Limits.Exceeded.MaxFileSize")
}

func TestPingVersionReal(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	for netName, c := range clients(d) {
		if err := c.Ping(context.Background()); err != nil {
			t.Errorf("%s Ping: %v", netName, err)
		}
		v, err := c.Version(context.Background())
		if err != nil || !strings.HasPrefix(v, "ClamAV ") {
			t.Errorf("%s Version = %q, %v", netName, v, err)
		}
	}
}

func TestClamdStopped(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	cs := clients(d)
	for netName, c := range cs {
		if err := c.Ping(context.Background()); err != nil {
			t.Fatalf("%s Ping before Stop: %v", netName, err)
		}
	}
	d.Stop()
	for netName, c := range cs {
		t.Run(netName, func(t *testing.T) {
			_, err := c.Scan(context.Background(), bytes.NewReader([]byte("hello")))
			if !errors.Is(err, clamd.ErrUnavailable) {
				t.Fatalf("Scan: got %v, want ErrUnavailable", err)
			}
			var ue *clamd.UnavailableError
			if !errors.As(err, &ue) || ue.Op != "dial" || ue.Address != c.Address {
				t.Fatalf("Scan: got %#v, want UnavailableError from dial", err)
			}
			if err := c.Ping(context.Background()); !errors.Is(err, clamd.ErrUnavailable) {
				t.Fatalf("Ping: got %v, want ErrUnavailable", err)
			}
			if _, err := c.Version(context.Background()); !errors.Is(err, clamd.ErrUnavailable) {
				t.Fatalf("Version: got %v, want ErrUnavailable", err)
			}
		})
	}
}

// cancellingReader yields zeros forever and cancels its context once limit
// bytes have been read, counting what is read after that.
type cancellingReader struct {
	cancel      context.CancelFunc
	limit       int64
	read        int64
	afterCancel int64
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	if r.read >= r.limit {
		r.cancel()
		r.afterCancel += int64(len(p))
	}
	clear(p)
	r.read += int64(len(p))
	return len(p), nil
}

func TestScanCancelMidStream(t *testing.T) {
	t.Parallel()
	// A stream limit far above what is sent, so only cancellation ends it.
	d := clamdtest.Start(t, clamdtest.WithStreamMaxLength(1<<30))
	for netName, c := range clients(d) {
		t.Run(netName, func(t *testing.T) {
			c.ChunkSize = 16 << 10 // clients returns fresh clients
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &cancellingReader{cancel: cancel, limit: 1 << 20}
			_, err := c.Scan(ctx, r)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if errors.Is(err, clamd.ErrUnavailable) {
				t.Fatalf("cancellation reported as unavailable: %v", err)
			}
			// Scan stops within the chunk being filled when ctx ends.
			if r.afterCancel > int64(c.ChunkSize) {
				t.Fatalf("read %d bytes after cancellation, want at most one chunk (%d)", r.afterCancel, c.ChunkSize)
			}
			// clamd abandoned the stream and still serves others.
			res, err := c.Scan(context.Background(), bytes.NewReader(clamdtest.EICAR()))
			if err != nil || !res.Infected {
				t.Fatalf("scan after cancellation: %+v, %v", res, err)
			}
		})
	}
}

func TestScanConcurrent(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	c := clients(d)["unix"]
	eicar := clamdtest.EICAR()
	inputs := []struct {
		data     []byte
		infected bool
	}{
		{[]byte("plain text"), false},
		{eicar, true},
		{zipOf(t, "a.txt", []byte("clean")), false},
		{nestedZip(t, "e.com", eicar, 3), true},
	}
	var wg sync.WaitGroup
	for i := range 24 {
		in := inputs[i%len(inputs)]
		wg.Go(func() {
			res, err := c.Scan(context.Background(), bytes.NewReader(in.data))
			if err != nil || res.Infected != in.infected {
				t.Errorf("scan %d: %+v, %v; want infected=%v", i, res, err, in.infected)
			}
		})
	}
	wg.Wait()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
