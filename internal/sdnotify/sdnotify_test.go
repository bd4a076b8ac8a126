package sdnotify_test

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/sdnotify"
)

// listen opens a datagram socket as the service manager does.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// READY=1 and the other states arrive as one datagram, one per line, on a
// socket in the file system and on one in the abstract namespace.
func TestNotifyArrivesOnUnixgramSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	c := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	n := sdnotify.FromEnv()
	if !n.Enabled() {
		t.Fatal("NOTIFY_SOCKET set but the notifier is disabled")
	}
	if err := n.Notify(sdnotify.Ready, "STATUS=listening"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != "READY=1\nSTATUS=listening\n" {
		t.Errorf("datagram %q", got)
	}

	abstract := "@mailgate-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	a := listen(t, abstract)
	if err := sdnotify.New(abstract).Notify(sdnotify.Reloading, sdnotify.Monotonic()); err != nil {
		t.Fatal(err)
	}
	got := read(t, a)
	if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=0\n") {
		t.Errorf("datagram %q", got)
	}
}

// Without a service manager nothing is sent and nothing fails.
func TestNotifyWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := sdnotify.FromEnv()
	if n.Enabled() {
		t.Error("enabled without NOTIFY_SOCKET")
	}
	if err := n.Notify(sdnotify.Ready); err != nil {
		t.Error(err)
	}
}
