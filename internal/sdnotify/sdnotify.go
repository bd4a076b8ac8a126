// Package sdnotify tells the service manager about mailgate's state, as
// sd_notify(3) does: newline-separated VAR=VALUE assignments in one
// datagram to the Unix socket named by $NOTIFY_SOCKET. systemd starts a
// Type=notify unit's dependants on READY=1 and shows STATUS= in
// `systemctl status`.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Standard states (sd_notify(3)).
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Reloading = "RELOADING=1"
)

// Notifier sends state to one socket. The zero Notifier (no socket: not
// started by a service manager) sends nothing.
type Notifier struct {
	socket string
}

// FromEnv returns the Notifier for $NOTIFY_SOCKET.
func FromEnv() Notifier { return Notifier{socket: os.Getenv("NOTIFY_SOCKET")} }

// New returns a Notifier for the socket at path; a leading '@' names a
// socket in Linux's abstract namespace, as in $NOTIFY_SOCKET.
func New(path string) Notifier { return Notifier{socket: path} }

// Enabled reports whether there is a socket to notify.
func (n Notifier) Enabled() bool { return n.socket != "" }

// Notify sends the states, one per line, in one datagram. Without a
// socket it does nothing and returns nil.
func (n Notifier) Notify(states ...string) error {
	if n.socket == "" {
		return nil
	}
	// Go maps a leading '@' to the abstract namespace itself.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(strings.Join(states, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}

// Monotonic is the MONOTONIC_USEC= assignment for now, which systemd wants
// with RELOADING=1 (CLOCK_MONOTONIC in microseconds).
func Monotonic() string {
	return fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec())
}
