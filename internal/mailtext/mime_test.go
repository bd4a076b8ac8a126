package mailtext

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

type headerLine struct {
	text string
	kind HeaderLineKind
	over bool
}

func readSection(t *testing.T, in string, hr HeaderReader) ([]RawField, HeaderEnd, []headerLine, string) {
	t.Helper()
	var lines []headerLine
	hr.Line = func(b []byte, k HeaderLineKind, over bool) error {
		lines = append(lines, headerLine{string(b), k, over})
		return nil
	}
	s := NewLineReader(strings.NewReader(in), 64)
	fields, end, err := hr.Read(s)
	if err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	if err := s.WriteRest(&rest); err != nil {
		t.Fatal(err)
	}
	return fields, end, lines, rest.String()
}

func TestHeaderReaderLines(t *testing.T) {
	in := "From sender Mon\r\n stray\r\nsubject : Hello\r\n\tworld\r\nX-Big: " + strings.Repeat("y", 70) + "\r\nX-Late: z\r\n\r\nbody\r\n"
	fields, end, lines, rest := readSection(t, in, HeaderReader{MaxBytes: 60, Root: true})
	if end != HeaderEndBlank || rest != "body\r\n" {
		t.Fatalf("end %v, rest %q", end, rest)
	}
	wantFields := []RawField{{Name: "Subject", Value: "Hello\tworld"}}
	if !reflect.DeepEqual(fields, wantFields) {
		t.Errorf("fields %+v, want %+v (fields past MaxBytes are not parsed)", fields, wantFields)
	}
	var kinds []HeaderLineKind
	var text strings.Builder
	for _, l := range lines {
		kinds = append(kinds, l.kind)
		text.WriteString(l.text)
	}
	wantKinds := []HeaderLineKind{LineMbox, LineContinuation, LineField, LineContinuation, LineField, LineFragment, LineField, LineEnd}
	if !reflect.DeepEqual(kinds, wantKinds) {
		t.Errorf("kinds %v, want %v", kinds, wantKinds)
	}
	if text.String()+rest != in {
		t.Errorf("lines and rest do not add up to the input")
	}
	if lines[3].over || !lines[4].over || !lines[6].over {
		t.Errorf("over flags %+v", lines)
	}
}

func TestHeaderReaderEnds(t *testing.T) {
	_, end, _, rest := readSection(t, "A: b\r\nnot a field\r\nmore\r\n", HeaderReader{MaxBytes: 1000})
	if end != HeaderEndBody || rest != "not a field\r\nmore\r\n" {
		t.Errorf("non-field line: end %v, rest %q", end, rest)
	}
	_, end, _, rest = readSection(t, "From x\r\nA: b\r\n", HeaderReader{MaxBytes: 1000})
	if end != HeaderEndBody || rest != "From x\r\nA: b\r\n" {
		t.Errorf("mbox line outside the root: end %v, rest %q", end, rest)
	}
	fields, end, _, _ := readSection(t, "A: b", HeaderReader{MaxBytes: 1000})
	if end != HeaderEndInput || len(fields) != 1 || fields[0].Value != "b" {
		t.Errorf("end of input: end %v, fields %+v", end, fields)
	}
	s := NewLineReader(strings.NewReader("A: b\r\n--q\r\nrest"), 64)
	s.PushBoundary("q")
	_, end, err := HeaderReader{MaxBytes: 1000}.Read(s)
	if err != nil || end != HeaderEndBoundary {
		t.Fatalf("boundary: end %v, err %v", end, err)
	}
	if b, start, _ := s.Next(); string(b) != "--q\r\n" || !start {
		t.Errorf("the delimiter was not left unread: %q", b)
	}
	stop := errors.New("stop")
	_, _, err = HeaderReader{MaxBytes: 1000, Line: func([]byte, HeaderLineKind, bool) error { return stop }}.Read(NewLineReader(strings.NewReader("A: b\r\n"), 64))
	if !errors.Is(err, stop) {
		t.Errorf("Line's error not returned: %v", err)
	}
}

