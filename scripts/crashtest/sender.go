package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// outcome of one message's single attempt.
type outcome int

const (
	notAttempted outcome = iota // the run ended before this message's turn
	acked                       // 250 to DATA
	tempFailed                  // 4xx at any step
	permFailed                  // 5xx at any step
	connFailed                  // connection broke (the crash) before the DATA reply
)

// attempt is one token's record.
type attempt struct {
	token   string
	rcpt    string
	node    int // index of the node the session was with
	result  outcome
	queueID string // from "250 2.0.0 OK queued as ID"
	reply   string // last reply or error, for the summary
}

// sessionMessages is how many messages a session sends when several nodes
// share the load, before the worker opens a new one.
const sessionMessages = 20

// sender sends messages 0..n-1 exactly once each over conc sessions. A
// worker takes the next message only once it holds a greeted connection, so
// a dead server costs reconnect attempts, not messages. Worker w opens
// its sessions with node w mod len(addrs) and moves to the next node
// whenever a connection cannot be made, as an MTA tries the next of equal
// MX hosts.
type sender struct {
	addrs []string
	runID string
	rcpts []string
	seed  uint64
	n     int

	next     atomic.Int64
	attempts []attempt // index i written only by the worker that took i
	dials    atomic.Int64
	dialErrs atomic.Int64
}

func (s *sender) token(i int) string { return fmt.Sprintf("%s-%06d", s.runID, i) }

// run blocks until every message has had its attempt or ctx ends.
func (s *sender) run(ctx context.Context, conc int) {
	s.attempts = make([]attempt, s.n)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.worker(ctx, w)
		}()
	}
	wg.Wait()
}

func (s *sender) worker(ctx context.Context, w int) {
	// Per-worker generator: message sizes are a function of the seed.
	rng := rand.New(rand.NewPCG(s.seed, uint64(w)+1))
	var c *smtp.Client
	defer func() {
		if c != nil {
			c.Quit()
			c.Close()
		}
	}()
	home := w % len(s.addrs)
	node, sent := home, 0
	for ctx.Err() == nil {
		if c != nil && len(s.addrs) > 1 && sent >= sessionMessages {
			// A new session goes to the worker's own node again, so the
			// load spreads back over a node that was restarted.
			c.Quit()
			c.Close()
			c, node, sent = nil, home, 0
		}
		if c == nil {
			var err error
			if c, err = s.dial(s.addrs[node]); err != nil {
				c = nil
				s.dialErrs.Add(1)
				node = (node + 1) % len(s.addrs)
				select {
				case <-ctx.Done():
				case <-time.After(25 * time.Millisecond):
				}
				continue
			}
		}
		i := int(s.next.Add(1) - 1)
		if i >= s.n {
			return
		}
		a := s.send(c, i, rng)
		a.node = node
		s.attempts[i] = a
		sent++
		if a.result == connFailed {
			c.Close()
			c, node, sent = nil, home, 0
		}
	}
}

func (s *sender) dial(addr string) (*smtp.Client, error) {
	s.dials.Add(1)
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(conn)
	// Bounded, so a hung server shows up as failures instead of a stuck test.
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 60 * time.Second
	if err := c.Hello("client.crash.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// send makes the single attempt for message i on c.
func (s *sender) send(c *smtp.Client, i int, rng *rand.Rand) attempt {
	tok := s.token(i)
	a := attempt{token: tok, rcpt: s.rcpts[i%len(s.rcpts)]}
	fail := func(err error) attempt {
		a.reply = err.Error()
		var se *smtp.SMTPError
		switch {
		case errors.As(err, &se) && se.Code == 421:
			a.result = connFailed // the server is closing the session
		case errors.As(err, &se) && se.Code >= 500:
			a.result = permFailed
		case errors.As(err, &se) && se.Code >= 400:
			a.result = tempFailed
		default:
			a.result = connFailed
		}
		if a.result != connFailed {
			if err := c.Reset(); err != nil {
				a.result = connFailed
			}
		}
		return a
	}
	if err := c.Mail("sender@client.crash.test", nil); err != nil {
		return fail(err)
	}
	if err := c.Rcpt(a.rcpt, nil); err != nil {
		return fail(err)
	}
	wc, err := c.Data()
	if err != nil {
		return fail(err)
	}
	if _, err := wc.Write(message(tok, a.rcpt, rng)); err != nil {
		wc.Close()
		return fail(err)
	}
	resp, err := wc.CloseWithResponse()
	if err != nil {
		return fail(err)
	}
	a.result = acked
	a.reply = resp.StatusText
	if j := strings.Index(resp.StatusText, "queued as "); j >= 0 {
		a.queueID = strings.TrimSpace(resp.StatusText[j+len("queued as "):])
	}
	return a
}

// message builds a CRLF message carrying tok in Subject and X-Crash-Token,
// with a body of 0–32 KiB so crashes land inside blob writes of varied size.
func message(tok, rcpt string, rng *rand.Rand) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <sender@client.crash.test>\r\nTo: <%s>\r\nSubject: crash-test %s\r\n", rcpt, tok)
	fmt.Fprintf(&b, "Message-ID: <%s@client.crash.test>\r\nDate: %s\r\n%s: %s\r\n", tok, time.Now().Format(time.RFC1123Z), tokenHeader, tok)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	lines := rng.IntN(450)
	for l := range lines {
		fmt.Fprintf(&b, "%s line %04d %s\r\n", tok, l, strings.Repeat("x", 50))
	}
	fmt.Fprintf(&b, "end of %s\r\n", tok)
	return []byte(b.String())
}
