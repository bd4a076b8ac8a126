// Package clamd is a client for the ClamAV daemon's socket protocol
// (clamd(8)): PING, VERSION, INSTREAM, FILDES and IDSESSION, all in the
// NUL-delimited "z" form.
//
// PING, VERSION and streamed scans (INSTREAM) open one connection per
// command, which clamd closes after its reply. Scans that pass a memory
// file's descriptor (FILDES, on a local socket) go over IDSESSION
// connections that the Client keeps between scans, with the memory files:
// a new connection and a new memory file for every message cost clamd and
// mailgate together about a tenth of a millisecond more CPU per message
// (accepting, registering and closing the connection; creating and
// faulting in the file). A session carries one scan at a time and is
// never shared while in use, so a slow scan delays nobody else and a
// cancelled or timed-out scan closes its own connection (clamd then drops
// that scan) without touching the others; it is never returned to the
// pool. Concurrent scans take other sessions, or new connections when
// none is idle, so clamd's MaxThreads and queue still provide the
// back-pressure. At most 16 sessions are kept idle, each for at most ten
// seconds, well below clamd's ReadTimeout (120 s by default) after which
// clamd closes an idle session itself. A pooled session that clamd has
// closed (its ReadTimeout, a restart) is noticed before use, or, if clamd
// closes it just as it is used, before taking the command, the scan is
// sent again once on a new connection: clamd gave no verdict on the first,
// so each message still gets exactly one. A memory file is reused only after clamd has answered
// for it, since clamd scans the file and then replies, and never reads it
// after that.
package clamd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/internal/bufpool"
)

// DefaultChunkSize is the INSTREAM chunk size used when Client.ChunkSize is
// zero or negative.
const DefaultChunkSize = 64 << 10

// DefaultFDPassMax is a FDPassMax for a clamd of default configuration: its
// StreamMaxLength, 25 MiB, so that the messages it would refuse as too long
// to stream are still streamed and refused.
const DefaultFDPassMax = 25 << 20

// maxChunkSize keeps chunks well inside the protocol's 32-bit length field
// and bounds the per-scan buffer.
const maxChunkSize = 16 << 20

// Client talks to one clamd. The zero value is not usable: Address must be
// set. A Client must not be modified while in use, nor copied after its
// first use; with that, all methods are safe for concurrent use, since each
// call has a connection of its own while it runs.
type Client struct {
	// Network is "unix" or "tcp". Empty means "unix" when Address contains
	// a slash and "tcp" otherwise.
	Network string
	// Address is the socket path (clamd's LocalSocket) or host:port
	// (TCPAddr:TCPSocket).
	Address string
	// DialTimeout bounds connecting. Zero means only ctx bounds it.
	DialTimeout time.Duration
	// ScanTimeout bounds each command's whole exchange after connecting:
	// sending the stream and waiting for clamd's verdict, including the
	// one new attempt after a pooled session turned out closed. Zero means
	// only ctx bounds it. Set it above clamd's MaxScanTime so clamd's own
	// limit, which yields a Heuristics.Limits.Exceeded result, fires
	// first, and below clamd's ReadTimeout, which clamd also applies to a
	// session waiting for a verdict.
	ScanTimeout time.Duration
	// ChunkSize is the INSTREAM chunk length; DefaultChunkSize if <= 0. It
	// is also the size of the one buffer a scan holds.
	ChunkSize int
	// Dialer, if set, replaces net.Dialer (tests, proxies). DialTimeout
	// still applies through the context passed to it.
	Dialer ContextDialer
	// FDPassMax, when positive and the socket is a local (unix) one, makes
	// Scan hand clamd a message of up to this many bytes as an open file
	// descriptor (FILDES) instead of streaming it (INSTREAM). clamd then
	// scans the memory file in place instead of first copying the stream
	// into a temporary file of its own, which costs it about a third less
	// CPU per ordinary message. Longer messages are streamed, so with
	// FDPassMax at clamd's StreamMaxLength a message clamd would refuse is
	// still refused. Where descriptors cannot be passed (not Linux, a
	// custom Dialer) the message is streamed; when clamd answers FILDES
	// with an error and then scans the same message streamed (an old clamd,
	// a confinement policy refusing the descriptor), the Client logs it
	// once and streams every later message.
	FDPassMax int64

	// fdpassOff is set once FILDES has failed where INSTREAM worked.
	fdpassOff atomic.Bool
	// sessions and files keep IDSESSION connections and memory files
	// between descriptor-passing scans.
	sessions sessionPool
	files    filePool
}