func TestLineReaderBody(t *testing.T) {
	in := "pre\r\n--out\r\n\r\nfirst\r\n--in\r\n\r\ninner\r\n--out--\r\nepilogue\r\n"
	s := NewLineReader(strings.NewReader(in), 64)
	outer := s.PushBoundary("out")
	if err := s.SkipTo(outer+1, nil); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := s.Next(); string(b) != "--out\r\n" {
		t.Fatalf("SkipTo stopped at %q", b)
	}
	if b, _, _ := s.Next(); string(b) != "\r\n" {
		t.Fatalf("header end %q", b)
	}
	inner := s.PushBoundary("in")
	br := s.Body()
	body, err := io.ReadAll(br)
	if err != nil || string(body) != "first" || string(br.DelimiterEOL()) != "\r\n" {
		t.Fatalf("body %q, delimiter EOL %q, err %v", body, br.DelimiterEOL(), err)
	}
	if b, _, _ := s.Next(); string(b) != "--in\r\n" {
		t.Fatalf("delimiter not left unread: %q", b)
	}
	// An outer delimiter closes the unterminated inner level.
	if err := s.SkipTo(inner, nil); err != nil {
		t.Fatal(err)
	}
	b, start, _ := s.Next()
	if level, final, ok := s.Match(b); !start || !ok || !final || level != outer {
		t.Fatalf("Match(%q) = %d %v %v", b, level, final, ok)
	}
	s.PopBoundary(outer)
	before := s.Consumed()
	s.Unread()
	if s.Consumed() != before-int64(len(b)) {
		t.Errorf("Consumed not adjusted by Unread")
	}
	var rest bytes.Buffer
	if err := s.WriteRest(&rest); err != nil || rest.String() != "--out--\r\nepilogue\r\n" {
		t.Errorf("WriteRest %q, %v", rest.String(), err)
	}
	if _, _, ok := s.Match([]byte("--out\r\n")); ok {
		t.Errorf("a popped level still matches")
	}
	br = NewLineReader(strings.NewReader("no delimiter\r\n"), 64).Body()
	if body, _ := io.ReadAll(br); string(body) != "no delimiter\r\n" || len(br.DelimiterEOL()) != 0 {
		t.Errorf("body at end of input %q, delimiter EOL %q", body, br.DelimiterEOL())
	}
}

