package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// swaks runs swaks against addr and returns its transcript and exit status.
func swaks(t *testing.T, addr string, args ...string) (string, int) {
	t.Helper()
	bin := needPeer(t, "swaks")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", addr, "--helo", "client.e2e.test", "--timeout", "30"}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	return string(out), 0
}

// TestSwaks is the administrator's first check of a new MX: deliveries,
// refusals and limits as swaks reports them.
func TestSwaks(t *testing.T) {
	t.Parallel()
	needPeer(t, "swaks")
	g := newGateway(t, options{maxMessageBytes: 20000, maxRecipients: 3})

	t.Run("deliver", func(t *testing.T) {
		token := "swaks-deliver-7f3a"
		out, code := swaks(t, g.inAddr, "--from", "sender@remote.test", "--to", "alice@example.test",
			"--header", "X-E2E: "+token, "--body", "Hello Alice, body line "+token)
		if code != 0 {
			t.Fatalf("swaks exit %d\n%s", code, out)
		}
		ids := queueIDs(out)
		if len(ids) != 1 {
			t.Fatalf("want one 'queued as' reply, got %v\n%s", ids, out)
		}
		m := waitMessage(t, g.sink, token)
		data := string(m.Data)
		if !strings.Contains(data, "Hello Alice, body line "+token) {
			t.Errorf("body missing from delivered message:\n%s", data)
		}
		wantRcv := "by mailgate.test (mailgate) with ESMTP id " + ids[0]
		if !strings.Contains(data, wantRcv) {
			t.Errorf("delivered message lacks Received %q:\n%s", wantRcv, data)
		}
		// mailgate's verdict headers (Authentication-Results, X-Mailgate-*)
		// come first; its Received header is the first trace field.
		if i := strings.Index(data, "Received: "); i < 0 || !strings.HasPrefix(data[i:], "Received: from client.e2e.test ([127.0.0.1])") ||
			!strings.HasPrefix(data, "Authentication-Results: mailgate.test;") {
			t.Errorf("verdict headers, then mailgate's Received header expected first:\n%s", data)
		}
		if len(m.To) != 1 || m.To[0] != "alice@example.test" || m.From != "sender@remote.test" {
			t.Errorf("envelope at sink: from %q to %v", m.From, m.To)
		}
		// The sink writes every message to an .eml file; the administrator's view.
		file, err := os.ReadFile(m.File)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(file, []byte(wantRcv)) || !bytes.Contains(file, []byte(token)) {
			t.Errorf("sink file %s lacks the Received header or body", filepath.Base(m.File))
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		out, code := swaks(t, g.inAddr, "--from", "sender@remote.test", "--to", "nobody@example.test")
		if code == 0 {
			t.Errorf("swaks exit 0 for an unknown user\n%s", out)
		}
		if !strings.Contains(out, "550 5.1.1") {
			t.Errorf("want 550 5.1.1 at RCPT:\n%s", out)
		}
	})

	t.Run("domain not served", func(t *testing.T) {
		out, code := swaks(t, g.inAddr, "--from", "sender@remote.test", "--to", "someone@other.test")
		if code == 0 {
			t.Errorf("swaks exit 0 for a foreign domain\n%s", out)
		}
		if !strings.Contains(out, "554 5.7.1") {
			t.Errorf("want 554 5.7.1 (relay denied) at RCPT:\n%s", out)
		}
	})

	t.Run("starttls", func(t *testing.T) {
		token := "swaks-tls-41c9"
		out, code := swaks(t, g.inAddr, "--tls", "--from", "sender@remote.test", "--to", "bob@example.test",
			"--header", "X-E2E: "+token)
		if strings.Contains(out, "TLS not available") {
			missingPeer(t, "swaks has no TLS support (apt-get install libnet-ssleay-perl libio-socket-ssl-perl)")
		}
		if code != 0 {
			t.Fatalf("swaks --tls exit %d\n%s", code, out)
		}
		if !strings.Contains(out, "220 2.0.0 Ready to start TLS") || !strings.Contains(out, "TLS started") {
			t.Errorf("no STARTTLS handshake in transcript:\n%s", out)
		}
		ids := queueIDs(out)
		if len(ids) != 1 {
			t.Fatalf("want one 'queued as' reply, got %v\n%s", ids, out)
		}
		m := waitMessage(t, g.sink, token)
		want := "by mailgate.test (mailgate) with ESMTPS id " + ids[0]
		if !strings.Contains(string(m.Data), want) {
			t.Errorf("delivered message lacks %q:\n%s", want, m.Data)
		}
	})

	t.Run("too large", func(t *testing.T) {
		token := "swaks-large-9d20"
		body := filepath.Join(t.TempDir(), "body.txt")
		var b strings.Builder
		for b.Len() < 30000 {
			b.WriteString("0123456789 the quick brown fox jumps over the lazy dog 0123456789\r\n")
		}
		if err := os.WriteFile(body, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		out, code := swaks(t, g.inAddr, "--from", "sender@remote.test", "--to", "alice@example.test",
			"--header", "X-E2E: "+token, "--body", body)
		if code == 0 {
			t.Errorf("swaks exit 0 for a message over max_message_bytes\n%s", out)
		}
		if !strings.Contains(out, "<** 552") {
			t.Errorf("want 552 for a 30 kB message with max_message_bytes = 20000:\n%s", lastLines(out, 15))
		}
		if len(queueIDs(out)) != 0 {
			t.Errorf("oversized message was queued:\n%s", lastLines(out, 15))
		}
		// A later message proves the queue is running; the large one must not follow it.
		after := "swaks-after-large-5e1b"
		if out, code := swaks(t, g.inAddr, "--from", "sender@remote.test", "--to", "alice@example.test", "--header", "X-E2E: "+after); code != 0 {
			t.Fatalf("swaks exit %d\n%s", code, out)
		}
		waitMessage(t, g.sink, after)
		if n := len(messagesWith(g.sink, token)); n != 0 {
			t.Errorf("oversized message delivered %d times", n)
		}
	})

	t.Run("max recipients", func(t *testing.T) {
		g.cli("user", "add", "carol@example.test", "dave@example.test")
		token := "swaks-rcpts-c0de"
		rcpts := []string{"alice@example.test", "bob@example.test", "carol@example.test", "dave@example.test"}
		out, code := swaks(t, g.inAddr, "--from", "sender@remote.test", "--to", strings.Join(rcpts, ","),
			"--header", "X-E2E: "+token)
		if code != 0 {
			t.Fatalf("swaks exit %d (three recipients were acceptable)\n%s", code, out)
		}
		want := fmt.Sprintf("RCPT TO:<%s>\n<** 452 4.5.3", rcpts[3])
		if !strings.Contains(out, want) {
			t.Errorf("want the 4th recipient refused with 452 4.5.3:\n%s", out)
		}
		m := waitMessage(t, g.sink, token)
		got := append([]string(nil), m.To...)
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(rcpts[:3], ",") {
			t.Errorf("delivered to %s, want the first three recipients", got)
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
