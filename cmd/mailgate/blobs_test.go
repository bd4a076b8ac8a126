package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/testutil/s3test"
)

// A bucket that does not exist, or a wrong secret, stops mailgate with one
// line naming the endpoint and the bucket, never the secret.
func TestBadBlobStoreIsOneLine(t *testing.T) {
	b := s3test.Bucket(t)
	for name, tc := range map[string]struct{ bucket, secret, want string }{
		"bucket": {"no-such-bucket", b.SecretAccessKey, "the bucket does not exist"},
		"secret": {b.Bucket, "wrong-Secret-123", "the secret key is wrong"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := writeConfig(t, fmt.Sprintf("data_dir = \"data\"\n[blobs]\ndriver = \"s3\"\nendpoint = %q\nbucket = %q\npath_style = true\naccess_key_id = %q\nsecret_access_key = %q\n",
				b.Endpoint, tc.bucket, b.AccessKeyID, tc.secret))
			out, err := runCLI(t, "-c", cfg, "tenant", "list")
			if err == nil {
				t.Fatalf("started with a bad blob store: %q", out)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, b.Endpoint) || !strings.Contains(msg, tc.bucket) ||
				strings.Contains(msg, "\n") || strings.Contains(msg, tc.secret) {
				t.Fatalf("error %q: want one line with %q, the endpoint and the bucket, without the secret", msg, tc.want)
			}
		})
	}
}
