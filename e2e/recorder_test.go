package e2e

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// mailParams is what a downstream saw in one MAIL command.
type mailParams struct {
	From string
	UTF8 bool
	Body smtp.BodyType
}

// recorder is a downstream that remembers the MAIL parameters it was given,
// which the sink does not keep. Safe for concurrent use.
type recorder struct {
	mu    sync.Mutex
	mails []mailParams
	addr  string
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	srv := smtp.NewServer(r)
	srv.Domain = "recorder.invalid"
	srv.EnableSMTPUTF8 = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *recorder) received() []mailParams {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mailParams(nil), r.mails...)
}

func (r *recorder) NewSession(*smtp.Conn) (smtp.Session, error) { return &recSession{r: r}, nil }

type recSession struct {
	r *recorder
	p mailParams
}

func (s *recSession) Mail(from string, o *smtp.MailOptions) error {
	s.p = mailParams{From: from}
	if o != nil {
		s.p.UTF8, s.p.Body = o.UTF8, o.Body
	}
	return nil
}

func (s *recSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (s *recSession) Data(rd io.Reader) error {
	if _, err := io.Copy(io.Discard, rd); err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.mails = append(s.r.mails, s.p)
	s.r.mu.Unlock()
	return nil
}

func (s *recSession) Reset()        {}
func (s *recSession) Logout() error { return nil }
