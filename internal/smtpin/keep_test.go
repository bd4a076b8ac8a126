package smtpin

import (
	"bytes"
	"strings"
	"testing"
)

// keepWriter passes everything on and keeps a copy up to its limit, and
// nothing once the message is larger.
func TestKeepWriter(t *testing.T) {
	var dst bytes.Buffer
	k := &keepWriter{w: &dst, max: 10}
	k.Write([]byte("12345"))
	k.Write([]byte("67890"))
	if string(k.b) != "1234567890" || dst.String() != "1234567890" {
		t.Fatalf("kept %q, wrote %q", k.b, dst.String())
	}
	k.Write([]byte("x"))
	k.Write([]byte("y"))
	if k.b != nil || dst.String() != "1234567890xy" {
		t.Fatalf("past the limit: kept %q, wrote %q", k.b, dst.String())
	}
	big := &keepWriter{w: &dst, max: 4}
	big.Write([]byte(strings.Repeat("z", 5)))
	if big.b != nil {
		t.Fatalf("kept %q of a write larger than the limit", big.b)
	}
}