// ContextDialer opens connections; *net.Dialer implements it.
type ContextDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

func (c *Client) network() string {
	if c.Network != "" {
		return c.Network
	}
	if strings.Contains(c.Address, "/") {
		return "unix"
	}
	return "tcp"
}

func (c *Client) chunkSize() int {
	switch {
	case c.ChunkSize <= 0:
		return DefaultChunkSize
	case c.ChunkSize > maxChunkSize:
		return maxChunkSize
	}
	return c.ChunkSize
}

func (c *Client) unavailable(op string, err error) error {
	return &UnavailableError{Op: op, Network: c.network(), Address: c.Address, Err: err}
}

// dial connects and arms the connection: ScanTimeout becomes its deadline and
// cancelling ctx closes it, which unblocks any read or write in progress.
// The returned stop function must be called (before Close) to release the
// context hook.
func (c *Client) dial(ctx context.Context) (net.Conn, func() bool, error) {
	conn, err := c.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	if c.ScanTimeout > 0 {
		if err := conn.SetDeadline(time.Now().Add(c.ScanTimeout)); err != nil {
			conn.Close()
			return nil, nil, c.unavailable("dial", err)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	return conn, stop, nil
}

// connect opens a connection to clamd within DialTimeout.
func (c *Client) connect(ctx context.Context) (net.Conn, error) {
	if c.Address == "" {
		return nil, errors.New("clamd: no address configured")
	}
	dctx := ctx
	if c.DialTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, c.DialTimeout)
		defer cancel()
	}
	var d ContextDialer = &net.Dialer{}
	if c.Dialer != nil {
		d = c.Dialer
	}
	conn, err := d.DialContext(dctx, c.network(), c.Address)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("clamd dial: %w", ctx.Err())
		}
		if dctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return nil, c.unavailable("dial", err)
	}
	return conn, nil
}

// ioError classifies a failed read or write on the connection: the caller's
// cancellation wins, everything else means clamd is not usable right now.
func (c *Client) ioError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("clamd %s: %w", op, ctx.Err())
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return err
	}
	return c.unavailable(op, err)
}

// command sends a z-command without payload and returns its reply.
func (c *Client) command(ctx context.Context, cmd string) (string, error) {
	conn, stop, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	defer stop()
	if _, err := io.WriteString(conn, "z"+cmd+"\x00"); err != nil {
		return "", c.ioError(ctx, "write", err)
	}
	reply, err := readReply(conn)
	if err != nil {
		return "", c.ioError(ctx, "read", err)
	}
	return reply, nil
}

// Ping checks that clamd answers PING with PONG. It returns an
// *UnavailableError when clamd cannot be reached or does not answer in time,
// and a *ProtocolError when something else answers.
func (c *Client) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return &ProtocolError{Reason: "PING not answered with PONG", Reply: clip(reply)}
	}
	return nil
}

// Version returns clamd's version line, e.g.
// "ClamAV 1.4.6/27000/Mon Jan 1 00:00:00 2025" (engine/database/date).
// Errors are as for Ping.
func (c *Client) Version(ctx context.Context) (string, error) {
	reply, err := c.command(ctx, "VERSION")
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(reply, "ClamAV ") {
		return "", &ProtocolError{Reason: "unexpected VERSION reply", Reply: clip(reply)}
	}
	return reply, nil
}

