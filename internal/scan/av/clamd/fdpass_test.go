//go:build linux

package clamd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/scan/av/clamd"
	"github.com/mailgate/mailgate/internal/testutil/clamdtest"
)

// A real clamd reads a passed descriptor: its reply names the descriptor,
// a virus in it is found, and clamd's StreamMaxLength (which only bounds
// streams) does not apply to it, while a message longer than FDPassMax is
// streamed and refused by that limit as before.
func TestScanFDPassRealClamd(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t, clamdtest.WithStreamMaxLength(64<<10))
	c := &clamd.Client{Network: "unix", Address: d.Socket(), DialTimeout: 5 * time.Second, ScanTimeout: 60 * time.Second, FDPassMax: 256 << 10}
	ctx := context.Background()

	res, err := c.Scan(ctx, bytes.NewReader(clamdtest.EICAR()))
	if err != nil || !res.Infected || !strings.HasPrefix(res.Raw, "fd[") {
		t.Fatalf("EICAR by descriptor: %+v, %v", res, err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 8<<10) // 136 KiB: over StreamMaxLength, under FDPassMax
	res, err = c.Scan(ctx, bytes.NewReader(big))
	if err != nil || !res.Clean() || !strings.HasPrefix(res.Raw, "fd[") {
		t.Fatalf("136 KiB by descriptor: %+v, %v", res, err)
	}
	huge := bytes.Repeat(big, 3) // 408 KiB: over FDPassMax, so streamed
	if _, err := c.Scan(ctx, bytes.NewReader(huge)); !errors.Is(err, clamd.ErrSizeLimit) {
		t.Fatalf("408 KiB: got %v, want the stream's size limit", err)
	}
	// The same client still passes descriptors afterwards.
	res, err = c.Scan(ctx, strings.NewReader("hello"))
	if err != nil || !strings.HasPrefix(res.Raw, "fd[") {
		t.Fatalf("after a streamed message: %+v, %v", res, err)
	}
}

// unixFake is a clamd on a unix socket that refuses FILDES with an ERROR
// (as a clamd whose confinement drops the descriptor does) and scans
// streams; it records the commands it got and the descriptor's contents.
type unixFake struct {
	mu       sync.Mutex
	commands []string
	fdData   [][]byte
	streams  [][]byte
}

func startUnixFake(t *testing.T, refuseFD bool) (*unixFake, string) {
	return startUnixFakeTimingOut(t, refuseFD, 0)
}

// startUnixFakeTimingOut is startUnixFake whose sessions, at their
// timeoutAt-th FILDES, read the descriptor and then write clamd's
// "COMMAND READ TIMED OUT" and close, as clamd does when a session's scan
// outlasts its ReadTimeout.
func startUnixFakeTimingOut(t *testing.T, refuseFD bool, timeoutAt int) (*unixFake, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "clamd.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f := &unixFake{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				f.serve(t, conn, refuseFD, timeoutAt)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return f, sock
}

func (f *unixFake) serve(t *testing.T, conn *net.UnixConn, refuseFD bool, timeoutAt int) {
	// A session (IDSESSION) numbers its replies and lasts until END or the
	// end of the connection; any other command is answered and ends it.
	session, n, fildes := false, 0, 0
	reply := func(s string) {
		if session {
			s = strconv.Itoa(n) + ": " + s
		}
		io.WriteString(conn, s+"\x00")
	}
	for {
		cmd, fds, ok := f.readCommand(t, conn)
		if !ok {
			return
		}
		f.mu.Lock()
		f.commands = append(f.commands, strings.TrimSuffix(string(cmd), "\x00"))
		f.mu.Unlock()
		if session {
			n++
		}
		switch string(cmd) {
		case "zIDSESSION\x00":
			session = true
			continue
		case "zEND\x00":
			return
		case "zFILDES\x00":
			if len(fds) != 1 {
				t.Errorf("fake: %d descriptors after FILDES", len(fds))
				return
			}
			file := os.NewFile(uintptr(fds[0]), "passed")
			// From the current offset, as a read(2) would: the client
			// must hand the file over at its start.
			data, err := io.ReadAll(file)
			file.Close()
			if err != nil {
				t.Errorf("fake: reading passed file: %v", err)
				return
			}
			f.mu.Lock()
			f.fdData = append(f.fdData, data)
			f.mu.Unlock()
			if refuseFD {
				reply("fd[0]: Permission denied. ERROR")
				return
			}
			if fildes++; fildes == timeoutAt {
				io.WriteString(conn, "COMMAND READ TIMED OUT\n")
				return
			}
			reply("fd[9]: OK")
		case "zINSTREAM\x00":
			data, _, err := readInstream(io.MultiReader(bytes.NewReader(cmd), conn))
			if err != nil {
				t.Errorf("fake: %v", err)
				return
			}
			f.mu.Lock()
			f.streams = append(f.streams, data)
			f.mu.Unlock()
			reply("stream: OK")
		default:
			reply("UNKNOWN COMMAND")
			return
		}
		if !session {
			return
		}
	}
}

