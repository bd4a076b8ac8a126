package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testutil/s3test"
)

// A wrong [store] or [blobs] stops `mailgate serve` at start with exit
// status 1 and exactly one line on stderr, naming what it could not use
// (the server, the endpoint and bucket) and never a password or secret.
func TestStartupConfigErrorsAreOneLine(t *testing.T) {
	closed := deadAddr(t)
	// Accepts connections and never answers (a wrong port, a balancer
	// without a backend).
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	b := s3test.Bucket(t)
	const pw = "Pg-Secret-42"
	s3 := func(bucket, secret string) string {
		return fmt.Sprintf("[blobs]\ndriver = \"s3\"\nendpoint = %q\nbucket = %q\nregion = %q\npath_style = true\naccess_key_id = %q\nsecret_access_key = %q\n",
			b.Endpoint, bucket, b.Region, b.AccessKeyID, secret)
	}
	for _, c := range []struct {
		name, toml string
		want       []string
		secret     string
	}{
		{"bad dsn", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://mailgate:" + pw + "@db:port/mailgate\"\n",
			[]string{"postgres store: bad dsn"}, pw},
		{"unreachable server", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://mailgate:" + pw + "@" + closed + "/mailgate\"\n",
			[]string{"postgres store: cannot connect to server " + closed, "connection refused"}, pw},
		{"silent server", "[store]\ndriver = \"postgres\"\ndsn = \"postgres://mailgate:" + pw + "@" + silent.Addr().String() + "/mailgate?connect_timeout=1\"\n",
			[]string{"postgres store: cannot connect to server " + silent.Addr().String(), "no answer within 1s"}, pw},
		{"missing bucket", s3("no-such-bucket", b.SecretAccessKey),
			[]string{"s3 blobs: endpoint " + b.Endpoint + ` bucket "no-such-bucket"`, "the bucket does not exist"}, b.SecretAccessKey},
		{"wrong secret", s3(b.Bucket, "Wrong-S3-Secret-7"),
			[]string{"s3 blobs: endpoint " + b.Endpoint, "the secret key is wrong"}, "Wrong-S3-Secret-7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "mailgate.toml")
			body := fmt.Sprintf("data_dir = %q\n[inbound]\nlisten = [\"127.0.0.1:0\"]\n[limits]\nmin_free_bytes = 0\n", filepath.Join(dir, "data")) + c.toml
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binPath, "-c", cfg, "serve")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			line := stderr.String()
			if code != 1 || stdout.Len() != 0 || strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "mailgate: ") {
				t.Fatalf("exit %d (%v), stdout %q, stderr %q: want status 1 and one line", code, err, stdout.String(), line)
			}
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %q lacks %q", line, w)
				}
			}
			if strings.Contains(line, c.secret) {
				t.Errorf("stderr %q shows the secret", line)
			}
		})
	}
}
