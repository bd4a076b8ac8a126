package smtp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// scriptServer plays a server on one end of a pipe. Each step reads the
// lines it names (their prefixes) and only then writes its replies, so a
// step of several lines proves the client sent them without waiting.
// With lockstep, a server without PIPELINING fails the test when a
// command arrives before the previous one was answered.
type scriptStep struct {
	read    []string
	replies []string
}

func runScript(t *testing.T, ext string, lockstep bool, steps []scriptStep) (*Client, chan error) {
	t.Helper()
	cc, sc := net.Pipe()
	done := make(chan error, 1)
	go func() {
		defer sc.Close()
		r := bufio.NewReader(sc)
		say := func(s string) error { _, err := io.WriteString(sc, s+"\r\n"); return err }
		if err := say("220 test ESMTP"); err != nil {
			done <- err
			return
		}
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "EHLO") {
			done <- errors.New("no EHLO: " + line)
			return
		}
		lines := []string{"250-test"}
		if ext != "" {
			lines = append(lines, "250-"+ext)
		}
		lines = append(lines, "250 8BITMIME")
		for _, l := range lines {
			say(l)
		}
		for _, st := range steps {
			for i, want := range st.read {
				line, err := r.ReadString('\n')
				if err != nil {
					done <- err
					return
				}
				if !strings.HasPrefix(line, want) {
					done <- errors.New("read " + strings.TrimSpace(line) + ", want " + want)
					return
				}
				if lockstep && i == len(st.read)-1 && r.Buffered() > 0 {
					done <- errors.New("a command came before " + strings.TrimSpace(line) + " was answered")
					return
				}
			}
			for _, rep := range st.replies {
				if err := say(rep); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	c := NewClient(cc)
	c.CommandTimeout = 5 * time.Second
	c.SubmissionTimeout = 5 * time.Second
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c, done
}

func replyCode(err error) int {
	var se *SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestSendEnvelopePipelined(t *testing.T) {
	rcpts := []string{"a@x.test", "b@x.test", "c@x.test"}
	c, done := runScript(t, "PIPELINING", false, []scriptStep{
		{read: []string{"MAIL FROM:<s@x.test>", "RCPT TO:<a@", "RCPT TO:<b@", "RCPT TO:<c@", "DATA"},
			replies: []string{"250 ok", "250 ok", "550 5.1.1 no such user", "250 ok", "354 go"}},
		{read: []string{"Subject: hi", "", "body", "."}, replies: []string{"250 2.0.0 queued"}},
	})
	env, err := c.SendEnvelope("s@x.test", nil, rcpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if env.Mail != nil || env.DataErr != nil || env.Data == nil {
		t.Fatalf("envelope %+v", env)
	}
	if len(env.Rcpts) != 3 || env.Rcpts[0] != nil || replyCode(env.Rcpts[1]) != 550 || env.Rcpts[2] != nil {
		t.Fatalf("recipient replies %v", env.Rcpts)
	}
	if strings.Join(c.rcpts, ",") != "a@x.test,c@x.test" {
		t.Fatalf("accepted recipients %v", c.rcpts)
	}
	io.WriteString(env.Data, "Subject: hi\r\n\r\nbody\r\n")
	resp, err := env.Data.CloseWithResponse()
	if err != nil || !strings.Contains(resp.StatusText, "queued") {
		t.Fatalf("end of data: %v %v", resp, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Refusals keep the connection in step: every reply is read, and a
// following RSET gets its own answer.
func TestSendEnvelopeRefusals(t *testing.T) {
	rcpts := []string{"a@x.test", "b@x.test"}
	rset := scriptStep{read: []string{"RSET"}, replies: []string{"250 reset"}}
	for _, tc := range []struct {
		name    string
		replies []string
		extra   []scriptStep
		mail    int
		rcpt    []int
		data    int
	}{
		{"sender refused", []string{"550 5.7.1 sender refused", "503 5.5.1 no MAIL", "503 5.5.1 no MAIL", "503 5.5.1 no valid recipients"}, nil,
			550, nil, 0},
		{"no recipient, DATA refused", []string{"250 ok", "550 5.1.1 no", "450 4.2.1 later", "554 5.5.1 no valid recipients"}, nil,
			0, []int{550, 450}, 554},
		{"no recipient, DATA taken", []string{"250 ok", "550 5.1.1 no", "550 5.1.1 no", "354 go"},
			[]scriptStep{{read: []string{"."}, replies: []string{"554 5.5.1 empty"}}}, 0, []int{550, 550}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			steps := append([]scriptStep{{read: []string{"MAIL", "RCPT", "RCPT", "DATA"}, replies: tc.replies}}, tc.extra...)
			c, done := runScript(t, "PIPELINING", false, append(steps, rset))
			env, err := c.SendEnvelope("s@x.test", nil, rcpts, nil)
			if err != nil {
				t.Fatal(err)
			}
			if env.Data != nil || replyCode(env.Mail) != tc.mail {
				t.Fatalf("envelope %+v", env)
			}
			if len(env.Rcpts) != len(tc.rcpt) {
				t.Fatalf("recipient replies %v, want codes %v", env.Rcpts, tc.rcpt)
			}
			for i, code := range tc.rcpt {
				if replyCode(env.Rcpts[i]) != code {
					t.Fatalf("recipient replies %v, want codes %v", env.Rcpts, tc.rcpt)
				}
			}
			switch {
			case tc.data == -1 && env.DataErr == nil, tc.data >= 0 && replyCode(env.DataErr) != tc.data:
				t.Fatalf("DATA reply %v, want %d", env.DataErr, tc.data)
			}
			if err := c.Reset(); err != nil {
				t.Fatalf("RSET after the envelope: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A 421 reply is the server closing: the error says so and no further
// reply is waited for.
func TestSendEnvelopeClosing(t *testing.T) {
	c, done := runScript(t, "PIPELINING", false, []scriptStep{
		{read: []string{"MAIL", "RCPT", "DATA"}, replies: []string{"421 4.3.2 shutting down"}},
	})
	env, err := c.SendEnvelope("s@x.test", nil, []string{"a@x.test"}, nil)
	if replyCode(err) != 421 || env.Data != nil || len(env.Rcpts) != 0 {
		t.Fatalf("envelope %+v, error %v", env, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Without PIPELINING each command waits for its reply.
func TestSendEnvelopeInTurn(t *testing.T) {
	c, done := runScript(t, "", true, []scriptStep{
		{read: []string{"MAIL"}, replies: []string{"250 ok"}},
		{read: []string{"RCPT TO:<a@"}, replies: []string{"550 5.1.1 no"}},
		{read: []string{"RCPT TO:<b@"}, replies: []string{"250 ok"}},
		{read: []string{"DATA"}, replies: []string{"354 go"}},
		{read: []string{"x", "."}, replies: []string{"250 queued"}},
	})
	env, err := c.SendEnvelope("s@x.test", nil, []string{"a@x.test", "b@x.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if env.Data == nil || len(env.Rcpts) != 2 || replyCode(env.Rcpts[0]) != 550 || env.Rcpts[1] != nil {
		t.Fatalf("envelope %+v", env)
	}
	io.WriteString(env.Data, "x\r\n")
	if err := env.Data.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A long envelope goes in groups that fit RFC 2920's assumed TCP window,
// each group's replies read before the next is sent. The server here
// takes what the client wrote at once as a group, checks its size, and
// answers all of it before reading on.
func TestSendEnvelopeGroups(t *testing.T) {
	cc, sc := net.Pipe()
	rcpts := make([]string, 300)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("user%03d@example.test", i)
	}
	done := make(chan error, 1)
	var groups []int
	go func() {
		defer sc.Close()
		r := bufio.NewReaderSize(sc, 1<<16)
		say := func(s string) { io.WriteString(sc, s+"\r\n") }
		say("220 test ESMTP")
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "EHLO") {
			done <- fmt.Errorf("no EHLO: %q %v", l, err)
			return
		}
		say("250-test")
		say("250 PIPELINING")
		for {
			var group []string
			n := 0
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					done <- err
					return
				}
				group = append(group, strings.TrimSpace(l))
				n += len(l)
				if r.Buffered() == 0 {
					break
				}
			}
			groups = append(groups, n)
			for _, l := range group {
				k := -1
				if strings.HasPrefix(l, "RCPT") {
					fmt.Sscanf(l, "RCPT TO:<user%d@", &k)
				}
				switch {
				case strings.HasPrefix(l, "MAIL"):
					say("250 ok")
				case k%2 == 1:
					say("550 5.1.1 no")
				case strings.HasPrefix(l, "RCPT"):
					say("250 ok")
				case l == "DATA":
					say("354 go")
					for {
						l, err := r.ReadString('\n')
						if err != nil {
							done <- err
							return
						}
						if l == ".\r\n" {
							break
						}
					}
					say("250 queued")
					done <- nil
					return
				default:
					done <- fmt.Errorf("unexpected %q", l)
					return
				}
			}
		}
	}()
	c := NewClient(cc)
	c.CommandTimeout = 5 * time.Second
	c.SubmissionTimeout = 5 * time.Second
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	env, err := c.SendEnvelope("s@example.test", nil, rcpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if env.Data == nil || len(env.Rcpts) != len(rcpts) || len(c.rcpts) != len(rcpts)/2 {
		t.Fatalf("envelope %+v, %d accepted", env, len(c.rcpts))
	}
	for i, err := range env.Rcpts {
		if (i%2 == 1) != (replyCode(err) == 550) || (i%2 == 0) != (err == nil) {
			t.Fatalf("recipient %d: %v", i, err)
		}
	}
	io.WriteString(env.Data, "x\r\n")
	if err := env.Data.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(groups) < 2 {
		t.Fatalf("groups of %v bytes, want the envelope split", groups)
	}
	for _, n := range groups {
		if n > pipelineWindow {
			t.Fatalf("groups of %v bytes, want at most %d each", groups, pipelineWindow)
		}
	}
}

// A 421 to a RCPT stands for it and the recipients after it, with or
// without PIPELINING.
func TestSendEnvelopeClosingAtRcpt(t *testing.T) {
	rcpts := []string{"a@x.test", "b@x.test", "c@x.test"}
	for _, ext := range []string{"PIPELINING", ""} {
		steps := []scriptStep{{read: []string{"MAIL", "RCPT TO:<a@", "RCPT TO:<b@"}, replies: []string{"250 ok", "250 ok", "421 4.3.2 bye"}}}
		if ext == "" {
			steps = []scriptStep{
				{read: []string{"MAIL"}, replies: []string{"250 ok"}},
				{read: []string{"RCPT TO:<a@"}, replies: []string{"250 ok"}},
				{read: []string{"RCPT TO:<b@"}, replies: []string{"421 4.3.2 bye"}},
			}
		}
		c, done := runScript(t, ext, ext == "", steps)
		env, err := c.SendEnvelope("s@x.test", nil, rcpts, nil)
		if replyCode(err) != 421 || env.Data != nil || len(env.Rcpts) != 3 ||
			env.Rcpts[0] != nil || replyCode(env.Rcpts[1]) != 421 || replyCode(env.Rcpts[2]) != 421 {
			t.Fatalf("%q: envelope %+v, error %v", ext, env, err)
		}
		c.conn.Close()
		if err := <-done; err != nil {
			t.Fatalf("%q: %v", ext, err)
		}
	}
}
