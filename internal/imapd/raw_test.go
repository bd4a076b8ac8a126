package imapd_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// raw is a line-level IMAP client, for checking exact answers.
type raw struct {
	t   testing.TB
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func dialRaw(t testing.TB, addr string, tlsCfg *tls.Config) *raw {
	t.Helper()
	var c net.Conn
	var err error
	if tlsCfg != nil {
		c, err = tls.Dial("tcp", addr, tlsCfg)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := &raw{t: t, c: c, r: bufio.NewReader(c)}
	if g := r.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return r
}

var literalRE = regexp.MustCompile(`\{(\d+)\+?\}$`)

// line reads one response line with any literals it carries inlined.
func (r *raw) line() string {
	r.t.Helper()
	var b strings.Builder
	for {
		l, err := r.r.ReadString('\n')
		if err != nil {
			r.t.Fatalf("read: %v (after %q)", err, b.String()+l)
		}
		l = strings.TrimRight(l, "\r\n")
		b.WriteString(l)
		m := literalRE.FindStringSubmatch(l)
		if m == nil {
			return b.String()
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.r, buf); err != nil {
			r.t.Fatalf("read literal: %v", err)
		}
		b.WriteString("\n")
		b.Write(buf)
	}
}

// send writes a tagged command and returns its tag.
func (r *raw) send(cmd string) string {
	r.t.Helper()
	r.tag++
	tag := fmt.Sprintf("a%d", r.tag)
	if _, err := fmt.Fprintf(r.c, "%s %s\r\n", tag, cmd); err != nil {
		r.t.Fatal(err)
	}
	return tag
}

// do runs a command and returns the untagged lines and the tagged one.
func (r *raw) do(cmd string) ([]string, string) {
	r.t.Helper()
	return r.wait(r.send(cmd))
}

func (r *raw) wait(tag string) ([]string, string) {
	r.t.Helper()
	var untagged []string
	for {
		l := r.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, l
		}
		untagged = append(untagged, l)
	}
}

// ok runs a command that must succeed.
func (r *raw) ok(cmd string) []string {
	r.t.Helper()
	u, tagged := r.do(cmd)
	if !strings.Contains(tagged, " OK") {
		r.t.Fatalf("%s: %q (untagged %q)", cmd, tagged, u)
	}
	return u
}

// loginRaw opens an implicit-TLS connection and logs in.
func (n *node) loginRaw(t testing.TB, user string) *raw {
	r := dialRaw(t, n.tlsAddr, n.clientTL)
	r.ok(fmt.Sprintf("LOGIN %s %s", user, quote(password)))
	return r
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func has(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
