package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseSpamdResponse(t *testing.T) {
	s, req, err := parseSpamdResponse(bufio.NewReader(strings.NewReader(
		"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 15.3 / 5.0\r\n\r\n")))
	if err != nil || s != 15.3 || req != 5 {
		t.Fatalf("got %v %v %v", s, req, err)
	}
	s, _, err = parseSpamdResponse(bufio.NewReader(strings.NewReader("SPAMD/1.1 0 EX_OK\r\nSpam: False ; -2.1 / 5.0\r\n\r\n")))
	if err != nil || s != -2.1 {
		t.Fatalf("negative score: %v %v", s, err)
	}
	for _, bad := range []string{
		"SPAMD/1.0 76 Bad header line: x\r\n",
		"SPAMD/1.1 0 EX_OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
		"SPAMD/1.1 0 EX_OK\r\nSpam: True ; x / 5\r\n",
		"",
	} {
		if _, _, err := parseSpamdResponse(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseSpamHeader(f *testing.F) {
	f.Add("True ; 15.3 / 5.0")
	f.Add("False;0/0")
	f.Fuzz(func(t *testing.T, v string) {
		s, r, err := parseSpamHeader(v)
		if err != nil {
			return
		}
		// Whatever parsed must be what is written between ';', '/' and the end.
		_, rest, _ := strings.Cut(v, ";")
		a, b, _ := strings.Cut(rest, "/")
		ws, _ := strconv.ParseFloat(strings.TrimSpace(a), 64)
		wr, _ := strconv.ParseFloat(strings.TrimSpace(b), 64)
		if fmt.Sprint(s) != fmt.Sprint(ws) || fmt.Sprint(r) != fmt.Sprint(wr) {
			t.Fatalf("%q -> %v %v", v, s, r)
		}
	})
}

// fakeSpamd answers one CHECK per connection with score = body length / 100
// and records whether the announced Content-length matched the body.
func fakeSpamd(t *testing.T) (addr string, bodies chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	bodies = make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tp := textproto.NewReader(bufio.NewReader(c))
				line, err := tp.ReadLine()
				if err != nil || line != "CHECK SPAMC/1.5" {
					fmt.Fprintf(c, "SPAMD/1.5 76 bad request\r\n")
					return
				}
				h, err := tp.ReadMIMEHeader()
				if err != nil {
					return
				}
				n, _ := strconv.Atoi(h.Get("Content-Length"))
				body := make([]byte, n)
				if _, err := io.ReadFull(tp.R, body); err != nil {
					return
				}
				bodies <- string(body)
				fmt.Fprintf(c, "SPAMD/1.1 0 EX_OK\r\nSpam: False ; %.2f / 5.0\r\n\r\n", float64(n)/100)
			}()
		}
	}()
	return ln.Addr().String(), bodies
}

func TestSpamcCheckSpeaksSPAMC(t *testing.T) {
	addr, bodies := fakeSpamd(t)
	msg := "Subject: hi\r\n\r\n" + strings.Repeat("x", 235) + "\r\n"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, req, err := spamcCheck(ctx, addr, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if got := <-bodies; got != msg {
		t.Fatalf("spamd received %q", got)
	}
	if s != float64(len(msg))/100 || req != 5 {
		t.Fatalf("score %v required %v", s, req)
	}
}

func TestSpamcCheckHonoursContext(t *testing.T) {
	// A server that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := spamcCheck(ctx, ln.Addr().String(), []byte("x\r\n")); err == nil {
		t.Fatal("no error from a silent server")
	}
}
