package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// reply is the outcome of one message's single attempt.
type reply struct {
	code  int    // final SMTP code; 0 when there was none (connection error, not attempted)
	stage string // where it ended: "data" (the DATA reply), "rcpt", "mail", "conn", "skipped"
	text  string
	// latency is from writing the final "." to the reply (stage "data").
	latency time.Duration
	at      time.Time // when the reply arrived
	broken  bool      // the connection cannot be used further
}

func (r reply) class() string {
	switch {
	case r.code >= 200 && r.code < 300:
		return "2xx"
	case r.code >= 400 && r.code < 500:
		return "4xx"
	case r.code >= 500:
		return "5xx"
	case r.stage == "skipped":
		return "skipped"
	}
	return "error"
}

// sender sends each message of a batch once, over a fixed number of
// concurrent SMTP sessions that each carry up to perConn messages before
// reconnecting (as a sending MTA reuses its connections).
type sender struct {
	addr     string
	sessions int
	perConn  int
}

// run sends msgs and returns one reply per message (same index) and the
// time the first session started. It returns when every message has had
// its attempt or ctx is done (the rest are "skipped").
func (s *sender) run(ctx context.Context, msgs []*message) ([]reply, time.Time) {
	replies := make([]reply, len(msgs))
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range s.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.worker(ctx, msgs, replies, &next)
		}()
	}
	wg.Wait()
	return replies, start
}

type session struct {
	conn net.Conn
	c    *smtp.Client
	n    int
	stop func() bool // ends the context watcher
}

func (se *session) close(quit bool) {
	se.stop()
	if quit {
		_ = se.c.Quit()
	}
	_ = se.c.Close()
}

func (s *sender) worker(ctx context.Context, msgs []*message, replies []reply, next *atomic.Int64) {
	var se *session
	defer func() {
		if se != nil {
			se.close(true)
		}
	}()
	for {
		i := int(next.Add(1) - 1)
		if i >= len(msgs) {
			return
		}
		if ctx.Err() != nil {
			replies[i] = reply{stage: "skipped", text: ctx.Err().Error()}
			continue
		}
		if se == nil {
			var err error
			if se, err = s.dial(ctx); err != nil {
				replies[i] = reply{stage: "conn", text: err.Error(), at: time.Now()}
				// Do not spin through the batch while the server refuses.
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
		}
		replies[i] = sendOne(se.c, msgs[i])
		se.n++
		if replies[i].broken {
			se.close(false)
			se = nil
		} else if se.n >= s.perConn {
			se.close(true)
			se = nil
		}
	}
}

func (s *sender) dial(ctx context.Context) (*session, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	// Closing the connection is the only way to end a blocked write.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c := smtp.NewClient(conn)
	c.CommandTimeout = 2 * time.Minute
	c.SubmissionTimeout = 2 * time.Minute
	if err := c.Hello(heloName); err != nil {
		stop()
		c.Close()
		return nil, fmt.Errorf("greeting/EHLO: %w", err)
	}
	return &session{conn: conn, c: c, stop: stop}, nil
}

// sendOne runs MAIL, RCPT..., DATA for m on an open session.
func sendOne(c *smtp.Client, m *message) reply {
	if err := c.Mail(m.from, nil); err != nil {
		return errReply("mail", err)
	}
	var last error
	ok := 0
	for _, r := range m.rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			last = err
			if rr := errReply("rcpt", err); rr.broken {
				return rr
			}
			continue
		}
		ok++
	}
	if ok == 0 {
		rr := errReply("rcpt", last)
		if err := c.Reset(); err != nil {
			rr.broken = true
		}
		return rr
	}
	w, err := c.Data()
	if err != nil {
		return errReply("data", err)
	}
	if _, err := w.Write(m.data); err != nil {
		rr := errReply("data", err)
		rr.broken = true
		return rr
	}
	t0 := time.Now()
	resp, err := w.CloseWithResponse()
	t1 := time.Now()
	if err != nil {
		rr := errReply("data", err)
		rr.latency, rr.at = t1.Sub(t0), t1
		return rr
	}
	return reply{code: 250, stage: "data", text: resp.StatusText, latency: t1.Sub(t0), at: t1}
}

func errReply(stage string, err error) reply {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		// 421 means the server is closing the session.
		return reply{code: se.Code, stage: stage, text: fmt.Sprintf("%d %d.%d.%d %s", se.Code,
			se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], strings.TrimSpace(se.Message)), at: time.Now(), broken: se.Code == 421}
	}
	return reply{stage: stage, text: err.Error(), at: time.Now(), broken: true}
}
