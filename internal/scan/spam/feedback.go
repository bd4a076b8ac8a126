package spam

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // charsets of forwarded parts' headers
)

// ExtractForwarded returns the messages attached (message/rfc822) to a
// feedback mail — how "Forward as attachment" in Outlook, Gmail and
// Thunderbird sends them — at most max of them, each at most maxSize
// bytes. A mail without attachments yields nothing: its own headers are
// the reporter's, not the spammer's, and training on them would teach the
// model the wrong thing.
func ExtractForwarded(r io.Reader, max int, maxSize int64) [][]byte {
	e, err := message.Read(io.LimitReader(r, 64<<20))
	if err != nil && e == nil {
		return nil
	}
	var out [][]byte
	var walk func(e *message.Entity, depth int)
	walk = func(e *message.Entity, depth int) {
		if len(out) >= max || depth > 10 {
			return
		}
		mt, _, _ := mime.ParseMediaType(e.Header.Get("Content-Type"))
		if strings.EqualFold(mt, "message/rfc822") {
			b, err := io.ReadAll(io.LimitReader(e.Body, maxSize+1))
			if err == nil && int64(len(b)) <= maxSize && len(bytes.TrimSpace(b)) > 0 {
				out = append(out, b)
			}
			return
		}
		mr := e.MultipartReader()
		if mr == nil {
			return
		}
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) || err != nil {
				return
			}
			walk(p, depth+1)
		}
	}
	walk(e, 0)
	return out
}
