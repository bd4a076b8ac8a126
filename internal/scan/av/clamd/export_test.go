package clamd

import (
	"net"
	"time"
)

// Hooks for the external tests of the session pool.

// IdleSessions returns, for each idle session from oldest to newest, the
// number of commands it has carried.
func IdleSessions(c *Client) []uint64 {
	c.sessions.mu.Lock()
	defer c.sessions.mu.Unlock()
	var ns []uint64
	for _, s := range c.sessions.idle {
		ns = append(ns, s.n)
	}
	return ns
}

// OpenIdleSessions counts the idle sessions clamd has not closed, without
// disturbing them.
func OpenIdleSessions(c *Client) int {
	c.sessions.mu.Lock()
	defer c.sessions.mu.Unlock()
	n := 0
	for _, s := range c.sessions.idle {
		if connIdle(s.conn) {
			n++
		}
	}
	return n
}

// IdleFiles is the number of memory files kept for reuse.
func IdleFiles(c *Client) int {
	c.files.mu.Lock()
	defer c.files.mu.Unlock()
	return len(c.files.free)
}

// SkipIdleCheck makes the pool hand out idle sessions without checking that
// clamd still has them open, as if clamd closed them just after the check.
func SkipIdleCheck(c *Client) {
	c.sessions.idleCheck = func(*net.UnixConn) bool { return true }
}

// AgeIdleSessions makes every idle session look idle for d longer.
func AgeIdleSessions(c *Client, d time.Duration) {
	c.sessions.mu.Lock()
	defer c.sessions.mu.Unlock()
	for _, s := range c.sessions.idle {
		s.idle = s.idle.Add(-d)
	}
}

// ExpireIdleSessions does now what the pool's timer does when it fires.
func ExpireIdleSessions(c *Client) { c.sessions.expire() }

// SessionIdle is how long an idle session is kept.
const SessionIdle = sessionIdle
