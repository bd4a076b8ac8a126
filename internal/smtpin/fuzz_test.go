package smtpin

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/config"
	"github.com/mailgate/mailgate/internal/store"
)

// pipeListener hands net.Pipe server ends to the SMTP server.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

type recordingQueue struct {
	mu   sync.Mutex
	msgs []store.Message
	rcpt [][]store.Recipient
}

func (q *recordingQueue) Enqueue(ctx context.Context, m store.Message, rs []store.Recipient, ev []store.Event) error {
	q.mu.Lock()
	q.msgs = append(q.msgs, m)
	q.rcpt = append(q.rcpt, rs)
	q.mu.Unlock()
	return nil
}

// FuzzSession feeds arbitrary client bytes to an inbound session after the
// greeting. Whatever arrives, the server must not panic, and anything it
// accepts must be for a served user and free of bare CR/LF.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\n.\nMAIL FROM:<e@v.il>\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<alice%x@example.test> NOTIFY=NEVER\r\nRCPT TO:<@a,@b:alice@example.test> ORCPT=rfc822;x@y\r\nDATA\r\n\r\n.\r\n",
		"HELO x\r\nAUTH PLAIN AGFAYg==\r\nSTARTTLS\r\nBDAT 5 LAST\r\nhello",
		"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 10\r\n0123456789BDAT 3 LAST\r\nabc",
		"EHLO \x00\xff\r\nMAIL FROM:<\xe3\x81\x82@b.test> SMTPUTF8\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n\r\n\x00.\r\n.\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	q := &recordingQueue{}
	d := inboundDeps(f, q, 1<<20)
	d.Limits.CommandTimeout = config.D(2 * time.Second)
	sp := d.Spool
	srv := New(d)
	ln := &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
	go srv.Serve(ln)
	defer srv.Shutdown(ctx)

	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		ln.ch <- server
		defer client.Close()
		client.SetDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 512)
		if _, err := client.Read(buf); err != nil { // greeting
			t.Fatalf("no greeting: %v", err)
		}
		go func() {
			client.Write(in)
			client.Write([]byte("\r\n.\r\nQUIT\r\n"))
		}()
		io.Copy(io.Discard, client) // until QUIT, close or deadline
		q.mu.Lock()
		defer q.mu.Unlock()
		for i, m := range q.msgs {
			if len(q.rcpt[i]) == 0 {
				t.Fatalf("message %s accepted without recipients", m.ID)
			}
			for _, r := range q.rcpt[i] {
				// The only user is alice (local parts match case-insensitively);
				// postmaster@ of a served domain is always accepted (RFC 5321 4.5.1).
				if !strings.EqualFold(r.Addr, "alice@example.test") && !strings.EqualFold(r.Addr, "postmaster@example.test") {
					t.Fatalf("accepted for %q", r.Addr)
				}
			}
			fb, err := sp.Open(ctx, m.BlobKey)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(fb)
			fb.Close()
			if bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\r")) {
				t.Fatalf("accepted message with bare CR/LF: %q", b)
			}
			sp.Delete(ctx, m.BlobKey)
		}
		q.msgs, q.rcpt = nil, nil
	})
}
