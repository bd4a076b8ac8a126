package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/testutil/mgtest"
	"github.com/mailgate/mailgate/internal/testutil/peers"
	"github.com/mailgate/mailgate/internal/testutil/pgtest"
)

// tokenSender sends messages carrying unique tokens over one session at a
// time and records every reply.
type tokenSender struct {
	addr string
	seq  atomic.Int64

	mu      sync.Mutex
	acked   []string       // tokens answered 250
	codes   map[int]int    // SMTP reply codes of refusals
	texts   map[string]int // refusals' replies
	other   map[string]int // errors that are not SMTP replies (connection cut)
	lastAck time.Time
}

// sendOne makes one attempt; it returns the reply code (250 on success,
// 0 when the connection failed).
func (s *tokenSender) sendOne() int {
	tok := fmt.Sprintf("dbloss-%06d", s.seq.Add(1))
	c, err := smtp.Dial(s.addr)
	if err != nil {
		s.note(0, err)
		return 0
	}
	defer c.Close()
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	err = c.Mail("partner@remote.test", nil)
	if err == nil {
		err = c.Rcpt("alice@example.test", nil)
	}
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	if err == nil {
		w, err = c.Data()
	}
	if err == nil {
		w.Write([]byte("From: <partner@remote.test>\r\nSubject: " + tok + "\r\nX-Token: " + tok + "\r\n\r\nbody of " + tok + "\r\n"))
		err = w.Close()
	}
	if err != nil {
		return s.note(0, err)
	}
	c.Quit()
	s.mu.Lock()
	s.acked = append(s.acked, tok)
	s.lastAck = time.Now()
	s.mu.Unlock()
	return 250
}

func (s *tokenSender) note(code int, err error) int {
	var se *smtp.SMTPError
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.As(err, &se) {
		s.codes[se.Code]++
		s.texts[fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)]++
		return se.Code
	}
	s.other[err.Error()]++
	return code
}

// Losing PostgreSQL while mail flows: a node answers 451 while the
// database is down (never 250: nothing it acknowledges may be lost, and
// never a 5xx that would bounce the mail), and once the server is back
// it accepts and delivers again by itself; every message it acknowledged,
// before, during or after the outage, reaches the downstream.
func TestPostgresLostAndBack(t *testing.T) {
	if !pgtest.Installed() {
		peers.Missing(t, "%v", pgtest.ErrNotInstalled)
	}
	ctx := context.Background()
	// A server of its own (the test stops it), durable as an operator runs
	// it: an immediate stop must not take back an acknowledged commit.
	pg, err := pgtest.LaunchWith(ctx, pgtest.Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	if err := pg.Exec(ctx, `CREATE DATABASE mailgate TEMPLATE template0`); err != nil {
		t.Fatal(err)
	}
	n := mgtest.Start(t, mgtest.Options{S3: true, NoChecks: true, Config: func(c *config.Config) {
		c.Store.Driver, c.Store.DSN = "postgres", pg.DSN("mailgate")
		// A delivery whose outcome could not be recorded is attempted
		// again once its lease expires.
		c.Queue.Lease = config.D(2 * time.Second)
		c.Queue.Retry = []config.Duration{config.D(time.Second)}
	}})
	s := &tokenSender{addr: n.InboundAddr(), codes: map[int]int{}, texts: map[string]int{}, other: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s.sendOne() != 250 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	acked := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.acked)
	}
	mgtest.WaitFor(t, 30*time.Second, "mail accepted before the outage", func() bool { return acked() >= 20 })

	pg.Kill()
	down := acked()
	s.mu.Lock()
	refusedBefore := s.codes[451]
	s.mu.Unlock()
	mgtest.WaitFor(t, 60*time.Second, "451 while the database is down", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.codes[451] >= refusedBefore+5
	})
	// What was acknowledged in between was committed before the server
	// died: at most the sessions in flight at the kill.
	if got := acked(); got > down+3 {
		t.Errorf("%d messages acknowledged after the database was stopped", got-down)
	}
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	back := acked()
	mgtest.WaitFor(t, 60*time.Second, "mail accepted again after the database is back", func() bool { return acked() >= back+20 })
	close(stop)
	wg.Wait()

	s.mu.Lock()
	tokens := append([]string(nil), s.acked...)
	codes, texts, other := s.codes, s.texts, s.other
	s.mu.Unlock()
	t.Logf("acknowledged %d (%d before the outage); refusals %v; broken sessions %v", len(tokens), down, texts, other)
	for code := range codes {
		if code >= 500 {
			t.Errorf("%d refusals with %d: a database outage must be temporary for the client", codes[code], code)
		}
	}
	missing := func() []string {
		got := map[string]bool{}
		for _, m := range n.Down.Messages() {
			if i := bytes.Index(m.Data, []byte("X-Token: ")); i >= 0 {
				got[string(bytes.Fields(m.Data[i+9:])[0])] = true
			}
		}
		var out []string
		for _, tok := range tokens {
			if !got[tok] {
				out = append(out, tok)
			}
		}
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(missing()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if m := missing(); len(m) > 0 {
		t.Fatalf("%d acknowledged messages never delivered: %v", len(m), m)
	}
}
