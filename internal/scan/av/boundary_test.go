package av

import (
	"reflect"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// TestWalkCharsetBoundaryMatchesMailtext: an RFC 2231 boundary with a
// charset is read as mailtext reads it (converted to UTF-8), so the walker
// splits the body at the same delimiter and numbers the same leaf "1". A
// walker that kept the raw percent-decoded bytes would split at the
// latin-1 line instead and scan a different part under the same path.
func TestWalkCharsetBoundaryMatchesMailtext(t *testing.T) {
	t.Parallel()
	raw := []byte("Content-Type: multipart/mixed; boundary*=iso-8859-1''a%E9\r\n\r\n" +
		"--a\xc3\xa9\r\nContent-Type: application/x-first\r\n\r\nbody\r\n" +
		"--a\xe9\r\nContent-Type: application/x-second\r\n\r\nlatin1\r\n" +
		"--a\xc3\xa9--\r\n")
	got, res := walkLeaves(t, raw, limitsFrom(mailtext.Limits{}))
	want, _ := mailtextLeaves(t, raw, mailtext.Limits{})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("walker leaves %+v, mailtext leaves %+v", got, want)
	}
	if len(got) != 1 || got[0].ContentType != "application/x-first" || res.Incomplete != "" {
		t.Fatalf("leaves %+v (incomplete %q), want only application/x-first", got, res.Incomplete)
	}
}
