package jamail

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/internal/mailtext"
)

// Every generated message parses, its Subject and text decode back to
// Japanese in every charset, and the same seed gives the same bytes.
func TestGenerateDecodesAndIsReproducible(t *testing.T) {
	msgs := Generate(1, 300, 150)
	again := Generate(1, 300, 150)
	charsets := map[string]int{}
	kinds := map[string]int{}
	for i, m := range msgs {
		if !bytes.Equal(m.Raw, again[i].Raw) {
			t.Fatalf("%s differs between two runs with the same seed", m.Name)
		}
		charsets[m.Charset]++
		kinds[m.Kind]++
		p, err := mailtext.Parse(context.Background(), bytes.NewReader(m.Raw), mailtext.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		if !hasKana(p.Subject) && !hasKana(p.Text) {
			t.Fatalf("%s (%s): no Japanese after decoding: %q / %.200q", m.Name, m.Charset, p.Subject, p.Text)
		}
		if strings.ContainsRune(p.Subject+p.Text, '\uFFFD') {
			t.Fatalf("%s (%s): replacement characters after decoding: %q / %.300q", m.Name, m.Charset, p.Subject, p.Text)
		}
		if len(p.Problems) > 0 {
			t.Fatalf("%s: parse problems %v", m.Name, p.Problems)
		}
	}
	for _, cs := range []string{ISO2022JP, ShiftJIS, UTF8} {
		if charsets[cs] < 20 {
			t.Errorf("only %d messages in %s", charsets[cs], cs)
		}
	}
	if len(kinds) < len(hamKinds)+len(spamKinds)-2 {
		t.Errorf("only %d kinds: %v", len(kinds), kinds)
	}
	if other := Generate(2, 300, 150); bytes.Equal(other[0].Raw, msgs[0].Raw) {
		t.Error("seed 2 gave seed 1's first message")
	}
}

func hasKana(s string) bool {
	for _, r := range s {
		if r >= 0x3040 && r <= 0x30FF {
			return true
		}
	}
	return false
}

// Each message's Message-ID and boundaries are of the form the software it
// names writes: Outlook's '$'-joined hex numbers with Thread-Index and
// NextPart boundaries, Thunderbird's UUID with User-Agent, Becky!'s time
// stamp, Apple Mail's upper-case UUID.
func TestMailSoftwareFingerprints(t *testing.T) {
	forms := []struct {
		mailer, mid, boundary, also string
	}{
		{"X-Mailer: Microsoft (Office )?Outlook 1[26]\\.0", `<[0-9a-f]{4}01[0-9a-f]{6}\$[0-9a-f]{8}\$[0-9a-f]{8}\$@`, `----=_NextPart_000_`, `Thread-Index: [A-Za-z0-9+/]+=*\r\n`},
		{"User-Agent: Mozilla/5.0 .* Thunderbird/", `<[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}@`, `------------[0-9A-Za-z]{24}`, `Content-Language: ja`},
		{"X-Mailer: Becky! ver\\.", `<20[0-9]{12}\.[0-9A-F]{4}\.[0-9A-F]{8}@`, ``, ``},
		{"X-Mailer: Apple Mail ", `<[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}@`, `Apple-Mail=_`, ``},
	}
	seen := make([]int, len(forms))
	for _, m := range Generate(2, 400, 0) {
		raw := string(m.Raw)
		head, _, _ := strings.Cut(raw, "\r\n\r\n")
		for i, f := range forms {
			if !regexp.MustCompile(`(?m)^` + f.mailer).MatchString(head) {
				continue
			}
			seen[i]++
			if !regexp.MustCompile(`(?m)^Message-ID: ` + f.mid).MatchString(head) {
				t.Errorf("%s: %s with another Message-ID:\n%s", m.Name, f.mailer, head)
			}
			if f.also != "" && !regexp.MustCompile(f.also).MatchString(head) {
				t.Errorf("%s: %s without %s:\n%s", m.Name, f.mailer, f.also, head)
			}
			if f.boundary != "" && strings.Contains(head, "boundary=") && !strings.Contains(head, `boundary="`+strings.SplitN(f.boundary, "[", 2)[0]) {
				t.Errorf("%s: %s with another boundary:\n%s", m.Name, f.mailer, head)
			}
		}
	}
	for i, n := range seen {
		if n == 0 {
			t.Errorf("no message names %s", forms[i].mailer)
		}
	}
}
