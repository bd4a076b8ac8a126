package preview

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkRender renders the whole hostile corpus (one op = every file) and
// a 200 KB HTML newsletter, the cost of opening a quarantined message.
func BenchmarkRender(b *testing.B) {
	files, _ := filepath.Glob("testdata/hostile/*.eml")
	var msgs [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, raw)
	}
	b.Run("corpus", func(b *testing.B) {
		for b.Loop() {
			for _, m := range msgs {
				if _, err := Render(context.Background(), bytes.NewReader(m), Options{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	var nl strings.Builder
	nl.WriteString("From: News <news@example.com>\r\nSubject: =?UTF-8?B?5pyI5YiK44OL44Ol44O844K5?=\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>")
	for i := 0; nl.Len() < 200<<10; i++ {
		fmt.Fprintf(&nl, `<table style="width:100%%;color:#333"><tr><td><a href="https://example.com/item/%d">商品 %d のご案内</a><img src="https://cdn.example.com/%d.png" width="80"></td></tr></table>`+"\r\n", i, i, i)
	}
	nl.WriteString("</body></html>\r\n")
	newsletter := []byte(nl.String())
	b.Run("newsletter-200KB", func(b *testing.B) {
		b.SetBytes(int64(len(newsletter)))
		for b.Loop() {
			v, err := Render(context.Background(), bytes.NewReader(newsletter), Options{})
			if err != nil {
				b.Fatal(err)
			}
			if v.RemoteImages == 0 {
				b.Fatal("remote images not blocked")
			}
		}
	})
}
