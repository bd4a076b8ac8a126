package av

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// BenchmarkWalkParts walks a message with a 4 MB base64 attachment, reading
// every decoded leaf.
func BenchmarkWalkParts(b *testing.B) {
	raw := message("bench", multipart("mixed", "m",
		textPart("hello"),
		attachment("big.bin", "application/octet-stream", bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)),
		rfc822(message("inner", textPart("inner"))),
	))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := walkParts(context.Background(), bytes.NewReader(raw), limitsFrom(mailtext.Limits{}), func(_ leafPart, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}
