//go:build linux

package clamd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/scan/av/clamd"
	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
)

// These tests run descriptor-passing scans over pooled IDSESSION
// connections against a real clamd.

func sessionClient(d *clamdtest.Clamd) *clamd.Client {
	return &clamd.Client{Network: "unix", Address: d.Socket(), DialTimeout: 5 * time.Second, ScanTimeout: 60 * time.Second, FDPassMax: 64 << 20}
}

type sample struct {
	name     string
	data     []byte
	infected bool
}

// samples is a mix of infected and clean messages in which a long infected
// one, with the EICAR string at its very end, is followed by a short clean
// one: a reused memory file not cut to the new length would still end with
// the virus.
func samples(t testing.TB) []sample {
	eicar := clamdtest.EICAR()
	longInfected := append(bytes.Repeat([]byte("Quarterly figures follow.\n"), 2000), eicar...)
	return []sample{
		{"clean text", []byte("Hello,\r\nthe meeting is at 10:00.\r\n"), false},
		{"EICAR", eicar, true},
		{"clean MIME", mimeWithAttachment("notes.txt", []byte("nothing to see here")), false},
		{"EICAR at the end of 50 KB", longInfected, true},
		{"short clean after it", []byte("short and clean\n"), false},
		{"EICAR in zip", zipOf(t, "eicar.com", eicar), true},
		{"EICAR base64 in MIME", mimeWithAttachment("eicar.com", eicar), true},
		{"empty", nil, false},
	}
}

func checkSample(t *testing.T, s sample, res clamd.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	if res.Infected != s.infected || res.Clean() == s.infected || !strings.HasPrefix(res.Raw, "fd[") {
		t.Fatalf("%s: got %+v, want infected=%v from a passed descriptor", s.name, res, s.infected)
	}
	if s.infected && !strings.HasPrefix(res.Signature, "Mailgate.Test.EICAR.") {
		t.Fatalf("%s: signature %q", s.name, res.Signature)
	}
}

// One scan after another: every verdict right, all of them over a single
// session and a single memory file.
func TestSessionVerdictsRealClamd(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	c := sessionClient(d)
	t.Cleanup(c.CloseIdleConnections)
	ss := samples(t)
	for range 3 {
		for _, s := range ss {
			res, err := c.Scan(context.Background(), bytes.NewReader(s.data))
			checkSample(t, s, res, err)
		}
	}
	if got, want := clamd.IdleSessions(c), []uint64{uint64(3 * len(ss))}; !slices.Equal(got, want) {
		t.Fatalf("idle sessions carried %v commands, want %v", got, want)
	}
	if n := clamd.IdleFiles(c); n != 1 {
		t.Fatalf("%d idle memory files, want 1", n)
	}
}

// Many scans at once: each verdict belongs to its own message, and the
// sessions are shared out, one scan at a time each.
func TestSessionConcurrentRealClamd(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	c := sessionClient(d)
	t.Cleanup(c.CloseIdleConnections)
	ss := samples(t)
	const workers, each = 24, 12
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				s := ss[(w+i)%len(ss)]
				res, err := c.Scan(context.Background(), bytes.NewReader(s.data))
				if err != nil || res.Infected != s.infected || !strings.HasPrefix(res.Raw, "fd[") {
					t.Errorf("worker %d scan %d (%s): %+v, %v", w, i, s.name, res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	idle := clamd.IdleSessions(c)
	var carried uint64
	for _, n := range idle {
		carried += n
	}
	if len(idle) == 0 || len(idle) > clamd.MaxIdle || carried <= uint64(len(idle)) {
		t.Fatalf("idle sessions carried %v commands: want 1 to %d sessions, reused", idle, clamd.MaxIdle)
	}
	if n := clamd.IdleFiles(c); n == 0 || n > clamd.MaxIdle {
		t.Fatalf("%d idle memory files, want 1 to %d", n, clamd.MaxIdle)
	}
}

// waitClosed waits until clamd has closed every idle session of c.
func waitClosed(t *testing.T, c *clamd.Client) {
	t.Helper()
	for start := time.Now(); clamd.OpenIdleSessions(c) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatal("clamd did not close the idle session")
		}
	}
}

// clamd closing a pooled session (its ReadTimeout, a restart) costs no
// scan: the closed session is noticed before use, or, when it is handed
// out anyway (as if clamd closed it right after the check), the scan is
// sent again on a new connection and gets its one verdict.
func TestSessionClosedByClamdRealClamd(t *testing.T) {
	t.Parallel()
	causes := map[string]func(t *testing.T, d *clamdtest.Clamd, c *clamd.Client) *clamdtest.Clamd{
		"read timeout": func(t *testing.T, d *clamdtest.Clamd, c *clamd.Client) *clamdtest.Clamd {
			waitClosed(t, c)
			return d
		},
		"restart": func(t *testing.T, d *clamdtest.Clamd, c *clamd.Client) *clamdtest.Clamd {
			d.Stop()
			d2, err := clamdtest.Launch(context.Background(), d.Dir(), clamdtest.WithReadTimeout(time.Second))
			if err != nil {
				t.Fatalf("restarting clamd: %v", err)
			}
			t.Cleanup(d2.Stop)
			waitClosed(t, c)
			return d2
		},
	}
	for cause, closeSession := range causes {
		for _, checked := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/checked=%v", cause, checked), func(t *testing.T) {
				t.Parallel()
				d := clamdtest.Start(t, clamdtest.WithReadTimeout(time.Second))
				c := sessionClient(d)
				t.Cleanup(c.CloseIdleConnections)
				if !checked {
					clamd.SkipIdleCheck(c)
				}
				ss := samples(t)
				res, err := c.Scan(context.Background(), bytes.NewReader(ss[0].data))
				checkSample(t, ss[0], res, err)
				if got := clamd.IdleSessions(c); !slices.Equal(got, []uint64{1}) {
					t.Fatalf("idle sessions %v, want one", got)
				}
				closeSession(t, d, c)
				for i, s := range ss {
					res, err := c.Scan(context.Background(), bytes.NewReader(s.data))
					checkSample(t, s, res, err)
					// The first scan went over a new session.
					if got := clamd.IdleSessions(c); !slices.Equal(got, []uint64{uint64(i + 1)}) {
						t.Fatalf("after scan %d: idle sessions %v, want one that carried %d", i, got, i+1)
					}
				}
			})
		}
	}
}

