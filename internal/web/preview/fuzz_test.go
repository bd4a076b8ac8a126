package preview

import (
	"bytes"
	"context"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// FuzzRender checks that no input makes Render fail or panic and that every
// document it produces keeps the contract of checkDocument.
func FuzzRender(f *testing.F) {
	for _, raw := range loadCorpus(f) {
		f.Add(raw)
	}
	f.Add([]byte("Content-Type: text/html\r\n\r\n<a href=\"&#x6A;avascript:x\">x</a><img src=http://x/>"))
	lim := mailtext.Limits{MaxDepth: 10, MaxParts: 50, MaxHeaderBytes: 4 << 10, MaxTextBytes: 32 << 10, MaxDecodedBytes: 256 << 10}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, allow := range []bool{false, true} {
			v, err := Render(context.Background(), bytes.NewReader(raw), Options{AllowRemoteImages: allow, Limits: lim})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if bad := checkDocument(Document(v), allow); len(bad) != 0 {
				t.Fatalf("document breaks the contract: %v\n%s", bad, Document(v))
			}
			for _, p := range append(append([]Party{}, v.From...), v.ReplyTo...) {
				for _, r := range p.Name + p.Address {
					if invisible(r) {
						t.Fatalf("%U left in party %+v", r, p)
					}
				}
			}
		}
	})
}
