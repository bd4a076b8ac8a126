package imapserver

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// nested is a message of depth multipart levels, each with one part, and
// a text part at the bottom.
func nested(depth int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n")
	for i := 0; i < depth; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nbottom\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.Bytes()
}

// BODYSTRUCTURE describes MaxNesting levels and then one opaque part,
// however deep the message goes; a shallower message is described whole.
func TestBodyStructureNestingBounded(t *testing.T) {
	levels := func(bs imap.BodyStructure) (n int, leaf *imap.BodyStructureSinglePart) {
		for {
			mp, ok := bs.(*imap.BodyStructureMultiPart)
			if !ok {
				return n, bs.(*imap.BodyStructureSinglePart)
			}
			if len(mp.Children) != 1 {
				t.Fatalf("level %d has %d children", n, len(mp.Children))
			}
			n, bs = n+1, mp.Children[0]
		}
	}
	n, leaf := levels(ExtractBodyStructure(bytes.NewReader(nested(10))))
	if n != 10 || leaf.Type != "text" || leaf.Subtype != "plain" {
		t.Fatalf("depth 10: %d levels, then %s/%s", n, leaf.Type, leaf.Subtype)
	}
	n, leaf = levels(ExtractBodyStructure(bytes.NewReader(nested(3 * MaxNesting))))
	if n != MaxNesting || leaf.Type != "application" || leaf.Subtype != "octet-stream" {
		t.Fatalf("depth %d: %d levels, then %s/%s", 3*MaxNesting, n, leaf.Type, leaf.Subtype)
	}
	// message/rfc822 levels count the same.
	var b bytes.Buffer
	for i := 0; i < 3*MaxNesting; i++ {
		b.WriteString("Subject: level\r\nContent-Type: message/rfc822\r\n\r\n")
	}
	b.WriteString("Subject: bottom\r\n\r\nbottom\r\n")
	bs := ExtractBodyStructure(bytes.NewReader(b.Bytes()))
	for n = 0; ; n++ {
		sp := bs.(*imap.BodyStructureSinglePart)
		if sp.MessageRFC822 == nil {
			if n != MaxNesting || sp.Type != "application" {
				t.Fatalf("message/rfc822 nested: %d levels, then %s/%s", n, sp.Type, sp.Subtype)
			}
			break
		}
		bs = sp.MessageRFC822.BodyStructure
	}
}

// A section path deeper than BODYSTRUCTURE describes names nothing.
func TestBodySectionNestingBounded(t *testing.T) {
	msg := nested(3 * MaxNesting)
	path := func(n int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = 1
		}
		return p
	}
	if got := ExtractBodySection(bytes.NewReader(msg), &imap.FetchItemBodySection{Part: path(5)}); !bytes.Contains(got, []byte("--b5")) {
		t.Fatalf("part 1.1.1.1.1: %.80q", got)
	}
	if got := ExtractBodySection(bytes.NewReader(msg), &imap.FetchItemBodySection{Part: path(MaxNesting + 2)}); got != nil {
		t.Fatalf("a path of %d levels gave %d bytes", MaxNesting+2, len(got))
	}
}