type replyResult struct {
	reply string
	err   error
	// complete records whether all data had been sent when the reply
	// arrived, so a verdict is never taken for part of a message.
	complete bool
}

// replyGrace bounds the wait for clamd's explanation after a write to it
// failed; a reply it sent before closing is already in our socket buffer.
const replyGrace = time.Second

// Scan gives r to clamd and returns its verdict: streamed with INSTREAM, or
// as a descriptor of a memory file holding it when FDPassMax allows.
//
// Streamed, r is read sequentially, one ChunkSize buffer at a time, and never
// held in memory whole; passed as a descriptor, up to FDPassMax bytes of it
// are held in a memory file for the scan. Scan returns only after it has
// stopped reading r. A Read on r
// that blocks is not interrupted by ctx, so r must not block indefinitely.
//
// Errors:
//   - *UnavailableError (errors.Is ErrUnavailable): clamd unreachable, a
//     timeout, or the connection broke before a verdict;
//   - *ReplyError: clamd answered ERROR; errors.Is(err, ErrSizeLimit) when
//     the stream exceeded clamd's StreamMaxLength;
//   - *ProtocolError: the reply is not a clamd reply;
//   - an error wrapping ctx.Err() when ctx is done; the connection is closed
//     at once, so clamd abandons the scan;
//   - an error wrapping r's read error.
//
// A verdict is only taken from a reply that follows the whole message: a
// non-error reply arriving earlier is reported as a *ProtocolError.
func (c *Client) Scan(ctx context.Context, r io.Reader) (Result, error) {
	if c.FDPassMax > 0 && c.network() == "unix" && c.Dialer == nil && !c.fdpassOff.Load() {
		return c.scanFD(ctx, r)
	}
	return c.stream(ctx, r)
}

// scanFD copies r into a memory file and passes its descriptor to clamd,
// falling back to streaming when r is longer than FDPassMax, when the
// platform has no memory files, or when clamd refuses the descriptor.
func (c *Client) scanFD(ctx context.Context, r io.Reader) (Result, error) {
	f, err := c.files.get()
	if err != nil {
		c.fdpassOff.Store(true)
		return c.stream(ctx, r)
	}
	// f goes back to the pool only once clamd is done with it.
	done := false
	var size int64
	defer func() {
		if done {
			c.files.put(f, size)
		} else {
			f.Close()
		}
	}()
	// At most a chunk at a time, as when streaming, so that cancelling
	// stops the reading of r within a chunk, through a lent buffer. A kept
	// file is overwritten from its start and cut to the new length.
	lent := bufpool.Get()
	defer bufpool.Put(lent)
	buf := (*lent)[:min(int64(c.chunkSize()), int64(len(*lent)), c.FDPassMax+1)]
	n, err := io.CopyBuffer(fileWriter{io.NewOffsetWriter(f, 0)}, ctxReader{ctx, io.LimitReader(r, c.FDPassMax+1)}, buf)
	if err != nil {
		var we *writeError
		switch {
		case ctx.Err() != nil:
			return Result{}, fmt.Errorf("clamd scan: %w", ctx.Err())
		case errors.As(err, &we):
			return Result{}, fmt.Errorf("clamd scan: memory file: %w", we.err)
		}
		return Result{}, fmt.Errorf("clamd scan: reading message: %w", err)
	}
	if err := f.Truncate(n); err != nil {
		return Result{}, fmt.Errorf("clamd scan: memory file: %w", err)
	}
	// clamd shares the file's offset; start it at the beginning whatever
	// an earlier scan left it at.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Result{}, fmt.Errorf("clamd scan: memory file: %w", err)
	}
	size = n
	if n > c.FDPassMax {
		done = true // clamd never sees this file
		return c.stream(ctx, io.MultiReader(io.NewSectionReader(f, 0, n), r))
	}
	res, replied, err := c.fildes(ctx, f)
	done = replied
	var re *ReplyError
	if !errors.As(err, &re) {
		return res, err
	}
	// clamd could not use the descriptor. Stream the same bytes; if that
	// works, descriptor passing is what failed, so stop trying it.
	res, serr := c.stream(ctx, io.NewSectionReader(f, 0, n))
	if serr == nil && !c.fdpassOff.Swap(true) {
		slog.WarnContext(ctx, "clamd refused a passed file descriptor; streaming messages from now on",
			"address", c.Address, "reply", clip(re.Reply))
	}
	return res, serr
}

