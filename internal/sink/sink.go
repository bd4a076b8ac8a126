// Package sink is a small SMTP server that writes every message it receives
// to a directory as an .eml file. The demo uses it as a stand-in for the
// customer's mail server; tests and benchmarks use it as the downstream.
package sink

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Sink receives mail. Safe for concurrent use.
type Sink struct {
	Dir string // where .eml files go; "" keeps messages in memory only

	mu       sync.Mutex
	msgs     []Message
	keep     bool
	n        atomic.Int64
	srv      *smtp.Server
	ln       net.Listener
	failCode atomic.Int32 // non-zero: answer RCPT with this code
	reject   map[string]bool
}

// Message is one received message.
type Message struct {
	From  string
	To    []string
	Data  []byte
	File  string
	Added time.Time
	Helo  string // the client's EHLO/HELO name: which node delivered it
}

// Start listens on addr ("127.0.0.1:0" for tests). keep holds messages in
// memory for Messages().
func Start(addr, dir string, keep bool) (*Sink, error) {
	return StartTLS(addr, dir, keep, nil)
}

// StartTLS is Start with STARTTLS offered under cfg (nil: not offered).
func StartTLS(addr, dir string, keep bool, cfg *tls.Config) (*Sink, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sink: %w", err)
		}
	}
	s := &Sink{Dir: dir, keep: keep, reject: map[string]bool{}}
	srv := smtp.NewServer(s)
	srv.Domain = "downstream.invalid"
	srv.MaxMessageBytes = 200 << 20
	srv.MaxLineLength = 1 << 20
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.TLSConfig = cfg
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink listen: %w", err)
	}
	s.srv, s.ln = srv, ln
	go srv.Serve(ln)
	return s, nil
}

// Addr is the listening address.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Sink) Close() error { return s.srv.Close() }

// Count is the number of messages received.
func (s *Sink) Count() int64 { return s.n.Load() }

// Messages returns the kept messages.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// FailWith makes RCPT answer code (e.g. 451 or 550) until called with 0.
func (s *Sink) FailWith(code int) { s.failCode.Store(int32(code)) }

// RejectRcpt makes RCPT for addr answer 550 5.1.1.
func (s *Sink) RejectRcpt(addr string) {
	s.mu.Lock()
	s.reject[strings.ToLower(addr)] = true
	s.mu.Unlock()
}

// NewSession implements smtp.Backend.
func (s *Sink) NewSession(c *smtp.Conn) (smtp.Session, error) { return &session{s: s, c: c}, nil }

type session struct {
	s    *Sink
	c    *smtp.Conn
	from string
	to   []string
}

func (se *session) Reset()        { se.from, se.to = "", nil }
func (se *session) Logout() error { return nil }
func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if c := se.s.failCode.Load(); c != 0 {
		ec := smtp.EnhancedCode{int(c) / 100, 0, 0}
		return &smtp.SMTPError{Code: int(c), EnhancedCode: ec, Message: "downstream says no"}
	}
	se.s.mu.Lock()
	bad := se.s.reject[strings.ToLower(to)]
	se.s.mu.Unlock()
	if bad {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	n := se.s.n.Add(1)
	m := Message{From: se.from, To: append([]string(nil), se.to...), Data: buf.Bytes(), Added: time.Now(), Helo: se.c.Hostname()}
	if se.s.Dir != "" {
		name := filepath.Join(se.s.Dir, fmt.Sprintf("%s-%06d.eml", time.Now().UTC().Format("20060102T150405"), n))
		hdr := fmt.Sprintf("X-Sink-Envelope-From: <%s>\r\nX-Sink-Envelope-To: %s\r\n", se.from, strings.Join(se.to, ", "))
		if err := os.WriteFile(name, append([]byte(hdr), buf.Bytes()...), 0o644); err != nil {
			return errors.New("sink: cannot write file")
		}
		m.File = name
	}
	if se.s.keep {
		se.s.mu.Lock()
		se.s.msgs = append(se.s.msgs, m)
		se.s.mu.Unlock()
	}
	return nil
}