func TestClassifyEntity(t *testing.T) {
	f := func(kv ...string) []RawField {
		var out []RawField
		for i := 0; i < len(kv); i += 2 {
			out = append(out, RawField{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	cases := []struct {
		name    string
		fields  []RawField
		defType string
		want    Entity
	}{
		{"default", nil, "", Entity{MediaType: "text/plain"}},
		{"digest child", nil, ChildType("multipart/digest"), Entity{MediaType: "message/rfc822", Message: true}},
		{"invalid", f("Content-Type", "text", "Content-Transfer-Encoding", "(c) BASE64 "), "", Entity{MediaType: "text/plain", CTE: "base64", BadContentType: true}},
		{"no boundary", f("Content-Type", "Multipart/Mixed"), "", Entity{MediaType: "text/plain", Params: map[string]string{}, NoBoundary: true}},
		{"multipart", f("Content-Type", `multipart/mixed; boundary="a;b"`, "Content-Type", "text/html"), "", Entity{MediaType: "multipart/mixed", Params: map[string]string{"boundary": "a;b"}, Multipart: true}},
		{"filename", f("Content-Type", "application/pdf; name=n.pdf", "Content-Disposition", "Attachment; filename*=utf-8''%E6%97%A5.pdf"), "", Entity{
			MediaType: "application/pdf", Params: map[string]string{"name": "n.pdf"}, Disposition: "attachment", Filename: "日.pdf"}},
		{"name fallback", f("Content-Type", "message/global; name=m.eml"), "", Entity{MediaType: "message/global", Params: map[string]string{"name": "m.eml"}, Filename: "m.eml", Message: true}},
	}
	for _, c := range cases {
		if got := ClassifyEntity(c.fields, c.defType); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	if JoinPath("", 2) != "2" || JoinPath("1.3", 1) != "1.3.1" {
		t.Errorf("JoinPath numbering")
	}
}

func TestTransferDecoderLenient(t *testing.T) {
	cases := []struct{ cte, in, want string }{
		{"base64", "QU*JD\r\nRA==RUY=", "ABCDEF"},
		{"quoted-printable", "a=3Db= \t\r\nc=ZZ=", "a=bc=ZZ="},
		{"7bit", "as is=3D", "as is=3D"},
		{"x-unknown", "QQ==", "QQ=="},
	}
	for _, c := range cases {
		got, err := io.ReadAll(NewTransferDecoder(strings.NewReader(c.in), c.cte))
		if err != nil || string(got) != c.want {
			t.Errorf("%s %q: got %q, %v; want %q", c.cte, c.in, got, err, c.want)
		}
	}
}

func TestContextReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := NewContextReader(ctx, strings.NewReader("abc"))
	p := make([]byte, 2)
	if n, err := r.Read(p); n != 2 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	cancel()
	if _, err := r.Read(p); !errors.Is(err, context.Canceled) || !errors.Is(r.Err(), context.Canceled) {
		t.Fatalf("after cancel: %v, Err %v", err, r.Err())
	}
}

// FuzzHeaderReader: the lines handed to Line and what is left unread add
// up to the input, parsed fields have valid names, and nothing beyond
// MaxBytes is parsed.
func FuzzHeaderReader(f *testing.F) {
	f.Add([]byte("From x\r\n y\r\nA : b\r\n c\r\n\r\nbody"), true)
	f.Add([]byte("A: b\n--q--\nC: d\n"), false)
	f.Add([]byte("X: "+strings.Repeat("v", 100)+"\nY: z\nnot field\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, root bool) {
		const maxBytes = 64
		var seen bytes.Buffer
		total := 0
		s := NewLineReader(bytes.NewReader(data), 32)
		s.PushBoundary("q")
		fields, _, err := HeaderReader{MaxBytes: maxBytes, Root: root, Line: func(b []byte, k HeaderLineKind, over bool) error {
			seen.Write(b)
			if k != LineMbox && k != LineEnd {
				total += len(b)
				if over != (total > maxBytes) {
					t.Fatalf("over %v at %d bytes", over, total)
				}
			}
			return nil
		}}.Read(s)
		if err != nil {
			t.Fatal(err)
		}
		parsed := 0
		for _, fl := range fields {
			if !ValidFieldName(fl.Name) {
				t.Fatalf("invalid field name %q", fl.Name)
			}
			parsed += len(fl.Name) + len(fl.Value)
		}
		if parsed > maxBytes {
			t.Fatalf("%d bytes parsed, bound %d", parsed, maxBytes)
		}
		if err := s.WriteRest(&seen); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(seen.Bytes(), data) {
			t.Fatalf("lines and rest %q, input %q", seen.Bytes(), data)
		}
	})
}

// BodyReader.WriteTo (used by io.Copy) yields what Read yields, after any
// number of bytes were read with Read, and leaves the same delimiter.
func FuzzBodyReaderWriteTo(f *testing.F) {
	f.Add("a\r\nb\r\n--x\r\nrest", 2, 8)
	f.Add("line\n\n--x--\n", 0, 64)
	f.Add("no delimiter\r", 3, 64)
	f.Fuzz(func(t *testing.T, in string, pre int, size int) {
		size = 16 + size&255
		read := func(useWriteTo bool) (string, string, string) {
			s := NewLineReader(strings.NewReader(in), size)
			s.PushBoundary("x")
			br := s.Body()
			head := make([]byte, pre&63)
			n, _ := io.ReadFull(br, head)
			var body bytes.Buffer
			body.Write(head[:n])
			if useWriteTo {
				if _, err := br.WriteTo(&body); err != nil {
					t.Fatal(err)
				}
			} else {
				b, err := io.ReadAll(br)
				if err != nil {
					t.Fatal(err)
				}
				body.Write(b)
			}
			var rest bytes.Buffer
			if err := s.WriteRest(&rest); err != nil {
				t.Fatal(err)
			}
			return body.String(), string(br.DelimiterEOL()), rest.String()
		}
		b1, d1, r1 := read(false)
		b2, d2, r2 := read(true)
		if b1 != b2 || d1 != d2 || r1 != r2 {
			t.Fatalf("Read: %q %q %q\nWriteTo: %q %q %q", b1, d1, r1, b2, d2, r2)
		}
	})
}
