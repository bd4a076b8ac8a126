package main

// Delivery mode: how fast each server puts incoming mail into its
// mailboxes. mailgate takes the mail over SMTP on its inbound listener,
// with the domain in emergency mode, so every message goes through the
// whole path an outage's mail takes (SMTP, durable queue, delivery into
// the mailbox store). Dovecot takes the same messages over LMTP, as from a
// Postfix in front of it: its final delivery only, without the MTA's own
// queue, so the comparison favours Dovecot.
//
// Both runs end when every message can be seen in the recipients' INBOX
// over IMAP (STATUS MESSAGES of every user, polled every 100 ms), so both
// figures count mail a user can read.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// deliveryBench runs a warm-up and then the measured delivery on every
// server, and prints the figures; the last line is
//
//	mailbox delivery msgs/s: mailgate=A dovecot=B ratio=A/B
func deliveryBench(ctx context.Context, o opts, servers []server, tc *tls.Config, users []string) error {
	results := map[string]float64{}
	for _, s := range servers {
		via := "SMTP, domain in emergency mode"
		if s.lmtp {
			via = "LMTP"
		}
		counter, err := newCounter(s.addr, tc, users)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		sent := 0
		if o.warmup > 0 {
			if _, err := deliverAll(ctx, o, s, counter, 0, o.warmup, users); err != nil {
				counter.close()
				return fmt.Errorf("%s warm-up: %w", s.name, err)
			}
			sent = o.warmup
		}
		sampler := startRSS(s.pid)
		elapsed, err := deliverAll(ctx, o, s, counter, sent, o.n, users)
		peak := sampler()
		counter.close()
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		results[s.name] = float64(o.n) / elapsed.Seconds()
		fmt.Printf("%s: %d messages into %d mailboxes over %s, %d sessions, in %.2fs: %.0f msgs/s; peak RSS %.0f MB\n",
			s.name, o.n, len(users), via, o.sessions, elapsed.Seconds(), results[s.name], float64(peak)/(1<<20))
	}
	if o.only != "" {
		fmt.Printf("mailbox delivery msgs/s: %s=%.0f\n", o.only, results[o.only])
		return nil
	}
	fmt.Printf("mailbox delivery msgs/s: mailgate=%.0f dovecot=%.0f ratio=%.2f\n",
		results["mailgate"], results["dovecot"], results["mailgate"]/results["dovecot"])
	return nil
}

// deliverAll sends messages first..first+n-1 (message i to user i mod
// users) over o.sessions concurrent sessions and returns the time from
// the first connection until the mailboxes hold all of them.
func deliverAll(ctx context.Context, o opts, s server, counter *counter, first, n int, users []string) (time.Duration, error) {
	before, err := counter.total(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	next := atomic.Int64{}
	next.Store(int64(first))
	end := int64(first + n)
	var wg sync.WaitGroup
	errs := make(chan error, o.sessions)
	for w := 0; w < o.sessions; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sendSession(ctx, o, s, &next, end, users); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		got, err := counter.total(ctx)
		if err != nil {
			return 0, err
		}
		if got-before >= n {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("after 10 minutes, %d of %d messages are in the mailboxes", got-before, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// perConnection is how many messages one connection carries before the
// session reconnects, as an MTA's cached connection does.
const perConnection = 50

// sendSession takes message numbers from next until end and sends each
// over SMTP (mailgate) or LMTP (Dovecot).
func sendSession(ctx context.Context, o opts, s server, next *atomic.Int64, end int64, users []string) error {
	var c *smtp.Client
	sentOn := 0
	defer func() {
		if c != nil {
			c.Quit()
		}
	}()
	for ctx.Err() == nil {
		i := next.Add(1) - 1
		if i >= end {
			return nil
		}
		if c == nil || sentOn == perConnection {
			if c != nil {
				c.Quit()
			}
			conn, err := net.DialTimeout("tcp", s.deliverAddr, 10*time.Second)
			if err != nil {
				return err
			}
			if s.lmtp {
				c = smtp.NewClientLMTP(conn)
			} else {
				c = smtp.NewClient(conn)
			}
			if err := c.Hello("client.bench.example"); err != nil {
				return err
			}
			sentOn = 0
		}
		u := int(i) % len(users)
		msg := message(o.seed+13, u, int(i))
		if err := c.SendMail("sender@example.jp", []string{users[u]}, bytes.NewReader(msg)); err != nil {
			return fmt.Errorf("message %d to %s: %w", i, users[u], err)
		}
		sentOn++
	}
	return ctx.Err()
}

// counter counts the messages in every user's INBOX over IMAP, one
// logged-in connection per user.
type counter struct {
	clients []*imapclient.Client
}

func newCounter(addr string, tc *tls.Config, users []string) (*counter, error) {
	c := &counter{}
	for _, u := range users {
		cl, err := dial(addr, tc)
		if err != nil {
			c.close()
			return nil, err
		}
		c.clients = append(c.clients, cl)
		if err := cl.Login(u, password).Wait(); err != nil {
			c.close()
			return nil, fmt.Errorf("login %s: %w", u, err)
		}
	}
	return c, nil
}

func (c *counter) total(ctx context.Context) (int, error) {
	var sum atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, cl := range c.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := cl.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
			if err == nil && d.NumMessages == nil {
				err = errors.New("STATUS without MESSAGES")
			}
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
				return
			}
			sum.Add(int64(*d.NumMessages))
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return int(sum.Load()), first
}

func (c *counter) close() {
	for _, cl := range c.clients {
		cl.Close()
	}
}
