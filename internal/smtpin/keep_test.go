package smtpin

import (
	"bytes"
	"context"
	"io"
	"net"
	gosmtp "net/smtp"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/internal/blob"
	"github.com/mailgate/mailgate/internal/store"
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

// writtenQueue records, for each message, the bytes the request carries
// for its blob (blob.Written) and the blob's own bytes.
type writtenQueue struct {
	sp      blob.Store
	mu      sync.Mutex
	written [][]byte
	stored  [][]byte
}

func (q *writtenQueue) Enqueue(ctx context.Context, m store.Message, _ []store.Recipient, _ []store.Event) error {
	r, err := q.sp.Open(ctx, m.BlobKey)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return err
	}
	q.mu.Lock()
	q.written = append(q.written, blob.Written(ctx, m.BlobKey))
	q.stored = append(q.stored, b)
	q.mu.Unlock()
	return nil
}

// Inbound DATA hands the pipeline the bytes it wrote to the spool, the
// same bytes the blob holds, for messages up to keepMax; a larger one is
// read from the spool.
func TestInboundDataCarriesWrittenBytes(t *testing.T) {
	ctx := context.Background()
	q := &writtenQueue{}
	d := inboundDeps(t, q, 4<<20)
	q.sp = d.Spool
	srv := New(d)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)
	small := "From: s@example.net\r\nSubject: small\r\n\r\nbody\r\n"
	large := "From: s@example.net\r\nSubject: large\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", keepMax/78+10)
	for _, body := range []string{small, large} {
		if err := gosmtp.SendMail(ln.Addr().String(), nil, "s@example.net", []string{"alice@example.test"}, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.stored) != 2 {
		t.Fatalf("%d messages queued, want 2", len(q.stored))
	}
	if q.written[0] == nil || !bytes.Equal(q.written[0], q.stored[0]) {
		t.Errorf("small message: carried %d bytes, blob holds %d; want the same bytes", len(q.written[0]), len(q.stored[0]))
	}
	if q.written[1] != nil {
		t.Errorf("large message (%d bytes): carried %d bytes, want none above %d", len(q.stored[1]), len(q.written[1]), keepMax)
	}
}
