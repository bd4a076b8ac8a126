package clamd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/scan/av/clamd"
)

// fakeClamd is an in-process stand-in for clamd on 127.0.0.1, for replies a
// real clamd never sends and for peers that misbehave.
type fakeClamd struct {
	ln   net.Listener
	wg   sync.WaitGroup
	done chan struct{} // closed when the test ends
}

// idle holds a connection open without reading from it until the test
// ends, so the client's writes stall once the socket buffers fill.
func (f *fakeClamd) idle() { <-f.done }

// startFake serves every connection with handle. At the end of the test,
// idle handlers are released, open connections closed and all handlers
// waited for.
func startFake(t *testing.T, handle func(f *fakeClamd, conn net.Conn)) *fakeClamd {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeClamd{ln: ln, done: make(chan struct{})}
	var mu sync.Mutex
	var conns []net.Conn
	f.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			f.wg.Go(func() {
				defer conn.Close()
				handle(f, conn)
			})
		}
	})
	t.Cleanup(func() {
		close(f.done)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeClamd) client() *clamd.Client {
	return &clamd.Client{Network: "tcp", Address: f.ln.Addr().String(), DialTimeout: 5 * time.Second, ScanTimeout: 30 * time.Second}
}

// readInstream parses a zINSTREAM request as clamd does and returns the
// data and the length of each chunk.
func readInstream(r io.Reader) (data []byte, chunks []int, err error) {
	cmd := make([]byte, len("zINSTREAM\x00"))
	if _, err := io.ReadFull(r, cmd); err != nil {
		return nil, nil, fmt.Errorf("reading command: %w", err)
	}
	if string(cmd) != "zINSTREAM\x00" {
		return nil, nil, fmt.Errorf("command %q", cmd)
	}
	for {
		var n uint32
		if err := binary.Read(r, binary.BigEndian, &n); err != nil {
			return nil, nil, fmt.Errorf("reading chunk length: %w", err)
		}
		if n == 0 {
			return data, chunks, nil
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, nil, fmt.Errorf("reading chunk: %w", err)
		}
		data = append(data, chunk...)
		chunks = append(chunks, int(n))
	}
}

func TestScanFraming(t *testing.T) {
	t.Parallel()
	type request struct {
		data   []byte
		chunks []int
		err    error
	}
	got := make(chan request, 1)
	f := startFake(t, func(f *fakeClamd, conn net.Conn) {
		data, chunks, err := readInstream(conn)
		got <- request{data, chunks, err}
		io.WriteString(conn, "stream: OK\x00")
	})
	c := f.client()
	c.ChunkSize = 1000

	msg := make([]byte, 10_500)
	rand.Read(msg)
	// iotest-style one-byte-at-a-time reads must still fill whole chunks.
	res, err := c.Scan(context.Background(), &oneByteReader{bytes.NewReader(msg)})
	if err != nil || !res.Clean() {
		t.Fatalf("Scan: %+v, %v", res, err)
	}
	req := <-got
	if req.err != nil {
		t.Fatal(req.err)
	}
	if !bytes.Equal(req.data, msg) {
		t.Fatal("reassembled stream differs from the message")
	}
	want := []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 500}
	if fmt.Sprint(req.chunks) != fmt.Sprint(want) {
		t.Fatalf("chunk lengths %v, want %v", req.chunks, want)
	}

	// An empty message is the command and the terminator alone.
	if _, err := c.Scan(context.Background(), strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	if req := <-got; req.err != nil || len(req.chunks) != 0 || len(req.data) != 0 {
		t.Fatalf("empty message sent as %+v", req)
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestScanReplies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		reply string
		close bool // close after the reply instead of waiting for the client
		check func(t *testing.T, res clamd.Result, err error)
	}{
		{"clean", "stream: OK\x00", false, func(t *testing.T, res clamd.Result, err error) {
			if err != nil || !res.Clean() || res.Raw != "stream: OK" {
				t.Fatalf("%+v, %v", res, err)
			}
		}},
		{"extended detection info", "stream: Win.Test.Foo(0123abcd:68) FOUND\x00", false, func(t *testing.T, res clamd.Result, err error) {
			if err != nil || !res.Infected || res.Signature != "Win.Test.Foo" {
				t.Fatalf("%+v, %v", res, err)
			}
		}},
		{"size limit", "INSTREAM size limit exceeded. ERROR\x00", true, func(t *testing.T, res clamd.Result, err error) {
			if !errors.Is(err, clamd.ErrSizeLimit) {
				t.Fatalf("got %v, want ErrSizeLimit", err)
			}
		}},
		{"other ERROR", "stream: Can't create temporary file ERROR\x00", true, func(t *testing.T, res clamd.Result, err error) {
			var re *clamd.ReplyError
			if !errors.As(err, &re) || errors.Is(err, clamd.ErrSizeLimit) || errors.Is(err, clamd.ErrUnavailable) {
				t.Fatalf("got %v, want a ReplyError that is not the size limit", err)
			}
			if re.Reply != "stream: Can't create temporary file ERROR" {
				t.Fatalf("Reply %q", re.Reply)
			}
		}},
		{"garbage", "HTTP/1.1 400 Bad Request\r\n\r\n\x00", false, wantProtocolError},
		{"binary garbage", "\xff\xfe\x01\x00", false, wantProtocolError},
		{"name with spaces", "stream: not a name FOUND\x00", false, wantProtocolError},
		{"no NUL then close", "stream: OK", true, wantProtocolError},
		// Over the reply bound without a NUL and without closing: the
		// client must give up on length, not wait for a terminator.
		{"very long reply", strings.Repeat("A", 1<<20), false, wantProtocolError},
		{"closed without reply", "", true, func(t *testing.T, res clamd.Result, err error) {
			var ue *clamd.UnavailableError
			if !errors.As(err, &ue) || ue.Timeout() {
				t.Fatalf("got %v, want UnavailableError (not a timeout)", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := startFake(t, func(f *fakeClamd, conn net.Conn) {
				if _, _, err := readInstream(conn); err != nil {
					return
				}
				io.WriteString(conn, tc.reply)
				if !tc.close {
					io.Copy(io.Discard, conn) // until the client closes
				}
			})
			res, err := f.client().Scan(context.Background(), strings.NewReader("message"))
			if err == nil && !res.Clean() && !res.Infected {
				t.Fatalf("no error and no verdict: %+v", res)
			}
			tc.check(t, res, err)
		})
	}
}

func wantProtocolError(t *testing.T, res clamd.Result, err error) {
	t.Helper()
	var pe *clamd.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %+v, %v; want ProtocolError", res, err)
	}
	if len(pe.Reply) > 200 {
		t.Fatalf("ProtocolError carries %d bytes of reply; want it clipped", len(pe.Reply))
	}
}

func TestScanReplyWithoutNULTimesOut(t *testing.T) {
	t.Parallel()
	f := startFake(t, func(f *fakeClamd, conn net.Conn) {
		readInstream(conn)
		io.WriteString(conn, "stream: OK")
		io.Copy(io.Discard, conn)
	})
	c := f.client()
	c.ScanTimeout = 200 * time.Millisecond
	_, err := c.Scan(context.Background(), strings.NewReader("message"))
	var ue *clamd.UnavailableError
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("got %v, want an UnavailableError timeout", err)
	}
}

// TestScanEarlyReply covers clamd answering before the end of an endless
// message. A verdict must not be taken for a partial message, and an early
// ERROR must be reported even though the peer stopped reading, which would
// block a client that only reads after sending.
func TestScanEarlyReply(t *testing.T) {
	t.Parallel()
	early := func(reply string) func(f *fakeClamd, conn net.Conn) {
		return func(f *fakeClamd, conn net.Conn) {
			cmd := make([]byte, len("zINSTREAM\x00"))
			io.ReadFull(conn, cmd)
			io.WriteString(conn, reply)
			f.idle()
		}
	}
	// No ScanTimeout: the client must react to the reply itself. The
	// context is only a watchdog so a regression fails instead of hanging.
	scan := func(f *fakeClamd) (clamd.Result, error) {
		c := f.client()
		c.ScanTimeout = 0
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return c.Scan(ctx, zeroReader{})
	}
	t.Run("ERROR", func(t *testing.T) {
		t.Parallel()
		_, err := scan(startFake(t, early("INSTREAM size limit exceeded. ERROR\x00")))
		if !errors.Is(err, clamd.ErrSizeLimit) {
			t.Fatalf("got %v, want ErrSizeLimit", err)
		}
	})
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		res, err := scan(startFake(t, early("stream: OK\x00")))
		var pe *clamd.ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("got %+v, %v; want ProtocolError for a verdict before the end", res, err)
		}
	})
}

