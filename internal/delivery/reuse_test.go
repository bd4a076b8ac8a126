package delivery

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
)

// connServer is a minimal SMTP server that counts connections and
// messages, and can drop a connection once it has taken one message: by
// closing it, or by answering the next command with 421 first.
type connServer struct {
	ln   net.Listener
	drop string // "", "close" or "421"

	mu    sync.Mutex
	conns int
	quits int
	msgs  []string // the Subject line of each message taken
}

func startConnServer(t *testing.T, drop string) *connServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &connServer{ln: ln, drop: drop}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
	return s
}

func (s *connServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(l string) { c.Write([]byte(l + "\r\n")) }
	say("220 sink.test ESMTP")
	taken := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		if taken > 0 && s.drop != "" && !strings.HasPrefix(cmd, "QUIT") {
			if s.drop == "421" {
				say("421 4.4.2 sink.test closing idle connection")
			}
			return
		}
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 sink.test")
		case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"), strings.HasPrefix(cmd, "RSET"), strings.HasPrefix(cmd, "NOOP"):
			say("250 2.0.0 ok")
		case cmd == "DATA":
			say("354 go ahead")
			subject := ""
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				if strings.HasPrefix(l, "Subject:") {
					subject = strings.TrimSpace(strings.TrimPrefix(l, "Subject:"))
				}
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, subject)
			s.mu.Unlock()
			taken++
			say("250 2.0.0 queued")
		case cmd == "QUIT":
			s.mu.Lock()
			s.quits++
			s.mu.Unlock()
			say("221 2.0.0 bye")
			return
		default:
			say("502 5.5.2 unknown command")
		}
	}
}

func (s *connServer) counts() (conns, quits int, msgs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.quits, append([]string(nil), s.msgs...)
}

func (s *connServer) target() Target {
	host, p, _ := net.SplitHostPort(s.ln.Addr().String())
	port, _ := strconv.Atoi(p)
	return Target{Host: host, Port: port, TLS: TLSNone}
}

func reuseClient(idle time.Duration) *Client {
	cfg := config.Default().Delivery
	cfg.ConnectTimeout = config.D(3 * time.Second)
	cfg.CommandTimeout = config.D(5 * time.Second)
	cfg.IdleReuse = config.D(idle)
	return New("mx.mailgate.test", cfg, nil, nil, nil)
}

// Two messages to one destination, one after the other, go over one
// connection. A cached connection the server has dropped, silently or
// with a 421, is replaced by a fresh one: the message is delivered once,
// not lost, not twice.
func TestMessagesToOneDestinationShareAConnection(t *testing.T) {
	for _, tc := range []struct {
		drop  string // what the server does after the first message
		conns int
	}{{"", 1}, {"close", 2}, {"421", 2}} {
		t.Run("drop="+tc.drop, func(t *testing.T) {
			s := startConnServer(t, tc.drop)
			c := reuseClient(time.Minute)
			defer c.CloseIdle(true)
			ctx := context.Background()
			for _, subj := range []string{"one", "two"} {
				rs := c.Deliver(ctx, []Target{s.target()}, Request{From: "a@example.test", Rcpts: []string{"b@partner.test"}, Body: body("Subject: " + subj + "\r\n\r\nx\r\n")})
				if !rs[0].OK() {
					t.Fatalf("message %s: %+v", subj, rs[0])
				}
			}
			if conns, _, msgs := s.counts(); conns != tc.conns || strings.Join(msgs, ",") != "one,two" {
				t.Fatalf("%d connections for messages %v, want %d for one,two", conns, msgs, tc.conns)
			}
		})
	}
}

// A cached connection is closed with QUIT once it has been idle for
// idle_reuse, without waiting for another message to the destination.
func TestIdleConnectionClosedAfterIdleReuse(t *testing.T) {
	s := startConnServer(t, "")
	c := reuseClient(50 * time.Millisecond)
	defer c.CloseIdle(true)
	rs := c.Deliver(context.Background(), []Target{s.target()}, Request{From: "a@example.test", Rcpts: []string{"b@partner.test"}, Body: body("Subject: one\r\n\r\nx\r\n")})
	if !rs[0].OK() {
		t.Fatalf("%+v", rs[0])
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, quits, _ := s.counts(); quits == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was never closed")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, l := range c.idle {
		if len(l) > 0 {
			t.Fatalf("%d connections to %s still cached", len(l), k)
		}
	}
}