// readCommand reads one NUL-terminated command and, after FILDES, the byte
// carrying the descriptor. It reads one byte at a time, each with room for
// ancillary data, so that a descriptor is never read (and dropped) with
// ordinary data.
func (f *unixFake) readCommand(t *testing.T, conn *net.UnixConn) (cmd []byte, fds []int, ok bool) {
	for {
		b, oob := make([]byte, 1), make([]byte, 64)
		n, oobn, _, _, err := conn.ReadMsgUnix(b, oob)
		if err != nil || n == 0 {
			return nil, nil, false
		}
		if oobn > 0 {
			msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
			if err != nil || len(msgs) != 1 {
				t.Errorf("fake: control messages %v, %v", msgs, err)
				return nil, nil, false
			}
			got, err := syscall.ParseUnixRights(&msgs[0])
			if err != nil {
				t.Errorf("fake: rights: %v", err)
				return nil, nil, false
			}
			fds = append(fds, got...)
		}
		if len(fds) > 0 {
			return cmd, fds, true // FILDES: the byte carrying the descriptor ends the request
		}
		cmd = append(cmd, b[0])
		if b[0] == 0 && string(cmd) != "zFILDES\x00" {
			return cmd, nil, true
		}
	}
}

// The descriptor carries exactly the message, from its first byte, also
// when the memory file is reused for a shorter message after a longer one
// (and after the reader left the shared offset at its end).
func TestScanFDPassContents(t *testing.T) {
	t.Parallel()
	f, sock := startUnixFake(t, false)
	c := &clamd.Client{Address: sock, FDPassMax: 1 << 20, ChunkSize: 1000, ScanTimeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	long := bytes.Repeat([]byte("Subject: x\r\n\r\nbody line\r\n"), 500)
	short := []byte("Subject: short\r\n\r\nhi\r\n")
	msgs := [][]byte{long, short, long}
	for i, msg := range msgs {
		res, err := c.Scan(context.Background(), &oneByteReader{bytes.NewReader(msg)})
		if err != nil || !res.Clean() || res.Raw != "fd[9]: OK" {
			t.Fatalf("Scan %d: %+v, %v", i, res, err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.fdData) != len(msgs) || len(f.streams) != 0 {
		t.Fatalf("fake got %d descriptors and %d streams", len(f.fdData), len(f.streams))
	}
	for i, msg := range msgs {
		if !bytes.Equal(f.fdData[i], msg) {
			t.Errorf("descriptor %d carried %d bytes, want the %d of the message", i, len(f.fdData[i]), len(msg))
		}
	}
	// One session carried them all.
	want := []string{"zIDSESSION", "zFILDES", "zFILDES", "zFILDES"}
	if strings.Join(f.commands, ",") != strings.Join(want, ",") {
		t.Fatalf("commands %q, want %q", f.commands, want)
	}
}

// clamd refusing the descriptor: the same message is streamed and scanned,
// and the client streams from then on instead of asking again.
func TestScanFDPassRefusedFallsBack(t *testing.T) {
	t.Parallel()
	f, sock := startUnixFake(t, true)
	c := &clamd.Client{Address: sock, FDPassMax: 1 << 20, ScanTimeout: 10 * time.Second}
	ctx := context.Background()
	for i, msg := range []string{"first message", "second message"} {
		res, err := c.Scan(ctx, strings.NewReader(msg))
		if err != nil || res.Raw != "stream: OK" {
			t.Fatalf("scan %d: %+v, %v", i, res, err)
		}
	}
	want := []string{"zIDSESSION", "zFILDES", "zINSTREAM", "zINSTREAM"}
	if strings.Join(f.commands, ",") != strings.Join(want, ",") {
		t.Fatalf("commands %q, want %q", f.commands, want)
	}
	if len(f.streams) != 2 || string(f.streams[0]) != "first message" || string(f.streams[1]) != "second message" {
		t.Fatalf("streams %q", f.streams)
	}
}

// clamd ending a session after it took the command (its ReadTimeout runs
// during a session's scan too) makes the scan unavailable: it is not sent
// again, since the same scan would only run into the same limit.
func TestScanFDPassSessionTimedOutNotRetried(t *testing.T) {
	t.Parallel()
	f, sock := startUnixFakeTimingOut(t, false, 2)
	c := &clamd.Client{Address: sock, FDPassMax: 1 << 20, ScanTimeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	ctx := context.Background()
	if res, err := c.Scan(ctx, strings.NewReader("first")); err != nil || res.Raw != "fd[9]: OK" {
		t.Fatalf("first scan: %+v, %v", res, err)
	}
	_, err := c.Scan(ctx, strings.NewReader("second"))
	var ue *clamd.UnavailableError
	if !errors.As(err, &ue) || ue.Op != "read" || !strings.Contains(err.Error(), "COMMAND READ TIMED OUT") {
		t.Fatalf("second scan: got %v, want clamd unavailable after COMMAND READ TIMED OUT", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []string{"zIDSESSION", "zFILDES", "zFILDES"}
	if strings.Join(f.commands, ",") != strings.Join(want, ",") {
		t.Fatalf("commands %q, want %q", f.commands, want)
	}
}
