package sink

import (
	"net/smtp"
	"strings"
	"testing"
)

// A message records who sent it: the envelope and the client's EHLO name.
func TestMessageRecordsEnvelopeAndHelo(t *testing.T) {
	s, err := Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mx2.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: hi\r\n\r\nbody\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	ms := s.Messages()
	if len(ms) != 1 || ms[0].Helo != "mx2.example.test" || ms[0].From != "a@example.test" ||
		strings.Join(ms[0].To, ",") != "b@example.test" || !strings.Contains(string(ms[0].Data), "body") {
		t.Fatalf("messages %+v", ms)
	}
}
