package delivery

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/sink"
)

// An MX that answers EHLO with continuation lines without end (here 8 MB
// of them, then an end, and then it takes mail like any server) is a
// failed connection once the reply passes the client's bound: the message
// goes to the next MX. Without the bound the client read all 8 MB and
// delivered to it.
func TestEndlessReplyIsAFailedConnection(t *testing.T) {
	sk, err := sink.Start("127.0.0.1:0", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Close()
	_, port, _ := net.SplitHostPort(sk.Addr())
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", port))
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2:%s: %v", port, err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go floodEHLO(c, 8<<20)
		}
	}()
	c, ts := twoMX(t, "flood", port)
	rs := c.Deliver(context.Background(), ts, Request{From: "alice@example.test", Rcpts: []string{"bob@partner.test"}, Body: body("Subject: x\r\n\r\nx\r\n")})
	if !rs[0].OK() || rs[0].Remote != "live.partner.test" {
		t.Fatalf("result %+v, want delivery to the next MX", rs[0])
	}
	c.CloseIdle(true)
}

// floodEHLO greets, answers EHLO with n bytes of continuation lines and a
// last line, and then says 250 to every command and takes DATA.
func floodEHLO(c net.Conn, n int) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	say := func(l string) bool {
		w.WriteString(l + "\r\n")
		return w.Flush() == nil
	}
	say("220 flood.partner.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			for i := 0; i < n; i += 64 {
				if _, err := fmt.Fprintf(w, "250-%058d\r\n", i); err != nil {
					return
				}
			}
			if !say("250 flood.partner.test") {
				return
			}
		case cmd == "DATA":
			say("354 go ahead")
			for {
				l, err := r.ReadString('\n')
				if err != nil || l == ".\r\n" {
					break
				}
			}
			say("250 2.0.0 taken")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 2.0.0 ok")
		}
	}
}
