package clamd

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxIdle bounds the idle sessions a Client keeps, and separately its idle
// memory files. Each idle session takes one of clamd's MaxQueue slots
// (default 100) and one descriptor in each process: while every slot is
// taken, clamd takes no new connection from anyone until one closes.
const MaxIdle = 16

// sessionIdle is how long an idle session is kept before it is closed: well
// below clamd's ReadTimeout (default 120 s), after which clamd itself closes
// a session that has sent no command.
const sessionIdle = 10 * time.Second

// keepFileMax is the most a kept memory file holds: one that carried a
// longer message is emptied before it is kept.
const keepFileMax = 256 << 10

// session is one IDSESSION connection to clamd. It carries one command at a
// time, each answered "<n>: <reply>" with n counting commands from 1.
type session struct {
	conn *net.UnixConn
	n    uint64    // number of the last command sent; 0 before the first
	idle time.Time // when it was last put back
}

// end asks clamd to close the session and closes it. clamd has answered
// every command sent on it, so nothing is abandoned.
func (s *session) end() {
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(s.conn, "zEND\x00")
	s.conn.Close()
}

// sessionPool holds idle sessions, newest last. It never makes a caller
// wait: an empty pool means a new connection.
type sessionPool struct {
	mu    sync.Mutex
	idle  []*session
	timer *time.Timer // runs expire while sessions are idle
	armed bool
	// idleCheck replaces connIdle in tests that hand out closed sessions.
	idleCheck func(*net.UnixConn) bool
}

// get returns an idle session that clamd has not closed, or nil.
func (p *sessionPool) get() *session {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		s := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		// clamd closes a session after its ReadTimeout, on restart and
		// when it gives up on a group of commands; what it wrote before
		// closing (or the end of the stream) is waiting to be read.
		check := connIdle
		if p.idleCheck != nil {
			check = p.idleCheck
		}
		if time.Since(s.idle) < sessionIdle && check(s.conn) {
			return s
		}
		s.conn.Close()
	}
}

// put keeps s for another scan, closing the oldest idle session when the
// pool is full.
func (p *sessionPool) put(s *session) {
	if err := s.conn.SetDeadline(time.Time{}); err != nil {
		s.conn.Close()
		return
	}
	s.idle = time.Now()
	var drop *session
	p.mu.Lock()
	if len(p.idle) >= MaxIdle {
		drop = p.idle[0]
		p.idle = slices.Delete(p.idle, 0, 1)
	}
	p.idle = append(p.idle, s)
	if !p.armed {
		p.armed = true
		if p.timer == nil {
			p.timer = time.AfterFunc(sessionIdle, p.expire)
		} else {
			p.timer.Reset(sessionIdle)
		}
	}
	p.mu.Unlock()
	if drop != nil {
		drop.end()
	}
}

// expire closes the sessions idle for sessionIdle and runs again when the
// oldest remaining one will be.
func (p *sessionPool) expire() {
	var old []*session
	p.mu.Lock()
	now := time.Now()
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idle) >= sessionIdle {
		i++
	}
	old = append(old, p.idle[:i]...)
	p.idle = slices.Delete(p.idle, 0, i)
	if len(p.idle) > 0 && p.timer != nil {
		p.timer.Reset(sessionIdle - now.Sub(p.idle[0].idle))
	} else {
		p.armed = false
	}
	p.mu.Unlock()
	for _, s := range old {
		s.end()
	}
}

// closeAll closes every idle session.
func (p *sessionPool) closeAll() {
	p.mu.Lock()
	old := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, s := range old {
		s.end()
	}
}

// filePool holds memory files for reuse: rewriting a file's pages costs
// less than creating a file and faulting in new ones for every message.
type filePool struct {
	mu   sync.Mutex
	free []*os.File
}

func (p *filePool) get() (*os.File, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		f := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return f, nil
	}
	p.mu.Unlock()
	return memFile()
}

// put keeps f, of size bytes, for another message. Only a file clamd is
// done with may be kept: clamd must never read one message's file while
// it holds another message, or its cache of clean files could record
// what it read under the first message's hash.
func (p *filePool) put(f *os.File, size int64) {
	if size > keepFileMax {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return
		}
	}
	p.mu.Lock()
	if len(p.free) < MaxIdle {
		p.free = append(p.free, f)
		f = nil
	}
	p.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

func (p *filePool) closeAll() {
	p.mu.Lock()
	old := p.free
	p.free = nil
	p.mu.Unlock()
	for _, f := range old {
		f.Close()
	}
}

