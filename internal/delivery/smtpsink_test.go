package delivery

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/peers"
)

// startSMTPSink runs Postfix's smtp-sink on a free loopback port with
// extra arguments, dumping each transaction it takes into dir, and
// returns the delivery target and dir.
func startSMTPSink(t *testing.T, args ...string) (Target, string) {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		bin, err = exec.LookPath("/usr/sbin/smtp-sink")
	}
	if err != nil {
		peers.Missing(t, "smtp-sink (Debian package postfix) is not installed")
		return Target{}, ""
	}
	// The sink drops to an unprivileged user when started as root, and
	// that user writes the dumps: in /tmp, which every user can reach
	// (TMPDIR may be private to ours).
	dir, err := os.MkdirTemp("/tmp", "smtpsink")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var cmdArgs []string
	if os.Geteuid() == 0 {
		cmdArgs = append(cmdArgs, "-u", "nobody")
	}
	cmdArgs = append(cmdArgs, "-d", filepath.Join(dir, "m."))
	cmdArgs = append(cmdArgs, args...)
	cmdArgs = append(cmdArgs, addr, "16")
	cmd := exec.Command(bin, cmdArgs...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	target, err := ParseTarget("smtp://"+addr, "")
	if err != nil {
		t.Fatal(err)
	}
	return target, dir
}

// dumps returns the transactions smtp-sink wrote, once their count is n.
func dumps(t *testing.T, dir string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "m.*"))
		if len(files) >= n || time.Now().After(deadline) {
			var out []string
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Postfix's smtp-sink offers PIPELINING: messages of several recipients
// go out with the envelope in one write, over one reused connection, and
// arrive whole (a leading dot stuffed and unstuffed).
func TestPipelinedToSMTPSink(t *testing.T) {
	target, dir := startSMTPSink(t)
	c := newClient(t, nil, "")
	defer c.CloseIdle(true)
	ctx := context.Background()
	for i := range 3 {
		rs := c.Deliver(ctx, []Target{target}, Request{From: "alice@example.test",
			Rcpts: []string{"bob@partner.test", "carol@partner.test"},
			Body:  body(fmt.Sprintf("Subject: m%d\r\n\r\n.dot %d\r\nbody\r\n", i, i))})
		for _, r := range rs {
			if !r.OK() {
				t.Fatalf("message %d: %+v", i, r)
			}
		}
	}
	got := dumps(t, dir, 3)
	if len(got) != 3 {
		t.Fatalf("smtp-sink took %d messages, want 3", len(got))
	}
	for _, d := range got {
		d = strings.ReplaceAll(d, "\r\n", "\n")
		i := strings.Index(d, "Subject: m")
		if i < 0 {
			t.Fatalf("dump without the message:\n%s", d)
		}
		n := d[i+len("Subject: m") : i+len("Subject: m")+1]
		if _, err := strconv.Atoi(n); err != nil ||
			!strings.Contains(d, "X-Mail-Args: <alice@example.test>") ||
			!strings.Contains(d, "X-Rcpt-Args: <bob@partner.test>\nX-Rcpt-Args: <carol@partner.test>\n") ||
			!strings.Contains(d, "\n\n.dot "+n+"\nbody\n") {
			t.Fatalf("dump:\n%s", d)
		}
	}
	if n := idleConns(c); n != 1 {
		t.Fatalf("%d idle connections after three messages, want the one reused", n)
	}
}

func idleConns(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.idle {
		n += len(l)
	}
	return n
}

// smtp-sink refusing every RCPT (and then announcing no PIPELINING):
// each recipient gets the refusal, permanent or temporary, no message
// is taken, and the connection serves the next message.
func TestRefusedBySMTPSink(t *testing.T) {
	for _, tc := range []struct {
		flag      string
		permanent bool
	}{{"-f", true}, {"-r", false}} {
		t.Run(tc.flag, func(t *testing.T) {
			target, dir := startSMTPSink(t, tc.flag, "RCPT")
			c := newClient(t, nil, "")
			defer c.CloseIdle(true)
			ctx := context.Background()
			for i := range 2 {
				rs := c.Deliver(ctx, []Target{target}, Request{From: "alice@example.test",
					Rcpts: []string{"bob@partner.test", "carol@partner.test"}, Body: body("Subject: x\r\n\r\nx\r\n")})
				for _, r := range rs {
					if r.OK() || r.Permanent != tc.permanent || r.Code/100 != map[bool]int{true: 5, false: 4}[tc.permanent] {
						t.Fatalf("message %d: %+v", i, r)
					}
				}
			}
			if got := dumps(t, dir, 0); len(got) != 0 {
				t.Fatalf("smtp-sink took %d messages, want none", len(got))
			}
			if n := idleConns(c); n != 1 {
				t.Fatalf("%d idle connections, want the one reused", n)
			}
		})
	}
}