// fileWriter marks errors writing the memory file, so that they are not
// taken for errors reading the message.
type fileWriter struct{ w io.Writer }

func (w fileWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

type writeError struct{ err error }

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// stream scans r with INSTREAM.
func (c *Client) stream(ctx context.Context, r io.Reader) (Result, error) {
	conn, stop, err := c.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	defer stop()

	// Read the reply concurrently with sending: clamd answers early (and
	// stops reading) when the stream is over its size limit, and a sender
	// blocked on a full socket buffer would otherwise never see that reply.
	var complete atomic.Bool
	replyc := make(chan replyResult, 1)
	go func() {
		reply, err := readReply(conn)
		done := complete.Load()
		if !done {
			// clamd has answered (or failed) before the end of the
			// message and will read no more of it: stop the sender now
			// rather than letting it block until a timeout.
			conn.SetWriteDeadline(time.Unix(1, 0))
		}
		replyc <- replyResult{reply: reply, err: err, complete: done}
	}()

	sendErr := c.send(ctx, conn, r, &complete)
	if sendErr != nil {
		var re *readError
		if errors.As(sendErr, &re) || ctx.Err() != nil {
			// Closing first guarantees the reader goroutine ends, whatever
			// the peer does.
			conn.Close()
			<-replyc
			if ctx.Err() != nil {
				return Result{}, fmt.Errorf("clamd scan: %w", ctx.Err())
			}
			return Result{}, fmt.Errorf("clamd scan: reading message: %w", re.err)
		}
		// A write failed: clamd may have replied and closed (size limit).
		// Its reply, if one arrived, explains the failure better than EPIPE.
		var rr replyResult
		timer := time.NewTimer(replyGrace)
		select {
		case rr = <-replyc:
		case <-timer.C:
			conn.Close()
			rr = <-replyc
		}
		timer.Stop()
		if rr.err == nil {
			return c.verdict(rr)
		}
		var pe *ProtocolError
		if errors.As(rr.err, &pe) {
			return Result{}, rr.err
		}
		return Result{}, c.ioError(ctx, "write", sendErr)
	}
	rr := <-replyc
	if rr.err != nil {
		return Result{}, c.ioError(ctx, "read", rr.err)
	}
	return c.verdict(rr)
}

// verdict turns a received reply into the scan's outcome.
func (c *Client) verdict(rr replyResult) (Result, error) {
	res, err := parseScanReply(rr.reply)
	if err != nil {
		return Result{}, err
	}
	if !rr.complete {
		return Result{}, &ProtocolError{Reason: "verdict before end of stream", Reply: clip(rr.reply)}
	}
	return res, nil
}

// readError marks a failure reading the caller's message, as opposed to a
// failure writing to clamd.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// send writes "zINSTREAM\0", the message as length-prefixed chunks (4-byte
// big-endian length, then data) and the zero-length terminator. complete is
// set once all data has been written, just before the terminator.
func (c *Client) send(ctx context.Context, conn net.Conn, r io.Reader, complete *atomic.Bool) error {
	if _, err := io.WriteString(conn, "zINSTREAM\x00"); err != nil {
		return err
	}
	size := c.chunkSize()
	// One buffer: 4 bytes of length followed by the chunk, so each chunk
	// goes out in a single write.
	buf := make([]byte, 4+size)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf[:4], uint32(n))
			if _, err := conn.Write(buf[:4+n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return &readError{rerr}
		}
	}
	complete.Store(true)
	binary.BigEndian.PutUint32(buf[:4], 0)
	_, err := conn.Write(buf[:4])
	return err
}