// clamdHolds reports whether clamd has one of mailgate's memory files open.
func clamdHolds(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.Contains(l, "memfd:mailgate-scan") {
			return true
		}
	}
	return false
}

// bigMIME is a MIME message with n bytes of random data base64-encoded,
// which takes clamd a while to decode and scan.
func bigMIME(n int) []byte {
	raw := make([]byte, n)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nTo: b@example.com\r\nSubject: data\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"q\"\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--q\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--q--\r\n")
	return []byte(b.String())
}

// A scan cancelled while clamd reads its memory file, or one that runs out
// of ScanTimeout, gives up its session and its file (clamd may still be
// reading it), and the scans after it get their own verdicts.
func TestSessionCancelledScanRealClamd(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t, clamdtest.WithMaxFileSize(100<<20), clamdtest.WithMaxScanSize(200<<20))
	c := sessionClient(d)
	t.Cleanup(c.CloseIdleConnections)
	ss := samples(t)
	big := bigMIME(12 << 20)
	warm := func() {
		t.Helper()
		res, err := c.Scan(context.Background(), bytes.NewReader(ss[0].data))
		checkSample(t, ss[0], res, err)
		if len(clamd.IdleSessions(c)) != 1 || clamd.IdleFiles(c) != 1 {
			t.Fatalf("idle: sessions %v, %d files; want one each", clamd.IdleSessions(c), clamd.IdleFiles(c))
		}
	}
	after := func() {
		t.Helper()
		if len(clamd.IdleSessions(c)) != 0 || clamd.IdleFiles(c) != 0 {
			t.Fatalf("idle after the failed scan: sessions %v, %d files; want none", clamd.IdleSessions(c), clamd.IdleFiles(c))
		}
		for _, s := range ss {
			res, err := c.Scan(context.Background(), bytes.NewReader(s.data))
			checkSample(t, s, res, err)
		}
	}

	t.Run("cancelled", func(t *testing.T) {
		warm()
		// clamd closes its copy of a descriptor just after replying.
		for start := time.Now(); clamdHolds(d.Pid()); time.Sleep(time.Millisecond) {
			if time.Since(start) > time.Minute {
				t.Fatal("clamd keeps a memory file open after its verdict")
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stopWatch := make(chan struct{})
		watched := make(chan bool, 1)
		go func() {
			for {
				select {
				case <-stopWatch:
					watched <- false
					return
				default:
				}
				if clamdHolds(d.Pid()) {
					cancel()
					watched <- true
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		res, err := c.Scan(ctx, bytes.NewReader(big))
		close(stopWatch)
		if !<-watched {
			t.Fatalf("clamd finished (%+v, %v) before it was seen holding the file", res, err)
		}
		if !errors.Is(err, context.Canceled) || errors.Is(err, clamd.ErrUnavailable) {
			t.Fatalf("got %+v, %v; want context.Canceled", res, err)
		}
		after()
	})

	t.Run("timed out", func(t *testing.T) {
		warm()
		c.ScanTimeout = time.Millisecond
		_, err := c.Scan(context.Background(), bytes.NewReader(big))
		c.ScanTimeout = 60 * time.Second
		var ue *clamd.UnavailableError
		if !errors.As(err, &ue) || !ue.Timeout() {
			t.Fatalf("got %v, want a timeout", err)
		}
		after()
	})
}

// Idle sessions are closed once they have been idle for SessionIdle, by
// the pool's timer or when they are next asked for.
func TestSessionIdleExpiryRealClamd(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	c := sessionClient(d)
	t.Cleanup(c.CloseIdleConnections)
	s := samples(t)[1]
	scan := func() {
		t.Helper()
		res, err := c.Scan(context.Background(), bytes.NewReader(s.data))
		checkSample(t, s, res, err)
	}
	scan()
	clamd.AgeIdleSessions(c, clamd.SessionIdle)
	clamd.ExpireIdleSessions(c)
	if got := clamd.IdleSessions(c); len(got) != 0 {
		t.Fatalf("after expiry: idle sessions %v, want none", got)
	}
	scan()
	scan()
	clamd.AgeIdleSessions(c, clamd.SessionIdle/2)
	clamd.ExpireIdleSessions(c) // not old enough yet
	if got := clamd.IdleSessions(c); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("idle sessions %v, want one that carried 2 commands", got)
	}
	clamd.AgeIdleSessions(c, clamd.SessionIdle/2)
	scan() // the aged session is not used
	if got := clamd.IdleSessions(c); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("idle sessions %v, want a new one that carried 1 command", got)
	}
}
