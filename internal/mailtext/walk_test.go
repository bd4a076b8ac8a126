package mailtext

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyVisitor writes back every line the walk reads: header lines, the
// lines between parts and the raw bodies. Encoded messages are left closed
// (their insides are read from decoded bytes, not from the input).
type copyVisitor struct{ out bytes.Buffer }

func (c *copyVisitor) HeaderLine(_ *Node, line []byte, _ HeaderLineKind, _ bool) error {
	c.out.Write(line)
	return nil
}

func (c *copyVisitor) RawLine(line []byte) error {
	c.out.Write(line)
	return nil
}

func (c *copyVisitor) Header(n *Node) (Action, error) {
	if n.Message && !IdentityCTE(n.CTE) {
		return AsLeaf, nil
	}
	return Descend, nil
}

func (c *copyVisitor) Body(_ *Node, b *Body) error {
	r := b.Raw()
	if _, err := io.Copy(&c.out, r); err != nil {
		return err
	}
	c.out.Write(r.DelimiterEOL())
	return nil
}

// copyThrough walks data with c and returns what c wrote plus what the walk
// left unread.
func copyThrough(t testing.TB, data []byte, lim Limits) []byte {
	t.Helper()
	c := &copyVisitor{}
	s := NewLineReader(bytes.NewReader(data), LineBufSize)
	if err := WalkLines(s, lim, c); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteRest(&c.out); err != nil {
		t.Fatal(err)
	}
	return c.out.Bytes()
}

// The lines a visitor is given add up to the input, byte for byte: nothing
// is read that no visitor method sees (the rewriter relies on it).
func TestWalkLinesAddUp(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	more, _ := filepath.Glob(filepath.Join("..", "rewrite", "testdata", "*.eml"))
	for _, f := range append(files, more...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := copyThrough(t, data, Limits{}); !bytes.Equal(got, data) {
			t.Errorf("%s: copy differs from the input", f)
		}
	}
}

func FuzzWalkLinesAddUp(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\npre\n--a\nContent-Type: multipart/alternative; boundary=b\n\n--b\n\nx\n--a--\nepi\n"))
	lim := Limits{MaxDepth: 4, MaxParts: 16, MaxHeaderBytes: 256}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got := copyThrough(t, data, lim); !bytes.Equal(got, data) {
			t.Fatalf("copy differs from the input:\n%q\n%q", got, data)
		}
	})
}

// nodeLog records what a walk shows of each entity.
type nodeLog struct {
	lines    []string
	asLeaf   func(n *Node) bool
	stopAt   string
	problems []ProblemKind
}

func (l *nodeLog) Start(n *Node) error {
	if n.Path == l.stopAt {
		return ErrStop
	}
	return nil
}

func (l *nodeLog) Header(n *Node) (Action, error) {
	if l.asLeaf != nil && l.asLeaf(n) {
		return AsLeaf, nil
	}
	return Descend, nil
}

func (l *nodeLog) Body(n *Node, b *Body) error {
	data, err := io.ReadAll(b.Decoded())
	alt := ""
	if a := n.AltParent(); a != nil {
		alt = " alt=" + a.Section
	}
	l.lines = append(l.lines, fmt.Sprintf("%s %s msg=%v deep=%v%s %q", n.Path, n.MediaType, n.InMessage, n.DepthExceeded, alt, data))
	return err
}

func (l *nodeLog) End(n *Node) error {
	if n.Message {
		l.lines = append(l.lines, fmt.Sprintf("end %s size=%d", n.Path, n.Size))
	}
	return nil
}

func (l *nodeLog) Problem(_ *Node, p Problem) { l.problems = append(l.problems, p.Kind) }

const nestedMail = "Content-Type: multipart/mixed; boundary=o\r\n\r\n" +
	"--o\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n" +
	"--a\r\n\r\nplain\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--a--\r\n" +
	"--o\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
	"U3ViamVjdDogaQ0KDQpib2R5\r\n" + // "Subject: i\r\n\r\nbody", 18 bytes
	"--o\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nA=3DB\r\n--o--\r\n"

func TestWalkNodes(t *testing.T) {
	l := &nodeLog{}
	if err := Walk(context.Background(), strings.NewReader(nestedMail), Limits{}, l); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`1.1 text/plain msg=false deep=false alt=1 "plain"`,
		`1.2 text/html msg=false deep=false alt=1 "<p>x</p>"`,
		`2.1 text/plain msg=true deep=false "body"`,
		`end 2 size=18`,
		`3 application/octet-stream msg=false deep=false "A=B"`,
	}
	if strings.Join(l.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk:\n%s\nwant:\n%s", strings.Join(l.lines, "\n"), strings.Join(want, "\n"))
	}

	// A message left closed is a leaf, transfer-decoded; a container too
	// deep to open is read as is and reported.
	l = &nodeLog{asLeaf: func(n *Node) bool { return n.Message }}
	if err := Walk(context.Background(), strings.NewReader(nestedMail), Limits{MaxDepth: 1}, l); err != nil {
		t.Fatal(err)
	}
	want = []string{
		`1 multipart/alternative msg=false deep=true "--a\r\n\r\nplain\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--a--"`,
		`2 message/rfc822 msg=false deep=true "Subject: i\r\n\r\nbody"`,
		`end 2 size=18`,
		`3 application/octet-stream msg=false deep=false "A=B"`,
	}
	if strings.Join(l.lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("walk:\n%s\nwant:\n%s", strings.Join(l.lines, "\n"), strings.Join(want, "\n"))
	}
	if len(l.problems) != 1 || l.problems[0] != ProblemDepthExceeded {
		t.Errorf("problems %v, want one DepthExceeded", l.problems)
	}
}

// ErrStop ends the walk with no error and leaves the rest unread.
func TestWalkStop(t *testing.T) {
	l := &nodeLog{stopAt: "2"}
	s := NewLineReader(strings.NewReader(nestedMail), LineBufSize)
	if err := WalkLines(s, Limits{}, l); err != nil {
		t.Fatal(err)
	}
	if len(l.lines) != 2 {
		t.Errorf("walked %q, want the two parts before 2", l.lines)
	}
	var rest bytes.Buffer
	if err := s.WriteRest(&rest); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rest.String(), "Content-Type: message/rfc822\r\n") {
		t.Errorf("rest %q does not start at part 2's header", rest.String())
	}
}

// A visitor error ends the walk and is returned as is; a cancelled context
// too.
func TestWalkErrors(t *testing.T) {
	boom := errors.New("boom")
	err := Walk(context.Background(), strings.NewReader(nestedMail), Limits{}, visitorFunc(func(*Node, *Body) error { return boom }))
	if !errors.Is(err, boom) {
		t.Errorf("visitor error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = Walk(ctx, strings.NewReader(nestedMail), Limits{}, visitorFunc(func(*Node, *Body) error { return nil }))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled walk: %v", err)
	}
}

type visitorFunc func(*Node, *Body) error

func (visitorFunc) Header(*Node) (Action, error)  { return Descend, nil }
func (f visitorFunc) Body(n *Node, b *Body) error { return f(n, b) }