// CloseIdleConnections closes the IDSESSION connections and memory files
// the Client keeps between scans (they are closed after ten idle seconds
// anyway). Scans in progress are not affected; the Client stays usable.
func (c *Client) CloseIdleConnections() {
	c.sessions.closeAll()
	c.files.closeAll()
}

// openSession connects for a new IDSESSION; the IDSESSION command itself
// goes out with the session's first command.
func (c *Client) openSession(ctx context.Context) (*session, error) {
	conn, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		conn.Close()
		return nil, &ProtocolError{Reason: "FILDES needs a unix socket"}
	}
	return &session{conn: uc}, nil
}

// fdOutcome is the result of passing a descriptor on one session.
type fdOutcome struct {
	res Result
	err error
	// keep: the session is in a known state and may carry another scan.
	keep bool
	// replied: clamd answered, so it is done with the descriptor.
	replied bool
	// closed: clamd closed the connection before taking the command (a
	// write failed, a read found it reset with the command unread) or
	// closed it without a word. Not set when clamd took the command and
	// then closed for its ReadTimeout ("COMMAND READ TIMED OUT" and the
	// end of the stream): it applies that timeout to a session's scan too,
	// and the same scan would only run into it again.
	closed bool
}

// fildes passes f's descriptor to clamd on an IDSESSION connection and
// returns its verdict. A pooled session that turns out to have been closed
// by clamd is replaced by a new connection once, within the same
// ScanTimeout; clamd gave no verdict on the first, so the message still
// gets exactly one. done reports whether clamd is certainly finished with
// f, so that f may be rewritten for another message.
func (c *Client) fildes(ctx context.Context, f *os.File) (res Result, done bool, err error) {
	s := c.sessions.get()
	reused := s != nil
	if !reused {
		if s, err = c.openSession(ctx); err != nil {
			return Result{}, true, err
		}
	}
	// As for a connection per command, ScanTimeout starts once connected.
	var deadline time.Time
	if c.ScanTimeout > 0 {
		deadline = time.Now().Add(c.ScanTimeout)
	}
	o := c.fildesOn(ctx, s, f, deadline)
	c.release(s, o.keep)
	if !o.closed || !reused || ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
		return o.res, o.replied, o.err
	}
	// clamd closed the pooled session (idle timeout, restart) just
	// before or as it was used. If it did take the descriptor before
	// closing, it may still be reading it: f is not reused after this.
	if s, err = c.openSession(ctx); err != nil {
		return Result{}, false, err
	}
	o = c.fildesOn(ctx, s, f, deadline)
	c.release(s, o.keep)
	return o.res, false, o.err
}

func (c *Client) release(s *session, keep bool) {
	if keep {
		c.sessions.put(s)
		return
	}
	s.conn.Close()
}

// fildesOn sends FILDES and f's descriptor on s and reads the numbered
// reply. ScanTimeout's deadline applies, and cancelling ctx closes the
// connection, which clamd takes as the end of the session and of its scan.
func (c *Client) fildesOn(ctx context.Context, s *session, f *os.File, deadline time.Time) (o fdOutcome) {
	if err := s.conn.SetDeadline(deadline); err != nil {
		o.err = c.unavailable("write", err)
		return o
	}
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer func() {
		if !stop() {
			o.keep = false // closed by the cancellation
		}
	}()
	cmd := "zFILDES\x00"
	if s.n == 0 {
		cmd = "zIDSESSION\x00" + cmd
	}
	s.n++
	_, err := io.WriteString(s.conn, cmd)
	if err == nil {
		err = sendFD(s.conn, f)
	}
	if err != nil {
		o.err = c.ioError(ctx, "write", err)
		o.closed = brokenConn(err)
		return o
	}
	reply, trailing, err := readReplyTail(s.conn)
	if err != nil {
		o.err = c.ioError(ctx, "read", err)
		o.closed = errors.Is(err, errNoReply) || brokenConn(err)
		return o
	}
	rest, ok := strings.CutPrefix(reply, strconv.FormatUint(s.n, 10)+": ")
	if !ok {
		o.err = &ProtocolError{Reason: "session reply without its request number", Reply: clip(reply)}
		return o
	}
	o.res, o.err = parseScanReply(rest)
	var re *ReplyError
	o.replied = o.err == nil || errors.As(o.err, &re)
	// After an error or a limit (MaxScanTime ends the whole session in
	// clamd) the session is not trusted with another message.
	o.keep = o.err == nil && !trailing && !o.res.LimitsExceeded
	return o
}

// brokenConn reports a connection the peer closed or reset.
func brokenConn(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
