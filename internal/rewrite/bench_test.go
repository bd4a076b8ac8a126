package rewrite

import (
	"context"
	"io"
	"testing"
)

// BenchmarkApply rewrites a message with a 10 MB attachment: a subject tag,
// a banner on the text part and the last part stripped, streaming.
func BenchmarkApply(b *testing.B) {
	const lines = 10 << 20 / len(bigLine)
	spec := Spec{SubjectTag: "[SPAM]", Banner: "注意", StripParts: []string{"3"}, PrependHeaders: prepend}
	b.SetBytes(int64(lines * len(bigLine)))
	for b.Loop() {
		if err := Apply(context.Background(), io.Discard, bigMessage(lines), spec); err != nil {
			b.Fatal(err)
		}
	}
}