func TestScanPeerNotReadingCancelled(t *testing.T) {
	t.Parallel()
	f := startFake(t, func(f *fakeClamd, conn net.Conn) {
		f.idle() // never read: the client's writes block on full buffers
	})
	c := f.client()
	c.ScanTimeout = 0 // only ctx can end this scan
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Scan(ctx, zeroReader{})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("got %v, want the context's deadline error", err)
	}
}

func TestScanReaderError(t *testing.T) {
	t.Parallel()
	f := startFake(t, func(f *fakeClamd, conn net.Conn) { io.Copy(io.Discard, conn) })
	boom := errors.New("spool read failed")
	r := io.MultiReader(strings.NewReader("some data"), &errReader{boom})
	_, err := f.client().Scan(context.Background(), r)
	if !errors.Is(err, boom) || errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// blockingDialer never connects; only its context ends the dial.
type blockingDialer struct{}

func (blockingDialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestDialTimeout(t *testing.T) {
	t.Parallel()
	c := &clamd.Client{Network: "tcp", Address: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, Dialer: blockingDialer{}}
	err := c.Ping(context.Background())
	var ue *clamd.UnavailableError
	if !errors.As(err, &ue) || !ue.Timeout() || ue.Op != "dial" {
		t.Fatalf("got %v, want an UnavailableError dial timeout", err)
	}

	// The caller's own cancellation is not reported as unavailability.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.DialTimeout = time.Hour
	err = c.Ping(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, clamd.ErrUnavailable) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestDialRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &clamd.Client{Address: addr}
	_, err = c.Scan(context.Background(), strings.NewReader("x"))
	var ue *clamd.UnavailableError
	if !errors.As(err, &ue) || ue.Op != "dial" || ue.Network != "tcp" || ue.Timeout() {
		t.Fatalf("got %v, want an UnavailableError for a refused dial", err)
	}
}

func TestPingVersionFake(t *testing.T) {
	t.Parallel()
	replies := map[string]string{"zPING\x00": "PONG\x00", "zVERSION\x00": "ClamAV 1.4.6/27000/Mon Jan  6 09:00:00 2025\x00"}
	f := startFake(t, func(f *fakeClamd, conn net.Conn) {
		buf := make([]byte, 64)
		n, _ := conn.Read(buf)
		if r, ok := replies[string(buf[:n])]; ok {
			io.WriteString(conn, r)
		} else {
			io.WriteString(conn, "UNKNOWN COMMAND\x00")
		}
	})
	c := f.client()
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	v, err := c.Version(context.Background())
	if err != nil || v != "ClamAV 1.4.6/27000/Mon Jan  6 09:00:00 2025" {
		t.Fatalf("Version = %q, %v", v, err)
	}

	bad := startFake(t, func(f *fakeClamd, conn net.Conn) { io.WriteString(conn, "PANG\x00") })
	var pe *clamd.ProtocolError
	if err := bad.client().Ping(context.Background()); !errors.As(err, &pe) {
		t.Fatalf("Ping against a wrong reply: %v, want ProtocolError", err)
	}
	if _, err := bad.client().Version(context.Background()); !errors.As(err, &pe) {
		t.Fatalf("Version against a wrong reply: %v, want ProtocolError", err)
	}
}
