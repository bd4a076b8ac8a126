package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/blob/blobtest"
	"github.com/mailgate/mailgate/internal/blob/s3"
	"github.com/mailgate/mailgate/internal/testutil/s3test"
)

func open(t *testing.T, cfg s3.Config, node string) blob.Store {
	t.Helper()
	s, err := s3.Open(context.Background(), cfg, "spool", node, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the blob store suite against versitygw.
func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blobtest.Backend {
		cfg := s3test.Bucket(t)
		cfg.Prefix = "mail/"
		cfg.SpillDir = t.TempDir()
		srv := s3test.Shared(t)
		return blobtest.Backend{
			Open: func(t *testing.T, node string) blob.Store { return open(t, cfg, node) },
			Damage: func(t *testing.T, key string, change func([]byte) []byte) {
				ctx := context.Background()
				c := srv.Client()
				name := cfg.Prefix + "spool/" + key
				o, err := c.GetObject(ctx, cfg.Bucket, name, minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				info, err := o.Stat()
				if err != nil {
					t.Fatal(err)
				}
				content, err := io.ReadAll(o)
				o.Close()
				if err != nil {
					t.Fatal(err)
				}
				meta := map[string]string{}
				for k, v := range info.UserMetadata {
					meta[k] = v
				}
				content = change(content)
				if _, err := c.PutObject(ctx, cfg.Bucket, name, bytes.NewReader(content), int64(len(content)),
					minio.PutObjectOptions{UserMetadata: meta, DisableMultipart: true}); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

// A store that cannot be used stops the start with one line naming the
// endpoint and the bucket and saying why, never the secret.
func TestStartErrors(t *testing.T) {
	good := s3test.Bucket(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "http://" + closed.Addr().String()
	closed.Close()
	for name, tc := range map[string]struct {
		change func(c *s3.Config)
		want   string
	}{
		"no bucket":      {func(c *s3.Config) { c.Bucket = "absent-bucket" }, "the bucket does not exist"},
		"wrong secret":   {func(c *s3.Config) { c.SecretAccessKey = "wrong-secret-0123" }, "the secret key is wrong"},
		"unknown key":    {func(c *s3.Config) { c.AccessKeyID = "nobody" }, "access key is not known"},
		"unreachable":    {func(c *s3.Config) { c.Endpoint = unreachable }, "cannot reach the endpoint"},
		"endpoint":       {func(c *s3.Config) { c.Endpoint = "127.0.0.1:9000" }, "endpoint must be a URL"},
		"no credentials": {func(c *s3.Config) { c.AccessKeyID, c.SecretAccessKey = "", "" }, "no credentials"},
		"secret file":    {func(c *s3.Config) { c.SecretAccessKey, c.SecretFile = "", "/nonexistent/secret" }, "secret_file"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", "")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "")
			cfg := good
			tc.change(&cfg)
			_, err := s3.Open(context.Background(), cfg, "spool", "node1", nil)
			if err == nil {
				t.Fatal("opened")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, cfg.Endpoint) || !strings.Contains(msg, cfg.Bucket) {
				t.Fatalf("error %q: want %q with the endpoint and bucket", msg, tc.want)
			}
			if strings.Contains(msg, "\n") || strings.Contains(msg, good.SecretAccessKey) {
				t.Fatalf("error %q: more than one line, or the secret", msg)
			}
		})
	}
}

// Credentials may come from a file or from the environment.
func TestCredentialSources(t *testing.T) {
	cfg := s3test.Bucket(t)
	secret := t.TempDir() + "/secret"
	if err := writeFile(secret, cfg.SecretAccessKey+"\n"); err != nil {
		t.Fatal(err)
	}
	fromFile := cfg
	fromFile.SecretAccessKey, fromFile.SecretFile = "", secret
	open(t, fromFile, "node1")

	t.Setenv("AWS_ACCESS_KEY_ID", cfg.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", cfg.SecretAccessKey)
	fromEnv := cfg
	fromEnv.AccessKeyID, fromEnv.SecretAccessKey = "", ""
	s := open(t, fromEnv, "node1")
	if err := s.CheckSpace(); err != nil {
		t.Fatalf("object stores report no space limit: %v", err)
	}
	if _, _, err := blob.Put(context.Background(), s, "m1", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
}

// An object without the recorded size and checksum (written by something
// else) is damaged, not trusted.
func TestObjectWithoutChecksumIsDamaged(t *testing.T) {
	cfg := s3test.Bucket(t)
	s := open(t, cfg, "node1")
	ctx := context.Background()
	body := "From: x@example.net\r\n\r\nplanted\r\n"
	if _, err := s3test.Shared(t).Client().PutObject(ctx, cfg.Bucket, "spool/node1/planted", strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "node1/planted"); !errors.Is(err, blob.ErrDamaged) {
		t.Fatalf("open: %v, want ErrDamaged", err)
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }
